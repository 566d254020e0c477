"""From frames to clips: preprocessing (resize, crop, normalise) and its geometry on the source."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from saliency_tubes.errors import InputError

from .sampling import positive_int

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

    def resized(self, hw: tuple[int, int]) -> Geometry:
        """This geometry on the source frame resized to ``hw = (H', W')``: pixel-edge
        coordinates scale with the frame (``top * H' / H`` ...), so a map resized onto the
        smaller frame lands where it lands on the source, scaled."""
        sy, sx = hw[0] / self.src_hw[0], hw[1] / self.src_hw[1]
        return Geometry(
            top=self.top * sy,
            left=self.left * sx,
            height=self.height * sy,
            width=self.width * sx,
            src_hw=(int(hw[0]), int(hw[1])),
            clip_hw=self.clip_hw,
        )


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
            positive_int(self.resize_to, "resize_to")

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
