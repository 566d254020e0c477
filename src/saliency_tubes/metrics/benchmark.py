"""The ground-truth benchmark protocol: is the tube right? (The part that writes no files.)

:func:`run_benchmark` generates a held-out synthetic set (:mod:`saliency_tubes.synthetic`,
seeds disjoint from the embedded model's training and validation data), explains the true
class of every clip with each method and interpolation mode, computes the same tubes for
the baselines, and scores them all with :mod:`saliency_tubes.metrics`: pointing game, mass
and IoU against the target object's mask, deletion and insertion AUC, and the sanity
check's correlation, each a mean over the clips with a 95 % percentile-bootstrap interval
(:class:`BenchmarkResult`). :func:`score_tube` scores one tube; :func:`score_rows` scores
every method and baseline on one clip (what ``saliency-tubes evaluate VIDEO`` runs).
Writing the table, the JSON and the plots is the command's job
(:mod:`saliency_tubes.commands.evaluate`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import InputError, check_choices
from ..hooks import model_device, preserved_state
from ..methods import METHODS
from ..methods.base import logits_of
from ..resources import ACTIVATION_FACTOR, check_fits, clip_bytes
from ..synthetic import make_dataset
from ..upsample import MODES
from ..zoo import get_adapter, load_model
from ..zoo.registry import LoadedModel
from .baselines import BASELINES, baseline_fn
from .faithfulness import SUBSTRATES, deletion, insertion, make_substrate
from .localisation import localisation
from .sanity import SaliencyFn, cascade_layers, explainer_fn, sanity_check
from .stats import Estimate, bootstrap_mean, paired_difference

__all__ = [
    "HELD_OUT_SEED",
    "METRICS",
    "BenchmarkConfig",
    "BenchmarkResult",
    "ClipScores",
    "Protocol",
    "json_number",
    "row_label",
    "run_benchmark",
    "score_rows",
    "score_tube",
]

HELD_OUT_SEED = 10_000
"""Seed of the benchmark's clips. The embedded model was trained on ``make_dataset(seed=1000)``
and validated on ``seed=2000``; ``make_dataset`` derives each clip's seed from its data-set
seed through ``numpy.random.SeedSequence``, so the sets share no clip."""

METRICS: dict[str, str] = {
    "pointing": "pointing game ↑",
    "mass": "mass ↑",
    "iou": "IoU top-|G| ↑",
    "temporal_hit": "temporal hit ↑",
    "deletion": "deletion AUC ↓",
    "insertion": "insertion AUC ↑",
    "sanity_top": "sanity ρ, top block random ↓",
    "sanity_all": "sanity ρ, all random ↓",
}
"""Per-clip scores of the benchmark, with their table headers (arrow: which way is better)."""

COMPARED = ("pointing", "mass", "iou", "deletion", "insertion")
"""The scores compared with a baseline in :meth:`BenchmarkResult.versus_table`."""

_METHOD_NAMES = {"cam": "CAM", "gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++"}


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

    def grid(self, size: Sequence[int]) -> tuple[int, int, int]:
        """The cell grid on a clip of ``size = (T, H, W)``."""
        t, h, w = (max(1, int(n) // c) for n, c in zip(size, self.cell, strict=True))
        return t, h, w


@dataclass(frozen=True)
class BenchmarkConfig:
    """What the benchmark runs.

    Attributes:
        clips: number of held-out clips (balanced over the classes).
        seed: data-set seed (default :data:`HELD_OUT_SEED`).
        model: registered model name (its preset gives the frames and size).
        methods: explainers, among ``"cam"``, ``"gradcam"``, ``"gradcam++"``.
        interpolations: upsampling modes, among cubic, quadratic, linear, nearest.
        baselines: among ``"uniform"``, ``"centre"``, ``"random"``, ``"motion"``.
        chunk: clips explained together (bounds memory).
        device: where the model runs.
        protocol: how tubes are scored.
    """

    clips: int = 32
    seed: int = HELD_OUT_SEED
    model: str = "tiny-actions"
    methods: tuple[str, ...] = ("cam", "gradcam", "gradcam++")
    interpolations: tuple[str, ...] = tuple(reversed(MODES))  # cubic first
    baselines: tuple[str, ...] = tuple(BASELINES)
    chunk: int = 8
    device: str = "cpu"
    protocol: Protocol = field(default_factory=Protocol)

    def check(self) -> None:
        """Validate (one-line errors)."""
        if self.clips < 1 or self.chunk < 1:
            raise InputError(
                f"expected at least 1 clip and chunk >= 1, but got {self.clips} and {self.chunk}"
            )
        check_choices("methods", self.methods, METHODS, allow_empty=True)
        check_choices("interpolations", self.interpolations, MODES, allow_empty=True)
        check_choices("baselines", self.baselines, BASELINES, allow_empty=True)
        preset = get_adapter(self.model).preset
        one = clip_bytes(preset.frames, preset.size)
        check_fits(
            self.clips * (one + one // 4) + min(self.chunk, self.clips) * one * ACTIVATION_FACTOR,
            f"the benchmark's {self.clips} clips of {preset.frames}x{preset.size[0]}x"
            f"{preset.size[1]} (held in memory with their masks)",
            "use fewer --clips",
        )
        if not self.methods and not self.baselines:
            raise InputError("expected at least one method or baseline, but got none")
        if self.methods and not self.interpolations:
            raise InputError("expected at least one interpolation mode, but got none")
        self.protocol.check()

    def rows(self) -> list[str]:
        """Row keys: ``"method/interpolation"`` then ``"baseline/name"``."""
        keys = [f"{m}/{i}" for m in self.methods for i in self.interpolations]
        return keys + [f"baseline/{b}" for b in self.baselines]


def row_label(key: str) -> str:
    """Display name of a row key (``"cam/cubic"`` -> ``"CAM, cubic"``)."""
    kind, name = key.split("/", 1)
    if kind == "baseline":
        return f"{name} (baseline)"
    return f"{_METHOD_NAMES.get(kind, kind)}, {name}"


def _tubes_and_sanity(
    kind: str,
    modes: Sequence[str],
    loaded: LoadedModel,
    batch: torch.Tensor,
    targets: Sequence[int],
    layers: Sequence[str],
    protocol: Protocol,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tubes of one method (all ``modes`` at once) or one baseline, and their sanity check.

    Returns:
        ``(maps, correlations)``: ``(N, K, T, H, W)`` tubes (K = ``len(modes)``, 1 for a
        baseline) and ``(len(layers) + 1, N, K)`` Spearman correlations.
    """
    fn: SaliencyFn
    if kind.startswith("baseline/"):
        fn = baseline_fn(kind.split("/", 1)[1])
    else:
        fn = explainer_fn(
            kind,
            targets,
            interpolations=modes,
            layer=loaded.layer,
            classifier=loaded.classifier,
            align=protocol.align,
        )
    model = loaded.model
    check = sanity_check(model, batch, fn, layers=layers, seed=protocol.sanity_seed)
    maps, corr = fn(model, batch), check.correlations
    if maps.dim() == 4:
        maps, corr = maps[:, None], corr[..., None]
    return maps, corr


def _groups(
    methods: Sequence[str], modes: Sequence[str], baselines: Sequence[str]
) -> list[tuple[str, list[str]]]:
    """``(kind, row keys)``: one group per method (its modes) and per baseline."""
    groups = [(m, [f"{m}/{i}" for i in modes]) for m in methods]
    return groups + [(f"baseline/{b}", [f"baseline/{b}"]) for b in baselines]


def _cell(text: str) -> str:
    """``text`` safe inside a Markdown table cell (``|`` escaped)."""
    return text.replace("|", "\\|")


def json_number(x: float, digits: int = 6) -> float | None:
    """``x`` rounded for JSON; None for NaN (undefined)."""
    return None if np.isnan(x) else round(float(x), digits)


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
) -> tuple[dict[str, float], dict[str, dict[str, torch.Tensor]]]:
    """Localisation and deletion / insertion of one tube.

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

    Returns:
        ``(scores, curves)``: scores by name, and per curve name its ``fractions`` and ``scores``.
    """
    scores = localisation(
        tube,
        mask,
        tolerance_frames=protocol.tolerance_frames,
        tolerance_px=protocol.tolerance_px,
    )
    base = substrate if substrate is not None else make_substrate(clip, protocol.substrate)
    grid = protocol.grid(tube.shape)
    curves: dict[str, dict[str, torch.Tensor]] = {}
    for u, unit in enumerate(units):
        for name, fn in (("deletion", deletion), ("insertion", insertion)):
            curve = fn(
                model,
                clip,
                tube,
                target,
                unit=unit,
                steps=protocol.steps,
                substrate=base,
                grid=grid,
            )
            key = name if u == 0 else f"{name}_{unit}"
            scores[key] = curve.auc
            curves[key] = {"fractions": curve.fractions, "scores": curve.scores}
    return scores, curves


# --------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------


@dataclass
class BenchmarkResult:
    """Everything :func:`run_benchmark` measured.

    Attributes:
        config: the configuration.
        rows: row keys (see :meth:`BenchmarkConfig.rows`).
        labels: ``(N,)`` true classes (the classes explained).
        predicted: ``(N,)`` the model's top-1 classes.
        layers: the sanity check's layers, top first.
        per_clip: ``row -> metric -> (N,)`` scores (see :data:`METRICS`).
        curves: ``row -> "deletion" | "insertion" -> (N, n + 1)`` scores per step.
        fractions: ``(n + 1,)`` fraction of voxels perturbed at each step.
        sanity: ``row -> (len(layers) + 1, N)`` correlations per cascade step.
        seconds: wall-clock time of the run.
    """

    config: BenchmarkConfig
    rows: list[str]
    labels: np.ndarray
    predicted: np.ndarray
    layers: list[str]
    per_clip: dict[str, dict[str, np.ndarray]]
    curves: dict[str, dict[str, np.ndarray]]
    fractions: np.ndarray
    sanity: dict[str, np.ndarray]
    seconds: float = 0.0

    @property
    def accuracy(self) -> float:
        """Top-1 accuracy of the model on the benchmark's clips."""
        return float((self.labels == self.predicted).mean())

    def _estimate(self, values: np.ndarray) -> Estimate:
        return bootstrap_mean(values, resamples=self.config.protocol.resamples)

    def summary(self) -> dict[str, dict[str, Estimate]]:
        """``row -> metric -> mean with 95 % bootstrap interval``."""
        return {
            row: {m: self._estimate(v) for m, v in metrics.items()}
            for row, metrics in self.per_clip.items()
        }

    def versus(self, baseline: str = "motion") -> dict[str, dict[str, Estimate]]:
        """Paired differences (method minus ``baseline``) of every method row, per metric."""
        key = f"baseline/{baseline}"
        if key not in self.per_clip:
            return {}
        ref = self.per_clip[key]
        return {
            row: {
                m: paired_difference(v, ref[m], resamples=self.config.protocol.resamples)
                for m, v in metrics.items()
                if m in ref
            }
            for row, metrics in self.per_clip.items()
            if not row.startswith("baseline/")
        }

    def table(self, metrics: Sequence[str] | None = None) -> str:
        """The summary as a Markdown table: ``mean [low, high]`` per cell."""
        cols = list(metrics or [m for m in METRICS if m != "temporal_hit"])
        summary = self.summary()
        head = "| tube | " + " | ".join(_cell(METRICS[m]) for m in cols) + " |"
        lines = [head, "|---|" + "---:|" * len(cols)]
        for row in self.rows:
            cells = [
                f"{e.mean:.3f} [{e.low:.3f}, {e.high:.3f}]" if e.n else "n/a"
                for e in (summary[row][m] for m in cols)
            ]
            lines.append(f"| {row_label(row)} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def versus_table(self, baseline: str = "motion", metrics: Sequence[str] = COMPARED) -> str:
        """Paired differences with ``baseline`` as a Markdown table (first interpolation mode)."""
        first = self.config.interpolations[0] if self.config.interpolations else ""
        head = f"| method − {baseline} baseline | " + " | ".join(_cell(METRICS[m]) for m in metrics)
        lines = [head + " |", "|---|" + "---:|" * len(metrics)]
        for row, diffs in self.versus(baseline).items():
            if row.endswith(f"/{first}"):
                cells = [
                    f"{diffs[m].mean:+.3f} [{diffs[m].low:+.3f}, {diffs[m].high:+.3f}]"
                    for m in metrics
                ]
                lines.append(f"| {row_label(row)} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready record: configuration, summary, paired differences, curves, per clip."""
        summary = self.summary()

        def curve_stats(values: np.ndarray) -> dict[str, list[float | None]]:
            est = [self._estimate(values[:, i]) for i in range(values.shape[1])]
            return {
                "mean": [json_number(e.mean) for e in est],
                "low": [json_number(e.low) for e in est],
                "high": [json_number(e.high) for e in est],
            }

        return {
            "tool": "saliency-tubes",
            "command": "evaluate",
            "config": asdict(self.config),
            "data": {
                "generator": "saliency_tubes.synthetic.make_dataset",
                "seed": self.config.seed,
                "clips": int(self.labels.size),
                "model_accuracy": self.accuracy,
                "explained": "the true class of each clip",
            },
            "confidence_interval": "95 % percentile bootstrap over clips "
            f"({self.config.protocol.resamples} resamples, seed 0)",
            "sanity_layers": self.layers,
            "summary": {
                row: {m: e.as_dict() for m, e in metrics.items()}
                for row, metrics in summary.items()
            },
            "versus_motion": {
                row: {m: e.as_dict() for m, e in metrics.items()}
                for row, metrics in self.versus("motion").items()
            },
            "curves": {
                "fractions": self.fractions.tolist(),
                **{
                    row: {name: curve_stats(v) for name, v in curves.items()}
                    for row, curves in self.curves.items()
                },
            },
            "sanity": {row: curve_stats(v.T) for row, v in self.sanity.items()},
            "per_clip": {
                "labels": self.labels.tolist(),
                "predicted": self.predicted.tolist(),
                **{
                    row: {m: [json_number(x) for x in v.tolist()] for m, v in metrics.items()}
                    for row, metrics in self.per_clip.items()
                },
            },
            "seconds": round(self.seconds, 1),
        }


def run_benchmark(
    config: BenchmarkConfig | None = None,
    *,
    on_stage: Callable[[str], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> BenchmarkResult:
    """Score every method, interpolation mode and baseline on held-out synthetic clips.

    Each clip's *true* class is explained; its ground truth is the target object's mask
    (the only thing whose motion defines the class). Clips are generated at the model's
    preset size and length, so the mask needs no resizing.

    Args:
        config: what to run (default :class:`BenchmarkConfig`).
        on_stage: called with a short message at each stage.
        on_progress: called with the number of clips scored after each chunk (a progress
            bar's ``update``).

    Returns:
        The :class:`BenchmarkResult`.
    """
    config = config or BenchmarkConfig()
    config.check()
    say = on_stage or (lambda _m: None)
    started = time.perf_counter()
    protocol = config.protocol
    loaded = load_model(config.model, device=config.device)
    model, preset = loaded.model, loaded.preset
    say(f"generating {config.clips} held-out clips (seed {config.seed})")
    videos, masks, labels = make_dataset(
        config.clips, seed=config.seed, frames=preset.frames, size=preset.size
    )
    prep = preset.preprocess()
    clips = torch.stack([prep(v) for v in videos]).to(model_device(model) or torch.device("cpu"))
    with preserved_state(model, eval_mode=True), torch.no_grad():
        predicted = np.concatenate(
            [
                logits_of(model(clips[i : i + config.chunk]), len(clips[i : i + config.chunk]))
                .argmax(1)
                .cpu()
                .numpy()
                for i in range(0, config.clips, config.chunk)
            ]
        )
    layers = cascade_layers(model, clips[:1], protocol.granularity)  # type: ignore[arg-type]
    rows = config.rows()
    n, steps = config.clips, protocol.steps
    per_clip = {r: {m: np.zeros(n) for m in METRICS} for r in rows}
    curves = {r: {k: np.zeros((n, steps + 1)) for k in ("deletion", "insertion")} for r in rows}
    sanity = {r: np.zeros((len(layers) + 1, n)) for r in rows}
    fractions = np.zeros(steps + 1)
    say(f"scoring {len(rows)} tubes per clip; sanity cascade: {', '.join(layers)}")
    advance = on_progress or (lambda _n: None)
    for start in range(0, n, config.chunk):
        idx = list(range(start, min(n, start + config.chunk)))
        batch = clips[idx]
        targets = [int(labels[i]) for i in idx]
        bases = [make_substrate(batch[j : j + 1], protocol.substrate) for j in range(len(idx))]
        for kind, keys in _groups(config.methods, config.interpolations, config.baselines):
            maps, corr = _tubes_and_sanity(
                kind, config.interpolations, loaded, batch, targets, layers, protocol
            )
            for k, row in enumerate(keys):
                sanity[row][:, idx] = corr[:, :, k].numpy()
                for j, i in enumerate(idx):
                    scores, row_curves = score_tube(
                        model,
                        batch[j : j + 1],
                        maps[j, k],
                        torch.from_numpy(masks[i]),
                        targets[j],
                        protocol,
                        substrate=bases[j],
                    )
                    scores["sanity_top"] = float(corr[1, j, k])
                    scores["sanity_all"] = float(corr[-1, j, k])
                    for m in METRICS:
                        per_clip[row][m][i] = scores[m]
                    for name in ("deletion", "insertion"):
                        curves[row][name][i] = row_curves[name]["scores"].numpy()
                    fractions = row_curves["deletion"]["fractions"].numpy()
        advance(len(idx))
    return BenchmarkResult(
        config=config,
        rows=rows,
        labels=labels.astype(np.int64),
        predicted=predicted.astype(np.int64),
        layers=layers,
        per_clip=per_clip,
        curves=curves,
        fractions=fractions,
        sanity=sanity,
        seconds=time.perf_counter() - started,
    )


@dataclass
class ClipScores:
    """Every tube of one clip scored (what :func:`score_rows` returns).

    Attributes:
        rows: row keys, ``"method/interpolation"`` then ``"baseline/name"``.
        layers: the sanity check's layers, top first.
        tubes: ``row -> {score name: value (None if undefined), "sanity": [rho per
            cascade step], "curves": {curve: {"fractions": [...], "scores": [...]}}}``.
        curves: ``row -> curve name -> {"fractions", "scores"}`` tensors.
    """

    rows: list[str]
    layers: list[str]
    tubes: dict[str, dict[str, Any]]
    curves: dict[str, dict[str, dict[str, torch.Tensor]]]


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
) -> ClipScores:
    """Score every method (one interpolation mode) and baseline on one clip.

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
    """
    model = loaded.model
    layers = cascade_layers(model, clip, protocol.granularity)  # type: ignore[arg-type]
    base = make_substrate(clip, protocol.substrate)
    groups = _groups(methods, [interpolation], baselines)
    tubes: dict[str, dict[str, Any]] = {}
    curves: dict[str, dict[str, dict[str, torch.Tensor]]] = {}
    for kind, (row,) in groups:
        maps, corr = _tubes_and_sanity(
            kind, [interpolation], loaded, clip, [target], layers, protocol
        )
        scores, row_curves = score_tube(
            model, clip, maps[0, 0], mask, target, protocol, substrate=base, units=units
        )
        curves[row] = row_curves
        tubes[row] = {
            **{k: json_number(v) for k, v in scores.items()},
            "sanity": [json_number(float(c)) for c in corr[:, 0, 0]],
            "curves": {
                k: {"fractions": c["fractions"].tolist(), "scores": c["scores"].tolist()}
                for k, c in row_curves.items()
            },
        }
    return ClipScores([key for _, keys in groups for key in keys], layers, tubes, curves)
