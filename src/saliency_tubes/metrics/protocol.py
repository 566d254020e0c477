"""How tubes are scored, shared by the benchmark and ``evaluate VIDEO``.

* :class:`Protocol`: the settings (steps, cells, substrate, tolerances, sanity seed);
* :func:`score_tube`: localisation and deletion / insertion of one tube;
* :class:`Forwards` and :class:`Progress`: how many clip forwards a run does, counted
  before its long part, and what it reports as it goes (the command draws the bar);
* :func:`row_label`, :func:`row_groups`, :func:`json_number`: rows and their values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from ..hooks import preserved_state
from ..methods.inputs import Inputs, class_scores
from ..vocabulary import INPUT_METHODS
from .faithfulness import (
    DEFAULT_MAX_BYTES,
    SUBSTRATES,
    curve_forwards,
    deletion,
    insertion,
    make_substrate,
    perturbation_units,
)
from .localisation import localisation

__all__ = [
    "INCREASE_TOLERANCE",
    "Forwards",
    "Progress",
    "Protocol",
    "Ranking",
    "confidence_change",
    "confidence_forwards",
    "json_number",
    "row_groups",
    "row_label",
    "score_tube",
    "tube_forwards",
    "unit_ranking",
]

_METHOD_NAMES = {
    "cam": "CAM",
    "gradcam": "Grad-CAM",
    "gradcam++": "Grad-CAM++",
    "layercam": "LayerCAM",
    "xgradcam": "XGradCAM",
    "hirescam": "HiResCAM",
    "scorecam": "Score-CAM",
    "eigencam": "EigenCAM",
    "occlusion": "Occlusion",
    "integrated-gradients": "Integrated gradients",
    "rise": "RISE",
    "lime": "LIME",
    "kernelshap": "Kernel SHAP",
}


INCREASE_TOLERANCE = 1e-5
"""How much :math:`O` must exceed :math:`Y` (in probability) to count as an increase in
confidence (:attr:`Protocol.increase_tolerance`'s default): two float32 forwards of the same
clip on the CPU differ by up to 8.3e-7 here (the uniform tube, whose explanation-map clip is
the clip, on 40 held-out clips of tiny-actions; one clip alone against the two batched), and
without a tolerance that noise counted as an increase. A GPU's TF32 convolutions differ by
more: set the protocol's. Being absolute, it also means that a clip whose :math:`Y` is above
1 - 1e-5 cannot count, and that a gain under 1e-5 on an unlikely class does not."""


@dataclass(frozen=True)
class Protocol:
    """How tubes are scored (the benchmark's and ``evaluate VIDEO``'s settings).

    Attributes:
        steps: deletion / insertion steps ``n``.
        cell: ``(frames, px, px)`` size of the voxel-level cells on the clip grid (the
            tube is averaged over each cell and cells are removed whole).
        substrate: ``"blur"``, ``"mean"`` or ``"zeros"``.
        tolerance_frames: pointing-game tolerance in frames.
        tolerance_px: pointing-game tolerance in pixels of the clip grid.
        granularity: sanity-check layers, ``"block"`` or ``"leaf"``.
        sanity_seed: seed of the randomisation.
        align: upsampling grid of the explainers (``"corners"`` or ``"centers"``).
        resamples: bootstrap resamples of the confidence intervals.
        increase_tolerance: how much the explanation-map clip's probability must exceed
            the clip's to count as an increase in confidence (:data:`INCREASE_TOLERANCE`).
    """

    steps: int = 16
    cell: tuple[int, int, int] = (1, 4, 4)
    substrate: str = "blur"
    tolerance_frames: int = 1
    tolerance_px: float = 6.0
    granularity: str = "block"
    sanity_seed: int = 0
    align: str = "corners"
    resamples: int = 2000
    increase_tolerance: float = INCREASE_TOLERANCE

    def check(self) -> None:
        """Validate (one-line errors)."""
        if self.steps < 1:
            raise InputError(f"expected steps >= 1, but got {self.steps}")
        if len(self.cell) != 3 or min(self.cell) < 1:
            raise InputError(f"expected cell as 3 positive ints (t, h, w), but got {self.cell!r}")
        if self.substrate not in SUBSTRATES:
            raise InputError(
                f"expected substrate one of {', '.join(SUBSTRATES)}, but got {self.substrate!r}"
            )
        if self.granularity not in ("block", "leaf"):
            raise InputError(f"expected granularity block or leaf, but got {self.granularity!r}")
        if self.align not in ("corners", "centers"):
            raise InputError(f"expected align corners or centers, but got {self.align!r}")
        if not self.increase_tolerance >= 0:
            raise InputError(
                f"expected increase_tolerance >= 0, but got {self.increase_tolerance!r}; "
                "give 0 or more (in probability: 1e-5 is the default)"
            )

    def localisation(self, tube: Any, mask: Any) -> dict[str, float]:
        """The localisation scores of ``tube`` against ``mask`` on the clip grid, with this
        protocol's pointing tolerances: what ``evaluate`` and the batch's ground-truth
        columns report (see :func:`~saliency_tubes.metrics.localisation`)."""
        return localisation(
            tube,
            mask,
            tolerance_frames=self.tolerance_frames,
            tolerance_px=self.tolerance_px,
        )

    def grid(self, size: Sequence[int]) -> tuple[int, int, int]:
        """The cell grid on a clip of ``size = (T, H, W)``."""
        t, h, w = (max(1, int(n) // c) for n, c in zip(size, self.cell, strict=True))
        return t, h, w


@dataclass(frozen=True)
class Forwards:
    """The clip forwards of a run, by part, in the order they run.

    A batch of B clips counts B (the model's cost grows with the clips, not the calls).

    Attributes:
        parts: ``(label, clip forwards)`` per part, e.g. ``("cam/cubic voxel", 30)``.
        done: how many of them had run when the count was made (the first parts).
    """

    parts: tuple[tuple[str, int], ...]
    done: int = 0

    @property
    def total(self) -> int:
        """Every clip forward of the run."""
        return sum(n for _, n in self.parts)

    def first(self, label: str, clips: int) -> Forwards:
        """These forwards with a part run before them (already done) put first."""
        return Forwards(((label, int(clips)), *self.parts), self.done + int(clips))

    def as_dict(self) -> dict[str, Any]:
        """``{"total": N, "parts": {label: clips}}`` (labels in run order) for a report."""
        parts: dict[str, int] = {}
        for label, n in self.parts:
            parts[label] = parts.get(label, 0) + n
        return {"total": self.total, "parts": parts}


class Progress:
    """What a long evaluation reports as it goes; this one ignores it all (the command's
    draws a bar, or writes one line per part where there is no terminal)."""

    def plan(self, forwards: Forwards) -> None:
        """The run's forwards are known: called once, before its long part."""

    def part(self, label: str, clips: int) -> None:
        """A part begins: e.g. ``"Grad-CAM, cubic: voxel"`` and its clip forwards."""

    def advance(self, clips: int) -> None:
        """``clips`` more clip forwards have run."""


def row_label(key: str) -> str:
    """Display name of a row key (``"cam/cubic"`` -> ``"CAM, cubic"``; an input-space
    method's row has no upsampling: ``"occlusion/cubic"`` -> ``"Occlusion"``)."""
    kind, name = key.split("/", 1)
    if kind == "baseline":
        return f"{name} (baseline)"
    if kind in INPUT_METHODS:
        return _METHOD_NAMES.get(kind, kind)
    return f"{_METHOD_NAMES.get(kind, kind)}, {name}"


def row_groups(
    methods: Sequence[str], modes: Sequence[str], baselines: Sequence[str]
) -> list[tuple[str, list[str]]]:
    """``(kind, row keys)``: one group per method (its modes; the first only for an
    input-space method, whose map is at the clip's grid in every mode) and per baseline."""
    groups = [
        (m, [f"{m}/{i}" for i in (modes[:1] if m in INPUT_METHODS else modes)]) for m in methods
    ]
    return groups + [(f"baseline/{b}", [f"baseline/{b}"]) for b in baselines]


def json_number(x: float, digits: int = 6) -> float | None:
    """``x`` rounded for JSON; None for NaN (undefined)."""
    return None if np.isnan(x) else round(float(x), digits)


Ranking = tuple[torch.Tensor, torch.Tensor]
"""``(membership, order)`` of a tube's units (:func:`~saliency_tubes.metrics.perturbation_units`)."""


def unit_ranking(tube: torch.Tensor, unit: str, protocol: Protocol) -> Ranking:
    """The units of ``tube`` by ``unit`` and their order, as :func:`score_tube` cuts them."""
    return perturbation_units(tube, unit, grid=protocol.grid(tube.shape))  # type: ignore[arg-type]


def tube_forwards(
    tube: torch.Tensor,
    unit: str,
    protocol: Protocol,
    *,
    ends_known: bool = False,
    ranking: Ranking | None = None,
) -> int:
    """Clip forwards of the deletion and the insertion curve of ``tube`` by ``unit``, as
    :func:`score_tube` runs them (the number of units is the tube's own for ``"tube"``)."""
    _, order = ranking if ranking is not None else unit_ranking(tube, unit, protocol)
    return 2 * curve_forwards(order.numel(), protocol.steps, ends_known)


def confidence_forwards(ends_known: bool) -> int:
    """Clip forwards of :func:`confidence_change`: the explanation-map clip, and the clip
    itself when its probability is not known."""
    return 1 if ends_known else 2


def confidence_change(
    model: torch.nn.Module,
    clip: torch.Tensor,
    tube: torch.Tensor,
    target: int,
    substrate: torch.Tensor,
    p_clip: float | None = None,
    inputs: Inputs = None,
    tolerance: float = INCREASE_TOLERANCE,
) -> dict[str, float]:
    r"""Drop and increase in confidence of one tube (Chattopadhay, Sarkar, Howlader and
    Balasubramanian, "Grad-CAM++", WACV 2018), in space-time.

    The tube keeps the clip where it is high: the explanation-map clip is
    :math:`E = X \odot M + B \odot (1 - M)` (:math:`M` the tube in [0, 1], :math:`B` the
    substrate; the paper multiplies the image by the map, :math:`B = 0`). With :math:`Y`
    the target's softmax probability on the clip and :math:`O` on :math:`E`:

    * ``average_drop`` :math:`= \max(0, Y - O) / Y` (averaged over clips and times 100:
      the paper's average drop %, lower is better);
    * ``increase`` :math:`= [O > Y + \epsilon]` (averaged and times 100: its % increase in
      confidence, higher is better); :math:`\epsilon` = ``tolerance``, so that float noise
      between two forwards of the same clip is no increase (the paper has no tolerance).

    Args:
        model: the classifier (unchanged on return).
        clip: ``(1, C, T, H, W)``.
        tube: ``(T, H, W)`` in [0, 1].
        target: the explained class.
        substrate: ``(1, C, T, H, W)``.
        p_clip: :math:`Y` when already known (one forward less).
        inputs: builds the model's input from a clip (:attr:`LoadedModel.inputs`).
        tolerance: :math:`\epsilon`, in probability (:data:`INCREASE_TOLERANCE`).

    Returns:
        ``{"average_drop": ..., "increase": ...}`` for this clip.
    """
    m = tube.to(clip.device, clip.dtype)[None, None]
    shown = substrate + (clip - substrate) * m
    batch = shown if p_clip is not None else torch.cat([shown, clip])
    with preserved_state(model, eval_mode=True), torch.no_grad():
        probs = torch.softmax(class_scores(model, batch, inputs).float(), dim=1)[:, target]
    o = float(probs[0])
    y = float(p_clip) if p_clip is not None else float(probs[1])
    return {
        "average_drop": max(0.0, y - o) / y if y > 0 else 0.0,
        "increase": float(o > y + tolerance),
    }


def score_tube(
    model: torch.nn.Module,
    clip: torch.Tensor,
    tube: torch.Tensor,
    mask: torch.Tensor,
    target: int,
    protocol: Protocol,
    *,
    substrate: torch.Tensor | None = None,
    units: Sequence[str] = ("voxel",),
    ends: tuple[float, float] | None = None,
    batch_size: int | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    progress: Progress | None = None,
    label: str = "",
    rankings: Mapping[str, Ranking] | None = None,
    inputs: Inputs = None,
) -> tuple[dict[str, float], dict[str, dict[str, torch.Tensor]]]:
    """Localisation, deletion / insertion and the confidence change of one tube.

    Args:
        model: the classifier (unchanged on return).
        clip: ``(1, C, T, H, W)``.
        tube: ``(T, H, W)`` in [0, 1].
        mask: ``(T, H, W)`` bool ground truth.
        target: the explained class.
        protocol: the settings.
        substrate: the substrate clip, when already computed.
        units: deletion / insertion units to run (the first one gives ``"deletion"`` and
            ``"insertion"``; others give ``"deletion_<unit>"``).
        ends: the target's probability on the clip and on the substrate, when known
            (each curve then runs two forwards less: :func:`.perturbation_curve`).
        batch_size: perturbed clips per forward (None: as many as fit in ``max_bytes``).
        max_bytes: bound on the perturbed clips held at once.
        progress: told of each forward (``advance``) and, with a ``label``, of each unit's
            curves as a part (``"<label>: <unit>"``).
        label: the tube's name in the parts' labels.
        rankings: the tube's :func:`unit_ranking` by unit, where already computed.
        inputs: builds the model's input from a clip (:attr:`LoadedModel.inputs`).

    Returns:
        ``(scores, curves)``: scores by name, and per curve name its ``fractions`` and ``scores``.
    """
    tell = progress or Progress()
    scores = protocol.localisation(tube, mask)
    base = substrate if substrate is not None else make_substrate(clip, protocol.substrate)
    grid = protocol.grid(tube.shape)
    curves: dict[str, dict[str, torch.Tensor]] = {}
    for u, unit in enumerate(units):
        known = rankings.get(unit) if rankings is not None else None
        ranking = known if known is not None else unit_ranking(tube, unit, protocol)
        if label:
            clips = tube_forwards(tube, unit, protocol, ends_known=bool(ends), ranking=ranking)
            tell.part(f"{label}: {unit}", clips)
        for name, fn in (("deletion", deletion), ("insertion", insertion)):
            curve = fn(
                model, clip, tube, target, unit=unit, steps=protocol.steps, substrate=base,
                grid=grid, ends=ends, batch_size=batch_size, max_bytes=max_bytes,
                on_batch=tell.advance, ranking=ranking, inputs=inputs,
            )  # fmt: skip
            key = name if u == 0 else f"{name}_{unit}"
            scores[key] = curve.auc
            curves[key] = {"fractions": curve.fractions, "scores": curve.scores}
    if label:
        tell.part(f"{label}: confidence", confidence_forwards(bool(ends)))
    p_clip = ends[0] if ends else None
    scores.update(
        confidence_change(
            model, clip, tube, target, base, p_clip, inputs, protocol.increase_tolerance
        )
    )
    tell.advance(confidence_forwards(bool(ends)))
    return scores, curves
