"""``batch``: explain every video of a dataset, resumable, one failure never the end.

:func:`batch_videos` reads the input (:func:`~saliency_tubes.commands.batch.inputs.read_inputs`),
skips the videos a previous run finished with the same fingerprint, explains the others on
local worker processes (:func:`~saliency_tubes.commands.batch.local.run_local`) or on Ray
(:mod:`saliency_tubes.commands.batch.ray`), records each finished video in the journal as
it comes, and writes ``index.parquet`` and ``summary.json`` / ``summary.md`` (also when
interrupted: what finished is kept). Each video's folder ``videos/<video_id>/`` holds
exactly what ``explain`` writes. :func:`merge_batches` joins shards' indexes into one.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

from ...errors import InputError, first_line
from ...video import atomic_write_bytes
from ...vocabulary import BATCH_SIZE
from ..pipeline.lock import folder_lock
from ..pipeline.outputs import Say, progress
from ..plain import Plain
from ..report.index import index_page
from .inputs import Item, fingerprint, in_shard, model_files, read_inputs
from .local import Task, run_local
from .records import Journal, read_index, read_journal, summarise_rows, write_index, write_summary
from .worker import BatchSettings

__all__ = ["BatchOptions", "BatchResult", "batch_videos", "merge_batches", "write_index_page"]

ENGINES = ("local", "ray")


@dataclass(frozen=True)
class BatchOptions(Plain):
    """How a batch runs (what each video gets is in :class:`BatchSettings`).

    Attributes:
        workers: local worker processes (each loads the model once).
        batch_size: videos per forward (one clip each); on Ray, more than one runs decode
            actors then explain actors (two stages). It does not change the results (nor
            the fingerprints: a run with another batch size redoes nothing).
        decoders: threads decoding videos for each local worker's model (more than one: the
            model takes whatever clips are decoded, up to ``batch_size``); on Ray, the decode
            actors (None: local 1; Ray: see :mod:`~saliency_tubes.commands.batch.ray`).
        engine: ``"local"`` or ``"ray"``.
        ray_address: a Ray cluster to join (``"auto"``, ``"HOST:PORT"``); None: local Ray.
        shard: ``(I, N)``: only the I-th of N deterministic parts of the input.
        limit: at most this many videos (after sharding), for a trial run.
        timeout: seconds one video may take before its worker is stopped (None: no limit).
        force: redo every video, finished or not.
        progress: a progress bar over the videos (on a terminal).
    """

    workers: int = 1
    batch_size: int = BATCH_SIZE
    decoders: int | None = None
    engine: str = "local"
    ray_address: str | None = None
    shard: tuple[int, int] | None = None
    limit: int | None = None
    timeout: float | None = None
    force: bool = False
    progress: bool = True

    what: ClassVar[str] = "batch options"

    def __post_init__(self) -> None:
        self.check()  # validated once, where made

    def check(self) -> None:
        """Validate the options (one-line errors)."""
        if self.engine not in ENGINES:
            raise InputError(
                f"expected --engine local or ray, but got {self.engine!r}; pick one of them"
            )
        if isinstance(self.workers, bool) or self.workers < 1:
            raise InputError(f"expected --workers >= 1, but got {self.workers!r}")
        if (
            isinstance(self.batch_size, bool)
            or not isinstance(self.batch_size, int)
            or self.batch_size < 1
        ):
            raise InputError(
                f"expected --batch-size >= 1 (videos per forward), but got {self.batch_size!r}"
            )
        if self.decoders is not None and (
            isinstance(self.decoders, bool)
            or not isinstance(self.decoders, int)
            or self.decoders < 1
        ):
            raise InputError(
                f"expected --decoders >= 1 (threads decoding videos), but got {self.decoders!r}; "
                "leave it out for one"
            )
        if self.limit is not None and self.limit < 1:
            raise InputError(f"expected --limit >= 1, but got {self.limit!r}")
        if self.timeout is not None and not self.timeout > 0:
            raise InputError(f"expected --timeout > 0 seconds, but got {self.timeout!r}")


@dataclass(frozen=True)
class BatchResult:
    """What a batch did.

    Attributes:
        out: the batch folder.
        index: the index file written.
        rows: one row per input video (the index's rows).
        summary: the summary (also written as JSON and Markdown).
        ran: videos explained by this run; skipped: videos a previous run had finished.
        notes: what was left out of the input, one line each (rows without a path, videos
            listed again).
        kept: this run's error rows of videos whose earlier ok row (same fingerprint, its
            outputs still there) stands in the index instead (a ``--force`` re-run that
            failed, on a full disk say).
    """

    out: Path
    index: Path
    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    ran: int
    skipped: int
    kept: tuple[dict[str, Any], ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def failed(self) -> int:
        return sum(1 for r in self.rows if r.get("status") != "ok")

    def _repr_html_(self) -> str:
        """Jupyter's view: the summary (counts, accuracy, per-class means, failures)."""
        from ..pipeline.display import batch_html

        return batch_html(self)


def _suffix(shard: tuple[int, int] | None) -> str:
    return "" if shard is None else f".shard-{shard[0]}-of-{shard[1]}"


def _done(row: dict[str, Any] | None, fp: str, out: Path) -> bool:
    """Whether a previous row stands: ok, the same fingerprint, its manifest still there."""
    return (
        row is not None
        and row.get("status") == "ok"
        and row.get("fingerprint") == fp
        and (out / str(row.get("output")) / "manifest.json").is_file()
    )


def batch_videos(
    source: str | Path,
    out_dir: str | Path,
    settings: BatchSettings,
    options: BatchOptions | None = None,
    *,
    on_stage: Say | None = None,
) -> BatchResult:
    """Explain every video of ``source`` into ``out_dir`` (see the module's description).

    The run holds ``out_dir``'s lock (:func:`~saliency_tubes.commands.pipeline.lock.folder_lock`)
    throughout. A run that fails as a whole before any video finished (a model that cannot
    be loaded, options the model refuses) writes nothing: the folder stays as it was (and
    is removed again when this run created it).

    Raises:
        InputError: a bad input or option, or a model that cannot be loaded (before any
            video runs), or another run holding ``out_dir``. A video's own failure is an
            ``error`` row, not an exception.
        KeyboardInterrupt: after the index and summary of what finished were written.
    """
    options = options or BatchOptions()  # every options object was checked where made
    out = Path(out_dir)
    notes: list[str] = []
    # A folder input leaves out the batch's own outputs (--out may hold INPUT: only its
    # videos/ folder is left out, not INPUT).
    found = read_inputs(source, settings.videos, notes)
    items = [it for it in found if in_shard(it.video_id, options.shard)]
    if options.limit is not None:
        items = items[: options.limit]
    if not items:
        raise InputError(f"expected a video in shard {options.shard}, but it holds none")
    created = [p for p in (out, *out.parents) if not p.exists()]
    out.mkdir(parents=True, exist_ok=True)
    try:
        with folder_lock(out):
            result = _batch(items, out, settings, options, on_stage or (lambda _msg: None))
            return dataclasses.replace(result, notes=tuple(notes))
    finally:
        _unmake_if_empty(created)


def _unmake_if_empty(created: list[Path]) -> None:
    """Remove the folders this run created that hold nothing (a run that wrote nothing)."""
    for folder in created:  # innermost first
        if folder.is_dir() and not any(p.is_file() for p in folder.rglob("*")):
            shutil.rmtree(folder, ignore_errors=True)


def _batch(
    items: list[Item], out: Path, settings: BatchSettings, options: BatchOptions, say: Say
) -> BatchResult:
    described = settings.describe()
    extra = model_files(settings.model.name, settings.model.weights)
    prints = {
        it.video_id: fingerprint(described, it, [*extra, *([it.gt] if it.gt else [])])
        for it in items
    }
    suffix = _suffix(options.shard)
    journal_path = out / ".batch" / f"journal{suffix}.jsonl"
    previous = {} if options.force else read_journal(journal_path)
    rows: dict[str, dict[str, Any]] = {}
    todo: list[Task] = []
    for it in items:
        row = previous.get(it.video_id)
        if _done(row, prints[it.video_id], out):
            rows[it.video_id] = row  # type: ignore[assignment]
        else:
            todo.append((it, prints[it.video_id]))
    skipped = len(items) - len(todo)
    local = options.engine == "local"
    decoders = f", {options.decoders} decoding threads each" if options.decoders else ""
    if local:
        where = (
            f"on {options.workers} local worker process(es), up to {options.batch_size} per "
            f"forward{decoders}"
        )
    elif options.batch_size > 1:
        where = f"on Ray decode actors then explain actors, up to {options.batch_size} per forward"
    else:
        where = "on Ray actors, one video at a time"
    say(f"{len(items)} videos: {skipped} done before, {len(todo)} to explain {where}")
    started = time.perf_counter()
    journal = Journal(journal_path)
    bar = progress(len(todo), "videos", options.progress and bool(todo), unit="video")
    came: list[str] = []

    def finished(row: dict[str, Any]) -> None:
        # Kept before the journal's synced write: a Ctrl-C during it (an fsync can take a
        # while) still finds the row here and writes the index with it.
        rows[row["video_id"]] = row
        came.append(row["video_id"])
        journal.add(row)
        bar.update(1)

    try:
        _run(settings, todo, options, finished, say)
    except BaseException:
        # Ctrl-C, or a failure of the whole run: what finished is kept; when nothing did (a
        # model that cannot load), the records stay exactly as they were.
        if came:
            _records(out, items, rows, described, started, settings, suffix)
        raise
    finally:
        bar.close()
        journal.close()
    ordered, summary = _records(out, items, rows, described, started, settings, suffix)
    index = out / f"index{suffix}.parquet"
    standing = {r["video_id"]: r for r in ordered}
    kept = tuple(rows[v] for v in came if standing.get(v) is not rows[v])
    return BatchResult(out, index, ordered, summary, len(todo), skipped, kept)


def _records(
    out: Path,
    items: list[Item],
    rows: dict[str, dict[str, Any]],
    described: dict[str, Any],
    started: float,
    settings: BatchSettings,
    suffix: str,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Write the index, the summary (and the index page) of a run's rows.

    Everything the journal holds (also a row recorded just as Ctrl-C came), this run's
    rows last: the videos this run has not (re)done yet - interrupted, or ``--force`` -
    keep their earlier rows; an index never loses what a run had recorded, and an error
    row never replaces an ok row of the same fingerprint whose outputs are still there
    (a ``--force`` re-run that hit a full disk).
    """
    latest = read_journal(out / ".batch" / f"journal{suffix}.jsonl")
    for vid, row in rows.items():
        if not (row.get("status") != "ok" and _done(latest.get(vid), row["fingerprint"], out)):
            latest[vid] = row
    ordered = [latest[it.video_id] for it in items if it.video_id in latest]
    write_index(out / f"index{suffix}.parquet", ordered)
    summary = summarise_rows(ordered, described, time.perf_counter() - started)
    write_summary(out, summary, f"summary{suffix}")
    if "html" in settings.explain.formats:
        write_index_page(out, ordered, summary, f"index{suffix}.html")
    return ordered, summary


def write_index_page(
    out: Path, rows: Sequence[dict[str, Any]], summary: dict[str, Any], name: str = "index.html"
) -> Path:
    """``index.html`` of a batch folder: the table of its videos, linking their reports."""
    links: dict[str, dict[str, str]] = {}
    for row in rows:
        entry = {}
        for key, suffix in (("thumb", ".png"), ("keys", ".keys.png")):
            if (out / "thumbs" / f"{row['video_id']}{suffix}").is_file():
                entry[key] = quote(f"thumbs/{row['video_id']}{suffix}")
        output = row.get("output")
        if output and (out / output / "report.html").is_file():
            entry["report"] = quote(f"{output}/report.html")
        links[row["video_id"]] = entry
    return atomic_write_bytes(out / name, index_page(rows, summary, links).encode("utf-8"))


def _run(
    settings: BatchSettings,
    todo: Sequence[Task],
    options: BatchOptions,
    finished: Callable[[dict[str, Any]], None],
    say: Say,
) -> None:
    if options.engine == "ray":
        from .ray import run_ray

        address, size, decoders = options.ray_address, options.batch_size, options.decoders
        run_ray(settings, todo, address, options.timeout, finished, size, decoders)
    else:
        size, decoders = options.batch_size, options.decoders or 1
        run_local(settings, todo, options.workers, options.timeout, finished, size, say, decoders)


def merge_batches(sources: Sequence[str | Path], out_dir: str | Path) -> BatchResult:
    """One index and summary in ``out_dir`` from the indexes of batch folders (``index.parquet``
    and the shards' ``index.shard-I-of-N.parquet``); each row's ``output`` is made relative
    to ``out_dir`` (nothing is copied). A video in several sources: the last one's row.

    Raises:
        InputError: no index in ``sources``, an index that is not one (corrupt, or without
            a ``video_id`` column), or another run holding ``out_dir``.
    """
    out = Path(out_dir)
    rows: dict[str, dict[str, Any]] = {}
    found = 0
    for src in map(Path, sources):
        # A sharded folder's index.parquet is an earlier merge of its shards: the shards are
        # read instead (also when it is --out itself); an unsharded one's is its batch's rows
        # (read before --out's index is rewritten, so they are kept).
        files = sorted(src.glob("index.shard-*.parquet")) or sorted(src.glob("index.parquet"))
        for f in files:
            found += 1
            for row in _index_rows(f):
                if row.get("output"):
                    target = (src / row["output"]).resolve()
                    row["output"] = _relpath(target, out.resolve())
                rows[row["video_id"]] = row
    if not found:
        raise InputError(
            f"expected index.parquet or index.shard-*.parquet in {', '.join(map(str, sources))}, "
            "but found none; pass the --out folders of the batches"
        )
    ordered = sorted(rows.values(), key=lambda r: r["video_id"])
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out):
        index = write_index(out / "index.parquet", ordered)
        settings = _settings_of(sources)
        summary = summarise_rows(ordered, settings, 0.0)
        write_summary(out, summary)
        if any(next(Path(src).glob("index*.html"), None) for src in sources):  # shards' pages
            write_index_page(out, ordered, summary)
    return BatchResult(out, index, ordered, summary, 0, len(ordered))


def _index_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a batch's index file, or one error saying what is wrong with it."""
    try:
        rows = read_index(path)
    except Exception as exc:  # pyarrow's own errors (ArrowInvalid, OSError) for a bad file
        raise InputError(
            f"expected a batch index at {path}, but it could not be read ({first_line(exc)}); "
            "run that batch again to rewrite it, or leave its folder out of --merge"
        ) from None
    needed = ("video_id", "path", "status")
    if rows and not all(isinstance(r.get(k), str) for r in rows for k in needed):
        raise InputError(
            f"expected a batch index at {path} with a video_id, path and status in every row, "
            f"but its columns are {sorted(rows[0])}; pass the index.parquet a batch wrote"
        )
    return rows


def _relpath(target: Path, base: Path) -> str:
    import os

    return Path(os.path.relpath(target, base)).as_posix()


def _settings_of(sources: Sequence[str | Path]) -> dict[str, Any]:
    """The settings recorded by the first source's summary (merged shards share them)."""
    import json

    for src in map(Path, sources):
        for f in sorted(src.glob("summary*.json")):
            try:
                return dict(json.loads(f.read_text(encoding="utf-8")).get("settings") or {})
            except (OSError, ValueError):
                continue
    return {}
