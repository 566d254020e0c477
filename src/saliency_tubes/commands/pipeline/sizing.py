"""``--max-side``: the size at which each output's panels are drawn.

An output (a heat video, the side-by-side layout, a grid of panels) is composed of panels
at one size with the source's aspect ratio, plus captions, gaps, colour bars and timeline
bars. :func:`fit` finds the largest panel size whose composed output has its longest side
at most ``--max-side`` (measured by composing blank panels with the same functions as the
drawing, so captions and gaps count); the panels are then drawn at that size: the source
frame resized once (:func:`sized`) and the tube mapped straight onto the smaller frame
(:meth:`~saliency_tubes.commands.pipeline.track.TubeTrack.on` maps at the frame's own size), never
drawn large and shrunk.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
from PIL import Image

from ...errors import InputError
from ...video import Frame

__all__ = ["Compose", "fit", "sized"]

#: ``compose(panel_hw) -> (H, W)`` of the output drawn from panels of that size.
Compose = Callable[[tuple[int, int]], tuple[int, int]]


def _even(n: int) -> int:
    """An mp4's side: H.264 in yuv420p repeats an odd side's last row or column once."""
    return n + n % 2


def fit(src_hw: tuple[int, int], max_side: int | None, compose: Compose) -> tuple[int, int]:
    """The panel size, at most the source's, whose output's longest side is ``<= max_side``
    (counted as written to mp4: an odd side one more).

    Raises:
        InputError: ``max_side`` is too small for the layout's captions and gaps.
    """
    H, W = int(src_hw[0]), int(src_hw[1])
    if max_side is None:
        return H, W

    def size(long: int) -> tuple[int, int]:  # the panel whose longer side is ``long``
        s = long / max(H, W)
        return max(2, round(H * s)), max(2, round(W * s))

    def fits(long: int) -> bool:
        out_h, out_w = compose(size(long))
        return max(_even(out_h), _even(out_w)) <= max_side

    low, high = 2, max(H, W)  # the largest longer side that fits, by bisection
    if fits(high):
        return H, W
    if not fits(low):
        raise InputError(
            f"expected --max-side to leave room for this layout's panels, but got {max_side} "
            "pixels; pass a larger --max-side (e.g. 640) or fewer layouts or panels"
        )
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return size(low)


_local = threading.local()


def sized(frame: Frame, hw: tuple[int, int]) -> Frame:
    """``frame`` with its picture resized to ``hw`` (antialiased, made once per frame and
    size on each thread); the frame itself when it has that size."""
    if frame.image.shape[:2] == tuple(hw):
        return frame
    held: dict[tuple[int, int], Frame] | None = getattr(_local, "held", None)
    if held is None or getattr(_local, "source", None) is not frame.image:
        held = {}
        _local.held, _local.source = held, frame.image
    if hw not in held:
        picture = Image.fromarray(frame.image).resize((hw[1], hw[0]), Image.Resampling.BILINEAR)
        held[hw] = Frame(frame.index, frame.timestamp, np.asarray(picture))
    return held[hw]
