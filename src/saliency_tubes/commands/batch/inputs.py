"""The videos of a batch: read from a folder, a list or a table, named, fingerprinted, sharded.

* :func:`read_inputs`: ``INPUT`` as :class:`Item` s: a folder (searched recursively for
  video files), a ``.txt`` list of paths (one per line, ``#`` comments), or a ``.csv`` /
  ``.jsonl`` / ``.parquet`` table with a ``path`` column and optional ``label`` (a class
  name or index) and ``gt`` (ground truth, as ``evaluate --gt`` takes) columns. Relative
  paths are relative to the list file (or the folder).
* :func:`video_id`: a stable, readable name per video: its path relative to the input root,
  sanitised, plus a short hash of that path (two videos never share a folder).
* :func:`fingerprint`: what a video's result depends on (the options, the model and its
  weights file, the video file's size and modification time), as a short hash: a re-run
  skips a video whose fingerprint is unchanged.
* :func:`in_shard`: a deterministic 1/N of the videos, for job schedulers without Ray.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import InputError

__all__ = [
    "VIDEO_SUFFIXES",
    "Item",
    "fingerprint",
    "model_files",
    "in_shard",
    "parse_shard",
    "read_inputs",
    "video_id",
]

#: File suffixes a folder input is searched for.
VIDEO_SUFFIXES: tuple[str, ...] = (
    ".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ogv",
)  # fmt: skip

_TABLES = (".csv", ".jsonl", ".parquet")


@dataclass(frozen=True)
class Item:
    """One video of a batch.

    Attributes:
        path: the video file (absolute).
        video_id: its stable name (:func:`video_id`), the name of its output folder.
        label: the class it is labelled with (a name or an index, as text), if any.
        gt: its ground-truth file (absolute), if any.
    """

    path: Path
    video_id: str
    label: str | None = None
    gt: Path | None = None


def video_id(relative: str) -> str:
    """``relative`` (a path relative to the input root) as a folder name: its characters
    other than letters, digits, ``.``, ``-`` and ``_`` turned into ``_``, at most 80 of them,
    plus ``-`` and the first 8 hex digits of the SHA-1 of ``relative``."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", relative.replace("\\", "/")).strip("._")[:80]
    digest = hashlib.sha1(relative.encode("utf-8")).hexdigest()[:8]
    return f"{stem or 'video'}-{digest}"


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _cell(value: Any) -> str | None:
    """A table cell as text (None for empty / NaN)."""
    if value is None:
        return None
    if isinstance(value, float):
        if value != value:  # NaN
            return None
        if value.is_integer():
            return str(int(value))
    text = str(value).strip()
    return text or None


def _rows(table: Path) -> list[dict[str, Any]]:
    suffix = table.suffix.lower()
    if suffix == ".csv":  # quoted cells may hold newlines: the csv module splits the lines
        return list(csv.DictReader(io.StringIO(_text(table), newline="")))
    if suffix == ".jsonl":
        rows = []
        for n, line in enumerate(_text(table).splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(
                    f"expected one JSON object per line in {table}, but line {n} is not JSON "
                    f"({exc.msg}); fix that line"
                ) from exc
            if not isinstance(row, dict):
                raise InputError(
                    f"expected one JSON object per line in {table}, but line {n} is "
                    f'{type(row).__name__}; write {{"path": ...}} objects'
                )
            rows.append(row)
        return rows
    import pyarrow.parquet as pq

    try:
        return pq.read_table(table).to_pylist()
    except Exception as exc:  # pyarrow raises its own error types for a bad file
        raise InputError(
            f"expected a readable Parquet table at {table}, but reading it failed ({exc}); "
            "write it again (e.g. pandas.DataFrame.to_parquet)"
        ) from exc


def _text(path: Path) -> str:
    """A list or table file as text (UTF-8; a byte-order mark, as spreadsheets write, dropped)."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"expected {path} in UTF-8, but byte {exc.start} is not ({exc.reason}); "
            "save it as UTF-8"
        ) from None


def _from_table(table: Path, notes: list[str]) -> list[tuple[Path, str, str | None, Path | None]]:
    rows = _rows(table)
    if rows and "path" not in rows[0]:
        raise InputError(
            f"expected a 'path' column in {table}, but got columns {sorted(rows[0])}; "
            "name the video column 'path' (optional: 'label', 'gt')"
        )
    out = []
    empty = []
    for n, row in enumerate(rows, 1):
        path = _cell(row.get("path"))
        if path is None:
            empty.append(n)
            continue
        gt = _cell(row.get("gt"))
        out.append(
            (
                _resolve(path, table.parent),
                path,
                _cell(row.get("label")),
                _resolve(gt, table.parent) if gt else None,
            )
        )
    if empty:
        shown = ", ".join(map(str, empty[:10])) + (", ..." if len(empty) > 10 else "")
        notes.append(f"{len(empty)} row(s) of {table.name} have no path (rows {shown}): left out")
    return out


def _resolve(text: str, base: Path) -> Path:
    if "\0" in text:
        raise InputError(
            f"expected video paths without NUL bytes, but got {text!r}; fix that entry"
        )
    p = Path(text).expanduser()
    return (p if p.is_absolute() else base / p).resolve()


def read_inputs(
    source: str | Path, exclude: str | Path | None = None, notes: list[str] | None = None
) -> list[Item]:
    """The videos of ``source`` (see the module's description), in a stable order; a folder
    search leaves out everything under ``exclude`` (the batch's own outputs). What is left
    out of a list or table (rows without a path, a video listed again, also as
    ``./a.mp4`` beside ``a.mp4``) is said in ``notes``, one line each.

    Raises:
        InputError: ``source`` is missing, of another kind, has no video, or a table lacks
            its ``path`` column. Missing video files are not an error here: they become
            error rows of the batch.
    """
    root = Path(source).expanduser()
    if not root.exists():
        raise InputError(
            f"expected INPUT to be a folder of videos, a .txt list or a "
            f"{'/'.join(_TABLES)} table, but {root} does not exist; check the path"
        )
    said: list[str] = [] if notes is None else notes
    entries: list[tuple[Path, str, str | None, Path | None]]
    if root.is_dir():
        base = root.resolve()
        skip = Path(exclude).resolve() if exclude is not None else None
        files = sorted(
            p
            for p in base.rglob("*")
            if p.is_file()
            and p.suffix.lower() in VIDEO_SUFFIXES
            and not _hidden(p, base)
            and not (skip is not None and p.is_relative_to(skip))
        )
        entries = [(p, _relative(p, base), None, None) for p in files]
    elif root.suffix.lower() == ".txt":
        lines = _text(root).splitlines()
        names = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
        entries = [(_resolve(n, root.resolve().parent), n, None, None) for n in names]
    elif root.suffix.lower() in _TABLES:
        entries = _from_table(root.resolve(), said)
    else:
        raise InputError(
            f"expected INPUT to be a folder, a .txt list or a {'/'.join(_TABLES)} table, "
            f"but got {root.name}; pass one of those"
        )
    if not entries:
        raise InputError(
            f"expected at least one video in {root}, but found none "
            f"(video files: {', '.join(VIDEO_SUFFIXES)}); check INPUT"
        )
    items, seen, again = [], set(), []
    for path, rel, label, gt in entries:
        if path in seen:  # the same video listed twice (by any spelling): once
            again.append(rel)
            continue
        seen.add(path)
        items.append(
            Item(path=path, video_id=video_id(posixpath.normpath(rel)), label=label, gt=gt)
        )
    if again:
        shown = ", ".join(map(repr, again[:5])) + (", ..." if len(again) > 5 else "")
        said.append(f"{len(again)} video(s) listed again ({shown}): explained once, the first row")
    return items


def _hidden(path: Path, base: Path) -> bool:
    """A file under a hidden folder (e.g. a batch's own staging folders) or hidden itself."""
    return any(part.startswith(".") for part in path.relative_to(base).parts)


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"I/N"`` (1 <= I <= N) as ``(I, N)``; None for None."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise InputError(
            f"expected --shard I/N with 1 <= I <= N (e.g. 2/8), but got {text!r}; "
            "number the shards from 1"
        )
    return int(match.group(1)), int(match.group(2))


def in_shard(vid: str, shard: tuple[int, int] | None) -> bool:
    """Whether video ``vid`` belongs to shard ``(I, N)``: SHA-1 of the id modulo N is I - 1."""
    if shard is None:
        return True
    i, n = shard
    return int(hashlib.sha1(vid.encode("utf-8")).hexdigest(), 16) % n == i - 1


def model_files(name: str, weights: str | Path | None) -> list[Path]:
    """The files a model's results depend on, for :func:`fingerprint`: its weights file,
    or every file of a weights folder (``--weights DIR``, ``--model hf:DIR``: a
    ``save_pretrained`` folder whose files are rewritten in place), in name order."""
    roots = [Path(str(weights)).expanduser()] if weights else []
    if str(name).startswith("hf:"):
        roots.append(Path(str(name)[3:]).expanduser())
    files: list[Path] = []
    for root in roots:
        if root.is_dir():
            files += sorted(f for f in root.rglob("*") if f.is_file())
        else:
            files.append(root)
    return files


def fingerprint(settings: dict[str, Any], item: Item, files: Sequence[Path] = ()) -> str:
    """A short hash of what ``item``'s result depends on: ``settings`` (options and model,
    JSON-able), its label and ground truth, and the size and modification time of the video
    and of ``files`` (the weights, the ground truth)."""

    def stat(p: Path | None) -> list[Any]:
        if p is None:
            return []
        try:
            s = p.stat()
        except OSError:
            return [str(p), None]
        return [str(p), s.st_size, s.st_mtime_ns]

    facts = {
        "settings": settings,
        "video": stat(item.path),
        "label": item.label,
        "gt": stat(item.gt),
        "files": [stat(Path(f)) for f in files],
    }
    text = json.dumps(facts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
