r"""Localisation: does the tube fall on the annotated object, in space and in time?

Every function takes a ``(T, H, W)`` non-negative tube :math:`s` (e.g. ``tubes.maps[n, k]``)
and a ``(T, H, W)`` bool ground truth :math:`G` on the same grid (see
:mod:`saliency_tubes.metrics.groundtruth` to map boxes or a mask from the source video),
and returns a number in [0, 1]. :math:`V` is the set of all voxels.

Ties are never resolved by position: where several voxels (or frames) share the maximum,
a score is the *expected* value over a uniformly random choice among them, so a constant
tube (which min-max normalisation turns into zeros) scores exactly chance.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..errors import InputError
from ._tubes import as_mask, as_tube, maxima, top_mask

__all__ = ["energy_inside", "iou_top", "localisation", "pointing_game", "temporal_hit"]


def _pair(saliency: Any, mask: Any) -> tuple[torch.Tensor, torch.Tensor]:
    s = as_tube(saliency)
    g = as_mask(mask, tuple(s.shape)).to(s.device)
    if not bool(g.any()):
        raise InputError(
            "expected a ground truth covering at least one voxel of the clip, but it is empty; "
            "check that the annotated frames and regions fall inside the sampled clip"
        )
    return s, g


def _dilate(mask: torch.Tensor, frames: int, pixels: float) -> torch.Tensor:
    """Grow ``mask`` by ``frames`` in time and by a disc of radius ``pixels`` in space."""
    if frames < 0 or pixels < 0:
        raise InputError(
            f"expected non-negative tolerances, but got {frames} frames and {pixels} pixels"
        )
    r = int(pixels)
    if frames == 0 and r == 0:
        return mask
    yy, xx = torch.meshgrid(torch.arange(-r, r + 1), torch.arange(-r, r + 1), indexing="ij")
    disc = ((yy**2 + xx**2) <= pixels**2).float()
    kernel = disc.expand(2 * frames + 1, -1, -1).contiguous().to(mask.device)
    out = F.conv3d(mask.float()[None, None], kernel[None, None], padding=(frames, r, r))
    return out[0, 0] > 0.5


def pointing_game(
    saliency: Any, mask: Any, *, tolerance_frames: int = 0, tolerance_px: float = 0.0
) -> float:
    r"""3-D pointing game: is the tube's maximum on the object?

    Zhang, Bargal, Lin, Brandt, Shen and Sclaroff, "Top-down Neural Attention by
    Excitation Backprop", IJCV 2018 (15 px tolerance on images), extended to space-time:
    a hit when the most salient voxel :math:`v^* = \arg\max_v s(v)` lies within
    ``tolerance_frames`` frames and ``tolerance_px`` pixels (Euclidean, in the frame) of
    :math:`G`. With several maxima the score is the fraction of them that hit.

    Returns:
        1.0 (hit), 0.0 (miss), or the hit fraction among tied maxima.
    """
    return _pointing(*_pair(saliency, mask), int(tolerance_frames), float(tolerance_px))


def _pointing(s: torch.Tensor, g: torch.Tensor, frames: int, pixels: float) -> float:
    hit = _dilate(g, frames, pixels)
    return float(hit[maxima(s)].float().mean())


def energy_inside(saliency: Any, mask: Any) -> float:
    r"""Share of the tube's mass inside the ground truth (energy-based pointing game).

    Wang et al., "Score-CAM: Score-Weighted Visual Explanations for Convolutional Neural
    Networks", CVPR Workshops 2020:

    .. math:: \mathrm{mass} = \frac{\sum_{v \in G} s(v)}{\sum_{v \in V} s(v)}

    A tube with zero mass has no preference and scores :math:`|G| / |V|`, like a uniform one.
    """
    return _mass(*_pair(saliency, mask))


def _mass(s: torch.Tensor, g: torch.Tensor) -> float:
    total = float(s.double().sum())
    if total <= 0:
        return float(g.double().mean())
    return float(s.double()[g].sum()) / total


def iou_top(saliency: Any, mask: Any, *, seed: int = 0) -> float:
    r"""IoU of the :math:`|G|` most salient voxels :math:`A` with the ground truth.

    .. math:: \mathrm{IoU} = \frac{|A \cap G|}{|A \cup G|}, \qquad |A| = |G|

    Taking as many voxels as the object has removes the choice of a threshold (the
    top-|G| rule of saliency benchmarks; a threshold-free form of the IoU used for CAM
    boxes by Zhou et al., CVPR 2016). Ties at the cut are broken in a ``seed``-ed random order.
    """
    return _iou(*_pair(saliency, mask), seed)


def _iou(s: torch.Tensor, g: torch.Tensor, seed: int) -> float:
    a = top_mask(s, int(g.sum()), seed=seed)
    inter = float((a & g).sum())
    return inter / float((a | g).sum())


def temporal_hit(saliency: Any, mask: Any) -> float:
    r"""Is the frame of greatest saliency inside the annotated interval?

    The frame saliency is :math:`e_t = \sum_{h,w} s(t, h, w)`; the interval runs from the
    first to the last frame where :math:`G` is non-empty. A hit when
    :math:`\arg\max_t e_t` lies in it (the fraction of tied maxima that do).
    """
    return _temporal(*_pair(saliency, mask))


def _temporal(s: torch.Tensor, g: torch.Tensor) -> float:
    energy = s.double().sum(dim=(1, 2))
    annotated = torch.nonzero(g.any(dim=(1, 2))).reshape(-1)
    first, last = int(annotated.min()), int(annotated.max())
    frames = torch.nonzero(maxima(energy)).reshape(-1)
    return float(((frames >= first) & (frames <= last)).double().mean())


def localisation(
    saliency: Any,
    mask: Any,
    *,
    tolerance_frames: int = 0,
    tolerance_px: float = 0.0,
    seed: int = 0,
) -> dict[str, float]:
    """All localisation scores of one tube: pointing, mass, iou and temporal_hit."""
    s, g = _pair(saliency, mask)
    return {
        "pointing": _pointing(s, g, int(tolerance_frames), float(tolerance_px)),
        "mass": _mass(s, g),
        "iou": _iou(s, g, seed),
        "temporal_hit": _temporal(s, g),
    }
