"""A worker's videos in groups (``--batch-size``): decoded ahead, one forward per group.

:meth:`GroupWorker.serve` takes groups of videos (lists of ``(index, item, fingerprint)``)
as they come; a thread probes and decodes the videos (one clip each,
:func:`~saliency_tubes.commands.pipeline.grouped.prepare`) into a bounded queue, at most
one group ahead, while the calling thread explains the group before it in one forward
(:func:`~saliency_tubes.commands.pipeline.grouped.explain_clips`) and writes each video's
outputs and row. A video that cannot be read gets its error row and the others of its
group their results; a batched forward that fails is retried video by video (each gets its
own result or error). Where batching would change the results
(:func:`~saliency_tubes.commands.pipeline.grouped.why_alone`) the videos are explained one
by one, as without ``--batch-size``.

With ``--decoders N`` (N > 1, :meth:`GroupWorker.serve_many`), N threads decode the videos
into a queue of at most ``--batch-size`` clips and the model takes whatever is decoded (up to
``--batch-size``) into its next forward: it waits only while no clip is decoded, which is
what keeps a GPU busy while one video's decode is slow.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ...errors import SaliencyTubesError, first_line
from ...video import VideoInfo, probe
from ..pipeline.explaining import Explained, method_of
from ..pipeline.grouped import Prepared, explain_clips, prepare, received, why_alone
from .inputs import Item
from .worker import VideoWorker, error_row

__all__ = ["GroupWorker", "Job", "Shipped"]

Job = tuple[int, Item, str]
"""A video's place in the batch, the video and its fingerprint."""

#: What a video's failure to decode may raise (the others are bugs: still its error row).
_FAILURES = (SaliencyTubesError, OSError, ValueError, RuntimeError)


@dataclass(frozen=True)
class Shipped:
    """A decoded video as plain data, for another process's model (Ray's explain actors).

    Attributes:
        info: its probe (None: not decoded).
        clip: its clip, ``(1, C, T, h, w)`` float32 (None: failed, or explained alone).
        error: why it could not be decoded (None: it was, or it is explained alone).
        seconds: how long its decode took.
    """

    info: VideoInfo | None
    clip: Any
    error: str | None
    seconds: float


@dataclass
class _Decoded:
    job: Job
    began: float
    info: VideoInfo | None = None
    prepared: Prepared | None = None
    error: str | None = None


class GroupWorker:
    """Explains groups of videos with one :class:`VideoWorker` (its model and settings)."""

    def __init__(self, worker: VideoWorker) -> None:
        self.worker = worker
        loaded, options = worker.loaded, worker.settings.explain
        method = method_of(loaded, options.method)
        self.explainer = loaded.explainer(
            method, interpolation=options.interpolation, align=options.align
        )
        #: why the videos are explained one by one (None: in groups)
        self.alone = why_alone(loaded, options, self.explainer)
        #: forwards run on groups (for the tests and the benchmark)
        self.forwards = 0

    def decode(self, job: Job) -> _Decoded:
        """Probe and decode one video (its failure is kept, to become its error row)."""
        began = time.perf_counter()
        done = _Decoded(job, began)
        if self.alone is not None:
            return done  # explained one by one: the whole work in :meth:`VideoWorker.run`
        _, item, _ = job
        try:
            done.info = probe(item.path, min_frames=2)
            done.prepared = prepare(
                item.path, done.info, self.worker.loaded, self.worker.settings.explain
            )
        except _FAILURES as exc:
            done.error = first_line(exc)
        except Exception as exc:  # a bug: this video's error, not the batch's
            done.error = f"unexpected {type(exc).__name__}: {first_line(exc)}"
        return done

    def ship(self, done: _Decoded) -> Shipped:
        """A :meth:`decode`'s result as plain data (:class:`Shipped`)."""
        clip = None if done.prepared is None else done.prepared.clip.numpy()
        return Shipped(done.info, clip, done.error, time.perf_counter() - done.began)

    def unship(self, job: Job, shipped: Shipped) -> _Decoded:
        """:class:`Shipped` as this worker's decoded video, ready for :meth:`finish` (its
        time counts from its decode)."""
        done = _Decoded(job, time.perf_counter() - shipped.seconds, shipped.info)
        done.error = shipped.error
        if shipped.clip is not None and shipped.info is not None:
            options = self.worker.settings.explain
            done.prepared = received(
                job[1].path, shipped.info, shipped.clip, self.worker.loaded, options
            )
        return done

    def serve(
        self,
        groups: Iterator[list[Job]],
        emit: Callable[[int, dict[str, Any]], None],
        decoders: int = 1,
        batch: int = 1,
    ) -> None:
        """Explain every group ``groups`` gives (it may block for the next), ``emit(index,
        row)`` for each video as it finishes.

        One decoder (``decoders=1``): a thread decodes one group ahead and each group is one
        forward. Several: :meth:`serve_many` (``batch``: the most clips per forward)."""
        if decoders > 1:
            self.serve_many(groups, emit, decoders, batch)
            return
        ready: queue.Queue[list[_Decoded] | None] = queue.Queue(maxsize=1)
        failed: list[BaseException] = []

        def decoder() -> None:
            try:
                for group in groups:
                    ready.put([self.decode(job) for job in group])
            except BaseException as exc:  # handed to the caller's thread
                failed.append(exc)
            finally:
                ready.put(None)

        threading.Thread(target=decoder, name="batch-decoder", daemon=True).start()
        while (group := ready.get()) is not None:
            for index, row in self.finish(group):
                emit(index, row)
        if failed:
            raise failed[0]

    def serve_many(
        self,
        groups: Iterator[list[Job]],
        emit: Callable[[int, dict[str, Any]], None],
        decoders: int,
        batch: int,
    ) -> None:
        """:meth:`serve` with ``decoders`` threads (PyAV and torch release the GIL) decoding
        the videos, in their order, into a queue of at most ``batch`` clips (past that the
        decoders wait: memory stays flat; with the forward's ``batch`` and one clip in each
        decoder's hands, at most 2 x ``batch`` + ``decoders`` clips are held, as tested); the
        calling thread takes every clip decoded so
        far, up to ``batch``, into one forward, and waits only while none is decoded. Rows
        come in the order they finish (a group's may come after the next group's)."""
        jobs, lock = (job for group in groups for job in group), threading.Lock()
        ready: queue.Queue[_Decoded | None] = queue.Queue(maxsize=max(1, batch))
        failed: list[BaseException] = []

        def decoder() -> None:
            try:
                while True:
                    with lock:  # one thread at a time waits for the next job
                        job = next(jobs, None)
                    if job is None:
                        return
                    ready.put(self.decode(job))
            except BaseException as exc:  # handed to the caller's thread
                failed.append(exc)
            finally:
                ready.put(None)

        for k in range(decoders):
            threading.Thread(target=decoder, name=f"batch-decoder-{k}", daemon=True).start()
        running = decoders
        while running:
            taken: list[_Decoded] = []
            item = ready.get()
            while True:
                if item is None:
                    running -= 1
                else:
                    taken.append(item)
                if len(taken) >= batch or not running:
                    break
                try:
                    item = ready.get_nowait()
                except queue.Empty:
                    break
            for index, row in self.finish(taken):
                emit(index, row)
        if failed:
            raise failed[0]

    def finish(self, group: list[_Decoded]) -> Iterator[tuple[int, dict[str, Any]]]:
        """Explain a decoded group in one forward, then write each video's outputs and row."""
        ok = [d for d in group if d.prepared is not None]
        made: dict[int, Explained] = {}
        if ok:
            try:
                for part in _by_size(ok):
                    explained = explain_clips(self.explainer, [d.prepared for d in part])  # type: ignore[misc]
                    self.forwards += 1
                    made.update({id(d): e for d, e in zip(part, explained, strict=True)})
            except Exception:  # noqa: BLE001 - any failure of the group's forward (a model's
                # assert on its batch size included): each video alone, with its own result or
                # error row, so that a group never takes its worker down
                made = {}
        for d in group:
            index, item, fingerprint = d.job
            if d.error is not None:
                yield index, error_row(item, d.error, fingerprint, time.perf_counter() - d.began)
            else:
                e = made.get(id(d))
                ahead = None if e is None or d.info is None else (d.info, e, d.began)
                yield index, self.run(item, fingerprint, ahead)

    def run(
        self, item: Item, fingerprint: str, prepared: tuple[VideoInfo, Explained, float] | None
    ) -> dict[str, Any]:
        """One video's outputs and row (an unexpected bug is its error row too)."""
        try:
            return self.worker.run(item, fingerprint, prepared=prepared)
        except Exception as exc:
            message = f"unexpected {type(exc).__name__}: {first_line(exc)}"
            return error_row(item, message, fingerprint)


def _by_size(decoded: list[_Decoded]) -> list[list[_Decoded]]:
    """The videos in runs of one clip size, in order (a batch needs one size)."""
    parts: dict[tuple[int, ...], list[_Decoded]] = {}
    for d in decoded:
        assert d.prepared is not None
        parts.setdefault(tuple(d.prepared.clip.shape), []).append(d)
    return list(parts.values())
