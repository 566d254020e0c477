"""The mark of unseen pixels: where the model never looked (outside its crop).

:func:`heat` and :func:`focus` (:mod:`.frames`) and the contrastive frames mark those pixels
the same way: the base image at half brightness under soft light-grey diagonal stripes
(:func:`mark_unseen`), so a cropped-away border reads as "no data" rather than as "not
salient". A video's border is the same on every frame, so :func:`mark_of` computes where a
mask lies and what its stripes add once per mask (:class:`UnseenMark`) and the frames reuse
it: a flat gather and a flat write instead of two boolean scans per panel.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from saliency_tubes.errors import InputError

__all__ = [
    "HATCH_GREY",
    "HATCH_PERIOD",
    "HATCH_WEIGHT",
    "UNSEEN_DIM",
    "UnseenMark",
    "hatch_weights",
    "mark_of",
    "mark_unseen",
]

#: The mark of unseen pixels: soft diagonal stripes (period in pixels, their grey level,
#: their largest weight) over the base dimmed by UNSEEN_DIM.
HATCH_PERIOD = 12
HATCH_GREY = 160
HATCH_WEIGHT = 0.3
UNSEEN_DIM = 0.5


@lru_cache(maxsize=16)
def hatch_weights(h: int, w: int) -> np.ndarray:
    """The stripes' weight at each pixel, ``(H, W)`` float32 (cached, read-only):
    ``HATCH_WEIGHT * (1 + cos(2 pi (y + x) / HATCH_PERIOD)) / 2``, smooth (no aliased
    1-pixel lines) and calm (at most 30 % of the mark)."""
    phase = (np.arange(h)[:, None] + np.arange(w)[None, :]) * (2.0 * np.pi / HATCH_PERIOD)
    weights = (HATCH_WEIGHT * 0.5 * (1.0 + np.cos(phase))).astype(np.float32)
    weights.setflags(write=False)
    return weights


class UnseenMark:
    """One unseen ``(H, W)`` mask, ready to mark frames: the flat indices of its pixels
    and, at those, ``1 - w`` and ``HATCH_GREY * w`` of :func:`hatch_weights` (read-only)."""

    __slots__ = ("add", "index", "keep", "shape")

    def __init__(self, unseen: np.ndarray) -> None:
        self.shape = tuple(unseen.shape)
        index = np.flatnonzero(unseen)
        self.index = index.astype(np.int32) if unseen.size < 2**31 else index
        w = hatch_weights(*self.shape).ravel()[self.index]
        self.keep = np.float32(1.0) - w
        self.add = np.float32(HATCH_GREY) * w
        for array in (self.index, self.keep, self.add):
            array.setflags(write=False)

    def values(self, base: np.ndarray | None) -> np.ndarray:
        """What the unseen pixels become, float32, from ``base`` at those pixels only:
        ``(n,)`` grey levels give ``(n,)``, ``(n, 3)`` colours ``(n, 3)``; None (a black
        base) gives ``(n, 1)``, to broadcast."""
        if base is None:
            return self.add[:, None]
        keep, add = (
            (self.keep, self.add) if base.ndim == 1 else (self.keep[:, None], self.add[:, None])
        )
        return base.astype(np.float32) * np.float32(UNSEEN_DIM) * keep + add

    def at(self, image: np.ndarray) -> np.ndarray:
        """``image``'s pixels on the mask, ``(n, ...)`` (``image`` is ``(H, W, ...)``)."""
        return image.reshape(-1, *image.shape[2:])[self.index]

    def put(self, out: np.ndarray, values: np.ndarray) -> None:
        """Write ``values`` into ``out``'s pixels on the mask, in place, whatever the
        memory layout of ``out``."""
        if out.flags.c_contiguous:
            out.reshape(-1, *out.shape[2:])[self.index] = values
        else:  # a reshape would copy: write through the 2-D positions instead
            out[np.unravel_index(self.index, self.shape)] = values


def mark_of(unseen: np.ndarray) -> UnseenMark | None:
    """The :class:`UnseenMark` of a boolean ``(H, W)`` mask (None when nothing is unseen),
    cached by the mask's shape and bits: a video's cropped-away border repeats on every
    frame. A cached mark holds 10 bytes per unseen pixel (about 10 MB for a 1080p frame's
    border, as r3d_18's crop leaves it); the last 8 masks are kept."""
    if not unseen.any():
        return None
    return _cached_mark(unseen.shape, np.packbits(unseen).tobytes())


@lru_cache(maxsize=8)
def _cached_mark(shape: tuple[int, ...], bits: bytes) -> UnseenMark:
    count = int(np.prod(shape))
    unseen = np.unpackbits(np.frombuffer(bits, np.uint8), count=count).reshape(shape)
    return UnseenMark(unseen.astype(bool))


def mark_unseen(base: np.ndarray, unseen: np.ndarray) -> np.ndarray:
    """Mark unseen pixels: half-brightness ``base`` under soft light-grey diagonal stripes.

    ``out = base`` where seen; where unseen, ``out = (1 - w) * 0.5 * base + w * 160`` with
    the stripes' weight ``w`` of :func:`hatch_weights` (0 to 0.3, period 12 pixels).

    Args:
        base: ``(H, W, 3)`` (or ``(H, W)`` grey) float or uint8 image to show under the mark.
        unseen: ``(H, W)`` boolean mask of unseen pixels.

    Returns:
        float32, the shape of ``base``.

    Raises:
        InputError: ``unseen`` is not the size of ``base``.
    """
    out = np.array(base, dtype=np.float32, order="C")
    mask = np.asarray(unseen, dtype=bool)
    if mask.shape != out.shape[:2] or out.ndim not in (2, 3):
        raise InputError(
            f"expected an (H, W) mask of unseen pixels for an image of shape {out.shape}, but "
            f"got a mask of shape {mask.shape}; pass the image's own mask"
        )
    mark = mark_of(mask)
    if mark is not None:
        mark.put(out, mark.values(mark.at(out)))
    return out
