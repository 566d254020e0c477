"""Which frames make a clip: uniform sampling and sliding windows."""

from __future__ import annotations

import numpy as np

from saliency_tubes.errors import InputError


def positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < 1:
        raise InputError(
            f"expected {name} to be a positive integer, but got {value!r}; pass {name} >= 1"
        )
    return int(value)


def sample_uniform(num_frames: int, T: int) -> np.ndarray:
    """``T`` frame indices spread evenly over the whole video.

    As in the Saliency Tubes authors' script, indices are ``floor(linspace(0, n - 1, T))``:
    the first and last frames are always included and the rest are evenly spaced,

    .. math:: i_k = \\left\\lfloor k \\frac{n - 1}{T - 1} \\right\\rfloor, \\quad k = 0..T-1.

    When ``T > num_frames`` frames repeat (each about ``T / n`` times); ``T == 1`` gives frame 0.

    Args:
        num_frames: Frames in the video, ``n >= 1``.
        T: Frames wanted.

    Returns:
        ``(T,)`` int64 non-decreasing indices in ``[0, n)``.

    Raises:
        InputError: ``num_frames`` or ``T`` is not a positive integer.
    """
    n = positive_int(num_frames, "num_frames")
    t = positive_int(T, "T")
    # The tiny epsilon keeps exact integers (k * (n-1) / (T-1) == m) from flooring to m - 1.
    idx = np.floor(np.linspace(0.0, n - 1, t) + 1e-9).astype(np.int64)
    return np.clip(idx, 0, n - 1)


def sliding_windows(num_frames: int, length: int, stride: int, step: int = 1) -> list[np.ndarray]:
    """Clips of ``length`` frames that together cover every frame of the video.

    Window ``k`` holds frames ``s_k + step * [0, 1, ..., length - 1]`` with starts
    ``s_k = k * stride``; when the last regular window stops short of the end, one more window
    aligned to the end (``s = n - span``, ``span = (length - 1) * step + 1``) is added. A video
    shorter than one window gives a single window of :func:`sample_uniform` indices (frames
    repeat).

    Args:
        num_frames: Frames in the video.
        length: Frames per window (the model's clip length).
        stride: Frames between the starts of consecutive windows, ``<= span`` so no frame is
            skipped.
        step: Frames between consecutive frames of a window (temporal subsampling).

    Returns:
        A list of ``(length,)`` int64 index arrays, in time order.

    Raises:
        InputError: A non-positive argument, or ``stride > span`` (windows would leave gaps).
    """
    n = positive_int(num_frames, "num_frames")
    length = positive_int(length, "length")
    stride = positive_int(stride, "stride")
    step = positive_int(step, "step")
    span = (length - 1) * step + 1
    if stride > span:
        raise InputError(
            f"expected stride <= window span {span} so the windows cover every frame, but got "
            f"stride {stride}; lower the stride or raise length/step"
        )
    if n < span:
        return [sample_uniform(n, length)]
    offsets = step * np.arange(length, dtype=np.int64)
    starts = list(range(0, n - span + 1, stride))
    if starts[-1] + span < n:
        starts.append(n - span)
    return [s + offsets for s in starts]
