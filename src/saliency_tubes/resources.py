"""What this machine can hold: a check made before an option sizes a large allocation.

A clip of ``T`` frames at ``h x w`` is ``T * 3 * h * w`` float32 values, and a video
network's activations during one forward pass are a multiple of that. Options that size
clips (``--frames``, ``--windows``, the benchmark's ``--clips``) are checked against the
memory available now, before anything is allocated, so an impossible value is one error
line instead of a process the kernel kills.
"""

from __future__ import annotations

import os

from .errors import InputError

__all__ = ["ACTIVATION_FACTOR", "available_memory", "check_clip", "check_fits", "clip_bytes"]

ACTIVATION_FACTOR = 32
"""Bytes of memory per byte of input clip assumed for one explain call (activations, the
gradient of the target layer, the decoded frames). Measured on CPU as the growth of peak
RSS during one call on a 128-frame clip at the model's preset size, divided by the clip's
bytes: tiny-actions Grad-CAM 4.5, 3D-ResNet-50 Grad-CAM 11.6, torchvision r3d_18 CAM 27.3
(its 64-channel stem at full resolution)."""


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation now, or None when unknown: the
    machine's ``MemAvailable``, or less where a container's cgroup limit leaves less."""
    found: list[int] = []
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError, IndexError):
        pass
    if not found:
        try:
            found.append(int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE")))
        except (ValueError, OSError, AttributeError):
            pass
    limit = _cgroup_room()
    if limit is not None:
        found.append(limit)
    return min(found) if found else None


def _cgroup_room() -> int | None:
    """What this process's cgroup (v2) still allows: ``memory.max - memory.current``."""
    try:
        with open("/proc/self/cgroup", encoding="ascii") as fh:
            line = next((ln for ln in fh if ln.startswith("0::")), None)
        if line is None:
            return None
        folder = os.path.join("/sys/fs/cgroup", line.strip()[3:].lstrip("/"))
        with open(os.path.join(folder, "memory.max"), encoding="ascii") as fh:
            top = fh.read().strip()
        if top == "max":
            return None
        with open(os.path.join(folder, "memory.current"), encoding="ascii") as fh:
            used = int(fh.read().strip())
        return max(int(top) - used, 0)
    except (OSError, ValueError):
        return None


def clip_bytes(frames: int, size: tuple[int, int], channels: int = 3) -> int:
    """Bytes of one float32 clip of ``frames`` frames at ``size = (h, w)``."""
    return int(frames) * channels * int(size[0]) * int(size[1]) * 4


def check_fits(need: int, what: str, hint: str, *, available: int | None = None) -> None:
    """Raise one :class:`InputError` line when ``need`` bytes exceed the memory available.

    Args:
        need: bytes the work will allocate.
        what: what needs them, as the message says it (``"a clip of 100000 frames at
            96x96"``).
        hint: what to do instead (``"use fewer --frames or --windows"``).
        available: bytes available (default: :func:`available_memory`; unknown: no check).
    """
    free = available_memory() if available is None else available
    if free is not None and need > free:
        raise InputError(
            f"expected work that fits in memory, but {what} needs about {need / 2**30:.1f} GiB "
            f"and {free / 2**30:.1f} GiB is available; {hint}"
        )


def check_clip(
    frames: int, size: tuple[int, int], doing: str, hint: str, *, after: str = ""
) -> None:
    """:func:`check_fits` for one explain call on a clip of ``frames`` at ``size``: the
    clip's bytes times :data:`ACTIVATION_FACTOR`, said as "``doing`` a clip of N frames at
    HxW``after``"."""
    check_fits(
        clip_bytes(frames, size) * ACTIVATION_FACTOR,
        f"{doing} a clip of {frames} frames at {size[0]}x{size[1]}{after}",
        hint,
    )
