"""From frames to clips and back: preprocessing, its geometry, and mapping tubes onto source frames."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from saliency_tubes.errors import InputError

from .sampling import _positive_int

#: Kinetics-400 normalisation of the torchvision video models (pixels scaled to [0, 1]).
KINETICS_MEAN: tuple[float, float, float] = (0.43216, 0.394666, 0.37645)
KINETICS_STD: tuple[float, float, float] = (0.22803, 0.22145, 0.216989)


@dataclass(frozen=True)
class Geometry:
    """Where the clip's pixel grid lies on the source frame.

    The clip's ``(h, w)`` grid covers the source rectangle ``[top, top + height) x
    [left, left + width)`` (pixel-edge coordinates, floats: pixel ``(Y, X)`` of the source
    spans ``[Y, Y + 1) x [X, X + 1)``). A grid of ``(gh, gw)`` cells over that region (the
    clip itself, or a coarser saliency map) has cell ``(y, x)`` centred at

    .. math:: Y = \\text{top} + (y + 0.5) \\frac{\\text{height}}{g_h} - 0.5, \\qquad
              X = \\text{left} + (x + 0.5) \\frac{\\text{width}}{g_w} - 0.5

    in source pixel-centre coordinates.

    Attributes:
        top: Source row (edge coordinate) of the clip's top edge.
        left: Source column (edge coordinate) of the clip's left edge.
        height: Source rows covered by the clip.
        width: Source columns covered by the clip.
        src_hw: Source frame size ``(H, W)``.
        clip_hw: Clip frame size ``(h, w)``.
    """

    top: float
    left: float
    height: float
    width: float
    src_hw: tuple[int, int]
    clip_hw: tuple[int, int]

    def to_source(
        self, y: float | np.ndarray, x: float | np.ndarray, grid_hw: tuple[int, int] | None = None
    ) -> tuple[Any, Any]:
        """Source pixel-centre coordinates ``(Y, X)`` of grid cell ``(y, x)``.

        Args:
            y: Row(s) on the grid.
            x: Column(s) on the grid.
            grid_hw: Grid size; defaults to the clip size.

        Returns:
            ``(Y, X)`` as floats or arrays (sub-pixel; round for a pixel index).
        """
        gh, gw = grid_hw if grid_hw is not None else self.clip_hw
        ys = self.top + (np.asarray(y, dtype=np.float64) + 0.5) * self.height / gh - 0.5
        xs = self.left + (np.asarray(x, dtype=np.float64) + 0.5) * self.width / gw - 0.5
        return (ys[()] if ys.ndim == 0 else ys), (xs[()] if xs.ndim == 0 else xs)


def _writable(frames: np.ndarray) -> np.ndarray:
    """A contiguous, writable view or copy (torch warns on read-only arrays, e.g. from PIL)."""
    arr = np.ascontiguousarray(frames)
    return arr if arr.flags.writeable else arr.copy()


@dataclass(frozen=True)
class Preprocess:
    """Resize, crop and normalise frames into a model's clip tensor.

    ``resize="short_side"`` scales the frame by ``s`` and centre-crops ``size``; ``s`` makes
    the short side ``resize_to`` pixels when given (the usual "resize 256, crop 224" recipe),
    and is otherwise just large enough for the frame to cover ``size``:

    .. math:: s = \\max\\left(\\frac{h}{H}, \\frac{w}{W}\\right)
              \\;\\text{or}\\; \\max\\left(\\frac{r}{\\min(H, W)}, \\frac{h}{H}, \\frac{w}{W}\\right).

    ``resize="full"`` resizes the whole frame to ``size`` (aspect ratio not kept, no crop).
    Resizing is bilinear with antialiasing (``torch.nn.functional.interpolate``), over all
    frames at once. Pixels are then scaled to ``[0, 1]`` and normalised per channel,
    ``x' = (x / 255 - mean_c) / std_c``.

    Attributes:
        size: Clip frame size ``(h, w)``.
        resize: ``"short_side"`` (resize then centre crop) or ``"full"`` (resize, no crop).
        mean: Per-channel mean (RGB, on the ``[0, 1]`` scale). Default: Kinetics-400 as used by
            the torchvision video models.
        std: Per-channel standard deviation (RGB, ``[0, 1]`` scale).
        resize_to: For ``"short_side"``: short-side length before cropping (default: the
            smallest that covers ``size``).
    """

    size: tuple[int, int]
    resize: Literal["short_side", "full"] = "short_side"
    mean: tuple[float, float, float] = KINETICS_MEAN
    std: tuple[float, float, float] = KINETICS_STD
    resize_to: int | None = None

    def __post_init__(self) -> None:
        size = tuple(self.size)
        if len(size) != 2 or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in size
        ):
            raise InputError(
                f"expected size to be (h, w) positive integers, but got {self.size!r}; "
                "pass e.g. size=(112, 112)"
            )
        object.__setattr__(self, "size", (int(size[0]), int(size[1])))
        if self.resize not in ("short_side", "full"):
            raise InputError(
                f"expected resize to be 'short_side' or 'full', but got {self.resize!r}; "
                "pick one of the two"
            )
        for name in ("mean", "std"):
            values = tuple(float(v) for v in getattr(self, name))
            if len(values) != 3 or not all(np.isfinite(values)):
                raise InputError(
                    f"expected {name} to be 3 finite floats (R, G, B), but got "
                    f"{getattr(self, name)!r}; pass per-channel values on the [0, 1] scale"
                )
            object.__setattr__(self, name, values)
        if min(self.std) <= 0:
            raise InputError(
                f"expected std > 0 for every channel, but got {self.std!r}; "
                "pass positive standard deviations"
            )
        if self.resize_to is not None:
            _positive_int(self.resize_to, "resize_to")

    def _resized_hw(self, src_hw: tuple[int, int]) -> tuple[int, int]:
        """Size ``(Hr, Wr)`` of the frame after resizing (before any crop)."""
        H, W = src_hw
        h, w = self.size
        if self.resize == "full":
            return h, w
        scale = max(h / H, w / W)
        if self.resize_to is not None:
            scale = max(scale, self.resize_to / min(H, W))
        return max(h, round(H * scale)), max(w, round(W * scale))

    def geometry(self, src_hw: tuple[int, int]) -> Geometry:
        """The source region the clip covers, for frames of size ``src_hw = (H, W)``.

        With resized size ``(Hr, Wr)`` and crop offset ``(cy, cx) = ((Hr - h) // 2,
        (Wr - w) // 2)``, resized pixel edges map to source edges by ``H / Hr`` and
        ``W / Wr`` (``align_corners=False``), so the region is
        ``top = cy * H / Hr``, ``height = h * H / Hr`` (columns alike). For ``"full"``
        it is the whole frame.

        Args:
            src_hw: Source frame size ``(H, W)``.

        Returns:
            The :class:`Geometry`.

        Raises:
            InputError: ``src_hw`` is not two positive integers.
        """
        if len(tuple(src_hw)) != 2 or min(src_hw) < 1:
            raise InputError(
                f"expected src_hw to be (H, W) positive integers, but got "
                f"{src_hw!r}; pass the source frame size"
            )
        H, W = int(src_hw[0]), int(src_hw[1])
        h, w = self.size
        Hr, Wr = self._resized_hw((H, W))
        cy, cx = (Hr - h) // 2, (Wr - w) // 2
        return Geometry(
            top=cy * H / Hr,
            left=cx * W / Wr,
            height=h * H / Hr,
            width=w * W / Wr,
            src_hw=(H, W),
            clip_hw=(h, w),
        )

    def __call__(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Turn ``(T, H, W, 3)`` uint8 RGB frames into a ``(3, T, h, w)`` float32 clip.

        Args:
            frames: Frames as numpy or torch uint8, e.g. from :func:`read_frames`.

        Returns:
            The normalised clip, float32, on the CPU (or the input tensor's device). Add the
            batch axis with ``clip[None]``.

        Raises:
            InputError: ``frames`` is not a ``(T, H, W, 3)`` uint8 array with ``T >= 1``.
        """
        x = torch.from_numpy(_writable(frames)) if isinstance(frames, np.ndarray) else frames
        if (
            not isinstance(x, torch.Tensor)
            or x.dtype != torch.uint8
            or x.ndim != 4
            or x.shape[-1] != 3
            or x.shape[0] < 1
            or min(x.shape[1:3]) < 1
        ):
            shape = tuple(getattr(frames, "shape", ()))
            dtype = getattr(frames, "dtype", type(frames).__name__)
            raise InputError(
                f"expected frames of shape (T, H, W, 3) and dtype uint8, but got shape {shape} "
                f"dtype {dtype}; pass RGB frames as returned by read_frames"
            )
        H, W = int(x.shape[1]), int(x.shape[2])
        h, w = self.size
        Hr, Wr = self._resized_hw((H, W))
        y = x.permute(0, 3, 1, 2).to(torch.float32)  # (T, 3, H, W)
        if (Hr, Wr) != (H, W):
            y = F.interpolate(
                y, size=(Hr, Wr), mode="bilinear", align_corners=False, antialias=True
            )
        cy, cx = (Hr - h) // 2, (Wr - w) // 2
        y = y[:, :, cy : cy + h, cx : cx + w]
        mean = torch.tensor(self.mean, dtype=torch.float32, device=y.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32, device=y.device).view(1, 3, 1, 1)
        y = (y / 255.0 - mean) / std
        return y.permute(1, 0, 2, 3).contiguous()  # (3, T, h, w)


# --------------------------------------------------------------------------------------
# Mapping back
# --------------------------------------------------------------------------------------


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
    n = _positive_int(length, "length")
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


class _Window:
    """One clip's tube with its times, duplicates merged, for temporal interpolation."""

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
        """Linear interpolation in time, holding the first/last map outside the window."""
        times = self.times
        if t <= times[0] or times.size == 1:
            return self.maps[0]
        if t >= times[-1]:
            return self.maps[-1]
        i = int(np.searchsorted(times, t, side="right")) - 1
        a = (t - times[i]) / (times[i + 1] - times[i])
        return (1.0 - a) * self.maps[i] + a * self.maps[i + 1]

    def weight(self, t: float, kind: str) -> float:
        """Blending weight at ``t`` (inside the window)."""
        if kind == "uniform":
            return 1.0
        return max(1.0 - abs(t - self.center) / self.half, 1e-6)


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

    @classmethod
    def _stitched(
        cls,
        tubes: Sequence[np.ndarray | torch.Tensor],
        times: Sequence[Sequence[float] | np.ndarray],
        geometry: Geometry,
        src_hw: tuple[int, int] | None,
        weights: str,
    ) -> TubeMapper:
        self = cls.__new__(cls)
        self._init(tubes, times, geometry, src_hw, weights)
        return self

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
        windows: list[_Window] = []
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
            windows.append(_Window(m, t))
        assert grid is not None  # internal invariant: at least one window was added
        order = np.argsort([w.start for w in windows], kind="stable")
        self._windows = [windows[i] for i in order]
        self._starts = np.array([w.start for w in self._windows])
        self._ends = np.array([w.end for w in self._windows])
        self._weights = weights
        self.geometry = geometry
        self.src_hw: tuple[int, int] = (hw[0], hw[1])
        self.grid_hw: tuple[int, int] = grid
        H, W = self.src_hw
        self._rows = _axis_sampling(geometry.top, geometry.height, grid[0], H)
        self._cols = _axis_sampling(geometry.left, geometry.width, grid[1], W)

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
        active = np.flatnonzero((self._starts <= t) & (t <= self._ends))
        if active.size == 0:  # before, after or between windows: nearest window, clamped
            dist = np.maximum(self._starts - t, 0.0) + np.maximum(t - self._ends, 0.0)
            return np.asarray(self._windows[int(np.argmin(dist))].at(t), dtype=np.float32)
        if active.size == 1:
            return np.asarray(self._windows[int(active[0])].at(t), dtype=np.float32)
        acc = np.zeros(self.grid_hw, dtype=np.float64)
        total = 0.0
        for k in active:
            win = self._windows[int(k)]
            w = win.weight(t, self._weights)
            acc += w * win.at(t)
            total += w
        return (acc / total).astype(np.float32)

    def frame(self, t: float) -> np.ndarray:
        """The saliency map on the source frame shown at time ``t`` (seconds).

        Args:
            t: Presentation time, e.g. ``VideoInfo.timestamps[i]`` or ``Frame.timestamp``.

        Returns:
            ``(H_src, W_src)`` float32; NaN where the model never saw the pixel.
        """
        m = self.grid_map(t)
        H, W = self.src_hw
        out = np.full((H, W), np.nan, dtype=np.float32)
        r0, r1, yi0, yi1, fy = self._rows
        c0, c1, xi0, xi1, fx = self._cols
        if r1 > r0 and c1 > c0:
            rows = m[yi0] * (1.0 - fy)[:, None] + m[yi1] * fy[:, None]  # (rows, gw)
            out[r0:r1, c0:c1] = rows[:, xi0] * (1.0 - fx) + rows[:, xi1] * fx
        return out

    __call__ = frame


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
    return TubeMapper._stitched(tubes, times, geometry, src_hw, weights)
