"""The output folder of one command run: claimed names, atomic writes, clean-up, progress.

Every file a run writes goes through one :class:`OutputFolder`: :meth:`OutputFolder.claim`
names it (and records it for clean-up), the ``write_*`` methods write it atomically (a
partial file renamed into place when complete), and :meth:`OutputFolder.video` opens a
:class:`~saliency_tubes.video.VideoWriter` that is aborted on failure. Inside
:func:`output_folder`, an error or an interrupt removes every file the run claimed (and
the folder, when the run created it). :func:`produce` runs a command's work inside it and
writes the manifest last; :func:`progress` is the bar long stages show.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..video import (
    VideoInfo,
    VideoWriter,
    atomic_save_npy,
    atomic_write_bytes,
    atomic_write_json,
    check_min_frames,
    probe,
)

__all__ = ["OutputFolder", "Run", "output_folder", "produce", "progress"]


class OutputFolder:
    """Every file of one run, relative to its folder; on failure all of them are removed.

    Args:
        root: the folder (it must exist; see :func:`output_folder`).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: list[Path] = []
        self.writers: list[VideoWriter] = []

    def rel(self, path: Path) -> str:
        """``path`` relative to the folder, with ``/`` separators (as manifests list it)."""
        return path.relative_to(self.root).as_posix()

    def claim(self, name: str) -> Path:
        """Claim ``root / name`` for this run (removed on failure)."""
        path = self.root / name
        self.files.append(path)
        return path

    def folder(self, name: str) -> Path:
        """A sub-folder for this run's files; claimed (removed on failure) only if new."""
        path = self.root / name
        if not path.exists():
            self.claim(name)
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

        The array is filled through a memory map, one part at a time (a window's tubes,
        say), so it is never whole in memory; it appears under ``name`` when complete.
        """
        path = self.claim(name)
        partial = path.with_name(f".{path.name}.partial")
        try:
            array = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32, shape=shape)
            start = 0
            for part in parts:
                array[start : start + len(part)] = part
                start += len(part)
            array.flush()
            del array
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        return self.rel(path)

    def video(self, name: str, fps: Any) -> tuple[VideoWriter, str]:
        """A :class:`VideoWriter` for ``name`` (aborted on failure) and its relative name."""
        path = self.claim(name)
        writer = VideoWriter(path, fps=fps)
        self.writers.append(writer)
        return writer, self.rel(path)

    def cleanup(self) -> None:
        """Abort the open writers and remove every claimed file."""
        for writer in self.writers:
            writer.abort()
        for path in self.files:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _prepare(out_dir: Path) -> bool:
    """Create ``out_dir`` if needed and check it is writable; return whether it was created."""
    created = not out_dir.exists()
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(
            f"output folder {out_dir} is a file; expected a folder path (it is created if missing)"
        )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise InputError(
            f"output folder {out_dir} is not writable ({exc.strerror or exc}); choose another --out"
        ) from None
    return created


@contextmanager
def output_folder(out_dir: str | Path) -> Iterator[OutputFolder]:
    """Claim files in ``out_dir`` for one run; on any error remove them all.

    Creates ``out_dir`` if needed (checking it is writable) and yields the run's
    :class:`OutputFolder`. If the block raises (errors and interrupts alike), the writers
    are aborted, the claimed files removed, and ``out_dir`` too when this call created it;
    files already there stay.
    """
    out = Path(out_dir)
    created = _prepare(out)
    outputs = OutputFolder(out)
    try:
        yield outputs
    except BaseException:
        outputs.cleanup()
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise


def progress(total: int, desc: str, enabled: bool, unit: str = "clip") -> Any:
    """A progress bar on stderr (``tqdm``; an ETA on a terminal), or a silent one."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False, unit=unit)


Say = Callable[[str], None]


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


def produce(
    video: str | Path,
    out_dir: str | Path,
    work: Callable[[Run], dict[str, Any]],
    *,
    info: VideoInfo | None = None,
    manifest_extra: dict[str, Any] | None = None,
    on_stage: Say | None = None,
    manifest_name: str = "manifest.json",
) -> tuple[dict[str, Any], Run]:
    """Probe ``video``, claim ``out_dir``, run ``work``, write its manifest; clean up on error.

    ``work`` returns the manifest; ``manifest_extra`` entries are added to it, then the
    run's ``seconds``, and it is written last as ``manifest_name`` (so a folder with a
    manifest holds a finished run).
    """
    started = time.perf_counter()
    source = Path(video)
    info = probe(source, min_frames=2) if info is None else check_min_frames(info, 2)
    with output_folder(out_dir) as outputs:
        run = Run(source, info, outputs, on_stage or (lambda _msg: None))
        manifest = work(run)
        manifest.update(manifest_extra or {})
        manifest["seconds"] = round(time.perf_counter() - started, 3)
        run.timings["total"] = time.perf_counter() - started
        outputs.write_json(manifest_name, manifest)
    return manifest, run
