(function () {
  "use strict";
  // The batch's rows come as columns (strings as a dictionary and codes): decoded once here.
  // Every user-given string reaches the page through textContent, never as HTML.
  const phases = { script: performance.now() };  // when each step ended (ms after navigation)
  const data = JSON.parse(document.getElementById("index-data").textContent);
  phases.parsed = performance.now();
  const $ = (role) => document.querySelector('[data-role="' + role + '"]');
  const el = (tag, text, cls) => {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  };
  const SVG = "http://www.w3.org/2000/svg";
  const svg = (tag, attrs) => { const e = document.createElementNS(SVG, tag); for (const k in attrs) e.setAttribute(k, attrs[k]); return e; };
  const n = data.n, rows = new Array(n);
  // A column as index_page._column wrote it: one value, a dictionary, folders and names,
  // lists of codes, fixed-point lists, the video id with a prefix, or plain values.
  function column(v) {
    if (Array.isArray(v)) return v;
    if ("const" in v) return new Array(n).fill(v.const);
    if (v.codes) return v.codes.map((c) => (c < 0 ? null : v.dict[c]));
    if (v.lists && v.dict) return v.lists.map((l) => (l === null ? null : l.map((c) => v.dict[c])));
    if (v.lists && v.fixed) { const f = Math.pow(10, v.fixed); return v.lists.map((l) => (l === null ? null : l.map((x) => x / f))); }
    if (v.folders) return v.names.map((name, i) => (name === null ? null : v.folders[v.folder[i]] + "/" + name));
    if (v.prefix !== undefined) return v.nulls.map((nul, i) => (nul ? null : v.prefix + ids[i]));
    throw new Error("unknown column encoding");
  }
  const decoded = {}, ids = column(data.values.video_id);
  for (const name of data.columns) decoded[name] = name === "video_id" ? ids : column(data.values[name]);
  for (let i = 0; i < n; i++) {
    const r = { _i: i, _links: data.links[i] };
    for (const name of data.columns) r[name] = decoded[name][i];
    r._class = r.label !== null && r.label !== undefined ? String(r.label) : r.pred_name;
    rows[i] = r;
  }
  phases.decoded = performance.now();
  const isNum = (v) => typeof v === "number" && Number.isFinite(v);
  const fmt = (v, digits) => (isNum(v) ? (Number.isInteger(v) && !digits ? String(v) : v.toFixed(digits === undefined ? 3 : digits)) : "");
  const mean = (values) => { let s = 0, k = 0; for (const v of values) if (isNum(v)) { s += v; k++; } return k ? s / k : null; };

  // -- header ---------------------------------------------------------------------------
  document.getElementById("model").textContent = data.model;
  if (data.warning) document.getElementById("warning").textContent = "; caveat: " + data.warning;
  const s = data.summary;
  document.getElementById("summary").textContent =
    s.videos + " videos: " + s.ok + " explained, " + s.failed + " failed" +
    (s.accuracy === null ? "; no labels" : "; accuracy " + (100 * s.accuracy).toFixed(1) + " % on " + s.labelled + " labelled");

  // -- filter state -------------------------------------------------------------------------
  const state = { view: "all", wrong: false, cls: "", text: "", cell: null, ranges: {}, key: null, order: 1 };
  let shown = rows;

  // -- confusion matrix ---------------------------------------------------------------------
  const MAX_CLASSES = 20;
  (function confusion() {
    const table = $("confusion"), labelled = rows.filter((r) => r.status === "ok" && r.correct !== null && r.correct !== undefined);
    const note = document.getElementById("confusion-note");
    if (!labelled.length) { note.textContent = "no labelled videos: no matrix"; return; }
    const counts = new Map();
    for (const r of labelled) counts.set(String(r.label), (counts.get(String(r.label)) || 0) + 1);
    for (const r of labelled) if (!counts.has(r.pred_name)) counts.set(r.pred_name, 0);
    const classes = [...counts.keys()].sort((a, b) => counts.get(b) - counts.get(a) || (a < b ? -1 : 1)).slice(0, MAX_CLASSES);
    if (counts.size > MAX_CLASSES) note.textContent = "the " + MAX_CLASSES + " classes with the most labelled videos of " + counts.size;
    const cell = new Map();
    let top = 1;
    for (const r of labelled) {
      const k = String(r.label) + "\u0000" + r.pred_name, c = (cell.get(k) || 0) + 1;
      cell.set(k, c); top = Math.max(top, c);
    }
    const head = el("tr"); head.appendChild(el("th", "label \u2193  predicted \u2192"));
    for (const p of classes) { const th = el("th", p, "pred"); th.title = p; head.appendChild(th); }
    table.appendChild(head);
    for (const t of classes) {
      const tr = el("tr"), th = el("th", t); th.title = t; tr.appendChild(th);
      for (const p of classes) {
        const c = cell.get(t + "\u0000" + p) || 0, td = el("td", c);
        td.dataset.true = t; td.dataset.pred = p;
        if (!c) td.className = "zero";
        else {
          const a = 0.12 + 0.6 * (c / top);
          td.style.background = t === p ? "rgba(42,122,42," + a + ")" : "rgba(198,40,40," + a + ")";
          td.title = c + " videos labelled " + t + ", predicted " + p;
          td.addEventListener("click", () => {
            const same = state.cell && state.cell[0] === t && state.cell[1] === p;
            state.cell = same ? null : [t, p];
            apply();
          });
        }
        tr.appendChild(td);
      }
      table.appendChild(tr);
    }
  })();

  // -- per-class table ------------------------------------------------------------------------
  const STATS = [["score", "score", "score"], ["fraction_above", "above 0.5", "> 0.5"], ["spread", "spread", "spread"], ["pointing", "pointing", "point."], ["mass", "mass", "mass"], ["iou", "IoU", "IoU"]];
  const present = (name) => rows.some((r) => isNum(r[name]));
  const stats = STATS.filter(([name]) => present(name));
  (function perClass() {
    const table = $("per-class"), head = el("tr");
    for (const h of ["class", "videos", "acc.", ...stats.map(([, , t]) => t)]) head.appendChild(el("th", h));
    table.tHead.appendChild(head);
    const groups = new Map();
    for (const r of rows) {
      if (r.status !== "ok") continue;
      if (!groups.has(r._class)) groups.set(r._class, []);
      groups.get(r._class).push(r);
    }
    for (const [name, members] of [...groups].sort((a, b) => b[1].length - a[1].length || (a[0] < b[0] ? -1 : 1))) {
      const tr = el("tr");
      tr.dataset.class = name;
      const acc = mean(members.filter((r) => r.correct !== null && r.correct !== undefined).map((r) => (r.correct ? 1 : 0)));
      tr.appendChild(el("td", name));
      tr.appendChild(el("td", members.length));
      tr.appendChild(el("td", acc === null ? "-" : (100 * acc).toFixed(0) + " %"));
      for (const [key] of stats) { const m = mean(members.map((r) => r[key])); tr.appendChild(el("td", m === null ? "-" : m.toFixed(3))); }
      tr.addEventListener("click", () => { state.cls = state.cls === name ? "" : name; cls.value = state.cls; apply(); });
      table.tBodies[0].appendChild(tr);
    }
  })();

  // -- histograms with a brush ------------------------------------------------------------------
  const BINS = 24, HW = 200, HH = 64;
  const histograms = stats.map(([name, title]) => {
    let lo = Infinity, hi = -Infinity;
    for (const r of rows) { const v = r[name]; if (isNum(v)) { if (v < lo) lo = v; if (v > hi) hi = v; } }
    if (name === "score" || name === "fraction_above" || name === "pointing" || name === "mass" || name === "iou") { lo = Math.min(lo, 0); hi = Math.max(hi, 1); }
    if (!(hi > lo)) hi = lo + 1;
    const box = el("div", null, "histogram"); box.dataset.role = "histogram"; box.dataset.column = name;
    const label = el("div", null, "name"); label.appendChild(el("span", title)); const range = el("span", "", "hint"); label.appendChild(range);
    const chart = svg("svg", { viewBox: "0 0 " + HW + " " + HH, preserveAspectRatio: "none" });
    box.appendChild(label); box.appendChild(chart);
    document.getElementById("histograms").appendChild(box);
    const bin = (v) => Math.min(BINS - 1, Math.max(0, Math.floor(((v - lo) / (hi - lo)) * BINS)));
    const all = new Array(BINS).fill(0);
    for (const r of rows) if (isNum(r[name])) all[bin(r[name])]++;
    const top = Math.max(1, ...all), bw = HW / BINS, plot = HH - 12;
    const bars = (counts, cls) => counts.map((c, b) => { const h = (c / top) * plot; const e = svg("rect", { x: b * bw + 0.5, y: plot - h, width: bw - 1, height: h, class: cls }); chart.appendChild(e); return e; });
    bars(all, "all");
    const kept = bars(new Array(BINS).fill(0), "kept");
    for (const [v, anchor] of [[lo, "start"], [hi, "end"]]) { const t = svg("text", { x: anchor === "start" ? 1 : HW - 1, y: HH - 1, "text-anchor": anchor, class: "axis" }); t.textContent = fmt(v, 2); chart.appendChild(t); }
    const brush = svg("rect", { x: 0, y: 0, width: 0, height: plot, class: "brush" }); chart.appendChild(brush);
    const valueAt = (ev) => { const r = chart.getBoundingClientRect(); return lo + Math.min(1, Math.max(0, (ev.clientX - r.left) / r.width)) * (hi - lo); };
    const xOf = (v) => ((v - lo) / (hi - lo)) * HW;
    let start = null;
    chart.addEventListener("pointerdown", (ev) => { start = valueAt(ev); chart.setPointerCapture(ev.pointerId); ev.preventDefault(); });
    chart.addEventListener("pointermove", (ev) => {
      if (start === null) return;
      const v = valueAt(ev); brush.setAttribute("x", xOf(Math.min(start, v))); brush.setAttribute("width", Math.abs(xOf(v) - xOf(start)));
    });
    chart.addEventListener("pointerup", (ev) => {
      if (start === null) return;
      const v = valueAt(ev), a = Math.min(start, v), b = Math.max(start, v);
      start = null;
      if (xOf(b) - xOf(a) < 2) delete state.ranges[name]; else state.ranges[name] = [a, b];
      apply();
    });
    return {
      name, update(list) {
        const counts = new Array(BINS).fill(0);
        for (const r of list) if (isNum(r[name])) counts[bin(r[name])]++;
        counts.forEach((c, b) => { const h = (c / top) * plot; kept[b].setAttribute("y", plot - h); kept[b].setAttribute("height", h); });
        const sel = state.ranges[name];
        brush.setAttribute("x", sel ? xOf(sel[0]) : 0); brush.setAttribute("width", sel ? xOf(sel[1]) - xOf(sel[0]) : 0);
        range.textContent = sel ? fmt(sel[0], 2) + " to " + fmt(sel[1], 2) : "";
      },
    };
  });

  phases.overview = performance.now();
  // -- the table's columns -------------------------------------------------------------------
  const COLUMNS = [
    { key: "thumb", title: "key frame", width: 196, on: true, sort: null },
    { key: "path", title: "video", width: 250, on: true },
    { key: "label", title: "label", width: 110, on: true },
    { key: "pred_name", title: "predicted", width: 130, on: true },
    { key: "score", title: "score", width: 70, on: true, num: 3 },
    { key: "correct", title: "correct", width: 70, on: true },
    { key: "fraction_above", title: "above 0.5", width: 82, on: true, num: 3 },
    { key: "spread", title: "spread", width: 70, on: true, num: 3 },
    { key: "pointing", title: "pointing", width: 76, on: present("pointing"), num: 2 },
    { key: "mass", title: "mass", width: 66, on: present("mass"), num: 3 },
    { key: "iou", title: "IoU", width: 62, on: present("iou"), num: 3 },
    { key: "topk_names", title: "top-k", width: 160, on: false },
    { key: "key_times", title: "key times (s)", width: 120, on: false },
    { key: "duration", title: "duration (s)", width: 90, on: false, num: 2 },
    { key: "frames", title: "frames", width: 70, on: false, num: 0 },
    { key: "fps", title: "fps", width: 60, on: false, num: 2 },
    { key: "seconds", title: "explain (s)", width: 86, on: false, num: 2 },
    { key: "status", title: "status", width: 66, on: false },
    { key: "video_id", title: "video id", width: 200, on: false },
  ];
  const list = document.getElementById("column-list");
  for (const c of COLUMNS) {
    const box = el("input"); box.type = "checkbox"; box.checked = c.on; box.dataset.column = c.key;
    box.addEventListener("change", () => { c.on = box.checked; layout(); draw(true); });
    const label = el("label"); label.appendChild(box); label.appendChild(document.createTextNode(" " + c.title)); list.appendChild(label);
  }
  const table = $("index"), head = table.tHead.rows[0], body = $("rows"), cols = table.querySelector("colgroup");
  let visible = [];
  function layout() {
    visible = COLUMNS.filter((c) => c.on);
    head.replaceChildren(); cols.replaceChildren();
    for (const c of visible) {
      const col = el("col"); col.style.width = c.width + "px"; cols.appendChild(col);
      const th = el("th", c.title); th.dataset.column = c.key; th.title = c.title;
      if (state.key === c.key) th.className = "sorted" + (state.order < 0 ? " up" : "");
      if (c.key !== "thumb") th.addEventListener("click", () => { state.order = state.key === c.key ? -state.order : 1; state.key = c.key; layout(); apply(); });
      head.appendChild(th);
    }
  }

  // -- rows, drawn virtually: only those on screen (and a few around) are in the DOM --------
  const scroller = $("scroller"), ROW = parseFloat(getComputedStyle(document.documentElement).getPropertyValue("--row")) || 132;
  const OVERSCAN = 6;
  let drawn = [-1, -1];
  const base = (p) => { const k = Math.max(p.lastIndexOf("/"), p.lastIndexOf("\\")); return [p.slice(k + 1), p.slice(0, k + 1)]; };
  const link = (r, what) => {
    const id = encodeURIComponent(r.video_id);
    if (what === "thumb") return r._links & 1 ? "thumbs/" + id + ".png" : null;
    if (what === "keys") return r._links & 2 ? "thumbs/" + id + ".keys.png" : null;
    return r._links & 4 ? String(r.output).split("/").map(encodeURIComponent).join("/") + "/report.html" : null;
  };
  function cell(r, c) {
    const td = el("td");
    const v = r[c.key];
    if (c.key === "thumb") {
      td.className = "thumb";
      const src = link(r, "thumb");
      if (src) { const img = el("img"); img.src = src; img.alt = ""; img.loading = "lazy"; img.dataset.row = r._i; td.appendChild(img); }
    } else if (c.key === "path") {
      td.className = "path";
      const [name, dir] = base(String(v || ""));
      const report = link(r, "report");
      if (report) { const a = el("a", name); a.href = report; td.appendChild(a); } else td.appendChild(el("span", name));
      td.appendChild(el("span", dir, "dir"));
      if (r.error) td.appendChild(el("span", r.error, "err"));
      td.title = String(v || "");
    } else if (c.key === "correct") {
      td.appendChild(v === true ? el("span", "yes", "yes") : v === false ? el("span", "no", "no") : el("span", r.status === "ok" ? "-" : "failed", "small"));
    } else if (Array.isArray(v)) {
      td.textContent = v.map((x) => (isNum(x) && !Number.isInteger(x) ? x.toFixed(2) : x)).join(", ");
    } else if (c.num !== undefined) {
      td.className = "num"; td.textContent = isNum(v) ? v.toFixed(c.num) : "";
    } else {
      td.textContent = v === null || v === undefined ? "" : String(v);
    }
    return td;
  }
  const spacer = (h) => { const tr = el("tr", null, "spacer"); const td = el("td"); td.colSpan = visible.length; td.style.height = h + "px"; tr.appendChild(td); return tr; };
  function draw(force) {
    const first = Math.max(0, Math.floor(scroller.scrollTop / ROW) - OVERSCAN);
    const last = Math.min(shown.length, Math.ceil((scroller.scrollTop + scroller.clientHeight) / ROW) + OVERSCAN);
    if (!force && first === drawn[0] && last === drawn[1]) return;
    drawn = [first, last];
    const out = [spacer(first * ROW)];
    for (let i = first; i < last; i++) {
      const r = shown[i], tr = el("tr");
      tr.dataset.row = r._i;
      if (r.status !== "ok") tr.className = "error"; else if (r.correct === false) tr.className = "wrong";
      for (const c of visible) tr.appendChild(cell(r, c));
      out.push(tr);
    }
    out.push(spacer((shown.length - last) * ROW));
    body.replaceChildren(...out);
  }
  scroller.addEventListener("scroll", () => draw(false), { passive: true });
  window.addEventListener("resize", () => draw(true));

  // -- filtering and views -------------------------------------------------------------------
  const wrong = $("wrong"), cls = $("filter-class"), search = $("search"), view = $("view");
  for (const name of [...new Set(rows.flatMap((r) => [r.label, r.pred_name]).filter((v) => v !== null && v !== undefined).map(String))].sort()) {
    const o = el("option", name); o.value = name; cls.appendChild(o);
  }
  if (!present("mass")) view.querySelector('option[value="wrong-reason"]').disabled = true;
  const VIEWS = {
    all: { keep: () => true, key: null },
    "wrong-confident": { keep: (r) => r.correct === false, key: "score", order: -1 },
    "wrong-reason": { keep: (r) => r.correct === true && isNum(r.mass), key: "mass", order: 1 },
    "by-class": { keep: () => true, key: "_class", order: 1, then: "score" },
    errors: { keep: (r) => r.status !== "ok", key: null },
  };
  function compare(key, order) {
    return (a, b) => {
      const x = a[key], y = b[key];
      const nx = x === null || x === undefined, ny = y === null || y === undefined;
      if (nx || ny) return nx && ny ? 0 : nx ? 1 : -1;
      return (x < y ? -1 : x > y ? 1 : 0) * order;
    };
  }
  function apply() {
    const text = state.text.trim().toLowerCase(), v = VIEWS[state.view];
    const ranges = Object.entries(state.ranges), cellSel = state.cell;
    shown = rows.filter((r) => {
      if (!v.keep(r)) return false;
      if (state.wrong && r.correct !== false && r.status === "ok") return false;
      if (state.cls && String(r.label) !== state.cls && r.pred_name !== state.cls) return false;
      if (cellSel && (r.status !== "ok" || String(r.label) !== cellSel[0] || r.pred_name !== cellSel[1] || r.correct === null)) return false;
      for (const [name, [a, b]] of ranges) { const x = r[name]; if (!isNum(x) || x < a || x > b) return false; }
      if (text && ![r.path, r.label, r.pred_name, r.error].some((x) => x !== null && x !== undefined && String(x).toLowerCase().includes(text))) return false;
      return true;
    });
    const key = state.key || v.key, order = state.key ? state.order : v.order || 1;
    if (key) {
      const first = compare(key, order), then = !state.key && v.then ? compare(v.then, -1) : null;
      shown.sort(then ? (a, b) => first(a, b) || then(a, b) : first);
    }
    for (const h of histograms) h.update(shown);
    for (const td of document.querySelectorAll('[data-role="confusion"] td')) td.classList.toggle("on", !!cellSel && td.dataset.true === cellSel[0] && td.dataset.pred === cellSel[1]);
    for (const tr of $("per-class").tBodies[0].rows) tr.classList.toggle("on", tr.dataset.class === state.cls);
    $("count").textContent = shown.length + " of " + n + " videos";
    const said = [];
    if (cellSel) said.push("label " + cellSel[0] + ", predicted " + cellSel[1]);
    for (const [name, [a, b]] of ranges) said.push(name + " " + fmt(a, 2) + " to " + fmt(b, 2));
    $("filters").textContent = said.length ? "filters: " + said.join("; ") : "";
    scroller.scrollTop = 0;
    draw(true);
  }
  wrong.addEventListener("input", () => { state.wrong = wrong.checked; apply(); });
  cls.addEventListener("input", () => { state.cls = cls.value; apply(); });
  search.addEventListener("input", () => { state.text = search.value; apply(); });
  view.addEventListener("input", () => { state.view = view.value; state.key = null; layout(); apply(); });
  $("clear").addEventListener("click", () => {
    Object.assign(state, { view: "all", wrong: false, cls: "", text: "", cell: null, ranges: {}, key: null, order: 1 });
    wrong.checked = false; cls.value = ""; search.value = ""; view.value = "all"; layout(); apply();
  });

  // -- CSV of the filtered list: the index's columns, in its order ---------------------------
  function csvCell(v) {
    if (v === null || v === undefined) return "";
    let t = Array.isArray(v) ? JSON.stringify(v) : typeof v === "boolean" ? (v ? "true" : "false") : String(v);
    if (typeof v === "string" && /^[=+\-@\t\r]/.test(t)) t = "'" + t;  // never a spreadsheet formula
    return /[",\r\n]/.test(t) ? '"' + t.replace(/"/g, '""') + '"' : t;
  }
  $("export-csv").addEventListener("click", () => {
    const lines = [data.columns.join(",")];
    for (const r of shown) lines.push(data.columns.map((c) => csvCell(r[c])).join(","));
    const blob = new Blob([lines.join("\r\n") + "\r\n"], { type: "text/csv" });
    const a = el("a"); a.href = URL.createObjectURL(blob); a.download = "index-filtered.csv";
    document.body.appendChild(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 60000);
  });

  // -- hover preview: the tube at the key frames and the curve ----------------------------------
  const preview = $("preview"), pimg = preview.querySelector("img"), ptimes = document.getElementById("preview-times"), pcurve = document.getElementById("preview-curve");
  body.addEventListener("mouseover", (ev) => {
    const img = ev.target instanceof HTMLImageElement ? ev.target : null;
    if (!img || img.dataset.row === undefined) return;
    const r = rows[Number(img.dataset.row)], keys = link(r, "keys");
    pimg.src = keys || img.src;
    const times = (r.key_times || []).slice(0, 6);
    ptimes.textContent = times.length ? "key frames at " + times.map((t) => t.toFixed(2) + " s").join(", ") + (keys ? "" : " (no key-frame strip)") : "no key frames";
    pcurve.replaceChildren();
    const c = r.curve || [];
    if (c.length > 1) {
      let top = 1e-9; for (const v of c) top = Math.max(top, v);
      const pts = c.map((v, i) => (4 + (i / (c.length - 1)) * 312).toFixed(1) + "," + (52 - (v / top) * 46).toFixed(1)).join(" ");
      pcurve.appendChild(svg("polyline", { points: pts, fill: "none", stroke: "#d33", "stroke-width": 1.5 }));
      const d = r.duration || 0;
      for (const t of times) if (d > 0) pcurve.appendChild(svg("line", { x1: 4 + (t / d) * 312, x2: 4 + (t / d) * 312, y1: 2, y2: 56, stroke: "#36c" }));
      const label = svg("text", { x: 316, y: 58, "text-anchor": "end", "font-size": 9, fill: "currentColor" });
      label.textContent = "mean saliency over " + fmt(d, 1) + " s";
      pcurve.appendChild(label);
    }
    preview.hidden = false;
    const box = img.getBoundingClientRect();
    preview.style.left = Math.min(box.right + 8, innerWidth - 340) + "px";
    preview.style.top = Math.max(4, Math.min(box.top, innerHeight - 280)) + "px";
  });
  body.addEventListener("mouseout", (ev) => { if (ev.target instanceof HTMLImageElement) preview.hidden = true; });

  layout();
  apply();
  phases.drawn = performance.now();
  document.body.dataset.phases = JSON.stringify(Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, Math.round(v)])));
  document.body.dataset.readyAt = String(performance.now());
  document.body.dataset.ready = "1";
})();
