r"""Deletion and insertion over space-time: does the tube rank what the model uses?

Petsiuk, Das and Saenko, "RISE: Randomized Input Sampling for Explanation of Black-box
Models", BMVC 2018, extended from pixels to video. The clip is cut into *units* ranked by
the tube, most salient first:

* ``"voxel"``: the cells of a space-time grid (the clip's own ``(T, H, W)`` grid by
  default, or a coarser ``grid=(t, h, w)``; a cell's score is the tube's mean over it);
* ``"frame"``: whole frames, ranked by the tube's mean over each frame;
* ``"tube"``: the connected salient regions (26-connected components of the voxels where
  the tube is at least ``threshold`` times its maximum), ranked by their saliency mass,
  followed by one last unit holding everything else.

In ``n`` steps the top units are replaced by a *substrate* (deletion) or copied from the
clip into the substrate (insertion): at step :math:`i` the first
:math:`k_i = \mathrm{round}(iM/n)` of the :math:`M` units. The model's softmax probability
of the target class is recorded at every step, :math:`s_0 \dots s_n`. The area under that
curve, over the fraction :math:`x_i` of voxels perturbed, is the trapezoid sum

.. math::
    \mathrm{AUC} = \sum_{i=1}^{n} (x_i - x_{i-1}) \frac{s_{i-1} + s_i}{2}
    = \frac{1}{n}\Big(\sum_{i=0}^{n} s_i - \frac{s_0}{2} - \frac{s_n}{2}\Big)
    \quad \text{when } x_i = i/n.

A faithful tube gives a *low* deletion AUC (the score falls as soon as the top units go)
and a *high* insertion AUC. Substrates (in the model's input space):

* ``"blur"``: the clip blurred by a separable Gaussian over time and space, by default
  :math:`\sigma = (T/8, H/20, W/20)` (RISE inserts into a blurred image; blurring in time
  as well keeps a deleted moving object from still moving);
* ``"mean"``: the clip's per-channel mean (a grey clip);
* ``"zeros"``: zeros in the model's input space (for a normalised input: the dataset mean);
* or any tensor of the clip's shape.

The perturbed clips are built and scored in batches whose size bounds the memory:
``batch_size`` clips, or as many as fit in ``max_bytes`` of perturbed input. Step 0 of
deletion and step ``n`` of insertion score the clip itself, the other end scores the
substrate alone: given those two probabilities (``ends=``, the same for every tube of a
clip), a curve runs ``n - 1`` forwards instead of ``n + 1`` (:func:`curve_forwards`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ClassSelectionError, InputError
from ..hooks import model_device, preserved_state
from ..methods.inputs import Inputs, class_scores
from ._tubes import as_tube, connected_components, rank_order

__all__ = [
    "SUBSTRATES",
    "UNITS",
    "Curve",
    "auc",
    "curve_forwards",
    "deletion",
    "gaussian_blur",
    "grid_cells",
    "insertion",
    "make_substrate",
    "perturbation_curve",
    "perturbation_units",
]

SUBSTRATES = ("blur", "mean", "zeros")
"""Named substrates (what deleted voxels become, what insertion starts from)."""

UNITS = ("voxel", "frame", "tube")
"""Units removed or inserted together."""

Substrate = str | torch.Tensor
Unit = Literal["voxel", "frame", "tube"]

DEFAULT_MAX_BYTES = 256 * 2**20


@dataclass(frozen=True)
class Curve:
    """A deletion or insertion curve.

    Attributes:
        mode, unit: ``"deletion"`` or ``"insertion"``; ``"voxel"``, ``"frame"`` or ``"tube"``.
        substrate: the substrate's name (``"tensor"`` for a custom one).
        target: the class whose probability was recorded.
        fractions: ``(n + 1,)`` float64, the fraction of voxels deleted or inserted at
            each step, from 0 to 1.
        scores: ``(n + 1,)`` float64, the target's softmax probability at each step.
        auc: area under ``scores`` over ``fractions`` (see the module docstring).
    """

    mode: str
    unit: str
    substrate: str
    target: int
    fractions: torch.Tensor
    scores: torch.Tensor
    auc: float


def auc(
    scores: Sequence[float] | torch.Tensor, fractions: Sequence[float] | torch.Tensor | None = None
) -> float:
    r"""Area under a perturbation curve by the trapezoid rule.

    With ``fractions=None`` the steps are uniform, :math:`x_i = i/n`, and the area is
    :math:`(\sum_i s_i - s_0/2 - s_n/2)/n` (Petsiuk et al. 2018).

    Args:
        scores: ``(n + 1,)`` scores :math:`s_0 \dots s_n`, ``n >= 1``.
        fractions: ``(n + 1,)`` increasing positions in [0, 1], or None for ``i / n``.

    Returns:
        The area, a float.
    """
    s = torch.as_tensor(scores, dtype=torch.float64).reshape(-1)
    if s.numel() < 2:
        raise InputError(f"expected at least 2 scores (steps 0..n, n >= 1), but got {s.numel()}")
    if fractions is None:
        n = s.numel() - 1
        return float((s.sum() - s[0] / 2 - s[-1] / 2) / n)
    x = torch.as_tensor(fractions, dtype=torch.float64).reshape(-1)
    if x.shape != s.shape:
        raise InputError(
            f"expected one fraction per score ({s.numel()}), but got {x.numel()} fractions"
        )
    return float(((x[1:] - x[:-1]) * (s[1:] + s[:-1]) / 2).sum())


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(clip: torch.Tensor, sigma: Sequence[float]) -> torch.Tensor:
    r"""Separable Gaussian blur of an ``(N, C, T, H, W)`` clip over (T, H, W).

    :math:`G_\sigma(x) \propto e^{-x^2 / 2\sigma^2}` truncated at :math:`3\sigma`, edges
    replicated; an axis with :math:`\sigma = 0` is left alone.

    Args:
        clip: ``(N, C, T, H, W)`` float tensor.
        sigma: ``(sigma_t, sigma_h, sigma_w)`` in frames and pixels.

    Returns:
        The blurred clip, same shape and dtype.
    """
    if len(sigma) != 3 or any(float(s) < 0 for s in sigma):
        raise InputError(f"expected sigma as 3 non-negative numbers (t, h, w), but got {sigma!r}")
    out = clip.float()
    for axis, s in enumerate(sigma):
        if float(s) <= 0:
            continue
        kernel = _gaussian_kernel(float(s)).to(out.device)
        radius = kernel.numel() // 2
        dim = 2 + axis
        moved = out.movedim(dim, -1)
        shape = moved.shape
        flat = moved.reshape(-1, 1, shape[-1])
        flat = F.pad(flat, (radius, radius), mode="replicate")
        flat = F.conv1d(flat, kernel.view(1, 1, -1))
        out = flat.reshape(shape).movedim(-1, dim)
    return out.to(clip.dtype)


def make_substrate(
    clip: torch.Tensor, substrate: Substrate = "blur", sigma: Sequence[float] | None = None
) -> torch.Tensor:
    """The substrate clip for ``clip`` (see the module docstring).

    Args:
        clip: ``(1, C, T, H, W)``.
        substrate: ``"blur"``, ``"mean"``, ``"zeros"`` or a tensor of the clip's shape.
        sigma: the blur's ``(sigma_t, sigma_h, sigma_w)``; default ``(T/8, H/20, W/20)``.

    Returns:
        ``(1, C, T, H, W)`` tensor.
    """
    if isinstance(substrate, torch.Tensor):
        sub = substrate.to(clip.device, clip.dtype)
        if sub.dim() == 4:
            sub = sub.unsqueeze(0)
        if tuple(sub.shape) != tuple(clip.shape):
            raise InputError(
                f"expected a substrate of the clip's shape {tuple(clip.shape)}, but got "
                f"{tuple(substrate.shape)}"
            )
        return sub
    if substrate == "zeros":
        return torch.zeros_like(clip)
    if substrate == "mean":
        return clip.mean(dim=(2, 3, 4), keepdim=True).expand_as(clip).clone()
    if substrate == "blur":
        t, h, w = clip.shape[2:]
        if sigma is None:
            sigma = (t / 8, h / 20, w / 20)
        return gaussian_blur(clip, sigma)
    raise InputError(
        f"expected substrate one of {', '.join(SUBSTRATES)} or a tensor, but got {substrate!r}"
    )


def grid_cells(size: tuple[int, int, int], grid: tuple[int, int, int]) -> torch.Tensor:
    """``(T, H, W)`` int64 index of the grid cell holding each voxel (``floor(i g / n)``)."""
    axes = [
        torch.div(torch.arange(n) * g, n, rounding_mode="floor")
        for n, g in zip(size, grid, strict=True)
    ]
    gt, gh, gw = grid
    return (axes[0].view(-1, 1, 1) * gh + axes[1].view(1, -1, 1)) * gw + axes[2].view(1, 1, -1)


def _unit_means(saliency: torch.Tensor, membership: torch.Tensor, count: int) -> torch.Tensor:
    idx = membership.reshape(-1)
    total = torch.zeros(count, dtype=torch.float64).index_add_(
        0, idx, saliency.reshape(-1).double()
    )
    size = torch.zeros(count, dtype=torch.float64).index_add_(0, idx, torch.ones_like(total[idx]))
    return total / size.clamp_min(1)


def perturbation_units(
    saliency: Any,
    unit: Unit = "voxel",
    *,
    grid: tuple[int, int, int] | None = None,
    threshold: float = 0.5,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut the clip into units and rank them by the tube, most salient first.

    Args:
        saliency: ``(T, H, W)`` non-negative tube.
        unit: ``"voxel"``, ``"frame"`` or ``"tube"`` (see the module docstring).
        grid: for ``"voxel"``, the ``(t, h, w)`` grid of cells (default: the tube's own);
            each axis at most the tube's.
        threshold: for ``"tube"``, the fraction of the tube's maximum above which voxels
            are salient.
        seed: seed of the tie-breaking order (equal scores are taken in random order).

    Returns:
        ``(membership, order)``: ``(T, H, W)`` int64 unit of each voxel, and ``(M,)`` the
        units in the order they are deleted or inserted.
    """
    return _units(as_tube(saliency), unit, grid, threshold, seed)


def _units(
    s: torch.Tensor, unit: str, grid: tuple[int, int, int] | None, threshold: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    size = (int(s.shape[0]), int(s.shape[1]), int(s.shape[2]))
    if unit == "voxel":
        g = size if grid is None else tuple(int(v) for v in grid)
        if len(g) != 3 or any(not 1 <= gv <= sv for gv, sv in zip(g, size, strict=True)):
            raise InputError(
                f"expected grid (t, h, w) with 1 <= each <= the tube's {size}, but got {grid!r}"
            )
        membership = grid_cells(size, g)  # type: ignore[arg-type]
        count = g[0] * g[1] * g[2]
        return membership, rank_order(_unit_means(s, membership, count), seed)
    if unit == "frame":
        membership = torch.arange(size[0]).view(-1, 1, 1).expand(size).contiguous()
        return membership, rank_order(s.mean(dim=(1, 2)), seed)
    if unit == "tube":
        if not 0.0 < float(threshold) <= 1.0:
            raise InputError(f"expected threshold in (0, 1], but got {threshold!r}")
        high = float(s.max())
        if high <= 0:  # no salient region: one unit, everything at once
            return torch.zeros(size, dtype=torch.int64), torch.zeros(1, dtype=torch.int64)
        labels, count = connected_components(s >= threshold * high, connectivity=26)
        mass = torch.zeros(count + 1, dtype=torch.float64).index_add_(
            0, labels.reshape(-1), s.reshape(-1).double()
        )
        regions = rank_order(mass[1:], seed) + 1
        if bool(labels.eq(0).any()):  # the rest of the clip goes last, as one unit
            regions = torch.cat([regions, torch.zeros(1, dtype=torch.int64)])
        return labels, regions
    raise InputError(f"expected unit one of {', '.join(UNITS)}, but got {unit!r}")


def curve_forwards(units: int, steps: int, ends_known: bool = False) -> int:
    """Clip forwards of one deletion or insertion curve over ``units`` units in ``steps``
    steps: ``n + 1`` scores with ``n = min(steps, units)``, less the two ends when their
    scores are known (``ends=`` of :func:`perturbation_curve`)."""
    n = min(int(steps), int(units))
    return n + 1 - (2 if ends_known else 0)


def _batch_size(clip: torch.Tensor, batch_size: int | None, max_bytes: int) -> int:
    if batch_size is not None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(
                f"expected batch_size to be a positive int or None, but got {batch_size!r}"
            )
        return batch_size
    per_clip = clip.numel() * clip.element_size()
    return max(1, int(max_bytes) // max(1, per_clip))


def _curve_inputs(
    clip: Any, saliency: Any, mode: str, steps: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`perturbation_curve`'s checks: ``(x, s)``, the clip as ``(1, C, T, H, W)``
    float and the tube on its ``(T, H, W)``."""
    if mode not in ("deletion", "insertion"):
        raise InputError(f"expected mode 'deletion' or 'insertion', but got {mode!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InputError(f"expected steps to be a positive int, but got {steps!r}")
    if (
        not isinstance(clip, torch.Tensor)
        or clip.dim() not in (4, 5)
        or (clip.dim() == 5 and clip.shape[0] != 1)
    ):
        shape = tuple(clip.shape) if isinstance(clip, torch.Tensor) else type(clip).__name__
        raise InputError(f"expected one clip of shape (1, C, T, H, W), but got {shape}")
    x = (clip if clip.dim() == 5 else clip.unsqueeze(0)).detach().float()
    s = as_tube(saliency)
    if tuple(s.shape) != tuple(x.shape[2:]):
        raise InputError(
            f"expected a tube of the clip's (T, H, W) = {tuple(x.shape[2:])}, but got {tuple(s.shape)}"
        )
    return x, s


def _step_plan(
    membership: torch.Tensor, order: torch.Tensor, steps: int, tube: torch.Tensor
) -> tuple[torch.Tensor, list[int], torch.Tensor]:
    """The curve's ``n + 1`` steps over the ranked units of ``tube``: ``(voxel_rank,
    counts, fractions)``, each voxel's unit's place in the order ``(T, H, W)``, the units
    removed at each step, and the fraction of voxels they cover."""
    if tuple(membership.shape) != tuple(tube.shape):
        raise InputError(
            f"expected a ranking of the tube's {tuple(tube.shape)} voxels, but got "
            f"{tuple(membership.shape)}"
        )
    m = order.numel()
    n = min(steps, m)
    rank = torch.zeros(int(membership.max()) + 1, dtype=torch.int64)
    rank[order] = torch.arange(m)
    voxel_rank = rank[membership]  # (T, H, W): place of each voxel's unit in the order
    counts = [round(i * m / n) for i in range(n + 1)]
    sizes = torch.bincount(membership.reshape(-1), minlength=rank.numel())[order].double()
    covered = torch.cat([torch.zeros(1, dtype=torch.float64), sizes.cumsum(0)])
    fractions = covered[counts] / float(membership.numel())
    return voxel_rank, counts, fractions


def _known_ends(
    ends: tuple[float, float] | None, mode: str, n: int
) -> tuple[torch.Tensor, list[int]]:
    """The curve's ``n + 1`` values, with its two ends filled when ``ends`` gives them
    (k = 0 and k = m: the clip itself and the substrate alone), and the steps still to run."""
    values = torch.zeros(n + 1, dtype=torch.float64)
    todo = list(range(n + 1))
    if ends is not None and len(ends) != 2:
        raise InputError(f"expected ends as (p_clip, p_substrate), but got {ends!r}")
    if ends is not None:
        p_clip, p_base = (float(e) for e in ends)
        values[0], values[n] = (p_clip, p_base) if mode == "deletion" else (p_base, p_clip)
        todo = todo[1:-1]
    return values, todo


def _probabilities(
    model: nn.Module, batch: torch.Tensor, target: int, inputs: Inputs = None
) -> torch.Tensor:
    """The softmax probability of class ``target`` for each clip of ``batch`` (float64, CPU)."""
    logits = class_scores(model, batch, inputs).float()
    if not 0 <= int(target) < logits.shape[1]:
        raise ClassSelectionError(
            f"expected target in [0, {logits.shape[1]}) (the model's classes), but got {target!r}"
        )
    return torch.softmax(logits, dim=1)[:, int(target)].double().cpu()


def perturbation_curve(
    model: nn.Module,
    clip: torch.Tensor,
    saliency: Any,
    target: int,
    *,
    mode: Literal["deletion", "insertion"] = "deletion",
    unit: Unit = "voxel",
    steps: int = 16,
    substrate: Substrate = "blur",
    sigma: Sequence[float] | None = None,
    grid: tuple[int, int, int] | None = None,
    threshold: float = 0.5,
    seed: int = 0,
    batch_size: int | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    eval_mode: bool = True,
    ends: tuple[float, float] | None = None,
    on_batch: Callable[[int], None] | None = None,
    ranking: tuple[torch.Tensor, torch.Tensor] | None = None,
    inputs: Inputs = None,
) -> Curve:
    """Delete (or insert) the clip's units in the tube's order and record the class score
    at each step: the :class:`Curve`.

    Args:
        model: the classifier; it comes back unchanged (training flags and
            ``requires_grad`` restored, no hooks added).
        clip: ``(1, C, T, H, W)`` or ``(C, T, H, W)``, normalised as the model expects.
        saliency: ``(T, H, W)`` non-negative tube on the clip's grid (``tubes.maps[0, k]``).
        target: the class index whose softmax probability is recorded.
        mode: ``"deletion"`` or ``"insertion"``.
        unit: ``"voxel"``, ``"frame"`` or ``"tube"``.
        steps: number of steps ``n`` (at most the number of units).
        substrate: ``"blur"``, ``"mean"``, ``"zeros"`` or a tensor of the clip's shape.
        sigma, grid: the blur's ``(sigma_t, sigma_h, sigma_w)``; for ``"voxel"``, the cells.
        threshold: for ``"tube"``, the salient fraction of the maximum.
        seed: tie-breaking seed.
        batch_size: perturbed clips per forward pass; None derives it from ``max_bytes``.
        max_bytes: bound on the perturbed clips held at once (inputs only: lower it for a
            large model, whose activations grow with the batch too).
        eval_mode: run the model in eval mode (restored afterwards).
        ends: ``(p_clip, p_substrate)``, the target's probability on the clip and on the
            substrate, when already known: the two steps that perturb nothing and
            everything take them instead of a forward pass each.
        on_batch: called with the number of clips after each forward (progress).
        ranking: ``(membership, order)``, what :func:`perturbation_units` gives for this
            tube, unit, grid, threshold and seed, when already computed (the connected
            regions of ``"tube"`` are then not found again).
        inputs: builds the model's input from a clip (a Hugging Face model's
            ``pixel_values``: :attr:`~saliency_tubes.zoo.LoadedModel.inputs`).
    """
    x, s = _curve_inputs(clip, saliency, mode, steps)
    device = model_device(model) or x.device
    x = x.to(device)
    base = make_substrate(x, substrate, sigma)
    membership, order = ranking if ranking is not None else _units(s, unit, grid, threshold, seed)
    voxel_rank, counts, fractions = _step_plan(membership, order, steps, s)
    voxel_rank = voxel_rank.to(device)
    chunk = _batch_size(x, batch_size, max_bytes)
    values, todo = _known_ends(ends, mode, len(counts) - 1)
    pair = (base, x) if mode == "deletion" else (x, base)  # (where chosen, elsewhere)
    with preserved_state(model, eval_mode=eval_mode), torch.no_grad():
        for start in range(0, len(todo), chunk):
            steps_now = todo[start : start + chunk]
            ks = torch.tensor([counts[i] for i in steps_now], device=device)
            chosen = (voxel_rank.unsqueeze(0) < ks.view(-1, 1, 1, 1)).unsqueeze(1)  # (B,1,T,H,W)
            values[steps_now] = _probabilities(model, torch.where(chosen, *pair), target, inputs)
            del chosen
            if on_batch is not None:
                on_batch(len(steps_now))
    return Curve(
        mode=mode,
        unit=unit,
        substrate=substrate if isinstance(substrate, str) else "tensor",
        target=int(target),
        fractions=fractions,
        scores=values,
        auc=auc(values, fractions),
    )


def deletion(
    model: nn.Module, clip: torch.Tensor, saliency: Any, target: int, **options: Any
) -> Curve:
    """Deletion curve: remove the most salient units first (low AUC = faithful).

    See :func:`perturbation_curve` for the options.
    """
    return perturbation_curve(model, clip, saliency, target, mode="deletion", **options)


def insertion(
    model: nn.Module, clip: torch.Tensor, saliency: Any, target: int, **options: Any
) -> Curve:
    """Insertion curve: restore the most salient units first (high AUC = faithful).

    See :func:`perturbation_curve` for the options.
    """
    return perturbation_curve(model, clip, saliency, target, mode="insertion", **options)
