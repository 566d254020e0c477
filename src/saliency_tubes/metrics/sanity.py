r"""Sanity check: does the tube depend on what the model learned?

Adebayo, Gilmer, Muelly, Goodfellow, Hardt and Kim, "Sanity Checks for Saliency Maps",
NeurIPS 2018, *cascading randomisation*: the model's layers are re-drawn at random one
after another from the top (the classifier first) down to the input, and after each step
the tube is computed again and compared with the tube of the trained model by the
Spearman rank correlation

.. math::
    \rho(a, b) = \frac{\operatorname{cov}(r(a), r(b))}{\sigma_{r(a)}\, \sigma_{r(b)}}

where :math:`r` gives average ranks (ties share the mean of their ranks). A method that
passes shows a correlation that falls towards 0 as the layers go; a method whose tube
stays put (an edge detector, a baseline that never looks at the model) keeps
:math:`\rho = 1`.

Everything happens on a deep copy of the model: the user's model is never modified.
Randomisation re-draws every parameter of a layer from a Gaussian with the same mean and
standard deviation as its trained values (so activations keep their scale; buffers such as
batch-norm statistics are kept), from a seeded generator.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from ..hooks import preserved_state, resolve_module, trace_calls
from ..methods.inputs import Inputs, model_input

__all__ = [
    "SaliencyFn",
    "SanityResult",
    "cascade_layers",
    "cascading_randomization",
    "explainer_fn",
    "explanation_forwards",
    "gaussian_like",
    "rankdata",
    "sanity_check",
    "sanity_steps",
    "spearman",
]

SaliencyFn = Callable[[nn.Module, torch.Tensor], torch.Tensor]
"""``fn(model, clip) -> tubes``: ``(N, C, T, H, W)`` clips to ``(N, T, H, W)`` tubes, or to
``(N, K, T, H, W)``: K tubes per clip (e.g. one per interpolation mode)."""

Randomize = Callable[[nn.Module, torch.Generator], None]
"""``randomize(module, generator)`` re-draws a module's parameters in place."""


def rankdata(x: torch.Tensor) -> torch.Tensor:
    """Average ranks (1-based) of the flattened ``x``; tied values share their mean rank.

    Equals ``scipy.stats.rankdata(x, method="average")``. Sorted with NumPy's quicksort
    (about 3x faster than ``torch.argsort`` on a CPU for a 16x96x96 tube).
    """
    flat = x.detach().reshape(-1).cpu().numpy()
    order = np.argsort(flat, kind="quicksort")
    ordered = flat[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])  # first of each tie group
    counts = np.diff(np.r_[starts, flat.size])
    mean_rank = starts + (counts + 1) / 2.0  # 1-based mean of positions start..start+count-1
    ranks = np.empty(flat.size, dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, counts)
    return torch.from_numpy(ranks)


def _pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a = a - a.mean()
    b = b - b.mean()
    denom = float(torch.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum()) / denom if denom > 0 else math.nan


def spearman(a: Any, b: Any) -> float:
    r"""Spearman rank correlation of two maps of the same shape (all voxels).

    :math:`\rho` is the Pearson correlation of the average ranks; it is undefined (NaN)
    when either map is constant.
    """
    ta, tb = torch.as_tensor(a), torch.as_tensor(b)
    if ta.shape != tb.shape or ta.numel() < 2:
        raise InputError(
            f"expected two maps of the same shape with at least 2 values, but got "
            f"{tuple(ta.shape)} and {tuple(tb.shape)}"
        )
    return _pearson(rankdata(ta.detach().cpu()), rankdata(tb.detach().cpu()))


def gaussian_like(module: nn.Module, generator: torch.Generator) -> None:
    """Re-draw each parameter of ``module`` (recursively) from N(mean, std) of its values.

    A single-value parameter (or one whose values are all equal) keeps its mean and gets
    the spread of the absolute mean (a bias of 0.5 becomes N(0.5, 0.5)); all-zero
    parameters stay zero.
    """
    with torch.no_grad():
        for p in module.parameters():
            values = p.detach().double()
            mean = float(values.mean())
            std = float(values.std()) if values.numel() > 1 else 0.0
            if std == 0.0:
                std = abs(mean)
            draw = torch.randn(p.shape, generator=generator, dtype=torch.float64) * std + mean
            p.copy_(draw.to(p.dtype))


def cascade_layers(
    model: nn.Module,
    clip: torch.Tensor,
    granularity: Literal["block", "leaf"] = "block",
    *,
    inputs: Inputs = None,
) -> list[str]:
    """The layers of a cascading randomisation, from the top (output side) down.

    One forward pass records the order in which modules finish. ``"leaf"`` lists every
    module that holds parameters of its own (convolutions, batch norms, linear layers);
    ``"block"`` lists the model's direct children that hold parameters (for a ResNet:
    ``fc, layer4, layer3, layer2, layer1, bn1, conv1``), falling back to ``"leaf"`` when the
    model has fewer than two such children. Both are in reverse order of their last call.
    ``inputs`` builds the model's input from the clip (:attr:`LoadedModel.inputs`).
    """
    if granularity not in ("block", "leaf"):
        raise InputError(f"expected granularity 'block' or 'leaf', but got {granularity!r}")
    with preserved_state(model, eval_mode=True):
        calls = trace_calls(model, model_input(clip, inputs))
    finished: dict[str, int] = {}
    for i, call in enumerate(calls):
        finished[call.name] = i
    if granularity == "block":
        blocks = [
            name
            for name, child in model.named_children()
            if any(True for _ in child.parameters()) and name in finished
        ]
        if len(blocks) >= 2:
            return sorted(blocks, key=lambda n: finished[n], reverse=True)
    leaves = [
        name
        for name, module in model.named_modules()
        if name and any(True for _ in module.parameters(recurse=False)) and name in finished
    ]
    if not leaves:
        raise InputError(
            f"expected {type(model).__name__} to have layers with parameters to randomise, "
            "but found none that the forward pass calls"
        )
    return sorted(leaves, key=lambda n: finished[n], reverse=True)


def cascading_randomization(
    model: nn.Module,
    layers: Sequence[str],
    *,
    seed: int = 0,
    randomize: Randomize | None = None,
) -> Iterator[tuple[str, nn.Module]]:
    """Yield ``(layer, model copy)`` with the layers randomised cumulatively, in order.

    The first item is ``("", copy)`` with nothing randomised. The same copy is modified in
    place between items (deep-copy it if you keep it); ``model`` itself is never touched.

    Args:
        model: the trained model.
        layers: names as in ``model.named_modules()``, top first (see :func:`cascade_layers`).
        seed: seed of the generator shared by the whole cascade.
        randomize: how a module is re-drawn; default :func:`gaussian_like`.
    """
    twin = copy.deepcopy(model)
    modules = [resolve_module(twin, name, "layer") for name in layers]
    draw = randomize or gaussian_like
    generator = torch.Generator().manual_seed(int(seed))
    yield "", twin
    for name, module in modules:
        draw(module, generator)
        yield name, twin


@dataclass(frozen=True)
class SanityResult:
    """Outcome of :func:`sanity_check`.

    Attributes:
        layers: the layers randomised, in order (step ``i`` has ``layers[:i]`` random).
        steps: the steps explained, one per row of ``correlations`` (default: every step,
            ``0..len(layers)``).
        correlations: ``(len(steps), N)`` (or ``(len(steps), N, K)`` for K tubes per
            clip) Spearman correlation of each clip's tube after each step with its tube
            from the trained model (row 0 is 1). A tube
            that the randomisation made constant has lost all its ranking and counts as
            0; when the trained tube itself is constant (a uniform map) there is nothing
            to compare and the clip's column is NaN.
    """

    layers: tuple[str, ...]
    correlations: torch.Tensor
    steps: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.steps:  # every step of the cascade
            object.__setattr__(self, "steps", tuple(range(len(self.layers) + 1)))

    @property
    def final(self) -> torch.Tensor:
        """``(N,)`` (or ``(N, K)``) correlation at the last step explained (every listed layer
        randomised, unless ``steps`` stopped earlier)."""
        return self.correlations[-1]


def sanity_check(
    model: nn.Module,
    clip: torch.Tensor,
    saliency_fn: SaliencyFn,
    *,
    layers: Sequence[str] | None = None,
    granularity: Literal["block", "leaf"] = "block",
    seed: int = 0,
    randomize: Randomize | None = None,
    steps: Sequence[int] | None = None,
    reference: torch.Tensor | None = None,
) -> SanityResult:
    """Cascading randomisation (Adebayo et al. 2018) with the Spearman correlation per step.

    Args:
        model: the trained model; it is deep-copied and never modified.
        clip: ``(N, C, T, H, W)`` clips.
        saliency_fn: ``fn(model, clip) -> (N, T, H, W)`` (or ``(N, K, T, H, W)``) tubes,
            called on the copy after each step; each tube is compared with its own
            counterpart from the trained model. It must explain a fixed class per clip (e.g. the trained model's
            prediction), not the randomised model's top class.
        layers: layers to randomise, top first; default :func:`cascade_layers`.
        granularity: ``"block"`` or ``"leaf"`` for the default layers.
        seed: randomisation seed.
        randomize: how a module is re-drawn; default :func:`gaussian_like`.
        steps: the cascade steps at which the tube is explained and compared (step ``i``
            has ``layers[:i]`` random; 0, the trained model, always comes first); default
            every step. The layers are randomised in the same order whichever steps are
            explained, so a step's correlation does not depend on the others asked for
            (``steps=(1, len(layers))``: the top layer random, then all of them).
        reference: ``saliency_fn(model, clip)``, when already computed: step 0 is then
            not explained again (one call of ``saliency_fn`` less).

    Returns:
        The :class:`SanityResult`; its ``steps`` lists the steps of its rows.
    """
    if clip.dim() != 5:
        raise InputError(f"expected clips of shape (N, C, T, H, W), but got {tuple(clip.shape)}")
    names = list(layers) if layers is not None else cascade_layers(model, clip, granularity)
    wanted = sanity_steps(len(names), steps)
    ranked: list[torch.Tensor] | None = None
    shape: tuple[int, ...] = ()
    if reference is not None:
        maps, shape = _as_batch(reference, clip.shape[0])
        ranked = [rankdata(m) for m in maps]
    rows: list[list[float]] = []
    if ranked is not None:  # row 0 as explaining step 0 gives it: 1, or NaN for a flat tube
        rows.append([_pearson(r, r) for r in ranked])
    cascade = cascading_randomization(model, names, seed=seed, randomize=randomize)
    for step, (_, twin) in enumerate(cascade):
        if step not in wanted or (step == 0 and ranked is not None):
            continue
        maps, shape = _as_batch(saliency_fn(twin, clip), clip.shape[0])
        if ranked is None:
            ranked = [rankdata(m) for m in maps]
        row = []
        for ref, m in zip(ranked, maps, strict=True):
            rho = _pearson(ref, rankdata(m))
            if math.isnan(rho) and bool(ref.max() > ref.min()):
                rho = 0.0  # the trained tube had a ranking, the randomised one has none
            row.append(rho)
        rows.append(row)
    correlations = torch.tensor(rows, dtype=torch.float64).reshape(len(rows), *shape)
    return SanityResult(layers=tuple(names), correlations=correlations, steps=tuple(wanted))


def sanity_steps(layers: int, steps: Sequence[int] | None = None) -> list[int]:
    """The cascade steps :func:`sanity_check` explains: 0 then ``steps`` in increasing
    order (default ``0..layers``); one line of error for a step outside ``0..layers``."""
    if steps is None:
        return list(range(layers + 1))
    chosen = sorted({0, *(int(s) for s in steps)})
    if chosen[-1] > layers or chosen[0] < 0:
        raise InputError(
            f"expected sanity steps between 0 and {layers} (the layers randomised), but got "
            f"{list(steps)}"
        )
    return chosen


def explanation_forwards(
    method: str, model: nn.Module, size: tuple[int, int, int], classes: int = 1, **options: Any
) -> int:
    """Clip forwards one explanation by ``method`` costs per clip of ``size`` (T, H, W):
    :meth:`~saliency_tubes.Explainer.forwards` of its explainer built with ``options``
    (1 where it is known only while running: Score-CAM's channels are counted as one here;
    ``evaluate VIDEO`` counts them on the model as its first explanation runs)."""
    from ..methods import METHODS

    if method not in METHODS:
        raise InputError(f"expected method one of {', '.join(METHODS)}, but got {method!r}")
    built = {k: v for k, v in options.items() if k not in ("layer", "classifier")}
    count = METHODS[method](model, **built).forwards(size, classes)
    return 1 if count is None else count


def explainer_fn(
    method: str,
    classes: Sequence[int] | torch.Tensor,
    *,
    interpolations: Sequence[str] | None = None,
    **options: Any,
) -> SaliencyFn:
    """A :data:`SaliencyFn` that explains fixed classes with a fresh explainer on each model.

    Args:
        method: a key of :data:`saliency_tubes.METHODS`.
        classes: one class index per clip (kept fixed while the model is randomised).
        interpolations: several upsampling modes at once: the function then returns
            ``(N, K, T, H, W)``, one tube per mode, from a single explanation (the raw
            map upsampled in each mode and normalised, as the explainer does for one
            target layer).
        **options: passed to the explainer; give ``layer=`` and ``classifier=`` by name so
            that they resolve in every copy of the model.

    Returns:
        ``fn(model, clip) -> (N, T, H, W)`` (or ``(N, K, T, H, W)``) tubes.
    """
    from ..methods import METHODS, normalize_tubes
    from ..splines import upsample

    if method not in METHODS:
        raise InputError(f"expected method one of {', '.join(METHODS)}, but got {method!r}")
    for key in ("layer", "classifier"):
        if isinstance(options.get(key), nn.Module):
            raise InputError(
                f"expected {key} by name for the sanity check (a module of the trained model is "
                f"not part of its randomised copy), but got a {type(options[key]).__name__}"
            )
    wanted = [[int(c)] for c in torch.as_tensor(classes).reshape(-1).tolist()]

    modes = list(interpolations) if interpolations is not None else None
    if modes is not None:
        options["interpolation"] = modes[0]
    align = options.get("align", "corners")

    def fn(model: nn.Module, clip: torch.Tensor) -> torch.Tensor:
        tubes = METHODS[method](model, **options)(clip, classes=wanted)
        if modes is None:
            return tubes.maps[:, 0]
        size = (clip.shape[2], clip.shape[3], clip.shape[4])
        maps = [tubes.maps[:, 0]] + [
            normalize_tubes(upsample(tubes.raw, size, mode=m, align=align))[:, 0] for m in modes[1:]
        ]
        return torch.stack(maps, dim=1)

    return fn


def _as_batch(maps: torch.Tensor, n: int) -> tuple[list[torch.Tensor], tuple[int, ...]]:
    """The tubes as a flat list, and the (N,) or (N, K) layout they came in."""
    t = maps.detach().cpu()
    if t.dim() not in (4, 5) or t.shape[0] != n:
        raise InputError(
            f"expected saliency_fn to return (N={n}, T, H, W) or (N, K, T, H, W) tubes, but got "
            f"{tuple(maps.shape)}"
        )
    layout = tuple(t.shape[: t.dim() - 3])
    return list(t.reshape(-1, *t.shape[-3:])), layout
