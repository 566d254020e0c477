"""A batch's records: the journal of finished videos, the Parquet index, the summary.

* The **journal** (``.batch/journal[.shard-I-of-N].jsonl`` in the batch folder) gets one
  JSON line per finished video, flushed and synced as it comes: an interrupted batch keeps
  every video it finished, and a re-run reads it to skip them (:func:`read_journal`; the
  last line of a video wins).
* The **index** (``index.parquet``, one row per input video, columns
  :data:`COLUMNS`, declared once by :class:`IndexRow`) and the **summary**
  (``summary.json`` and ``summary.md``) are written atomically from the rows
  (:func:`write_index`, :func:`summarise_rows`, :func:`write_summary`).
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import IO, Any, get_args, get_origin, get_type_hints

import numpy as np

from ...video import atomic_write_bytes, atomic_write_json
from ..pipeline.model_line import ModelFacts, caveats, model_line

__all__ = [
    "COLUMNS",
    "IndexRow",
    "Journal",
    "read_index",
    "read_journal",
    "summarise_rows",
    "summary_markdown",
    "write_index",
    "write_summary",
]


def _column(doc: str) -> Any:
    """A field of :class:`IndexRow` that may be empty (None), with its meaning."""
    return field(default=None, metadata={"doc": doc})


@dataclass(frozen=True)
class IndexRow:
    """One row of the index: one input video, explained or failed.

    The one declaration of the index's columns: their order (the fields'), their meaning
    (each field's ``doc``, the table in docs/tasks/batch.md: :data:`COLUMNS`) and their Parquet types
    (:meth:`schema`, derived from the fields' types). Rows cross the worker processes, the
    journal and ``index.parquet`` as :meth:`to_dict`'s plain dicts.
    """

    video_id: str = field(
        metadata={"doc": "stable name of the video; its outputs are in videos/<video_id>/"}
    )
    path: str = field(metadata={"doc": "the video file"})
    status: str = field(metadata={"doc": "ok or error"})
    error: str | None = _column("the one-line message of a failed video")
    label: str | None = _column("the class it is labelled with (a name or an index), if any")
    label_index: int | None = _column("that class's index")
    pred: int | None = _column(
        "the index of the top-1 class (the video's mean probability over its clips)"
    )
    pred_name: str | None = _column("its name")
    score: float | None = _column("its probability")
    correct: bool | None = _column("pred == label_index (when labelled)")
    topk: list[int] | None = _column("the explained classes' indices, in order")
    topk_names: list[str] | None = _column("their names")
    topk_scores: list[float] | None = _column("their probabilities")
    fraction_above: float | None = _column("the top-1 tube's share of seen voxels above 0.5")
    spread: float | None = _column(
        "its spatial spread around each frame's centroid (fractions of the frame)"
    )
    key_times: list[float] | None = _column("the top-1 tube's key moments (seconds)")
    curve: list[float] | None = _column(
        "the top-1 tube's mean saliency per frame at 20 evenly spaced points of the video"
    )
    pointing: float | None = _column(
        "3-D pointing game against the ground truth (gt), on the clip grid, with "
        "evaluate's tolerances (1 frame, 6 pixels)"
    )
    mass: float | None = _column("share of the tube's mass inside the ground truth")
    iou: float | None = _column("IoU of the tube's top voxels with the ground truth")
    frames: int | None = _column("the video's frame count (the segment's with --start/--end)")
    fps: float | None = _column("its frame rate")
    duration: float | None = _column("its length in seconds (the segment's with --start/--end)")
    seconds: float | None = _column("wall seconds of its explain")
    output: str | None = _column("its output folder, relative to the batch folder")
    random_weights: bool | None = _column("the model had random (untrained) weights")
    model: str | None = _column("the model's name")
    method: str | None = _column("the explanation method")
    weights_source: str | None = _column(
        "where its weights came from (shipped, file, download, random, factory)"
    )
    caveat: str | None = _column(
        "what its outputs do not mean (the embedded model: 8 synthetic classes only)"
    )
    fingerprint: str | None = _column(
        "hash of everything the row depends on (options, model, weights, video)"
    )

    def to_dict(self) -> dict[str, Any]:
        """The row as a plain dict, every column in order (None where empty)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> IndexRow:
        """The row of a plain dict: its columns (missing ones, in an older journal's rows,
        None; other keys are not columns and left out). A dict without ``video_id``,
        ``path`` or ``status`` is no row: TypeError."""
        return cls(**{name: row[name] for name in COLUMNS if name in row})

    @staticmethod
    def schema() -> Any:
        """The Parquet (pyarrow) schema: one column per field, typed from its annotation."""
        import pyarrow as pa

        scalars = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}
        hints = get_type_hints(IndexRow)
        columns = []
        for f in fields(IndexRow):
            (kind,) = [
                t for t in get_args(hints[f.name]) or (hints[f.name],) if t is not type(None)
            ]
            if get_origin(kind) is list:
                (item,) = get_args(kind)
                columns.append((f.name, pa.list_(scalars[item])))
            else:
                columns.append((f.name, scalars[kind]))
        return pa.schema(columns)


#: The index's columns, in order, with their meaning (the table in docs/tasks/batch.md).
COLUMNS: dict[str, str] = {f.name: f.metadata["doc"] for f in fields(IndexRow)}


class Journal:
    """Append-only record of finished videos (one JSON line each, synced)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[str] | None = None  # opened at the first row: a run that ran nothing
        # writes nothing

    def add(self, row: dict[str, Any]) -> None:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("a", encoding="utf-8")
            if self._fh.tell() and not _ends_line(self.path):
                self._fh.write("\n")  # a line cut by a killed run: end it, keep this row whole
        self._fh.write(json.dumps(row, default=_plain) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


def _ends_line(path: Path) -> bool:
    """Whether the file at ``path`` ends with a newline."""
    with path.open("rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


#: What makes a journal line a row (one without them, from a damaged journal, runs again).
_KEYS = ("video_id", "path", "status")


def read_journal(path: Path) -> dict[str, dict[str, Any]]:
    """The last row of each video in the journal at ``path`` (a cut last line is skipped);
    an error row does not replace an ok row of the same fingerprint (a re-run that failed,
    a full disk, say, while the earlier outputs stayed)."""
    rows: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return rows
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a line cut by a crash: that video runs again
            continue
        if isinstance(row, dict) and all(isinstance(row.get(k), str) for k in _KEYS):
            was = rows.get(row["video_id"])
            if was is not None and was.get("status") == "ok" and row.get("status") != "ok":
                if was.get("fingerprint") == row.get("fingerprint"):
                    continue
            rows[row["video_id"]] = row
    return rows


def write_index(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    """Write the rows as a Parquet table at ``path``, atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(
        [IndexRow.from_dict(row).to_dict() for row in rows], schema=IndexRow.schema()
    )
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return atomic_write_bytes(path, sink.getvalue().to_pybytes())


def read_index(path: Path) -> list[dict[str, Any]]:
    """The rows of an index written by :func:`write_index`."""
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


def _mean(values: Iterable[Any]) -> float | None:
    kept = [float(v) for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def summarise_rows(
    rows: Sequence[dict[str, Any]], settings: dict[str, Any], wall: float, top: int = 10
) -> dict[str, Any]:
    """The summary of a batch: counts, accuracy, confusions, per-class means, failures,
    the slowest videos, throughput and what the videos were explained with."""
    typed = [IndexRow.from_dict(r) for r in rows]  # an older journal's: missing columns None
    ok = [r for r in typed if r.status == "ok"]
    failed = [r for r in typed if r.status != "ok"]
    labelled = [r for r in ok if r.correct is not None]
    confusions = Counter(
        (r.label or str(r.label_index), r.pred_name) for r in labelled if not r.correct
    )
    groups: dict[str, list[IndexRow]] = defaultdict(list)
    for r in ok:
        groups[str(r.label or r.pred_name)].append(r)
    per_class = {}
    for name, members in sorted(groups.items()):
        curves = [r.curve for r in members if r.curve]
        entry: dict[str, Any] = {
            "videos": len(members),
            "accuracy": _mean(r.correct for r in members if r.correct is not None),
            "score": _mean(r.score for r in members),
        }
        for key in ("fraction_above", "spread", "pointing", "mass", "iou"):
            entry[key] = _mean(getattr(r, key) for r in members)
        entry["curve"] = np.mean(np.asarray(curves), axis=0).round(4).tolist() if curves else None
        per_class[name] = entry
    frames = sum(int(r.frames or 0) for r in ok)
    unknown = [r for r in ok if r.label is not None and r.label_index is None]
    return {
        "videos": len(typed),
        "ok": len(ok),
        "failed": len(failed),
        "accuracy": _mean(r.correct for r in labelled),
        "labelled": len(labelled),
        "unknown_labels": {  # labels the model does not know: left out of the accuracy
            "videos": len(unknown),
            "labels": sorted({str(r.label) for r in unknown})[:top],
        },
        "random_weights": any(bool(r.random_weights) for r in ok),
        "model": _model_of(ok, settings),
        "confusions": [
            {"label": a, "pred": b, "videos": n} for (a, b), n in confusions.most_common(top)
        ],
        "per_class": per_class,
        "slowest": [
            {"video_id": r.video_id, "seconds": r.seconds}
            for r in sorted(ok, key=lambda r: -(r.seconds or 0.0))[:top]
        ],
        "failures": [{"video_id": r.video_id, "path": r.path, "error": r.error} for r in failed],
        "throughput": {
            "wall_seconds": round(wall, 3),
            "videos_per_second": round(len(ok) / wall, 4) if wall > 0 else None,
            "frames_per_second": round(frames / wall, 2) if wall > 0 else None,
            "note": "of this run (videos skipped by a resume count as done, not as work)",
        },
        "settings": settings,
    }


def _model_of(ok: Sequence[IndexRow], settings: dict[str, Any]) -> dict[str, Any]:
    """What explained the batch (:class:`~saliency_tubes.commands.pipeline.model_line.ModelFacts`'s
    keys), from its explained rows; rows of an older journal give only what the settings
    say (no weights source nor caveat)."""
    model = settings.get("model") or {}
    weights = str(model["weights"]) if model.get("weights") else None
    random = any(bool(x.random_weights) for x in ok)
    for r in ok:
        if r.model:
            return ModelFacts(
                r.model, weights, r.weights_source, random, r.caveat, r.method
            ).to_dict()
    method = (settings.get("explain") or {}).get("method")
    return ModelFacts(model.get("name"), weights, None, random, None, method).to_dict()


def _num(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def summary_markdown(summary: dict[str, Any]) -> str:
    """The summary as a short Markdown page."""
    given = summary.get("model")
    lines = ["# Batch summary", "", model_line(ModelFacts.from_dict(given)), ""]
    said = given or {"random_weights": summary["random_weights"]}  # an older summary's
    for note in caveats(ModelFacts.from_dict(said)):
        lines += [f"**{note[0].upper()}{note[1:]}.**", ""]
    lines.append(
        f"{summary['videos']} videos: {summary['ok']} ok, {summary['failed']} failed. "
        + (
            f"Accuracy {summary['accuracy']:.3f} on {summary['labelled']} labelled videos."
            if summary["accuracy"] is not None
            else "No labels."
        )
    )
    unknown = summary.get("unknown_labels") or {}
    if unknown.get("videos"):
        lines += [
            "",
            f"{unknown['videos']} videos have labels the model does not know, left out of the "
            f"accuracy: {', '.join(f'`{label}`' for label in unknown['labels'])}.",
        ]
    if summary["confusions"]:
        lines += ["", "## Most confused", "", "| label | predicted | videos |", "|---|---|---:|"]
        lines += [f"| {c['label']} | {c['pred']} | {c['videos']} |" for c in summary["confusions"]]
    lines += [
        "",
        "## Per class",
        "",
        "| class | videos | accuracy | score | fraction above | spread | pointing | mass | iou |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, c in summary["per_class"].items():
        values = [c[k] for k in ("accuracy", "score", "fraction_above", "spread")]
        values += [c[k] for k in ("pointing", "mass", "iou")]
        lines.append(f"| {name} | {c['videos']} | " + " | ".join(map(_num, values)) + " |")
    if summary["failures"]:
        lines += ["", "## Failures", ""]
        lines += [f"- `{f['path']}`: {f['error']}" for f in summary["failures"]]
    t = summary["throughput"]
    lines += [
        "",
        f"Throughput: {_num(t['videos_per_second'])} videos/s, "
        f"{_num(t['frames_per_second'])} frames/s over {t['wall_seconds']:.1f} s.",
        "",
    ]
    return "\n".join(lines)


def write_summary(folder: Path, summary: dict[str, Any], stem: str = "summary") -> list[Path]:
    """Write ``stem.json`` and ``stem.md`` into ``folder``, atomically."""
    return [
        atomic_write_json(folder / f"{stem}.json", summary),
        atomic_write_bytes(folder / f"{stem}.md", summary_markdown(summary).encode("utf-8")),
    ]
