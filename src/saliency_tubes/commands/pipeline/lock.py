"""An exclusive lock on an output folder: one run at a time writes into a ``--out``.

:func:`folder_lock` holds ``DIR/.saliency-tubes.lock`` with ``flock`` for the length of a
run; the file says which process holds it and since when. The kernel drops the lock when
its process ends, however it ends (kill -9 included), so a lock file left by a killed run
is stale by construction: the next run takes it over (and may then clean up the staging
folders the killed run left, as no live run owns them). A second run while the first is
alive gets one :class:`~saliency_tubes.InputError` naming the holder's pid and start time.

The lock is re-entrant within one thread (a command that writes into a folder it already
holds); other threads and processes wait for nothing: they fail at once. Where ``flock`` is
missing (not POSIX) or the file system refuses it, runs go on without the lock.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ...errors import InputError

__all__ = ["LOCK_NAME", "folder_lock"]

#: The lock file's name inside the output folder (hidden: folder inputs skip it).
LOCK_NAME = ".saliency-tubes.lock"

_HELD: dict[tuple[str, int], int] = {}  # (folder, thread) -> depth
_GUARD = threading.Lock()


def _holder(path: Path) -> str:
    """Who holds the lock at ``path``, as the lock file says (pid and start time)."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        pid, since = int(record["pid"]), float(record["since"])
    except (OSError, ValueError, KeyError, TypeError):
        return "another run"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(since))
    return f"another run, pid {pid}, since {stamp}"


def _acquire(folder: Path) -> int | None:
    """The open, locked lock file's descriptor; None where locking is not possible."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        return None
    path = folder / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise InputError(
                    f"expected {folder} to be free for this run, but it is in use by "
                    f"{_holder(path)}; wait for that run to end or choose another --out"
                ) from None
            return None  # the file system has no locks: go on without
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:  # not a file the previous holder unlinked as we opened it
            break
        os.close(fd)
    record = json.dumps({"pid": os.getpid(), "since": time.time()}).encode("utf-8")
    with contextlib.suppress(OSError):  # a full disk: locked all the same, unsaid by whom
        os.ftruncate(fd, 0)
        os.write(fd, record)
    return fd


@contextmanager
def folder_lock(folder: str | Path) -> Iterator[bool]:
    """Hold ``folder``'s lock (it must exist) for the block; yields whether this call took
    it (False: this thread held it already, and a run of its own is under way there).

    Raises:
        InputError: another live run holds it (its pid and start time are said).
    """
    path = Path(folder)
    key = (os.path.realpath(path), threading.get_ident())
    with _GUARD:
        depth = _HELD.get(key, 0)
        if depth:
            _HELD[key] = depth + 1
    if depth:
        try:
            yield False
        finally:
            with _GUARD:
                _HELD[key] -= 1
        return
    fd = _acquire(path)
    with _GUARD:
        _HELD[key] = 1
    try:
        yield True
    finally:
        with _GUARD:
            _HELD.pop(key, None)
        if fd is not None:
            with contextlib.suppress(OSError):  # the folder may be gone (a failed new run)
                (path / LOCK_NAME).unlink()
            os.close(fd)  # unlinked before unlocked: a waiting run re-checks the inode
