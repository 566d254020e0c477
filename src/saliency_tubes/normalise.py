"""Min-max normalisation: the one implementation that every tube, weight and score uses.

A pure function on tensors, with no other import from the package, so that the
explainers, the pyramids, the synthetic data and the application layer can all share it.
"""

from __future__ import annotations

import torch

__all__ = ["by_magnitude", "minmax"]


def minmax(
    x: torch.Tensor,
    dim: int | tuple[int, ...] | None = None,
    *,
    low: torch.Tensor | None = None,
    high: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Min-max normalise ``x``: :math:`(x - \mathrm{low}) / (\mathrm{high} - \mathrm{low})`.

    ``low`` and ``high`` default to the minimum and maximum of ``x`` over ``dim`` (kept as
    size-1 dimensions, so that they broadcast back onto ``x``); ``dim=None`` takes them
    over all elements. Where the span :math:`\mathrm{high} - \mathrm{low}` is not positive
    (a constant tube has no salient region) the result is all zeros.

    Examples:
        ``minmax(maps, dim=(2, 3, 4))`` normalises each ``(T, H, W)`` tube of an
        ``(N, K, T, H, W)`` tensor; ``minmax(window, low=lo, high=hi)`` normalises a
        window by bounds taken over the whole video.

    Args:
        x: any floating tensor.
        dim: the dimension(s) the defaults of ``low`` and ``high`` are taken over
            (None: all of them). Unused for a bound that is given.
        low: the value mapped to 0, broadcastable to ``x`` (default: ``x``'s minimum).
        high: the value mapped to 1, broadcastable to ``x`` (default: ``x``'s maximum).

    Returns:
        A tensor of ``x``'s shape (broadcast with ``low`` and ``high``) and dtype; in
        ``[0, 1]`` when ``low`` and ``high`` are the defaults.
    """
    dims = () if dim is None else dim
    if low is None:
        low = x.amin(dim=dims, keepdim=True)
    if high is None:
        high = x.amax(dim=dims, keepdim=True)
    span = high - low
    positive = span > 0
    safe = torch.where(positive, span, torch.ones_like(span))
    return torch.where(positive, (x - low) / safe, torch.zeros_like(x))


def by_magnitude(x: torch.Tensor, bound: torch.Tensor) -> torch.Tensor:
    r"""Divide a signed map by its bound: :math:`x / b` where :math:`b > 0`, else 0.

    With ``bound`` the largest :math:`|x|` the result lies in ``[-1, 1]`` and 0 stays 0 ("no
    preference" for a contrastive tube). ``bound`` broadcasts onto ``x``.
    """
    positive = bound > 0
    safe = torch.where(positive, bound, torch.ones_like(bound))
    return torch.where(positive, x / safe, torch.zeros_like(x))
