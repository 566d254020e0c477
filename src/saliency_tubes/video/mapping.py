"""From tubes back to source frames: a tube on the clip grid mapped onto any source frame.

* :class:`TimedTube`: one clip's tube with the source times of its steps, interpolated in time;
* :func:`covering`: which clips (windows) cover a source time; :func:`blend` their maps;
* :class:`SourceSampler`: a map on the clip grid resized onto the source pixels the clip
  covers (NaN elsewhere);
* :class:`TubeMapper` (and :func:`stitch_windows`): the three together, for a tube or the
  windows of a whole video.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import torch

from saliency_tubes.errors import InputError

from .preprocess import Geometry
from .sampling import positive_int


def resample_times(times: Sequence[float] | np.ndarray, length: int) -> np.ndarray:
    """Times of a coarser (or finer) temporal grid over the same clip.

    A saliency tube computed at feature resolution has ``T' != T`` time steps; step ``k`` of
    ``T'`` covers clip frames around position ``p_k = (k + 0.5) T / T' - 0.5`` (the pixel-centre
    convention along time), and its time is the clip times linearly interpolated at ``p_k``
    (clamped to the first and last clip frame).

    Args:
        times: ``(T,)`` source timestamps of the clip's frames.
        length: ``T'``, the tube's time steps.

    Returns:
        ``(T',)`` float64 times.
    """
    t = np.asarray(times, dtype=np.float64).reshape(-1)
    n = positive_int(length, "length")
    if t.size == 0:
        raise InputError("expected at least 1 clip time, but got 0; pass the sampled timestamps")
    pos = (np.arange(n) + 0.5) * t.size / n - 0.5
    return np.interp(np.clip(pos, 0, t.size - 1), np.arange(t.size), t)


def _axis_sampling(
    start: float, extent: float, grid: int, n_src: int
) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear sampling of a ``grid``-cell axis onto the source pixels it covers.

    Source pixel ``P`` (centre ``P + 0.5``) is covered when ``start <= P + 0.5 <= start +
    extent``; its grid coordinate is ``g = (P + 0.5 - start) * grid / extent - 0.5``, clamped to
    ``[0, grid - 1]`` (edge cells hold to the border).

    Returns:
        ``(first, stop, i0, i1, frac)``: covered source pixels ``first..stop-1``, and for each
        the two grid cells and the weight of the second.
    """
    eps = 1e-6
    first = max(0, int(np.ceil(start - 0.5 - eps)))
    stop = min(n_src, int(np.floor(start + extent - 0.5 + eps)) + 1)
    if stop <= first:
        empty = np.zeros(0, dtype=np.int64)
        return first, first, empty, empty, np.zeros(0, dtype=np.float32)
    P = np.arange(first, stop, dtype=np.float64)
    g = np.clip((P + 0.5 - start) * grid / extent - 0.5, 0.0, grid - 1)
    i0 = np.floor(g).astype(np.int64)
    i1 = np.minimum(i0 + 1, grid - 1)
    frac = (g - i0).astype(np.float32)
    return first, stop, i0, i1, frac


def _as_float_array(x: object, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float32).numpy()
    try:
        return np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"expected {name} to be a numeric array, but got "
            f"{type(x).__name__}; pass a numpy array or torch tensor"
        ) from exc


class TimedTube:
    """One clip's tube with the source times of its steps, for interpolation in time.

    Repeated times (frames sampled twice, ``T > num_frames``) are merged: their maps are
    averaged.

    Args:
        tube: ``(T, gh, gw)`` float32 saliency.
        times: ``(T,)`` non-decreasing source timestamps (seconds).
    """

    def __init__(self, tube: np.ndarray, times: np.ndarray) -> None:
        uniq, inverse = np.unique(times, return_inverse=True)
        if uniq.size < times.size:  # repeated frames (T > num_frames): average their maps
            merged = np.zeros((uniq.size,) + tube.shape[1:], dtype=np.float64)
            np.add.at(merged, inverse, tube)
            merged /= np.bincount(inverse, minlength=uniq.size)[:, None, None]
            tube = merged.astype(np.float32)
        self.times = uniq
        self.maps = np.ascontiguousarray(tube, dtype=np.float32)
        self.start = float(uniq[0])
        self.end = float(uniq[-1])
        spacing = (self.end - self.start) / (uniq.size - 1) if uniq.size > 1 else 1.0
        self.center = 0.5 * (self.start + self.end)
        self.half = 0.5 * (self.end - self.start) + spacing

    def at(self, t: float) -> np.ndarray:
        """Linear interpolation in time, holding the first/last map outside the clip."""
        times = self.times
        if t <= times[0] or times.size == 1:
            return self.maps[0]
        if t >= times[-1]:
            return self.maps[-1]
        return self.at_times(np.array([t], dtype=np.float64))[0]

    def at_times(self, ts: np.ndarray, dtype: type = np.float64) -> np.ndarray:
        """:meth:`at` for many times at once: ``(n, gh, gw)``. In float64 the arithmetic
        of :meth:`at` inside the clip (float64 weights on the float32 maps); float32 is
        faster (weights rounded to float32: within 1e-7 of it)."""
        times, maps = self.times, self.maps
        if times.size == 1:
            return np.repeat(maps[:1], len(ts), axis=0).astype(dtype)
        i = np.clip(np.searchsorted(times, ts, side="right") - 1, 0, times.size - 2)
        a = np.clip((ts - times[i]) / (times[i + 1] - times[i]), 0.0, 1.0)[:, None, None]
        # (1 - a)·maps[i] + a·maps[i + 1], the same operations with fewer temporaries:
        # the gathered copies are scaled in place where the dtype allows
        w0, w1 = (1.0 - a).astype(dtype), a.astype(dtype)
        out, later = maps[i], maps[i + 1]
        if out.dtype == w0.dtype:
            out *= w0
            later *= w1
        else:
            out, later = w0 * out, w1 * later
        out += later
        return out

    def weight(self, t: float, kind: str) -> float:
        """Blending weight at ``t`` (inside the clip): ``"uniform"`` 1, else triangular."""
        if kind == "uniform":
            return 1.0
        return max(1.0 - abs(t - self.center) / self.half, 1e-6)


def covering(starts: np.ndarray, ends: np.ndarray, t: float) -> np.ndarray:
    """Indices of the clips whose span ``[start, end]`` holds time ``t``, in order.

    When none does (before, after or between clips) the nearest clip alone is returned:
    it holds its first or last map there.
    """
    active = np.flatnonzero((starts <= t) & (t <= ends))
    if active.size == 0:
        dist = np.maximum(starts - t, 0.0) + np.maximum(t - ends, 0.0)
        active = np.array([int(np.argmin(dist))])
    return active


def blend(tubes: Sequence[TimedTube], t: float, weights: str = "triangular") -> np.ndarray:
    """The maps of the clips that cover ``t`` blended at ``t``, ``(gh, gw)`` float32.

    .. math:: M(t) = \\frac{\\sum_k w_k(t) M_k(t)}{\\sum_k w_k(t)}

    (one clip: its map at ``t``, clamped at its ends).
    """
    if len(tubes) == 1:
        return np.asarray(tubes[0].at(t), dtype=np.float32)
    acc = np.zeros(tubes[0].maps.shape[1:], dtype=np.float64)
    total = 0.0
    for tube in tubes:
        w = tube.weight(t, weights)
        acc += w * tube.at(t)
        total += w
    return (acc / total).astype(np.float32)


class SourceSampler:
    """Resizes maps on a ``(gh, gw)`` grid onto the source pixels a clip covers.

    Bilinear, cell centres landing at ``top + (y + 0.5) * height / gh - 0.5``
    (:class:`~saliency_tubes.video.Geometry`); pixels outside the clip's region (cropped
    away, never seen by the model) are NaN.

    Args:
        geometry: where the clip lies on the source.
        grid_hw: the maps' ``(gh, gw)``.
    """

    def __init__(self, geometry: Geometry, grid_hw: tuple[int, int]) -> None:
        self.src_hw: tuple[int, int] = (int(geometry.src_hw[0]), int(geometry.src_hw[1]))
        self.grid_hw = grid_hw
        H, W = self.src_hw
        self._rows = _axis_sampling(geometry.top, geometry.height, grid_hw[0], H)
        self._cols = _axis_sampling(geometry.left, geometry.width, grid_hw[1], W)
        self._tensors: dict[tuple[str, bool], tuple[int, int, Any, Any, Any]] = {}

    def frame(self, m: np.ndarray) -> np.ndarray:
        """``(H_src, W_src)`` float32 from the ``(gh, gw)`` map ``m``; NaN where unseen."""
        H, W = self.src_hw
        out = np.full((H, W), np.nan, dtype=np.float32)
        r0, r1, yi0, yi1, fy = self._rows
        c0, c1, xi0, xi1, fx = self._cols
        if r1 > r0 and c1 > c0:
            rows = m[yi0] * (1.0 - fy)[:, None] + m[yi1] * fy[:, None]  # (rows, gw)
            out[r0:r1, c0:c1] = rows[:, xi0] * (1.0 - fx) + rows[:, xi1] * fx
        return out

    def frame_tensor(self, m: torch.Tensor) -> torch.Tensor:
        """:meth:`frame` with torch on ``m``'s device (the same float32 arithmetic)."""
        H, W = self.src_hw
        out = torch.full((H, W), float("nan"), dtype=torch.float32, device=m.device)
        r0, r1, yi0, yi1, fy = self._on(m.device)
        c0, c1, xi0, xi1, fx = self._on(m.device, cols=True)
        if r1 > r0 and c1 > c0:
            m = m.to(torch.float32)
            rows = m[yi0] * (1.0 - fy)[:, None] + m[yi1] * fy[:, None]
            out[r0:r1, c0:c1] = rows[:, xi0] * (1.0 - fx) + rows[:, xi1] * fx
        return out

    def _on(self, device: torch.device, cols: bool = False) -> tuple[int, int, Any, Any, Any]:
        """The sampling of one axis as tensors on ``device`` (made once per device)."""
        key = (str(device), cols)
        if key not in self._tensors:
            first, stop, i0, i1, frac = self._cols if cols else self._rows
            self._tensors[key] = (
                first,
                stop,
                torch.from_numpy(i0).to(device),
                torch.from_numpy(i1).to(device),
                torch.from_numpy(frac).to(device),
            )
        return self._tensors[key]


class TubeMapper:
    """Maps a saliency tube on the clip grid back onto source frames, at any time.

    For a source time ``t`` the map is built in two linear steps (they commute, so the cheap
    one runs first):

    1. **Temporal**, on the tube's grid: linear interpolation between the sampled timestamps,
       ``M(t) = (1 - a) M_i + a M_{i+1}`` with ``a = (t - t_i) / (t_{i+1} - t_i)``, clamped:
       before the first sampled time the first map holds, after the last the last one.
       Stitched mappers (:func:`stitch_windows`) blend the windows that contain ``t``,
       ``M(t) = sum_k w_k(t) M_k(t) / sum_k w_k(t)``.
    2. **Spatial**: the ``(gh, gw)`` map is resized bilinearly onto the source pixels inside
       the clip's region (:class:`Geometry`), cell centres landing at
       ``top + (y + 0.5) * height / gh - 0.5``; pixels outside the region (cropped away, never
       seen by the model) are NaN.

    The tube's grid may be the clip's ``(T, h, w)`` or coarser (e.g. the feature grid): only
    the region matters spatially, and ``times`` must have one entry per tube time step (see
    :func:`resample_times`). Mapping a frame costs ``O(H_src * W_src)``; no whole-video array
    is ever built, so it suits streaming renders.

    Args:
        tube: ``(T, gh, gw)`` saliency (numpy or torch), finite; usually in ``[0, 1]``.
        times: ``(T,)`` source timestamps (seconds) of the clip's frames, non-decreasing;
            repeats (frames sampled twice) are averaged.
        geometry: Where the clip lies on the source (:meth:`Preprocess.geometry`).
        src_hw: Source frame size ``(H, W)``; defaults to ``geometry.src_hw`` and must agree
            with it.

    Raises:
        InputError: Shapes disagree, values are not finite, or times decrease.
    """

    def __init__(
        self,
        tube: np.ndarray | torch.Tensor,
        times: Sequence[float] | np.ndarray,
        geometry: Geometry,
        src_hw: tuple[int, int] | None = None,
    ) -> None:
        self._init([tube], [times], geometry, src_hw, "triangular")

    def _init(
        self,
        tubes: Sequence[np.ndarray | torch.Tensor],
        times: Sequence[Sequence[float] | np.ndarray],
        geometry: Geometry,
        src_hw: tuple[int, int] | None,
        weights: str,
    ) -> None:
        if not isinstance(geometry, Geometry):
            raise InputError(
                f"expected a Geometry, but got {type(geometry).__name__}; "
                "pass Preprocess.geometry(src_hw)"
            )
        hw = tuple(int(v) for v in (src_hw if src_hw is not None else geometry.src_hw))
        if hw != tuple(geometry.src_hw):
            raise InputError(
                f"expected src_hw to equal geometry.src_hw {geometry.src_hw}, but "
                f"got {hw}; build the geometry for this source size"
            )
        if weights not in ("triangular", "uniform"):
            raise InputError(
                f"expected weights 'triangular' or 'uniform', but got {weights!r}; "
                "pick one of the two"
            )
        if len(tubes) == 0 or len(tubes) != len(times):
            raise InputError(
                f"expected one times array per tube and at least one tube, but got "
                f"{len(tubes)} tubes and {len(times)} times; pass matching lists"
            )
        windows: list[TimedTube] = []
        grid: tuple[int, int] | None = None
        for k, (tube, tk) in enumerate(zip(tubes, times, strict=True)):
            m = _as_float_array(tube, "tube")
            t = np.asarray(tk, dtype=np.float64).reshape(-1)
            if m.ndim != 3 or min(m.shape) < 1:
                raise InputError(
                    f"expected tube {k} of shape (T, h, w), but got {m.shape}; "
                    "pass one map per clip time step"
                )
            if t.size != m.shape[0]:
                raise InputError(
                    f"expected {m.shape[0]} times for tube {k} of shape {m.shape}, but got "
                    f"{t.size}; pass one timestamp per tube time step (see resample_times)"
                )
            if not (np.isfinite(m).all() and np.isfinite(t).all()):
                raise InputError(
                    f"expected finite tube and times, but got NaN/inf in window "
                    f"{k}; normalise the saliency before mapping"
                )
            if np.any(np.diff(t) < 0):
                raise InputError(
                    f"expected non-decreasing times, but got {t.tolist()} in "
                    f"window {k}; sort the sampled frames by time"
                )
            if grid is None:
                grid = (m.shape[1], m.shape[2])
            elif grid != (m.shape[1], m.shape[2]):
                raise InputError(
                    f"expected every tube on the same (h, w) grid {grid}, but got "
                    f"{m.shape[1:]} in window {k}; resize the tubes first"
                )
            windows.append(TimedTube(m, t))
        assert grid is not None  # internal invariant: at least one window was added
        self._spans([(w.start, w.end) for w in windows], windows.__getitem__, geometry, grid)
        self._weights = weights

    def _spans(
        self,
        spans: Sequence[tuple[float, float]],
        window: Callable[[int], TimedTube],
        geometry: Geometry,
        grid: tuple[int, int],
    ) -> None:
        """Windows by their ``(start, end)`` times, sorted by start (stable), each made by
        ``window(i)`` (``i`` its place in ``spans``) when a time it covers is mapped."""
        order = np.argsort([start for start, _ in spans], kind="stable")
        self._order = [int(i) for i in order]
        self._window = window
        self._starts = np.array([float(spans[i][0]) for i in order])
        self._ends = np.array([float(spans[i][1]) for i in order])
        self.geometry = geometry
        self.src_hw: tuple[int, int] = (int(geometry.src_hw[0]), int(geometry.src_hw[1]))
        self.grid_hw: tuple[int, int] = grid
        self._sampler = SourceSampler(geometry, grid)

    @classmethod
    def on_demand(
        cls,
        spans: Sequence[tuple[float, float]],
        window: Callable[[int], TimedTube],
        geometry: Geometry,
        grid_hw: tuple[int, int],
        *,
        weights: Literal["triangular", "uniform"] = "triangular",
    ) -> TubeMapper:
        """A stitched mapper (:func:`stitch_windows`) whose windows are made when needed.

        For videos too long to hold every window's tube: ``window(i)`` returns window
        ``i``'s :class:`TimedTube` (on the ``grid_hw`` grid, finite, spanning
        ``spans[i]``, its first and last time) each time a time it covers is mapped; the
        caller caches them as it likes (the explaining commands keep a bounded cache).
        """
        mapper = cls.__new__(cls)
        mapper._spans(spans, window, geometry, (int(grid_hw[0]), int(grid_hw[1])))
        mapper._weights = weights
        return mapper

    @property
    def time_range(self) -> tuple[float, float]:
        """First and last sampled time covered by the tube(s)."""
        return float(self._starts.min()), float(self._ends.max())

    def grid_map(self, t: float) -> np.ndarray:
        """The saliency at time ``t`` on the tube's grid, ``(gh, gw)`` float32 (step 1)."""
        t = float(t)
        if not np.isfinite(t):
            raise InputError(
                f"expected a finite time in seconds, but got {t}; pass a frame's timestamp"
            )
        active = covering(self._starts, self._ends, t)
        return blend([self._window(self._order[int(k)]) for k in active], t, self._weights)

    def frame(self, t: float) -> np.ndarray:
        """The saliency map on the source frame shown at time ``t`` (seconds).

        Args:
            t: Presentation time, e.g. ``VideoInfo.timestamps[i]`` or ``Frame.timestamp``.

        Returns:
            ``(H_src, W_src)`` float32; NaN where the model never saw the pixel.
        """
        return self._sampler.frame(self.grid_map(t))

    __call__ = frame

    def frame_tensor(self, t: float, device: torch.device | str = "cpu") -> torch.Tensor:
        """:meth:`frame` as a float32 tensor on ``device``: blended on the CPU on the tube's
        grid, then resized onto the source pixels there (the same arithmetic)."""
        return self._sampler.frame_tensor(torch.from_numpy(self.grid_map(t)).to(device))


def stitch_windows(
    tubes: Sequence[np.ndarray | torch.Tensor],
    times: Sequence[Sequence[float] | np.ndarray],
    geometry: Geometry,
    src_hw: tuple[int, int] | None = None,
    *,
    weights: Literal["triangular", "uniform"] = "triangular",
) -> TubeMapper:
    """One whole-video mapper from the tubes of several (overlapping) windows.

    Explain each window of :func:`sliding_windows` separately, then pass every window's tube
    with its frames' timestamps. At time ``t`` the windows whose time span
    ``[t_first, t_last]`` contains ``t`` are blended,

    .. math:: M(t) = \\frac{\\sum_k w_k(t) M_k(t)}{\\sum_k w_k(t)},

    with triangular weights ``w_k(t) = 1 - |t - c_k| / (r_k + \\delta_k)`` (``c_k`` the window's
    centre time, ``r_k`` its half span, ``\\delta_k`` its mean frame spacing, so edges keep a
    small positive weight) or uniform weights ``w_k = 1``. Outside every window the nearest
    one holds its first/last map. The tubes are blended as given: normalise them on a common
    scale first if windows should be comparable.

    Args:
        tubes: ``(T_k, gh, gw)`` tubes, the same grid for all windows.
        times: ``(T_k,)`` source timestamps per window.
        geometry: Shared clip geometry (same preprocessing for every window).
        src_hw: Source size; defaults to ``geometry.src_hw``.
        weights: ``"triangular"`` (smooth hand-over between windows) or ``"uniform"``.

    Returns:
        A :class:`TubeMapper` whose :meth:`TubeMapper.frame` covers the whole video.

    Raises:
        InputError: As :class:`TubeMapper`, or the lists differ in length or are empty.
    """
    mapper = TubeMapper.__new__(TubeMapper)
    mapper._init(tubes, times, geometry, src_hw, weights)
    return mapper
