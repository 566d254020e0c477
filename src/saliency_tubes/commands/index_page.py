"""``index.html`` of a batch: every video in one sortable, filterable table, offline.

A row per video: the thumbnail of its key frame with the tube (``thumbs/<video_id>.png``),
path, label, prediction, score, correct, tube statistics, localisation scores, status and
error; a click on a column sorts by it; filters: wrong only, a class, a text search; each
row links to the video's ``report.html`` (written with ``--format html``). The summary
(accuracy, failures, random weights) is at the top. The rows are JSON in the page
(``<``, ``>``, ``&`` escaped) and every cell is ``textContent``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .model_line import caveats, model_words
from .report import json_for_script

__all__ = ["COLUMNS_SHOWN", "index_page"]

#: (column, heading) of the table, in order.
COLUMNS_SHOWN: tuple[tuple[str, str], ...] = (
    ("path", "video"),
    ("label", "label"),
    ("pred_name", "predicted"),
    ("score", "score"),
    ("correct", "correct"),
    ("fraction_above", "fraction above"),
    ("spread", "spread"),
    ("pointing", "pointing"),
    ("mass", "mass"),
    ("iou", "iou"),
    ("status", "status"),
    ("error", "error"),
)

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' file: data:">
<title>saliency-tubes batch</title>
<style>
body { margin: 0; font: 14px/1.4 system-ui, sans-serif; }
header { padding: 10px 16px; border-bottom: 1px solid #8884; }
h1 { font-size: 17px; margin: 0 0 4px; }
.warn { color: #b00020; font-weight: 600; }
.bar { display: flex; gap: 14px; align-items: center; padding: 8px 16px; flex-wrap: wrap; }
table { border-collapse: collapse; margin: 0 16px 16px; }
th, td { padding: 3px 8px; border-bottom: 1px solid #8883; text-align: left; vertical-align: middle; }
th { cursor: pointer; user-select: none; position: sticky; top: 0; background: Canvas; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.wrong td { background: #ff000012; } tr.error td { background: #ff990018; }
img { display: block; height: 54px; }
</style>
</head>
<body>
<header><h1 id="title">Batch</h1><div data-role="model"><span id="model"></span><span id="warning" class="warn"></span></div><div id="summary"></div></header>
<div class="bar">
  <label><input type="checkbox" data-role="wrong"> wrong only</label>
  <label>class <select data-role="filter-class"><option value="">all</option></select></label>
  <label>search <input type="search" data-role="search" placeholder="path, class, error"></label>
  <span id="count"></span>
</div>
<table data-role="index"><thead><tr></tr></thead><tbody></tbody></table>
<script type="application/json" id="index-data">__DATA__</script>
<script>
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("index-data").textContent);
  const columns = data.columns, rows = data.rows;
  const el = (tag, text) => { const e = document.createElement(tag); if (text !== undefined && text !== null) e.textContent = String(text); return e; };
  document.getElementById("summary").textContent = data.summary;
  document.getElementById("model").textContent = data.model;
  if (data.warning) document.getElementById("warning").textContent = "; caveat: " + data.warning;
  const head = document.querySelector("thead tr"), body = document.querySelector("tbody");
  const wrong = document.querySelector('[data-role="wrong"]'), cls = document.querySelector('[data-role="filter-class"]');
  const search = document.querySelector('[data-role="search"]'), count = document.getElementById("count");
  let key = null, order = 1;
  head.appendChild(el("th", "key frame"));
  for (const [name, title] of columns) {
    const th = el("th", title);
    th.dataset.column = name;
    th.addEventListener("click", () => { order = key === name ? -order : 1; key = name; render(); });
    head.appendChild(th);
  }
  for (const name of [...new Set(rows.flatMap((r) => [r.label, r.pred_name]).filter((v) => v))].sort()) {
    const o = el("option", name); o.value = name; cls.appendChild(o);
  }
  const show = (v) => (typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toPrecision(3)) : v === true ? "yes" : v === false ? "no" : v);
  function render() {
    const text = search.value.trim().toLowerCase();
    let shown = rows.filter((r) =>
      (!wrong.checked || r.correct === false || r.status !== "ok") &&
      (!cls.value || r.label === cls.value || r.pred_name === cls.value) &&
      (!text || [r.path, r.label, r.pred_name, r.error].some((v) => v && String(v).toLowerCase().includes(text))));
    if (key) {
      shown = shown.slice().sort((a, b) => {
        const x = a[key], y = b[key];
        if (x === null || x === undefined) return 1;
        if (y === null || y === undefined) return -1;
        return (x < y ? -1 : x > y ? 1 : 0) * order;
      });
    }
    body.replaceChildren();
    for (const r of shown) {
      const tr = document.createElement("tr");
      if (r.status !== "ok") tr.className = "error"; else if (r.correct === false) tr.className = "wrong";
      const thumb = el("td");
      if (r.thumb) { const img = document.createElement("img"); img.src = r.thumb; img.alt = ""; thumb.appendChild(img); }
      tr.appendChild(thumb);
      for (const [name] of columns) {
        const td = el("td");
        if (name === "path" && r.report) {
          const a = el("a", r.path); a.href = r.report; td.appendChild(a);
        } else {
          td.textContent = r[name] === null || r[name] === undefined ? "" : show(r[name]);
        }
        if (typeof r[name] === "number") td.className = "num";
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
    count.textContent = shown.length + " of " + rows.length + " videos";
  }
  for (const control of [wrong, cls, search]) control.addEventListener("input", render);
  render();
  document.body.dataset.ready = "1";
})();
</script>
</body>
</html>
"""


def index_page(
    rows: Sequence[dict[str, Any]], summary: dict[str, Any], links: dict[str, Any]
) -> str:
    """The page for ``rows`` (index rows), their ``summary`` and per video id its
    ``{"thumb": ..., "report": ...}`` relative links (absent ones omitted)."""
    shown = []
    for r in rows:
        entry = {name: r.get(name) for name, _ in COLUMNS_SHOWN}
        entry.update(links.get(r["video_id"], {}))
        shown.append(entry)
    accuracy = summary.get("accuracy")
    text = f"{summary['videos']} videos: {summary['ok']} ok, {summary['failed']} failed" + (
        f"; accuracy {accuracy:.3f} on {summary['labelled']} labelled"
        if accuracy is not None
        else ""
    )
    data = {
        "columns": [list(c) for c in COLUMNS_SHOWN],
        "rows": shown,
        "summary": text,
        "model": model_words(summary.get("model") or {}),
        "warning": "; ".join(
            caveats(summary.get("model") or {"random_weights": summary.get("random_weights")})
        ),
    }
    return _PAGE.replace("__DATA__", json_for_script(data))
