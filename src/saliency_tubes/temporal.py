"""Temporal importance: when, along the video, a saliency tube is strong.

A tube says *where* the model looked in every frame; collapsing each frame to one number
gives *when* it looked. For a tube ``s_f(y, x)`` in ``[0, 1]`` on frame ``f`` (NaN where the
model never saw the pixel, e.g. cropped away), over its seen pixels ``P_f``:

.. math::
    \\text{mean}_f = \\frac{1}{|P_f|} \\sum_{(y, x) \\in P_f} s_f(y, x), \\qquad
    \\text{max}_f = \\max_{(y, x) \\in P_f} s_f(y, x).

``mean`` is how much of the frame is salient and how strongly (the tube's "mass" in that
frame); ``max`` is the strongest single response. ``mean`` also has a meaning for the
paper's tube (CAM, Stergiou et al. 2019) with a global-average-pool + linear head: the
class score is the space-time mean of the raw tube plus the bias, so each time step's
spatial mean of the raw tube is its share of the class score, and min-max normalisation
(one affine map for the whole tube) keeps the shape of that curve: the peaks of ``mean``
are the moments that add most to the class score (up to the spline upsampling and the
mapping onto source frames). On a video the frames are the **source
frames**: the tube mapped back onto every frame by :class:`~saliency_tubes.video.TubeMapper`
(linear in time between the sampled frames, so the curve is piecewise linear between them
and flat before the first and after the last sampled frame). A frame with no seen pixel
counts as 0.

**Key frames** are the peaks of the ``mean`` curve that stand out (:func:`key_frames`):
local maxima (plateaus count once, at their middle; the first and last frame count when
they are higher than their one neighbour) whose *topographic prominence* is at least
``min_prominence`` (default 0.2) times the curve's range ``max - min`` and at least
``min_absolute`` (default 0.02, on the ``[0, 1]`` saliency scale, so that the wiggles of an
almost flat curve are not key frames). A peak's prominence
is its height above its *key col*: on each side, walk until a strictly higher sample and
take the lowest value passed; the key col is the higher of those minima, from the sides
that reached higher ground. The highest peak (no higher ground anywhere) is measured from
the curve's minimum, so it is a key frame whenever the curve varies by at least
``min_absolute``.

Everything here is a pure function on arrays; the curves are drawn by
:func:`saliency_tubes.render.timeline_bar` (under each frame) and
:func:`saliency_tubes.render.curves_png` (a plot).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .errors import InputError

__all__ = [
    "DEFAULT_MIN_ABSOLUTE",
    "DEFAULT_MIN_PROMINENCE",
    "CurveBuilder",
    "TemporalCurve",
    "frame_saliency",
    "key_frames",
    "temporal_curve",
]

#: Relative prominence a peak needs to be a key frame (fraction of the curve's range).
DEFAULT_MIN_PROMINENCE = 0.2

#: Absolute prominence a peak needs to be a key frame (in the curve's units).
DEFAULT_MIN_ABSOLUTE = 0.02

#: One line describing the curve and the key-frame rule, stored in manifests.
DEFINITION = (
    "mean/max: mean and maximum of the normalised tube over the seen pixels of each source "
    "frame (the tube mapped back to that frame; 0 where nothing is seen); key_frames: peaks "
    "of mean (plateau middle; first/last frame included) with topographic prominence >= "
    f"max({DEFAULT_MIN_PROMINENCE} x (max - min) of the curve, {DEFAULT_MIN_ABSOLUTE})"
)


@dataclass(frozen=True, eq=False)
class TemporalCurve:
    """The per-frame saliency of one tube and its key frames.

    Attributes:
        mean: ``(F,)`` float64, mean saliency over each frame's seen pixels.
        max: ``(F,)`` float64, the largest saliency in each frame.
        times: ``(F,)`` float64 timestamps in seconds, or None (frame indices only).
        key_frames: ``(P,)`` int64 frame indices of the key frames, in time order.
        prominence: ``(P,)`` float64 topographic prominence of each key frame (in the units
            of ``mean``).
    """

    mean: np.ndarray
    max: np.ndarray
    times: np.ndarray | None
    key_frames: np.ndarray
    prominence: np.ndarray

    def __len__(self) -> int:
        return int(self.mean.shape[0])

    def __eq__(self, other: object) -> bool:
        """The same values in every array (a dataclass's ``==`` on arrays would raise)."""
        if not isinstance(other, TemporalCurve):
            return NotImplemented
        pairs = [(self.mean, other.mean), (self.max, other.max), (self.times, other.times)]
        pairs += [(self.key_frames, other.key_frames), (self.prominence, other.prominence)]
        return all(
            a is b or (a is not None and b is not None and np.array_equal(a, b)) for a, b in pairs
        )

    __hash__ = None  # type: ignore[assignment]  # mutable arrays inside

    def to_dict(self, decimals: int = 4) -> dict[str, Any]:
        """JSON-ready: ``mean``, ``max``, ``key_frames``, ``key_times`` and ``prominence``."""
        out: dict[str, Any] = {
            "mean": np.round(self.mean, decimals).tolist(),
            "max": np.round(self.max, decimals).tolist(),
            "key_frames": self.key_frames.tolist(),
            "prominence": np.round(self.prominence, decimals).tolist(),
        }
        if self.times is not None:
            out["key_times"] = np.round(self.times[self.key_frames], 6).tolist()
        return out


def frame_saliency(saliency: np.ndarray | torch.Tensor) -> tuple[float, float]:
    """``(mean, max)`` of one ``(H, W)`` map over its seen (non-NaN) pixels; ``(0, 0)`` if none."""
    s = _as_array(saliency, "saliency")
    if s.ndim != 2:
        raise InputError(
            f"expected one (H, W) saliency map, but got shape {s.shape}; pass one frame of the tube"
        )
    seen = s[~np.isnan(s)]
    if seen.size == 0:
        return 0.0, 0.0
    return float(seen.mean(dtype=np.float64)), float(seen.max())


class CurveBuilder:
    """Builds a :class:`TemporalCurve` one frame at a time (for streamed videos)."""

    def __init__(self) -> None:
        self._mean: list[float] = []
        self._max: list[float] = []

    def add(self, saliency: np.ndarray | torch.Tensor) -> None:
        """Add the next frame's ``(H, W)`` map (NaN where unseen)."""
        mean, peak = frame_saliency(saliency)
        self._mean.append(mean)
        self._max.append(peak)

    def add_frames(self, saliency: np.ndarray) -> None:
        """Add the next frames' ``(n, H, W)`` maps at once (NaN where unseen): each frame's
        mean and max over its seen pixels, as :func:`frame_saliency`."""
        s = np.asarray(saliency, dtype=np.float32)
        if s.ndim != 3:
            raise InputError(f"expected (n, H, W) saliency maps, but got shape {s.shape}")
        total = s.sum(axis=(1, 2), dtype=np.float64)
        if np.isfinite(total).all():  # no NaN (maps on a clip's grid: every cell seen)
            count = np.full(len(s), s[0].size)
            peak = s.max(axis=(1, 2), initial=-np.inf)
        else:  # a NaN (or an infinity) makes its frame's total NaN (or infinite)
            seen = ~np.isnan(s)
            count = seen.sum(axis=(1, 2))
            total = np.where(seen, s, 0.0).sum(axis=(1, 2), dtype=np.float64)
            peak = np.where(seen, s, -np.inf).max(axis=(1, 2), initial=-np.inf)
        empty = count == 0
        self._mean.extend(np.where(empty, 0.0, total / np.maximum(count, 1)).tolist())
        self._max.extend(np.where(empty, 0.0, peak).astype(np.float64).tolist())

    def build(
        self,
        times: Sequence[float] | np.ndarray | None = None,
        *,
        min_prominence: float = DEFAULT_MIN_PROMINENCE,
        min_absolute: float = DEFAULT_MIN_ABSOLUTE,
    ) -> TemporalCurve:
        """The curve of the frames added so far (``times``: one per frame, or None)."""
        keys = {"min_prominence": min_prominence, "min_absolute": min_absolute}
        return _curve(np.asarray(self._mean), np.asarray(self._max), times, keys)


def temporal_curve(
    tube: np.ndarray | torch.Tensor,
    times: Sequence[float] | np.ndarray | None = None,
    *,
    min_prominence: float = DEFAULT_MIN_PROMINENCE,
    min_absolute: float = DEFAULT_MIN_ABSOLUTE,
) -> TemporalCurve:
    """Per-frame mean and max saliency of a ``(T, H, W)`` tube, with its key frames.

    Args:
        tube: ``(T, H, W)`` saliency (e.g. ``tubes.maps[n, k]``, or a tube mapped to source
            frames), NaN where unseen.
        times: ``(T,)`` timestamps, or None.
        min_prominence: Key-frame threshold as a fraction of the curve's range (see
            :func:`key_frames`).
        min_absolute: Key-frame threshold in the curve's units.

    Returns:
        The :class:`TemporalCurve`.

    Raises:
        InputError: ``tube`` is not 3-D, or ``times`` has the wrong length.
    """
    t = _as_array(tube, "tube")
    if t.ndim != 3 or t.shape[0] < 1:
        raise InputError(
            f"expected a (T, H, W) tube, but got shape {t.shape}; "
            "pass one class's tube, e.g. tubes.maps[0, 0]"
        )
    builder = CurveBuilder()
    for frame in t:
        builder.add(frame)
    return builder.build(times, min_prominence=min_prominence, min_absolute=min_absolute)


def _curve(
    mean: np.ndarray,
    peak: np.ndarray,
    times: Sequence[float] | np.ndarray | None,
    keys: dict[str, float],
) -> TemporalCurve:
    stamps = None
    if times is not None:
        stamps = np.asarray(times, dtype=np.float64).reshape(-1)
        if stamps.shape != mean.shape:
            raise InputError(
                f"expected {mean.shape[0]} timestamps (one per frame), but got "
                f"{stamps.shape[0]}; pass the frames' times or None"
            )
    index, prom = key_frames(
        mean, min_prominence=keys["min_prominence"], min_absolute=keys["min_absolute"]
    )
    return TemporalCurve(
        mean=mean.astype(np.float64),
        max=peak.astype(np.float64),
        times=stamps,
        key_frames=index,
        prominence=prom,
    )


def _check_peak_options(
    v: np.ndarray, min_prominence: float, min_absolute: float, max_peaks: int | None
) -> None:
    """:func:`key_frames`'s argument checks (one-line errors)."""
    if v.ndim != 1 or not np.isfinite(v).all():
        raise InputError(
            f"expected a finite 1-D curve, but got shape {v.shape}; pass one value per frame"
        )
    if not 0.0 <= float(min_prominence) <= 1.0:
        raise InputError(
            f"expected min_prominence in [0, 1], but got {min_prominence!r}; pass a "
            "fraction of the curve's range"
        )
    if not float(min_absolute) >= 0.0:
        raise InputError(f"expected min_absolute >= 0, but got {min_absolute!r}")
    if max_peaks is not None and max_peaks < 1:
        raise InputError(f"expected max_peaks >= 1 or None, but got {max_peaks!r}")


def _prominent_peaks(v: np.ndarray) -> list[tuple[int, float]]:
    """Every peak of a non-flat curve ``v`` with its prominence (steps 1-3 of
    :func:`key_frames`), in index order."""
    # Plateaus: one sample per run of equal values.
    starts = np.flatnonzero(np.r_[True, v[1:] != v[:-1]])
    ends = np.r_[starts[1:] - 1, v.size - 1]
    runs = v[starts]
    n = runs.size
    found: list[tuple[int, float]] = []
    low = float(v.min())
    for i in range(n):
        h = runs[i]
        if (i > 0 and runs[i - 1] >= h) or (i < n - 1 and runs[i + 1] >= h):
            continue
        cols = []
        for step in (-1, 1):
            j, lowest = i + step, h
            while 0 <= j < n and runs[j] <= h:
                lowest = min(lowest, runs[j])
                j += step
            if 0 <= j < n:  # reached higher ground on this side
                cols.append(lowest)
        base = max(cols) if cols else low
        found.append(((int(starts[i]) + int(ends[i])) // 2, float(h - base)))
    return found


def key_frames(
    values: Sequence[float] | np.ndarray,
    *,
    min_prominence: float = DEFAULT_MIN_PROMINENCE,
    min_absolute: float = DEFAULT_MIN_ABSOLUTE,
    max_peaks: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Peaks of a curve that stand out: indices and topographic prominences.

    1. Runs of equal neighbours (plateaus) are one sample, placed at the run's middle
       (``(first + last) // 2``).
    2. A sample is a peak when it is strictly higher than each neighbour it has (the first
       and last sample have one).
    3. Prominence of a peak of height ``h``: on each side, walk to the first strictly
       higher sample; the side's col is the lowest value passed. The key col is the higher
       col among the sides that found a higher sample; when neither did (the highest peak)
       it is the curve's minimum. ``prominence = h - key col``.
    4. Kept: ``prominence >= max(min_prominence * (max - min), min_absolute)`` (a flat
       curve has no peaks), then the ``max_peaks`` most prominent, in index order.

    Args:
        values: ``(F,)`` curve.
        min_prominence: Fraction of the curve's range, in ``[0, 1]``.
        min_absolute: Smallest prominence in the curve's units (``>= 0``).
        max_peaks: Keep at most this many (the most prominent); None keeps all.

    Returns:
        ``(indices int64, prominences float64)``, both ``(P,)``.

    Raises:
        InputError: ``values`` is not a finite 1-D curve, or a bad threshold.
    """
    v = np.asarray(values, dtype=np.float64)
    _check_peak_options(v, min_prominence, min_absolute, max_peaks)
    empty = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    if v.size < 2 or v.max() == v.min():
        return empty
    found = _prominent_peaks(v)
    low = float(v.min())
    limit = max(float(min_prominence) * (float(v.max()) - low), float(min_absolute))
    kept = [(i, p) for i, p in found if p >= limit - 1e-12]
    if max_peaks is not None and len(kept) > max_peaks:
        kept = sorted(kept, key=lambda ip: -ip[1])[:max_peaks]
    kept.sort()
    if not kept:
        return empty
    return (
        np.array([i for i, _ in kept], dtype=np.int64),
        np.array([p for _, p in kept], dtype=np.float64),
    )


def _as_array(x: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float64).numpy()
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"expected {name} as a numeric array, but got {type(x).__name__}; "
            "pass a numpy array or a torch tensor"
        ) from exc
