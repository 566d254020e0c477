"""Decoding and encoding on threads of their own, so that they overlap the drawing.

FFmpeg releases Python's global lock while it decodes and encodes, so a frame can be
decoded, drawn and encoded at the same time on different cores. Both helpers pass frames
through bounded queues: memory holds at most ``depth`` frames per queue, whatever the
video's length. Errors raised on a helper's thread are raised again on the caller's, at the
next call; an interrupted caller stops the thread and leaves nothing half-written (the
writer's temporary file is removed, as :meth:`VideoWriter.abort` does).
"""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
from collections.abc import Generator, Iterator
from typing import Any

import numpy as np

from .writer import Finishing, VideoWriter

__all__ = ["BackgroundWriter", "prefetch"]

_END = object()
#: How often an idle encoding thread looks whether it was aborted (seconds).
_POLL = 0.2
#: How long a stop waits for a decoding or encoding thread (a frame takes far less).
_ABORT_WAIT = 30.0


def _usable(q: queue.Queue[Any]) -> bool:
    """Whether ``q``'s lock can still be taken: a KeyboardInterrupt raised inside one of its
    operations on this thread (Python raises it between any two bytecodes, inside
    ``threading``'s own ``with lock:`` too) can leave it held for good, and then nothing
    waits on the queue's thread."""
    if not q.mutex.acquire(timeout=_POLL):
        return False
    q.mutex.release()
    return True


class _Stop(Exception):
    """Raised on the producer's thread when the consumer stopped early."""


def prefetch(frames: Iterator[Any], depth: int = 4) -> Generator[Any, None, None]:
    """Iterate ``frames`` (e.g. :func:`~saliency_tubes.video.iter_frames`) on a thread of
    its own, up to ``depth`` items ahead of the caller.

    Closing the returned generator (or leaving a ``for`` loop early) stops the thread and
    closes ``frames``; an exception of ``frames`` is raised in the caller.
    """
    items: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> None:
        while True:
            if stop.is_set():
                raise _Stop
            try:
                items.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    def produce() -> None:
        try:
            for item in frames:
                put(item)
            put(_END)
        except _Stop:
            pass
        except BaseException as exc:  # handed to the caller
            try:
                put(exc)
            except _Stop:
                pass
        finally:
            close = getattr(frames, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="decode", daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        if not sys.is_finalizing():  # at exit the (daemon) thread may never run again
            # a Ctrl-C inside the caller's get can leave the queue's lock held, and the
            # thread blocked on it for good (a daemon: the process's exit ends it)
            if _usable(items):
                thread.join(timeout=_ABORT_WAIT)


class BackgroundWriter(Finishing):
    """A :class:`~saliency_tubes.video.VideoWriter` fed by the caller and encoding on a
    thread of its own (at most ``depth`` frames queued).

    The caller must not change a frame after handing it to :meth:`write`. Errors of the
    encoder (a full disk ...) are raised at the next :meth:`write` or at :meth:`close`.
    """

    def __init__(self, writer: VideoWriter, depth: int = 4) -> None:
        self.writer = writer
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._cancel = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"encode {writer.path.name}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                frame = self._queue.get(timeout=_POLL)
            except queue.Empty:
                if self._cancel.is_set():
                    # aborted: a wake-up lost to a Ctrl-C in the caller's put cannot keep
                    # this thread, and the abort that joins it, waiting
                    return
                continue
            if frame is _END:
                return
            if self._error is None and not self._cancel.is_set():
                try:
                    self.writer.write(frame)
                except BaseException as exc:  # handed to the caller
                    self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def write(self, frame: np.ndarray) -> None:
        """Queue one ``(H, W, 3)`` uint8 frame (waits while the queue is full)."""
        self._raise()
        self._queue.put(frame)

    def close(self) -> None:
        """Encode what is queued, finish the file and move it into place."""
        self._queue.put(_END)
        self._thread.join()
        try:
            self._raise()
        except BaseException:
            self.writer.abort()
            raise
        self.writer.close()

    def abort(self) -> None:
        """Drop what is queued and remove the temporary output.

        Never waits forever: a Ctrl-C that struck the caller inside a queue operation (a
        ``put`` of :meth:`write`) can leave the queue's lock held (:func:`_usable`; the thread
        then stays blocked, a daemon that the process's exit ends) or a wake-up lost (the
        thread looks every ``_POLL`` seconds); the output is removed all the same."""
        self._cancel.set()
        if _usable(self._queue):
            with contextlib.suppress(queue.Full):  # full: the thread drains it and stops
                self._queue.put_nowait(_END)
            self._thread.join(timeout=_ABORT_WAIT)
        self.writer.abort()
