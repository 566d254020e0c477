"""Heat and focus frames drawn with torch on any device (the GPU with ``--device cuda``).

The same formulas, in the same float32 order of operations, as :func:`~saliency_tubes.render.heat`
and :func:`~saliency_tubes.render.focus` (see them for the maths): on the CPU the pixels
are identical (tested); on a GPU, fused multiply-adds may move a value across a rounding
boundary, by at most one grey level. The ``"blur"`` background has no device version
(:func:`focus_tensor` refuses it; the commands draw it with numpy).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from saliency_tubes.errors import InputError

from .frames import colormap
from .unseen import HATCH_GREY, UNSEEN_DIM, hatch_weights

__all__ = ["DEVICE_BACKGROUNDS", "focus_tensor", "heat_tensor"]

#: Focus backgrounds drawn on a device.
DEVICE_BACKGROUNDS = ("black", "dark", "gray")


def _check(frame: torch.Tensor, saliency: torch.Tensor) -> None:
    if frame.dtype != torch.uint8 or frame.dim() != 3 or frame.shape[2] != 3:
        raise InputError(
            f"expected a (H, W, 3) uint8 frame tensor, but got {frame.dtype} {tuple(frame.shape)}"
        )
    if tuple(saliency.shape) != tuple(frame.shape[:2]) or saliency.device != frame.device:
        raise InputError(
            f"expected a saliency tensor of shape {tuple(frame.shape[:2])} on {frame.device}, "
            f"but got {tuple(saliency.shape)} on {saliency.device}"
        )


@lru_cache(maxsize=32)
def _tables(name: str, alpha: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    frame_part = torch.arange(256, dtype=torch.float32, device=device) * (1.0 - alpha)
    colour_part = torch.from_numpy(colormap(name).astype(np.float32)).to(device) * alpha
    return frame_part, colour_part


@lru_cache(maxsize=16)
def _hatch(h: int, w: int, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.array(hatch_weights(h, w))).to(device)[..., None]


def _luma(f: torch.Tensor) -> torch.Tensor:
    px = f.to(torch.float32)
    return px[..., 0] * 0.299 + px[..., 1] * 0.587 + px[..., 2] * 0.114


def _mark(out: torch.Tensor, base: torch.Tensor, unseen: torch.Tensor) -> torch.Tensor:
    """``out`` with the unseen pixels shown as ``base`` dimmed and hatched."""
    w = _hatch(*unseen.shape, unseen.device)
    marked = (base * UNSEEN_DIM) * (1.0 - w) + HATCH_GREY * w
    return torch.where(unseen[..., None], marked, out)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.round().clamp(0, 255).to(torch.uint8)


def heat_tensor(
    frame: torch.Tensor, saliency: torch.Tensor, colormap: str = "jet", opacity: float = 0.5
) -> torch.Tensor:
    """:func:`~saliency_tubes.render.heat` on ``frame``'s device: ``(H, W, 3)`` uint8."""
    _check(frame, saliency)
    alpha = float(opacity)
    frame_part, colour_part = _tables(colormap, alpha, frame.device)
    s = torch.nan_to_num(saliency.to(torch.float32), nan=0.0, posinf=1.0, neginf=0.0)
    levels = (s.clamp(0.0, 1.0) * 255.0).round().to(torch.long)
    out = frame_part[frame.to(torch.long)] + colour_part[levels]
    unseen = torch.isnan(saliency)
    if bool(unseen.any()):
        grey = _luma(frame)[..., None].expand(-1, -1, 3)
        out = _mark(out, grey, unseen)
    return to_uint8(out)


def focus_tensor(
    frame: torch.Tensor,
    saliency: torch.Tensor,
    floor: float,
    background: str = "black",
) -> torch.Tensor:
    """:func:`~saliency_tubes.render.focus` on ``frame``'s device (backgrounds
    :data:`DEVICE_BACKGROUNDS`): ``(H, W, 3)`` uint8."""
    _check(frame, saliency)
    if background not in DEVICE_BACKGROUNDS:
        raise InputError(
            f"expected a background drawn on a device ({', '.join(DEVICE_BACKGROUNDS)}), but "
            f"got {background!r}; draw it with saliency_tubes.render.focus"
        )
    fl = float(floor)
    s = torch.nan_to_num(saliency.to(torch.float32), nan=0.0, posinf=1.0, neginf=0.0)
    a = (fl + (1.0 - fl) * s.clamp(0.0, 1.0))[..., None]
    f = frame.to(torch.float32)
    out = f * a
    if background == "black":
        bg = torch.zeros_like(f)
    else:
        bg = f * 0.25 if background == "dark" else _luma(frame)[..., None].expand(-1, -1, 3)
        out = out + bg * (1.0 - a)
    unseen = torch.isnan(saliency)
    if bool(unseen.any()):
        out = _mark(out, bg, unseen)
    return to_uint8(out)
