"""The output folder of one command run: staged writes, all-or-nothing, clean-up, progress.

Every file a run writes goes through one :class:`OutputFolder`, and is first written into a
hidden staging folder inside ``--out`` (the same file system): :meth:`OutputFolder.claim`
names a file, the ``write_*`` methods write it, :meth:`OutputFolder.video` opens a
:class:`~saliency_tubes.video.VideoWriter`. Only when the run has finished does
:meth:`OutputFolder.commit` move its files into place, the manifest last; files of an
earlier run that this run replaces are moved aside first and put back if the move fails.
Inside :func:`output_folder`, an error or an interrupt before that point removes the
staging folder (and ``--out``, when the run created it): the folder is left exactly as it
was found, earlier results byte for byte, and no file this run did not create is ever
deleted. :func:`produce` runs a command's work inside it; :func:`progress` is the bar long
stages show.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ...errors import InputError, VideoError
from ...video import (
    VideoInfo,
    VideoWriter,
    atomic_save_npy,
    atomic_write_bytes,
    atomic_write_json,
    check_min_frames,
    probe,
)
from .lock import folder_lock

__all__ = ["OutputFolder", "Run", "Say", "output_folder", "produce", "progress", "recover_staging"]


class OutputFolder:
    """Every file of one run, staged until :meth:`commit` moves them into ``root``.

    Args:
        root: the output folder (it must exist; see :func:`output_folder`).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.staging = Path(tempfile.mkdtemp(prefix=".saliency-tubes-run-", dir=root))
        self.names: list[str] = []  # claimed names, relative, in claim order
        self.writers: list[VideoWriter] = []

    def rel(self, path: Path) -> str:
        """``path`` relative to the folder, with ``/`` separators (as manifests list it)."""
        return path.relative_to(self.staging).as_posix()

    def claim(self, name: str) -> Path:
        """Claim ``name`` for this run: the staged path to write it to."""
        path = self.staging / name
        path.parent.mkdir(parents=True, exist_ok=True)
        self.names.append(name)
        return path

    def folder(self, name: str) -> Path:
        """Claim a sub-folder as one output (it replaces an earlier run's folder whole, as a
        PNG frame folder does); claim the files in it as usual."""
        path = self.staging / name
        path.mkdir(parents=True, exist_ok=True)
        if name not in self.names:
            self.names.append(name)
        return path

    def write_bytes(self, name: str, data: bytes) -> str:
        """Write ``data`` as ``name``; return its relative name."""
        path = self.claim(name)
        atomic_write_bytes(path, data)
        return self.rel(path)

    def write_json(self, name: str, record: Any) -> str:
        """Write ``record`` as JSON (indented) to ``name``; return its relative name."""
        path = self.claim(name)
        atomic_write_json(path, record)
        return self.rel(path)

    def save_npy(self, name: str, array: Any) -> str:
        """Write one array as ``name`` (``.npy``); return its relative name."""
        path = self.claim(name)
        atomic_save_npy(path, array)
        return self.rel(path)

    def save_npy_stream(
        self, name: str, shape: tuple[int, ...], parts: Iterable[np.ndarray]
    ) -> str:
        """Write a float32 ``.npy`` of ``shape`` from ``parts`` along its first axis.

        The parts are written one at a time (a window's tubes, say), so the array is never
        whole in memory; a full disk is an ``OSError`` (ENOSPC), as with any write.
        """
        path = self.claim(name)
        partial = path.with_name(f".{path.name}.partial")
        try:
            write_npy_parts(partial, shape, parts)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        return self.rel(path)

    def video(
        self, name: str, fps: Any, kind: str | None = None, **encoder: Any
    ) -> tuple[VideoWriter, str]:
        """A :class:`VideoWriter` for ``name`` (aborted on failure) and its relative name.

        ``kind`` gives the format whatever the name's suffix (``"png"``: a frame folder);
        ``encoder``: the writer's ``crf`` and ``preset``.
        """
        path = self.claim(name)
        writer = VideoWriter(path, fps=fps, kind=kind, **encoder)  # type: ignore[arg-type]
        self.writers.append(writer)
        return writer, self.rel(path)

    def commit(self, last: str | None = None) -> None:
        """Move every claimed file into ``root`` (``last``, the manifest, at the end).

        A file of an earlier run under the same name is moved aside first; if any move
        fails, what was moved in is taken out again and the earlier files are put back.
        """
        order = [n for n in dict.fromkeys(self.names) if n != last]
        order += [last] if last in self.names else []
        aside = self.staging / ".replaced"
        placed: list[Path] = []
        moved: list[tuple[Path, Path]] = []
        made: list[Path] = []  # sub-folders of root this commit created
        try:
            for name in order:
                source, target = self.staging / name, self.root / name
                if not source.exists():
                    continue
                missing = [d for d in target.parents if d != self.root and self.root in d.parents]
                made += [d for d in reversed(missing) if not d.exists()]
                target.parent.mkdir(parents=True, exist_ok=True)
                if target.exists() or target.is_symlink():
                    keep = aside / name
                    keep.parent.mkdir(parents=True, exist_ok=True)
                    if target.is_dir() and not target.is_symlink():
                        _note_whole(self.staging, name)  # a recovery puts it back whole
                    os.replace(target, keep)
                    moved.append((keep, target))
                os.replace(source, target)
                placed.append(target)
        except BaseException:
            self._rollback(placed, moved, made)
            raise
        shutil.rmtree(self.staging, ignore_errors=True)

    def _rollback(
        self, placed: list[Path], moved: list[tuple[Path, Path]], made: list[Path]
    ) -> None:
        """Undo a commit, step by step, whatever fails: remove what was moved in, put the
        earlier files back, remove the sub-folders made. An earlier file that cannot be put
        back stays in the staging folder's ``.replaced`` (see :meth:`cleanup`)."""
        for target in reversed(placed):
            with contextlib.suppress(BaseException):
                _remove(target)
        for keep, target in reversed(moved):
            with contextlib.suppress(BaseException):
                os.replace(keep, target)
        for folder in reversed(made):
            with contextlib.suppress(BaseException):
                folder.rmdir()  # only if empty: it holds nothing of an earlier run

    def cleanup(self) -> None:
        """Abort the open writers and remove the staging folder (nothing else).

        Should an earlier file that a failed commit had moved aside still be in the staging
        folder's ``.replaced``, the staging folder is kept (only this run's new files are
        removed from it): nothing of an earlier run is ever deleted.
        """
        for writer in self.writers:
            writer.abort()
        aside = self.staging / ".replaced"
        if aside.exists() and any(p.is_file() for p in aside.rglob("*")):
            for entry in self.staging.iterdir():
                if entry != aside:
                    _remove(entry)
            return
        shutil.rmtree(self.staging, ignore_errors=True)


def write_npy_parts(path: Path, shape: tuple[int, ...], parts: Iterable[np.ndarray]) -> None:
    """Write a float32 C-order ``.npy`` of ``shape`` at ``path`` from ``parts`` (along the
    first axis) with plain writes: no memory map, whose full disk would be a SIGBUS."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
              "fortran_order": False, "shape": tuple(int(n) for n in shape)}  # fmt: skip
    rows = 0
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_2_0(fh, header)
        for part in parts:
            block = np.ascontiguousarray(part, dtype=np.float32)
            if block.shape[1:] != tuple(shape[1:]) or rows + len(block) > shape[0]:
                raise ValueError(f"expected parts of an array of shape {shape}, got {block.shape}")
            fh.write(block.data.cast("B"))
            rows += len(block)
        if rows != shape[0]:
            raise ValueError(f"expected {shape[0]} rows for an array of shape {shape}, got {rows}")
        fh.flush()
        os.fsync(fh.fileno())


def recover_staging(folder: Path) -> None:
    """Clean up after a run that was killed (no ``finally`` ran) with ``folder`` as its
    ``--out``: each hidden staging folder is removed, after the earlier files a commit under
    way had moved aside (``.replaced``) are put back in place; nothing of an earlier run is
    deleted."""
    if not folder.is_dir():
        return
    for staging in folder.glob(".saliency-tubes-run-*"):
        aside = staging / ".replaced"
        for name in _whole(staging):  # claimed folders: back as they were, not file by file
            kept, target = aside / name, folder / name
            if kept.is_dir():
                with contextlib.suppress(OSError):
                    if target.exists() or target.is_symlink():
                        _remove(target)
                    os.replace(kept, target)
        if aside.is_dir():
            for kept in sorted(p for p in aside.rglob("*") if p.is_file() or p.is_symlink()):
                target = folder / kept.relative_to(aside)
                target.parent.mkdir(parents=True, exist_ok=True)
                with contextlib.suppress(OSError):
                    os.replace(kept, target)
            if any(p.is_file() for p in aside.rglob("*")):
                continue  # something could not be put back: keep it
        shutil.rmtree(staging, ignore_errors=True)


#: In a staging folder: the names of the folders its commit moved aside, one a line.
_WHOLE = ".replaced-folders"


def _note_whole(staging: Path, name: str) -> None:
    """Record (synced) that the earlier ``name``, a folder, is being moved aside."""
    with open(staging / _WHOLE, "a", encoding="utf-8") as fh:
        fh.write(name + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _whole(staging: Path) -> list[str]:
    """The folder names :func:`_note_whole` recorded in ``staging`` (a cut line dropped)."""
    try:
        text = (staging / _WHOLE).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    return [n for n in text.split("\n")[:-1] if n]


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _prepare(out_dir: Path) -> list[Path]:
    """Create ``out_dir`` if needed and check it is writable; return the folders created
    (``out_dir`` and missing parents, outermost first)."""
    created = [p for p in reversed([out_dir, *out_dir.parents]) if not p.exists()]
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(
            f"output folder {out_dir} is a file; expected a folder path (it is created if missing)"
        )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".write-test-"):
            pass
    except OSError as exc:
        _unmake(created)
        raise InputError(
            f"output folder {out_dir} is not writable ({exc.strerror or exc}); choose another --out"
        ) from None
    return created


def _unmake(created: list[Path]) -> None:
    """Remove the folders a run created (the output folder whole, its parents if empty)."""
    if created:
        shutil.rmtree(created[-1], ignore_errors=True)
    for folder in reversed(created[:-1]):
        with contextlib.suppress(OSError):
            folder.rmdir()


@contextmanager
def output_folder(out_dir: str | Path) -> Iterator[OutputFolder]:
    """Claim files in ``out_dir`` for one run; on any error remove them all.

    Creates ``out_dir`` if needed (checking it is writable) and yields the run's
    :class:`OutputFolder`; when the block ends, the staged files are moved in, the last
    claimed (the manifest) last. If the block raises (errors and interrupts alike), the
    writers are aborted and the staging folder removed, and ``out_dir`` too when this call
    created it: files already there stay as they were. A failed write (``OSError``: a full
    disk, a permission) becomes one :class:`~saliency_tubes.InputError` line. Meanwhile the
    run holds ``out_dir``'s lock (:func:`~saliency_tubes.commands.pipeline.lock.folder_lock`: a second
    run on it fails at once with one line), and first cleans up the staging folders that a
    killed run left there (:func:`recover_staging`).
    """
    out = Path(out_dir)
    created = _prepare(out)
    with contextlib.ExitStack() as stack:
        try:
            if stack.enter_context(folder_lock(out)):  # not a run inside a run of ours
                recover_staging(out)  # what a killed run left (no live run owns it: the lock)
            outputs = OutputFolder(out)
        except BaseException as exc:
            _unmake(created)
            if isinstance(exc, OSError):
                raise _write_error(out, exc) from None
            raise
        yield stack.enter_context(_staged(outputs, out, created))


@contextmanager
def _staged(outputs: OutputFolder, out: Path, created: list[Path]) -> Iterator[OutputFolder]:
    """Yield ``outputs``; commit them when the block ends, clean up when it raises."""
    try:
        yield outputs
        outputs.commit(last=outputs.names[-1] if outputs.names else None)
    except BaseException as exc:
        outputs.cleanup()
        _unmake(created)
        failed = exc if isinstance(exc, OSError) else exc.__cause__  # a writer's VideoError
        if isinstance(failed, OSError) and (failed is exc or isinstance(exc, VideoError)):
            raise _write_error(out, failed) from None
        raise


def _write_error(out: Path, exc: OSError) -> InputError:
    """One line for a failed write (a full disk, a permission): what, where, what to do."""
    reason = exc.strerror or str(exc)
    what = "free some space" if exc.errno == errno.ENOSPC else "check its permissions"
    return InputError(
        f"expected to write the outputs into {out}, but got {reason}; {what} or choose "
        "another --out (the folder is as it was before this run)"
    )


def progress(total: int, desc: str, enabled: bool, unit: str = "clip") -> Any:
    """A progress bar with an ETA on stderr when it is a terminal; silent elsewhere (log
    files get the stage messages, one plain line each, instead of redrawn bars)."""
    import sys

    from tqdm.auto import tqdm

    shown = enabled and sys.stderr.isatty()
    return tqdm(total=total, desc=desc, disable=not shown, leave=False, unit=unit)


Say = Callable[[str], None]
"""What the commands call with a short message at each stage (the CLI prints them)."""


@dataclass
class Run:
    """One command run under way: its video, output folder, messages and stage timings.

    Attributes:
        video: the source video (a file or a frame folder).
        info: its probe.
        outputs: the output folder.
        say: called with a short message at each stage.
        timings: seconds spent per stage (see :meth:`stage`).
    """

    video: Path
    info: VideoInfo
    outputs: OutputFolder
    say: Say
    timings: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block as stage ``name`` (added up when a stage runs several times)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - started


#: What a command's work makes besides its manifest.
W = TypeVar("W")


def produce(
    video: str | Path,
    out_dir: str | Path,
    work: Callable[[Run], tuple[dict[str, Any], W]],
    *,
    info: VideoInfo | None = None,
    manifest_extra: dict[str, Any] | None = None,
    on_stage: Say | None = None,
    manifest_name: str = "manifest.json",
) -> tuple[dict[str, Any], Run, W]:
    """Probe ``video``, claim ``out_dir``, run ``work``, write its manifest; clean up on error.

    ``work`` returns the manifest and what else it made (the explanations and their
    summaries, say), returned as they are; ``manifest_extra`` entries are added to the
    manifest, then the run's ``seconds``, and it is written last as ``manifest_name`` (so a
    folder with a manifest holds a finished run).
    """
    started = time.perf_counter()
    source = Path(video)
    info = probe(source, min_frames=2) if info is None else check_min_frames(info, 2)
    with output_folder(out_dir) as outputs:
        run = Run(source, info, outputs, on_stage or (lambda _msg: None))
        manifest, made = work(run)
        manifest.update(manifest_extra or {})
        manifest["seconds"] = round(time.perf_counter() - started, 3)
        run.timings["total"] = time.perf_counter() - started
        outputs.write_json(manifest_name, manifest)
    return manifest, run, made
