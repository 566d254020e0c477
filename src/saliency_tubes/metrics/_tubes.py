"""Shared helpers of the metrics: input checks, seeded rankings, connected regions.

Everything here is a pure function on tensors: a tube is a ``(T, H, W)`` non-negative
float map (for example one ``tubes.maps[n, k]``), a ground truth a ``(T, H, W)`` bool mask.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError


def as_tube(saliency: Any, name: str = "saliency") -> torch.Tensor:
    """A ``(T, H, W)`` float32 tensor from a tensor or array, checked finite and non-negative.

    Args:
        saliency: a ``(T, H, W)`` map, e.g. ``tubes.maps[0, 0]``; also accepted with leading
            singleton axes, e.g. ``(1, 1, T, H, W)``.
        name: the word used in error messages.

    Raises:
        InputError: wrong type, dimensions, NaN/inf or negative values.
    """
    x = _volume(saliency, name)
    if x.dim() != 3 or x.numel() == 0:
        raise InputError(
            f"expected {name} of shape (T, H, W), but got {tuple(saliency.shape)}; "
            "pass one tube, e.g. tubes.maps[n, k]"
        )
    x = x.float()
    if not torch.isfinite(x).all():
        raise InputError(f"expected a finite {name}, but it holds NaN or inf values")
    if (x < 0).any():
        raise InputError(
            f"expected a non-negative {name} (a tube normalised to [0, 1], as tubes.maps is), "
            f"but its minimum is {float(x.min()):.4g}; normalise it first"
        )
    return x


def as_mask(mask: Any, shape: tuple[int, ...], name: str = "ground truth") -> torch.Tensor:
    """A ``(T, H, W)`` bool tensor of the given shape (non-zero = inside).

    Raises:
        InputError: wrong type or a shape other than ``shape``.
    """
    m = _volume(mask, f"the {name}")
    if tuple(m.shape) != tuple(shape):
        raise InputError(
            f"expected the {name} mask to have the tube's shape {tuple(shape)}, but got "
            f"{tuple(mask.shape)}; map it onto the clip's (T, H, W) grid first"
        )
    return m != 0


def _volume(value: Any, what: str) -> torch.Tensor:
    """``value`` (a tensor or an array) as a detached tensor, leading singleton axes dropped
    down to three dimensions.

    Raises:
        InputError: ``value`` is neither a tensor nor an array (``what`` names it).
    """
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, torch.Tensor):
        raise InputError(
            f"expected {what} as a (T, H, W) tensor or array, but got {type(value).__name__}"
        )
    x = value.detach()
    while x.dim() > 3 and x.shape[0] == 1:
        x = x[0]
    return x


def rank_order(scores: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Indices of ``scores`` from the largest to the smallest, ties in a seeded random order.

    Breaking ties at random (rather than by position) keeps a flat region, or a uniform
    tube, from being read in raster order, which would favour the top-left of the clip.

    Args:
        scores: ``(M,)`` values.
        seed: seed of the tie-breaking permutation.

    Returns:
        ``(M,)`` int64 indices.
    """
    flat = scores.reshape(-1)
    gen = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(flat.numel(), generator=gen).to(flat.device)
    order = torch.argsort(flat[perm], descending=True, stable=True)
    return perm[order]


def top_mask(saliency: torch.Tensor, count: int, seed: int = 0) -> torch.Tensor:
    """Bool mask of the ``count`` largest voxels of ``saliency`` (ties broken by ``seed``)."""
    chosen = torch.zeros(saliency.numel(), dtype=torch.bool, device=saliency.device)
    chosen[rank_order(saliency, seed)[:count]] = True
    return chosen.reshape(saliency.shape)


def maxima(saliency: torch.Tensor, rtol: float = 1e-6) -> torch.Tensor:
    """Bool mask of the voxels within ``rtol`` (relative to the range) of the maximum.

    A tube with no variation (all values equal, e.g. a constant map that min-max
    normalisation turned into zeros) has every voxel at its maximum.
    """
    high = saliency.max()
    span = float(high - saliency.min())
    return saliency >= high - rtol * span


def connected_components(binary: torch.Tensor, connectivity: int = 26) -> tuple[torch.Tensor, int]:
    """Label the connected regions of a ``(T, H, W)`` bool volume.

    Two voxels are connected when they are neighbours in space-time: sharing a face
    (``connectivity=6``) or a face, an edge or a corner (``connectivity=26``). Labels
    are found by propagating the smallest voxel index over each region (min-pooling
    restricted to the foreground) with pointer jumping, which converges in a number of
    sweeps logarithmic in the region's length for compact regions.

    Args:
        binary: ``(T, H, W)`` bool.
        connectivity: 6 or 26.

    Returns:
        ``(labels, count)``: int64 labels ``0`` (background) and ``1..count``, numbered in
        the order of each region's first voxel in raster order (as ``scipy.ndimage.label``).
    """
    if connectivity not in (6, 26):
        raise InputError(f"expected connectivity 6 or 26, but got {connectivity!r}")
    fg = binary.bool()
    n = fg.numel()
    if not bool(fg.any()):
        return torch.zeros(fg.shape, dtype=torch.int64, device=fg.device), 0
    big = float(n + 1)
    # indices are exact in float32 below 2**24 voxels (half the memory traffic of float64)
    dtype = torch.float32 if n + 1 < 2**24 else torch.float64
    index = torch.arange(n, dtype=dtype, device=fg.device).reshape(fg.shape)
    label = torch.where(fg, index, torch.full_like(index, big))
    while True:
        smallest = _neighbour_min(label, connectivity)
        new = torch.where(fg, torch.minimum(label, smallest), label)
        # pointer jumping: every voxel takes the label its label's voxel holds
        flat = new.reshape(-1)
        pointer = flat.clamp(max=n - 1).long()
        jumped = torch.where(fg.reshape(-1), flat[pointer], flat).reshape(fg.shape)
        new = torch.minimum(new, jumped)
        if torch.equal(new, label):
            break
        label = new
    roots = label[fg]
    unique = torch.unique(roots)  # sorted: the smallest index of each region
    out = torch.zeros(fg.shape, dtype=torch.int64, device=fg.device)
    out[fg] = torch.searchsorted(unique, roots) + 1
    return out, int(unique.numel())


def _neighbour_min(label: torch.Tensor, connectivity: int) -> torch.Tensor:
    x = label[None, None]
    if connectivity == 26:
        return -F.max_pool3d(-x, kernel_size=3, stride=1, padding=1)[0, 0]
    big = float(label.max())
    padded = F.pad(x, (1, 1, 1, 1, 1, 1), value=big)[0, 0]
    t, h, w = label.shape
    views = [
        padded[0:t, 1 : h + 1, 1 : w + 1],
        padded[2 : t + 2, 1 : h + 1, 1 : w + 1],
        padded[1 : t + 1, 0:h, 1 : w + 1],
        padded[1 : t + 1, 2 : h + 2, 1 : w + 1],
        padded[1 : t + 1, 1 : h + 1, 0:w],
        padded[1 : t + 1, 1 : h + 1, 2 : w + 2],
    ]
    return torch.stack(views).amin(0)
