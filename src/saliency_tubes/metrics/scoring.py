"""Every tube of one clip scored: what ``saliency-tubes evaluate VIDEO`` runs.

:func:`select_target` picks the class from one forward of the clip and its substrate
(whose probabilities are the ends of every deletion and insertion curve);
:func:`score_rows` explains the class with each method, makes the baselines' tubes,
counts the clip forwards still to run (:class:`~saliency_tubes.metrics.protocol.Forwards`,
told to ``progress.plan`` before the long part), then runs the sanity check and the
curves of every tube.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from ..errors import InputError
from ..hooks import counted_forwards, preserved_state
from ..methods.base import ClassSpec, select_classes
from ..methods.inputs import class_scores
from ..zoo.loading import LoadedModel
from .baselines import baseline_fn
from .faithfulness import DEFAULT_MAX_BYTES, make_substrate
from .protocol import (
    Forwards,
    Progress,
    Protocol,
    Ranking,
    confidence_forwards,
    json_number,
    row_groups,
    row_label,
    score_tube,
    tube_forwards,
    unit_ranking,
)
from .sanity import SaliencyFn, cascade_layers, explainer_fn, sanity_check, sanity_steps

__all__ = [
    "CASCADES",
    "SANITY_NA",
    "ClipScores",
    "Selection",
    "cascade_steps",
    "score_rows",
    "select_target",
]

CASCADES = ("ends", "every")
"""Which steps of the sanity check's cascade are explained: ``"ends"`` the first and the
last (the top block random, every block random: the two the benchmark reports),
``"every"`` each step (the whole curve)."""

SANITY_NA = "n/a: a plain callable has no parameters to randomise"
"""Every tube's ``"sanity"`` entry when the model is a plain callable
(:attr:`~saliency_tubes.zoo.LoadedModel.plain_callable`): no cascade to run, no number."""


@dataclass(frozen=True)
class Selection:
    """The class explained and its probability on the clip and on the substrate.

    Attributes:
        target: the class index.
        probability: its softmax probability on the clip.
        substrate_probability: on the substrate alone (everything deleted).
    """

    target: int
    probability: float
    substrate_probability: float

    @property
    def ends(self) -> tuple[float, float]:
        """``(p_clip, p_substrate)``: the ends of every deletion and insertion curve."""
        return self.probability, self.substrate_probability


def select_target(
    loaded: LoadedModel, clip: torch.Tensor, substrate: torch.Tensor, classes: ClassSpec
) -> Selection:
    """The first class of ``classes`` (``"top1"``, an index, a name) for ``clip``, from one
    forward of the clip and its substrate together (2 clip forwards).

    Args:
        loaded: the model (its categories resolve names).
        clip: ``(1, C, T, H, W)`` on the model's device.
        substrate: the clip's substrate, same shape.
        classes: the class request (see :func:`saliency_tubes.methods.base.select_classes`).
    """
    model = loaded.model
    with preserved_state(model, eval_mode=True), torch.no_grad():
        logits = class_scores(model, torch.cat([clip, substrate]), loaded.inputs).float()
    target = int(select_classes(classes, logits[:1], loaded.categories)[0, 0])
    p = torch.softmax(logits, dim=1)[:, target].double().cpu()
    return Selection(target, float(p[0]), float(p[1]))


def cascade_steps(layers: int, cascade: str) -> list[int]:
    """The sanity steps explained for ``cascade`` (see :data:`CASCADES`), 0 first."""
    if cascade not in CASCADES:
        raise InputError(f"expected cascade one of {', '.join(CASCADES)}, but got {cascade!r}")
    return sanity_steps(layers, None if cascade == "every" else (min(1, layers), layers))


@dataclass
class ClipScores:
    """Every tube of one clip scored (what :func:`score_rows` returns).

    Attributes:
        rows: row keys, ``"method/interpolation"`` then ``"baseline/name"``.
        layers: the sanity check's layers, top first (none for a plain callable).
        tubes: ``row -> {score name: value (None if undefined), "sanity": [rho per
            step explained] (:data:`SANITY_NA` for a plain callable), "curves": {curve: {"fractions": [...], "scores": [...]}}}``.
        curves: ``row -> curve name -> {"fractions", "scores"}`` tensors.
        steps: the cascade steps of each ``"sanity"`` list (0: trained; ``i``: the top
            ``i`` layers random); none for a plain callable.
        forwards: the clip forwards the scoring ran, by part.
    """

    rows: list[str]
    layers: list[str]
    tubes: dict[str, dict[str, Any]]
    curves: dict[str, dict[str, dict[str, torch.Tensor]]]
    steps: list[int] = field(default_factory=list)
    forwards: Forwards = field(default_factory=lambda: Forwards(()))


def _saliency(
    kind: str, loaded: LoadedModel, target: int, interpolation: str, protocol: Protocol
) -> SaliencyFn:
    if kind.startswith("baseline/"):
        return baseline_fn(kind.split("/", 1)[1])
    return explainer_fn(
        kind,
        [target],
        interpolations=[interpolation],
        align=protocol.align,
        **loaded.explainer_options(kind),
    )


def _tube_of(maps: torch.Tensor) -> torch.Tensor:
    """The ``(T, H, W)`` tube of one clip: an explainer's ``(1, 1, T, H, W)``, a baseline's
    ``(1, T, H, W)``."""
    return maps[0, 0] if maps.dim() == 5 else maps[0]


def _counted(fn: SaliencyFn, progress: Progress, counts: bool) -> SaliencyFn:
    """``fn`` telling ``progress`` of the clips it forwards, counted on the model (an
    explainer's; ``counts`` False: a baseline, which runs none). Score-CAM's count on a
    randomised model may differ from the first explanation's, which the plan used, by
    the channels that stop or start varying."""
    if not counts:
        return fn

    def counted(model: torch.nn.Module, clip: torch.Tensor) -> torch.Tensor:
        with counted_forwards(model) as clips:
            maps = fn(model, clip)
        progress.advance(clips[0])
        return maps

    return counted


def _explained(
    groups: list[tuple[str, list[str]]],
    loaded: LoadedModel,
    clip: torch.Tensor,
    target: int,
    interpolation: str,
    protocol: Protocol,
    tell: Progress,
) -> tuple[dict[str, tuple[SaliencyFn, torch.Tensor]], dict[str, int]]:
    """One tube per row of :func:`score_rows`, with its saliency function, and the clip
    forwards of each method's explanation (occlusion and integrated gradients run many),
    counted on the model as it runs: Score-CAM's (one per channel that varies) are known
    only then."""
    model = loaded.model
    per: dict[str, int] = {}
    made: dict[str, tuple[SaliencyFn, torch.Tensor]] = {}
    for kind, (row,) in groups:
        fn = _saliency(kind, loaded, target, interpolation, protocol)
        if row.startswith("baseline/"):
            made[row] = (fn, fn(model, clip))
            continue
        with counted_forwards(model) as counted:
            made[row] = (fn, fn(model, clip))
        per[row] = counted[0]
        tell.advance(per[row])
    return made, per


def _sanity(
    model: torch.nn.Module,
    clip: torch.Tensor,
    row: str,
    fn: SaliencyFn,
    maps: torch.Tensor,
    layers: Any,
    steps: Any,
    seed: int,
    tell: Progress,
    per: dict[str, int],
) -> torch.Tensor | None:
    """The row's sanity correlations, one per cascade step (:func:`sanity_check`); a
    method's explanations are told to ``tell`` as a part (a baseline ignores the model).
    None without steps (a plain callable: nothing to randomise)."""
    if not steps:
        return None
    method = not row.startswith("baseline/")
    if method:
        tell.part(f"{row_label(row)}: sanity", (len(steps) - 1) * per[row])
    check = sanity_check(
        model,
        clip,
        _counted(fn, tell, method),
        layers=layers,
        seed=seed,
        steps=steps,
        reference=maps,
    )
    return check.correlations.reshape(len(steps), -1)[:, 0]


def _cascade(
    loaded: LoadedModel, clip: torch.Tensor, protocol: Protocol, cascade: str, tell: Progress
) -> tuple[list[str], list[int]]:
    """The sanity check's layers (traced: one forward) and the steps explained; none of
    either for a plain callable (no parameters to randomise)."""
    if loaded.plain_callable:
        return [], []
    layers = cascade_layers(loaded.model, clip, protocol.granularity, inputs=loaded.inputs)  # type: ignore[arg-type]
    tell.advance(1)
    return layers, cascade_steps(len(layers), cascade)


def _plan(
    made: dict[str, tuple[SaliencyFn, torch.Tensor]],
    per: dict[str, int],
    steps: int,
    units: Sequence[str],
    protocol: Protocol,
    ends: tuple[float, float] | None,
) -> tuple[Forwards, dict[str, dict[str, Ranking]]]:
    """The forwards of :func:`score_rows` by part (the explanations and the sanity layers'
    trace done), and each row's unit rankings (cut once, for the plan and the curves);
    ``steps`` 0: no sanity check (a plain callable), no trace."""
    trace = 1 if steps else 0
    parts: list[tuple[str, int]] = [("explain", sum(per.values()))]
    parts += [("sanity layers", trace)] if trace else []
    rankings: dict[str, dict[str, Ranking]] = {}
    for row, (_, maps) in made.items():
        tube = _tube_of(maps)
        rankings[row] = {unit: unit_ranking(tube, unit, protocol) for unit in units}
        if steps and not row.startswith("baseline/"):
            parts.append((f"{row_label(row)}: sanity", (steps - 1) * per[row]))
        for unit in units:
            clips = tube_forwards(
                tube, unit, protocol, ends_known=bool(ends), ranking=rankings[row][unit]
            )
            parts.append((f"{row_label(row)}: {unit}", clips))
        parts.append((f"{row_label(row)}: confidence", confidence_forwards(bool(ends))))
    return Forwards(tuple(parts), done=sum(per.values()) + trace), rankings


def _row_entry(
    scores: dict[str, float],
    corr: torch.Tensor | None,
    curves: dict[str, dict[str, torch.Tensor]],
) -> dict[str, Any]:
    """One row of :class:`ClipScores`'s tubes: its scores, sanity correlations (None: not
    applicable, :data:`SANITY_NA`) and curves, as JSON numbers."""
    return {
        **{k: json_number(v) for k, v in scores.items()},
        "sanity": SANITY_NA if corr is None else [json_number(float(c)) for c in corr],
        "curves": {
            k: {"fractions": c["fractions"].tolist(), "scores": c["scores"].tolist()}
            for k, c in curves.items()
        },
    }


def score_rows(
    loaded: LoadedModel,
    clip: torch.Tensor,
    mask: torch.Tensor,
    target: int,
    *,
    methods: Sequence[str],
    interpolation: str,
    baselines: Sequence[str],
    units: Sequence[str],
    protocol: Protocol,
    cascade: Literal["ends", "every"] = "every",
    substrate: torch.Tensor | None = None,
    ends: tuple[float, float] | None = None,
    batch_size: int | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    progress: Progress | None = None,
) -> ClipScores:
    """Score every method (one interpolation mode) and baseline on one clip.

    Runs, in this order: one explanation per method (a clip forward each; occlusion,
    integrated gradients and Score-CAM their many, counted on the model), the trace of
    the sanity layers (one), then, once ``progress.plan`` has been told how many follow,
    each row's sanity check (one forward per cascade step explained after the first, for
    a method; none for a baseline, which ignores the model) and its deletion and
    insertion curves per unit. A plain callable (``loaded.plain_callable``: no
    parameters) has no sanity check: no trace, no steps, every row's ``"sanity"`` is
    :data:`SANITY_NA`.

    Args:
        loaded: the model.
        clip: ``(1, C, T, H, W)`` on the model's device.
        mask: ``(T, H, W)`` bool ground truth on the clip grid.
        target: the class explained by every tube.
        methods: explainers.
        interpolation: their upsampling mode.
        baselines: baselines scored alongside.
        units: deletion / insertion units (the first gives ``deletion`` / ``insertion``).
        protocol: the settings.
        cascade: the sanity steps explained (:data:`CASCADES`).
        substrate: the clip's substrate (default: made from ``protocol.substrate``).
        ends: the target's probability on the clip and on the substrate
            (:meth:`Selection.ends`): every curve then runs two forwards less.
        batch_size: perturbed clips per forward (None: as many as fit in ``max_bytes``).
        max_bytes: bound on the perturbed clips held at once.
        progress: told the plan, each part and each forward.
    """
    tell = progress or Progress()
    model = loaded.model
    base = substrate if substrate is not None else make_substrate(clip, protocol.substrate)
    groups = row_groups(methods, [interpolation], baselines)
    made, per = _explained(groups, loaded, clip, target, interpolation, protocol, tell)
    layers, steps = _cascade(loaded, clip, protocol, cascade, tell)
    plan, rankings = _plan(made, per, len(steps), units, protocol, ends)
    tell.plan(plan)
    tubes: dict[str, dict[str, Any]] = {}
    curves: dict[str, dict[str, dict[str, torch.Tensor]]] = {}
    for row, (fn, maps) in made.items():
        corr = _sanity(model, clip, row, fn, maps, layers, steps, protocol.sanity_seed, tell, per)
        scores, row_curves = score_tube(
            model,
            clip,
            _tube_of(maps),
            mask,
            target,
            protocol,
            substrate=base,
            units=units,
            ends=ends,
            batch_size=batch_size,
            max_bytes=max_bytes,
            progress=tell,
            label=row_label(row),
            rankings=rankings[row],
            inputs=loaded.inputs,
        )
        curves[row] = row_curves
        tubes[row] = _row_entry(scores, corr, row_curves)
    rows = [key for _, keys in groups for key in keys]
    return ClipScores(rows, layers, tubes, curves, steps, plan)
