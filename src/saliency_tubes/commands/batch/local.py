"""Local worker processes for a batch: each loads the model once; a video that hangs or
kills its worker is an error row, never the end of the batch.

Workers are started with ``spawn`` (a fresh interpreter: safe with torch's threads) and get
one video at a time, so the parent always knows which video each runs: past ``timeout``
seconds the worker is killed and replaced, and a worker that dies (a crash in a decoder, the
out-of-memory killer) is replaced too; in both cases the video gets an ``error`` row. A
model that fails to load is a usage error of the whole batch (:class:`~saliency_tubes.InputError`),
and so is a worker still loading it after :data:`START_LIMIT` seconds when no other worker
has loaded it (one that hangs while others run is stopped and the batch goes on without it).
With ``--device cuda`` (no index) there is one worker per GPU, worker ``i`` on ``cuda:i``.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import queue
import signal
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import InputError, first_line
from ..pipeline.lock import LOCK_NAME
from ..pipeline.outputs import recover_staging
from .groups import GroupWorker, Job
from .inputs import Item
from .worker import BatchSettings, VideoWorker, error_row

__all__ = ["START_LIMIT", "Task", "run_local"]

Task = tuple[Item, str]
"""A video and its fingerprint."""

#: Seconds between the parent's checks of its workers.
_POLL = 0.1

#: Seconds a worker may take to start and load the model (a big model from a slow disk
#: takes a minute; a factory that waits on a lock or a network never ends).
START_LIMIT = 600.0


def _die_with(parent: int) -> None:
    """End this process when ``parent`` does (a kill -9 of the batch must not leave workers
    blocked for good, holding memory or a GPU): on Linux the kernel's parent-death signal
    (``prctl(PR_SET_PDEATHSIG, SIGKILL)``), elsewhere a thread that watches the parent id."""
    import sys
    import threading

    if sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
        if armed:
            if os.getppid() != parent:  # the parent died before the signal was armed
                os._exit(1)
            return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


#: ``prctl``'s option for the parent-death signal (linux/prctl.h).
_PR_SET_PDEATHSIG = 1


def _work(
    settings: BatchSettings, tasks: Any, results: Any, wid: int, parent: int, feed: tuple[int, int]
) -> None:
    """A worker process: load the model, then explain the videos it is given (``feed``: its
    decoder threads and the most clips per forward).

    Ctrl-C reaches the workers too (one process group): the video under way cleans up its
    output folder, as ``explain`` does, and the worker exits quietly. The worker ends when
    the batch's process does, however that ends (:func:`_die_with`).
    """
    _die_with(parent)
    seen: list[int] = []

    def once(signum: int, frame: Any) -> None:  # a second Ctrl-C must not cut the clean-up
        if not seen:
            seen.append(signum)
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, once)
    # The notes the command line hides by default (torchvision's CPU operator workaround).
    warnings.filterwarnings("ignore", message=r"torchvision's compiled operators")
    try:
        if hasattr(signal, "pthread_sigmask"):  # blocked while this process started; a
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # Ctrl-C then: here
        try:
            grouped = GroupWorker(VideoWorker(settings))
        except Exception as exc:  # reported to the parent, which stops the batch
            results.put(("fatal", wid, None, first_line(exc)))
            return
        results.put(("ready", wid, None, grouped.alone))

        def groups() -> Iterator[list[Job]]:
            while (group := tasks.get()) is not None:
                yield group

        grouped.serve(groups(), lambda index, row: results.put(("row", wid, index, row)), *feed)
    except KeyboardInterrupt:
        return


@contextmanager
def _sigint_blocked() -> Iterator[None]:
    """SIGINT blocked in this thread for the block: a worker started meanwhile inherits the
    mask (through exec), so a Ctrl-C while it imports torch and unpickles its task does not
    print a traceback per worker; :func:`_work` unblocks it once its own handler is in place.
    Here the signal waits and comes after the block, nothing is lost."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def _gpus(device: str) -> list[str]:
    """``cuda:0 ... cuda:K-1`` for ``--device cuda`` (no index) with K GPUs, else none: the
    workers then share the one device they were given."""
    if device != "cuda":
        return []
    import torch

    return [f"cuda:{i}" for i in range(torch.cuda.device_count())]


@dataclass
class _Worker:
    process: Any
    tasks: Any
    device: str = "cpu"
    #: the groups of task indices handed to it: the first under way, the next decoding
    groups: list[list[int]] = dataclasses.field(default_factory=list)
    began: float = 0.0  # when the first group got under way
    size: int = 0  # its videos when it did
    ready: bool = False
    started: float = dataclasses.field(default_factory=time.monotonic)


def _clean(folder: Path) -> None:
    """What a worker killed mid-video left in its video's folder: the staging folder (the
    earlier results put back), its lock (stale: the worker is gone), and the folder itself
    when it holds nothing else."""
    recover_staging(folder)
    with suppress(OSError):
        (folder / LOCK_NAME).unlink(missing_ok=True)
        folder.rmdir()


def run_local(
    settings: BatchSettings,
    tasks: Sequence[Task],
    workers: int,
    timeout: float | None,
    on_row: Callable[[dict[str, Any]], None],
    batch_size: int = 1,
    say: Callable[[str], None] | None = None,
    decoders: int = 1,
) -> None:
    """Explain ``tasks`` on ``workers`` processes; ``on_row`` gets each row as it comes.

    Each worker gets groups of ``batch_size`` videos, explained in one forward where the
    method allows (:mod:`~saliency_tubes.commands.batch.groups`), and the next group while
    one is under way (decoded meanwhile). A group's videos have ``timeout`` seconds each; a
    group that times out or kills its worker is retried one video at a time, so that only
    the video at fault gets the error row. ``say`` is told once why the videos are
    explained one at a time, when they are. ``decoders``: decoding threads per worker (more
    than one: the model takes whatever clips are decoded, up to ``batch_size``)."""
    if not tasks:
        return
    gpus = _gpus(settings.model.device)
    size = max(1, min(len(gpus) or workers, len(tasks)))
    # Groups no larger than every worker's share, so that no worker waits for a video.
    group = max(1, min(batch_size, -(-len(tasks) // size)))
    groups = [list(range(i, min(i + group, len(tasks)))) for i in range(0, len(tasks), group)]
    threads = settings.threads or max(1, (os.cpu_count() or 1) // size)
    planned = BatchSettings(settings.model, settings.explain, settings.videos, threads)
    told = say if batch_size > 1 else None
    pool = _Pool(planned, tasks, groups, gpus, size, timeout, on_row, told)
    pool.feed = (decoders, group)
    pool.run()


class _Pool:
    """The state of :func:`run_local`: the workers, the videos still to hand out, the rows
    still to come."""

    def __init__(
        self,
        settings: BatchSettings,
        tasks: Sequence[Task],
        groups: list[list[int]],
        gpus: list[str],
        size: int,
        timeout: float | None,
        on_row: Callable[[dict[str, Any]], None],
        say: Callable[[str], None] | None,
    ) -> None:
        """Run ``tasks`` (handed out as ``groups`` of their indices) on ``size`` workers, one
        per GPU of ``gpus`` when there are any, each with ``settings`` (its threads set)."""
        self.say = say
        self.ctx = mp.get_context("spawn")
        self.results = self.ctx.Queue()
        self.gpus, self.size, self.settings = gpus, size, settings
        self.tasks, self.timeout, self.on_row = tasks, timeout, on_row
        self.pool: dict[int, _Worker] = {}
        self.next_id = 0
        self.pending = groups
        self.remaining = len(tasks)
        #: videos tried again alone after a worker died (or timed out) holding them with
        #: others: each runs with nothing decoded beside it, so the next death names it
        self.suspects: set[int] = set()
        #: each worker's decoder threads and the most clips per forward
        self.feed = (1, 1)

    def start(self, device: str | None = None) -> None:
        """A new worker (on ``device``, the GPU of the one it replaces, when given)."""
        q = self.ctx.Queue()
        mine = self.settings
        if self.gpus:  # one worker per GPU
            device = device or self.gpus[self.next_id % len(self.gpus)]
            mine = dataclasses.replace(mine, model=dataclasses.replace(mine.model, device=device))
        proc = self.ctx.Process(
            target=_work,
            args=(mine, q, self.results, self.next_id, os.getpid(), self.feed),
            daemon=True,
        )
        with _sigint_blocked():  # the new interpreter's imports: no Ctrl-C tracebacks
            proc.start()
        self.pool[self.next_id] = _Worker(proc, q, device=mine.model.device)
        self.next_id += 1

    def retire(self, wid: int) -> None:
        w = self.pool.pop(wid)
        if w.process.is_alive():
            w.process.kill()
        w.process.join(timeout=5)

    def run(self) -> None:
        try:
            for _ in range(self.size):
                self.start()
            while self.remaining:
                self.hand_out()
                self.receive()
                now = time.monotonic()
                for wid, w in list(self.pool.items()):
                    if not w.groups:
                        self.check_idle(wid, w, now)
                    else:
                        self.check_busy(wid, w, now)
        except BaseException:
            # Interrupted (or the batch failed): the videos under way stop and clean up
            # their folders (a worker turns SIGINT into a quiet exit), the idle workers exit.
            for w in self.pool.values():
                if w.groups and w.process.is_alive():
                    with suppress(OSError):
                        os.kill(w.process.pid, signal.SIGINT)
            raise
        finally:
            self.close()

    def hand_out(self) -> None:
        """Give ready workers a group each, then the next one to decode meanwhile while
        more groups are left than workers without one (those still starting included)."""
        for depth in (1, 2):
            for w in list(self.pool.values()):
                idle = sum(1 for other in self.pool.values() if not other.groups)
                if depth == 2 and len(self.pending) <= idle:
                    return
                if w.ready and len(w.groups) < depth and self.pending:
                    if depth == 2 and not self._may_pair(w):
                        continue  # a suspect video runs with nothing else in its worker
                    self.give(w, self.pending.pop(0))

    def _may_pair(self, w: _Worker) -> bool:
        """Whether the next pending group may be decoded beside ``w``'s group: neither is
        a suspect video (:attr:`suspects`)."""
        return not any(
            len(g) == 1 and g[0] in self.suspects for g in (*w.groups[:1], self.pending[0])
        )

    def give(self, w: _Worker, group: list[int]) -> None:
        w.groups.append(group)
        if len(w.groups) == 1:
            w.began, w.size = time.monotonic(), len(group)
        w.tasks.put([(i, *self.tasks[i]) for i in group])

    def receive(self) -> None:
        """Take the workers' messages: every one waiting, after waiting up to :data:`_POLL`
        seconds for the first. All of them before the timeouts are checked: a row that came
        in time must not wait behind another and then be taken for a timeout (its video
        killed, an error row recorded for outputs that were written)."""
        try:
            message = self.results.get(timeout=_POLL)
        except queue.Empty:
            return
        while True:
            self.take(message)
            try:
                message = self.results.get_nowait()
            except queue.Empty:
                return

    def take(self, message: tuple[str, int, Any, Any]) -> None:
        """Act on one message of a worker."""
        kind, wid, _index, payload = message
        if kind == "fatal":
            raise InputError(payload)  # the model or the options: the whole batch
        if kind == "ready" and wid in self.pool:
            self.pool[wid].ready = True
            if payload and self.say is not None:
                self.say(f"--batch-size: the videos are explained one at a time: {payload}")
                self.say = None
        elif kind == "row" and wid in self.pool and self.pool[wid].groups:
            w = self.pool[wid]
            # with --decoders N the next group's rows may come before this one's are done
            group = next((g for g in w.groups if _index in g), None)
            if group is None:
                return
            group.remove(_index)
            head = w.groups[0]
            w.groups = [g for g in w.groups if g]
            if not head and w.groups:  # the next one gets under way
                w.began, w.size = time.monotonic(), len(w.groups[0])
            self.remaining -= 1
            self.on_row(payload)

    def check_idle(self, wid: int, w: _Worker, now: float) -> None:
        """A worker without a video: died between videos (replaced), died or hangs while
        starting (the batch cannot run, or goes on without it)."""
        alive = w.process.is_alive()
        if w.ready and not alive:
            self.retire(wid)  # died between videos: a fresh one for the rest
            if self.pending:
                self.start(w.device)
        elif not w.ready and not alive:
            code = w.process.exitcode
            self.retire(wid)  # died while starting: the batch cannot run
            raise InputError(
                f"expected batch workers to start, but one exited with code {code} "
                "before loading the model; run saliency-tubes explain on one video "
                "to see why"
            )
        elif not w.ready and now - w.started > START_LIMIT:
            self.retire(wid)  # hangs while loading: go on with the others, if any
            if not any(other.ready for other in self.pool.values()):
                raise InputError(
                    f"expected batch workers to load the model within {START_LIMIT:g} s, "
                    "but none had; check that the model (its factory, its weights file) "
                    "loads with saliency-tubes explain on one video"
                )
            warnings.warn(
                f"a batch worker was still loading the model after {START_LIMIT:g} s and "
                f"was stopped; the batch goes on with {len(self.pool)} worker(s)",
                stacklevel=1,
            )

    def check_busy(self, wid: int, w: _Worker, now: float) -> None:
        """A worker on a group: past the timeout (``timeout`` seconds per video of the
        group), or dead, the worker is replaced; a lone video (one group of one) gets its
        error row, otherwise every unfinished video it held, of every group, is tried again
        one at a time (the one at fault gets the row)."""
        began, group = w.began, w.groups[0]
        if self.timeout is not None and now - began > self.timeout * w.size:
            message = (
                f"timed out after {self.timeout:g} s (--timeout); the video may hang the "
                "decoder: re-encode it, or raise --timeout"
            )
        elif not w.process.is_alive():
            message = (
                f"the worker process died on this video (exit code {w.process.exitcode}); "
                "it may be corrupt or too large for the memory: check it alone "
                "with saliency-tubes explain"
            )
        else:
            return
        self.retire(wid)
        # every video it held and had not finished: a later group's too, which it may have
        # been decoding or (--decoders N) explaining and writing when it died
        held = [index for g in w.groups for index in g]
        for index in held:
            if not w.process.is_alive():  # still dying: it may still write; the next run's
                _clean(self.settings.videos / self.tasks[index][0].video_id)  # locked recovery
        again: list[list[int]] = []
        if w.size > 1 or len(held) > 1:  # which one was at fault is not known: each alone
            again = [[index] for index in held]
            self.suspects.update(held)
        else:
            item, fingerprint = self.tasks[group[0]]
            self.remaining -= 1
            self.on_row(error_row(item, message, fingerprint, now - began))
        self.pending[:0] = again
        if self.pending:
            self.start(w.device)

    def close(self) -> None:
        """Tell every worker to stop, wait for them (10 s in all), kill what remains."""
        for w in self.pool.values():
            with suppress(OSError, ValueError):
                w.tasks.put(None)
        deadline = time.monotonic() + 10
        for w in self.pool.values():
            w.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if w.process.is_alive():
                w.process.kill()
                w.process.join(timeout=5)
        self.results.close()
