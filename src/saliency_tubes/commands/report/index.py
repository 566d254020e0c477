"""``index.html`` of a batch: the page an auditor works from, offline and self-contained.

What it shows (``templates/index.html``, ``index.css``, ``index.js``, filled by
:func:`~saliency_tubes.commands.report.templating.fill`): the model line and the counts; a confusion
matrix of the labelled videos whose cells filter the list; a per-class table (videos,
accuracy, mean score, tube statistics and localisation) whose rows filter it; a histogram
per statistic with a brush that keeps a range; views (wrong and confident first, right for
the wrong reason, by class, failed); the list itself with 120 px thumbnails, a hover
preview of the key frames and the curve, sortable columns (optional ones behind a
chooser), drawn virtually so that tens of thousands of rows open and filter at once; the
filtered list as CSV with the columns of ``index.parquet``.

The rows travel as columns (:func:`page_data`): strings that repeat as a dictionary and
codes, floats to 6 significant digits, the links as bits (1: thumbnail, 2: key-frame
strip, 4: report). 20,000 rows take about 7 MB (measured by the browser test).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..batch.worker import COLUMNS
from ..pipeline.model_line import ModelFacts, caveats, model_words
from .templating import Trusted, page, template
from .video import json_for_script

__all__ = ["LINK_BITS", "index_page", "page_data"]

#: The bit of each link of a row (its file exists).
LINK_BITS = {"thumb": 1, "keys": 2, "report": 4}


def _short(value: Any) -> Any:
    """Floats to 6 significant digits (lists too); everything else as it is."""
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, (list, tuple)):
        return [_short(v) for v in value]
    return value


def _significant(x: np.ndarray) -> np.ndarray:
    """``x`` rounded to 6 significant digits (as ``f"{v:.6g}"``; zeros and non-finite values
    stay), at once for a whole column."""
    with np.errstate(divide="ignore", invalid="ignore"):
        digits = 5 - np.floor(np.log10(np.abs(x)))
    digits = np.where(np.isfinite(digits), digits, 0)
    scale = 10.0**digits
    return np.where(np.isfinite(x) & (x != 0), np.rint(x * scale) / scale, x)


def _short_column(values: list[Any]) -> list[Any]:
    """:func:`_short` of each value, the floats (alone or in lists) rounded at once."""
    flat = [x for v in values for x in (v if isinstance(v, list) else (v,)) if isinstance(x, float)]
    if not flat:
        return values
    rounded = iter(_significant(np.asarray(flat, dtype=np.float64)).tolist())
    out: list[Any] = []
    for v in values:
        if isinstance(v, list):
            out.append([next(rounded) if isinstance(x, float) else x for x in v])
        else:
            out.append(next(rounded) if isinstance(v, float) else v)
    return out


def _fixed(values: list[Any], digits: int = 4) -> bool:
    """Whether every value is a list of floats with at most ``digits`` decimals."""
    flat = [x for v in values if v is not None for x in v]
    if not all(isinstance(x, float) for x in flat):
        return False
    scaled = np.asarray(flat, dtype=np.float64) * 10**digits
    return bool(np.all(np.abs(scaled - np.rint(scaled)) < 1e-6))


def _column(values: list[Any], ids: list[Any]) -> Any:
    """A column, as compact as the page decodes it (``index.js``, ``column()``): one value
    for all (``const``); strings that repeat as a dictionary and codes (-1: null); paths
    as a dictionary of folders and the names; lists of strings as codes; lists of floats
    with 4 decimals as integers (``fixed``); ``prefix`` + the video id (``output``);
    anything else as a list (floats to 6 significant digits)."""
    kept = [v for v in values if v is not None]
    if values and all(v == values[0] for v in values) and not isinstance(values[0], list):
        return {"const": _short(values[0])}
    if kept and all(isinstance(v, str) for v in kept):
        if all(v is None or v == f"videos/{i}" for v, i in zip(values, ids, strict=True)):
            return {"prefix": "videos/", "nulls": [v is None for v in values]}
        distinct = sorted(set(kept))
        if len(distinct) < 0.5 * len(values):
            code = {v: i for i, v in enumerate(distinct)}
            return {"dict": distinct, "codes": [-1 if v is None else code[v] for v in values]}
        if all("/" in v for v in kept):
            parts = [None if v is None else v.rsplit("/", 1) for v in values]
            folders = sorted({p[0] for p in parts if p is not None})
            code = {v: i for i, v in enumerate(folders)}
            return {
                "folders": folders,
                "folder": [-1 if p is None else code[p[0]] for p in parts],
                "names": [None if p is None else p[1] for p in parts],
            }
    if kept and all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in kept):
        distinct = sorted({x for v in kept for x in v})
        code = {v: i for i, v in enumerate(distinct)}
        return {
            "dict": distinct,
            "lists": [None if v is None else [code[x] for x in v] for v in values],
        }
    if kept and all(isinstance(v, list) and v for v in kept) and _fixed(values):
        return {
            "fixed": 4,
            "lists": [None if v is None else [round(x * 1e4) for x in v] for v in values],
        }
    return _short_column(values)


def _summary_line(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: summary.get(k) for k in ("videos", "ok", "failed", "accuracy", "labelled")}


def page_data(
    rows: Sequence[dict[str, Any]], summary: dict[str, Any], links: dict[str, Any]
) -> dict[str, Any]:
    """What the page holds: the rows as columns (:data:`COLUMNS`, the index's order), a
    bitmask of links per row (:data:`LINK_BITS`), the counts and the model line."""
    names = list(COLUMNS)
    ids = [r.get("video_id") for r in rows]
    said = summary.get("model") or {"random_weights": summary.get("random_weights")}
    facts = ModelFacts.from_dict(said)  # an older summary's: only whether weights were random
    return {
        "n": len(rows),
        "columns": names,
        "values": {name: _column([r.get(name) for r in rows], ids) for name in names},
        "links": [
            sum(bit for key, bit in LINK_BITS.items() if links.get(r["video_id"], {}).get(key))
            for r in rows
        ],
        "summary": _summary_line(summary),
        "model": model_words(facts),
        "warning": "; ".join(caveats(facts)),
    }


#: What the index page may load: its own inline script and style, thumbnails beside it.
POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src 'self' file: data: blob:"
)


def index_page(
    rows: Sequence[dict[str, Any]], summary: dict[str, Any], links: dict[str, Any]
) -> str:
    """The page for ``rows`` (index rows), their ``summary`` and per video id which of its
    files exist (``{"thumb": ..., "keys": ..., "report": ...}``, true when present)."""
    facts = ModelFacts.from_dict(summary.get("model"))
    title = f"Batch of {summary.get('videos', len(rows))} videos"
    if facts.name:
        title += f": {facts.name}" + (f" ({facts.method})" if facts.method else "")
    return page(
        "index",
        title=title,
        policy=POLICY,
        values={
            "SCRIPT": Trusted(template("index.js")),
            "DATA": Trusted(json_for_script(page_data(rows, summary, links))),
        },
    )
