"""Spline upsampling of class activation maps from the feature grid to the clip.

Saliency Tubes (Stergiou et al., "Saliency Tubes: Visual Explanations for
Spatio-Temporal Convolutions", ICIP 2019) compute a class activation map on the small
``T' x H' x W'`` grid of the last 3D convolution and extend it to the clip's ``T x H x W``
by spline interpolation. This module does that extension.

B-spline interpolation of order ``k`` along one axis of length ``n`` represents the
samples ``f[j]`` as ``s(x) = sum_i c[i] * beta_k(x - i)`` where ``beta_k`` is the centred
B-spline of degree ``k`` and the coefficients ``c`` solve the collocation system
``f[j] = s(j)`` (for ``k >= 2`` this is the "prefilter", Unser 1999, "Splines: a perfect
fit for signal and image processing", IEEE Signal Processing Magazine 16(6)). Both
steps are linear in ``f``, so resampling one axis at output coordinates ``x_o`` is a
dense ``(n_out, n_in)`` matrix ``M = B @ A^-1`` with ``B[o, m] = sum_{i: e(i) = m}
beta_k(x_o - i)`` and ``A[j, m] = sum_{i: e(i) = m} beta_k(j - i)``, where ``e`` folds an
out-of-range coefficient index back into ``[0, n)`` (the boundary extension). The 3D zoom
is separable, so the result is ``M_T``, ``M_H`` and ``M_W`` applied along their axes,
which is what :func:`upsample` does, with matrices built once in float64 and cached.

The values reproduce :func:`scipy.ndimage.zoom` (checked empirically against scipy 1.17):

* ``align="corners"`` is ``zoom(raw, order=k)`` (``mode='constant'``, ``grid_mode=False``):
  output index ``o`` samples input coordinate ``x = o * z`` with
  ``z = (n_in - 1) / (n_out - 1)`` (``z = 1`` when ``n_out == 1``, so a length-1 output
  takes the first sample; a length-1 input is constant along the axis). scipy
  prefilters with the whole-sample symmetric ("mirror", ``... c2 c1 | c0 c1 c2 ...``)
  boundary and, for points inside ``[0, n_in - 1]``, extends the coefficients the same
  way; points outside get ``cval``. One deliberate difference: when rounding makes
  ``o * z`` exceed ``n_in - 1`` by an ulp for the last output sample (e.g. 4 -> 352),
  scipy returns ``cval = 0`` there (scipy issues #4922, #6713); this module clamps the
  coordinate onto the last sample instead, which equals ``zoom(..., mode='mirror')``.
* ``align="centers"`` is ``zoom(raw, order=k, grid_mode=True, mode='nearest')``: half-pixel
  centres, ``x = (o + 0.5) * n_in / n_out - 0.5``, with the map continued by its edge
  values. For ``k >= 2`` scipy realises this by padding 12 edge copies on both sides,
  prefiltering the padded signal with the mirror boundary and evaluating the spline on
  it; this module builds the same matrices. (``mode='reflect'`` was not chosen: scipy's
  reflect prefilter differs from the exact half-sample symmetric spline by up to 2 % of
  the range on axes of length 2-4, so it cannot be matched to the accuracy target.)
* ``nearest`` (order 0) takes sample ``floor(x + 0.5)`` with ``x`` computed in float64
  exactly as scipy does, so rounding ties fall the same way.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from functools import lru_cache
from typing import cast

import numpy as np
import torch

from saliency_tubes.errors import InputError
from saliency_tubes.resources import check_fits
from saliency_tubes.vocabulary import ALIGNS, MODES

__all__ = ["ALIGNS", "MODES", "check_mode", "upsample"]


_EDGE_PAD = 12
"""Edge copies scipy pads on each side before prefiltering with ``mode='nearest'``."""

_SCALAR_CLAMP_MIN = 1 << 15
"""Output cells per map from which clipping loops over maps with scalar bounds."""


def _bspline(order: int, t: np.ndarray) -> np.ndarray:
    """Centred B-spline ``beta_order(t)`` of degree 1, 2 or 3, evaluated elementwise.

    Args:
        order: Spline degree (1, 2 or 3).
        t: Points at which to evaluate.

    Returns:
        ``beta_order(t)``, same shape as ``t``.
    """
    a = np.abs(t)
    if order == 1:
        return np.clip(1.0 - a, 0.0, None)
    if order == 2:
        return np.where(a < 0.5, 0.75 - a * a, np.where(a < 1.5, 0.5 * (1.5 - a) ** 2, 0.0))
    return np.where(
        a < 1.0,
        2.0 / 3.0 - a * a + 0.5 * a**3,
        np.where(a < 2.0, (2.0 - a) ** 3 / 6.0, 0.0),
    )


def _mirror(i: np.ndarray, n: int) -> np.ndarray:
    """Fold integer indices into ``[0, n)`` by whole-sample symmetry (period ``2n - 2``)."""
    if n == 1:
        return np.zeros_like(i)
    period = 2 * n - 2
    i = np.mod(i, period)
    return np.where(i >= n, period - i, i)


def _clamp(i: np.ndarray, n: int) -> np.ndarray:
    """Fold integer indices into ``[0, n)`` by repeating the edge samples."""
    return np.clip(i, 0, n - 1)


def _sampling_matrix(x: np.ndarray, order: int, n: int, fold: str) -> np.ndarray:
    """Matrix ``B[o, m] = sum_{i: e(i) = m} beta_order(x[o] - i)`` over ``n`` coefficients.

    Args:
        x: Output coordinates in the coefficient index space, shape ``(n_out,)``.
        order: Spline degree 0-3; degree 0 picks index ``floor(x + 0.5)``.
        n: Number of coefficients.
        fold: ``"mirror"`` or ``"clamp"``, the extension ``e`` of out-of-range indices.

    Returns:
        Float64 array of shape ``(len(x), n)``.
    """
    fold_fn = _mirror if fold == "mirror" else _clamp
    rows = np.arange(x.shape[0])
    out = np.zeros((x.shape[0], n), dtype=np.float64)
    if order == 0:
        out[rows, fold_fn(np.floor(x + 0.5).astype(np.int64), n)] = 1.0
        return out
    # Odd degrees start at floor(x), even ones at the nearest integer (as scipy does;
    # any start whose window covers the support gives the same weights).
    base = np.floor(x) if order % 2 else np.floor(x + 0.5)
    start = base.astype(np.int64) - order // 2
    idx = start[:, None] + np.arange(order + 1)[None, :]
    weights = _bspline(order, x[:, None] - idx)
    np.add.at(out, (np.broadcast_to(rows[:, None], idx.shape), fold_fn(idx, n)), weights)
    return out


def _apply_prefilter(b: np.ndarray, order: int, n: int) -> np.ndarray:
    """Right-multiply ``b`` by the inverse mirror-boundary collocation matrix ``A^-1``.

    ``A[j, m] = sum_{i: mirror(i) = m} beta_order(j - i)``; ``b @ A^-1`` turns weights on
    spline coefficients into weights on samples (the exact interpolating prefilter).

    Args:
        b: Sampling matrix of shape ``(n_out, n)``.
        order: Spline degree (2 or 3).
        n: Signal length.

    Returns:
        ``b @ A^-1`` of shape ``(n_out, n)``.
    """
    a = _sampling_matrix(np.arange(n, dtype=np.float64), order, n, "mirror")
    # X @ A = B  <=>  A.T @ X.T = B.T
    return np.linalg.solve(a.T, b.T).T


@lru_cache(maxsize=256)
def _axis_matrix(n_in: int, n_out: int, order: int, align: str) -> np.ndarray:
    """The ``(n_out, n_in)`` float64 matrix resampling one axis (read-only, cached).

    Args:
        n_in: Input length.
        n_out: Output length.
        order: Spline degree 0-3.
        align: ``"corners"`` or ``"centers"`` (see the module docstring).

    Returns:
        Matrix ``M`` such that ``out = M @ raw`` along the axis.
    """
    if n_in == 1:
        m = np.ones((n_out, 1), dtype=np.float64)
    elif align == "corners":
        zoom = (n_in - 1) / (n_out - 1) if n_out > 1 else 1.0
        # Same float64 product as scipy; clamp the ulp overshoot at the far end.
        x = np.minimum(np.arange(n_out, dtype=np.float64) * zoom, float(n_in - 1))
        m = _sampling_matrix(x, order, n_in, "mirror")
        if order >= 2:
            m = _apply_prefilter(m, order, n_in)
    else:
        zoom = n_in / n_out
        x = (np.arange(n_out, dtype=np.float64) + 0.5) * zoom - 0.5
        if order <= 1:
            m = _sampling_matrix(x, order, n_in, "clamp")
        else:
            n_pad = n_in + 2 * _EDGE_PAD
            m = _sampling_matrix(x + _EDGE_PAD, order, n_pad, "clamp")
            m = _apply_prefilter(m, order, n_pad)
            # Fold the padded columns back onto the edge samples they copy.
            pad = np.zeros((n_pad, n_in), dtype=np.float64)
            pad[np.arange(n_pad), _clamp(np.arange(n_pad) - _EDGE_PAD, n_in)] = 1.0
            m = m @ pad
    m.setflags(write=False)
    return m


def _compute_dtype(dtype: torch.dtype, device: torch.device) -> torch.dtype:
    """Float64 for float64 input or where float32 matmul may run in TF32, else float32."""
    if dtype == torch.float64:
        return torch.float64
    if device.type == "cuda":
        tf32 = torch.get_float32_matmul_precision() != "highest" or bool(
            getattr(torch.backends.cuda.matmul, "allow_tf32", False)
        )
        if tf32:
            return torch.float64
    return torch.float32


def _plan(shape: tuple[int, int, int], size: tuple[int, int, int]) -> tuple[int, ...]:
    """Order in which to resample the axes that change, cheapest total work first.

    Resampling axis ``a`` costs ``prod(current shape) / n_in[a] * n_out[a] * n_in[a]``
    multiply-adds; all orders of the (at most three) axes are tried.
    """
    axes = [a for a in range(3) if shape[a] != size[a]]
    best: tuple[int, ...] = ()
    best_cost = math.inf
    for perm in itertools.permutations(axes):
        cur = list(shape)
        cost = 0
        for a in perm:
            cost += math.prod(cur) * size[a]
            cur[a] = size[a]
        if cost < best_cost:
            best, best_cost = perm, cost
    return best


def _apply(x: torch.Tensor, m: torch.Tensor, axis: int) -> torch.Tensor:
    """Multiply ``x`` of shape ``(B, D0, D1, D2)`` by ``m`` along ``axis`` (0, 1 or 2)."""
    b, d0, d1, d2 = x.shape
    n_out = m.shape[0]
    if axis == 2:
        return (x.reshape(b * d0 * d1, d2) @ m.T).reshape(b, d0, d1, n_out)
    if axis == 1:
        return torch.matmul(m, x.reshape(b * d0, d1, d2)).reshape(b, d0, n_out, d2)
    return torch.matmul(m, x.reshape(b, d0, d1 * d2)).reshape(b, n_out, d1, d2)


def check_mode(mode: object, align: object, *, mode_name: str = "mode") -> None:
    """Raise :class:`InputError` unless ``mode`` is in :data:`MODES` and ``align`` in
    :data:`ALIGNS` (``mode_name``: how the caller calls the mode, e.g. "interpolation")."""
    if not isinstance(mode, str) or mode not in MODES:
        raise InputError(
            f"expected {mode_name} to be one of {', '.join(repr(k) for k in MODES)}, but got "
            f"{mode!r}; use 'cubic' for the paper's spline"
        )
    if not isinstance(align, str) or align not in ALIGNS:
        raise InputError(
            f"expected align to be one of {', '.join(repr(k) for k in ALIGNS)}, but got "
            f"{align!r}; use 'corners' for scipy.ndimage.zoom's grid"
        )


def _check_inputs(
    raw: object, size: object, mode: object, align: object, clip: object
) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """Validate the arguments of :func:`upsample`; raise :class:`InputError` if bad."""
    if not isinstance(raw, torch.Tensor):
        raise InputError(
            f"expected raw to be a torch.Tensor, but got {type(raw).__name__}; "
            "convert it with torch.as_tensor(raw)"
        )
    if raw.dim() < 3:
        raise InputError(
            f"expected raw with at least 3 dims (..., T', H', W'), but got shape "
            f"{tuple(raw.shape)}; add the missing axes with raw.reshape or raw[None]"
        )
    if not raw.is_floating_point():
        raise InputError(
            f"expected a floating-point raw map, but got dtype {raw.dtype}; "
            "convert it with raw.float()"
        )
    if min(raw.shape[-3:]) < 1:
        raise InputError(
            f"expected non-empty T', H', W' axes, but got shape {tuple(raw.shape)}; "
            "pass a map with at least one cell per axis"
        )
    n_bad = int((~torch.isfinite(raw)).sum().item())
    if n_bad:
        raise InputError(
            f"expected a finite raw map, but got {n_bad} NaN/inf value(s); "
            "fix the map upstream or replace them with torch.nan_to_num(raw)"
        )
    ok = (
        isinstance(size, Sequence)
        and not isinstance(size, str)
        and len(size) == 3
        and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in size
        )
    )
    if not ok:
        raise InputError(
            f"expected size to be 3 positive ints (T, H, W), but got {size!r}; "
            "pass e.g. size=(16, 112, 112)"
        )
    check_mode(mode, align)
    if not isinstance(clip, bool):
        raise InputError(
            f"expected clip to be a bool, but got {clip!r}; pass clip=True or clip=False"
        )
    t, h, w = (int(v) for v in cast("Sequence[int]", size))
    return raw, (t, h, w)


def _clipped(x: torch.Tensor, flat: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
    """``x`` (``(B, T, H, W)``) clipped to each map's own range, the min and max of its row
    of ``flat`` (``(B, T'H'W')``); in place unless ``x`` records gradients or is ``raw``'s
    storage."""
    lo = flat.amin(dim=1).view(-1, 1, 1, 1)
    hi = flat.amax(dim=1).view(-1, 1, 1, 1)
    if x.requires_grad:
        return torch.clamp(x, min=lo, max=hi)
    if x.data_ptr() == raw.data_ptr():
        x = x.clone()
    if math.prod(x.shape[1:]) >= _SCALAR_CLAMP_MIN:
        # A scalar clamp per map is ~5x faster than broadcasting tensor bounds.
        bounds = zip(lo.flatten().tolist(), hi.flatten().tolist(), strict=True)
        for xb, (lo_b, hi_b) in zip(x, bounds, strict=True):
            xb.clamp_(lo_b, hi_b)
    else:
        x.clamp_(lo, hi)
    return x


def upsample(
    raw: torch.Tensor,
    size: tuple[int, int, int],
    mode: str = "cubic",
    align: str = "corners",
    clip: bool = True,
) -> torch.Tensor:
    """Resample maps from ``(..., T', H', W')`` to ``(..., T, H, W)`` by B-spline interpolation.

    Along each axis the output is ``out[o] = sum_j M[o, j] * raw[j]`` with
    ``M = B @ A^-1``: ``B`` evaluates the degree-``k`` B-spline basis at the output
    coordinates and ``A^-1`` is the exact interpolating prefilter (Unser 1999), so the
    spline passes through every input sample. The three axes are applied in turn
    (separability), in the order that needs the fewest multiply-adds. Values equal
    ``scipy.ndimage.zoom(raw, (T/T', H/H', W/W'), order=k)`` for ``align="corners"`` and
    ``zoom(..., grid_mode=True, mode='nearest')`` for ``align="centers"``, to float
    rounding (see the module docstring for the border conventions and the one
    intentional difference).

    Args:
        raw: Maps of shape ``(..., T', H', W')`` (typically ``(N, K, T', H', W')``), any
            floating dtype and device; must be finite.
        size: Output ``(T, H, W)``, positive ints.
        mode: ``"cubic"`` (order 3, the paper's spline; default), ``"quadratic"`` (2),
            ``"linear"`` (1) or ``"nearest"`` (0).
        align: ``"corners"`` (scipy's default grid: ``x = o * (n_in - 1) / (n_out - 1)``)
            or ``"centers"`` (half-pixel centres: ``x = (o + 0.5) * n_in / n_out - 0.5``,
            edge values continued outward).
        clip: Clip spline overshoot to each map's own range, i.e. to the min and max of
            ``raw[idx]`` over ``T', H', W'`` for every leading index ``idx``.

    Returns:
        Tensor of shape ``(..., T, H, W)`` with ``raw``'s dtype and device. float32 and
        float64 inputs are computed in their own precision; float16/bfloat16 in float32
        (float64 on CUDA when TF32 matmuls are enabled).

    Raises:
        InputError: If ``raw`` is not a floating tensor with at least 3 dims, non-empty
            trailing axes and finite values, or ``size``, ``mode``, ``align`` or ``clip``
            is invalid.
    """
    raw, out_size = _check_inputs(raw, size, mode, align, clip)
    order = MODES[mode]
    lead = tuple(raw.shape[:-3])
    need = 2 * math.prod(lead) * math.prod(out_size) * max(raw.element_size(), 4)
    if need > 2**26:  # the result and one intermediate; small ones are not worth a look
        check_fits(
            need,
            f"upsampling {math.prod(lead)} map(s) to {'x'.join(map(str, out_size))}",
            "ask for a smaller size",
        )
    in_size = (int(raw.shape[-3]), int(raw.shape[-2]), int(raw.shape[-1]))
    if in_size == tuple(out_size):
        # Nothing to resample (an input-space method's map is at the clip's size already):
        # every spline interpolates its samples, so the result is the map itself.
        return raw.clone()
    cdtype = _compute_dtype(raw.dtype, raw.device)

    x = raw.reshape(math.prod(lead), *in_size).to(cdtype)
    for axis in _plan(in_size, out_size):
        m = torch.tensor(
            _axis_matrix(in_size[axis], out_size[axis], order, align),
            dtype=cdtype,
            device=raw.device,
        )
        x = _apply(x, m, axis)
    if clip and order >= 2 and x.shape[0] > 0:
        # Orders 0 and 1 are convex combinations of samples: nothing to clip.
        x = _clipped(x, raw.reshape(math.prod(lead), math.prod(in_size)).to(cdtype), raw)
    if x.data_ptr() == raw.data_ptr() or x.dtype != raw.dtype:
        x = x.to(raw.dtype, copy=True)
    return x.reshape(*lead, *out_size)
