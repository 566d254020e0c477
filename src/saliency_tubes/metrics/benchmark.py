"""The ground-truth benchmark protocol: is the tube right? (The part that writes no files.)

:func:`run_benchmark` generates a held-out synthetic set (:mod:`saliency_tubes.synthetic`,
seeds disjoint from the embedded model's training and validation data), explains the true
class of every clip with each method and interpolation mode, computes the same tubes for
the baselines, and scores them all with :mod:`saliency_tubes.metrics`: pointing game, mass
and IoU against the target object's mask, deletion and insertion AUC, and the sanity
check's correlation, each a mean over the clips with a 95 % percentile-bootstrap interval
(:class:`BenchmarkResult`). The settings (:class:`Protocol`) and the scoring of one tube
(:func:`score_tube`) live in :mod:`.protocol`, the scoring of every tube of one clip (what
``saliency-tubes evaluate VIDEO`` runs, :func:`score_rows`) in :mod:`.scoring`; both are
re-exported here. Writing the table, the JSON and the plots is the command's job
(:mod:`saliency_tubes.commands.evaluate`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError, check_choices
from ..methods import METHODS
from ..resources import ACTIVATION_FACTOR, check_fits, clip_bytes
from ..splines import MODES
from ..zoo import get_adapter
from .baselines import BASELINES
from .protocol import (
    Forwards,
    Progress,
    Protocol,
    json_number,
    row_groups,
    row_label,
    score_tube,
)
from .scoring import ClipScores, score_rows
from .stats import Estimate, bootstrap_mean, paired_difference

__all__ = [
    "HELD_OUT_SEED",
    "METRICS",
    "BenchmarkConfig",
    "BenchmarkResult",
    "ClipScores",
    "Forwards",
    "Progress",
    "Protocol",
    "json_number",
    "row_label",
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
    "average_drop": "average drop ↓",
    "increase": "increase in confidence ↑",
    "sanity_top": "sanity ρ, top block random ↓",
    "sanity_all": "sanity ρ, all random ↓",
}
"""Per-clip scores of the benchmark, with their table headers (arrow: which way is better)."""

COMPARED = ("pointing", "mass", "iou", "deletion", "insertion")
"""The scores compared with a baseline in :meth:`BenchmarkResult.versus_table`."""


def _cell(text: str) -> str:
    """``text`` safe inside a Markdown table cell (``|`` escaped)."""
    return text.replace("|", "\\|")


@dataclass(frozen=True)
class BenchmarkConfig:
    """What the benchmark runs.

    Attributes:
        clips: number of held-out clips (balanced over the classes).
        seed: data-set seed (default :data:`HELD_OUT_SEED`).
        model: registered model name (its preset gives the frames and size).
        methods: explainers, names of :data:`saliency_tubes.METHODS` (``"cam"``,
            ``"gradcam"``, ``"gradcam++"`` by default).
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
        """Row keys: ``"method/interpolation"`` (the first mode only for an input-space
        method) then ``"baseline/name"``."""
        groups = row_groups(self.methods, self.interpolations, self.baselines)
        return [key for _, keys in groups for key in keys]


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

    def clip_record(self, i: int) -> dict[str, Any]:
        """Clip ``i``'s part of the result, JSON-ready (floats as Python floats, NaN kept as
        ``None``): its index, true and predicted class, and per row its scores, deletion /
        insertion curves and sanity correlations; :meth:`from_records` rebuilds a result."""

        def numbers(values: np.ndarray) -> list[float | None]:
            return [None if np.isnan(x) else float(x) for x in np.asarray(values, float).ravel()]

        return {
            "clip": int(i),
            "label": int(self.labels[i]),
            "predicted": int(self.predicted[i]),
            "rows": {
                row: {
                    "scores": {m: numbers(v[i : i + 1])[0] for m, v in self.per_clip[row].items()},
                    "deletion": numbers(self.curves[row]["deletion"][i]),
                    "insertion": numbers(self.curves[row]["insertion"][i]),
                    "sanity": numbers(self.sanity[row][:, i]),
                }
                for row in self.rows
            },
        }

    @classmethod
    def from_records(
        cls,
        config: BenchmarkConfig,
        layers: list[str],
        fractions: np.ndarray,
        records: Sequence[dict[str, Any]],
        seconds: float = 0.0,
    ) -> BenchmarkResult:
        """The result over the clips of ``records`` (:meth:`clip_record`'s, in their order);
        ``config.clips`` stays the size of the data set they were drawn from."""

        def array(values: list[float | None]) -> np.ndarray:
            return np.array([np.nan if v is None else v for v in values], dtype=float)

        rows = config.rows()
        return cls(
            config=config,
            rows=rows,
            labels=np.array([r["label"] for r in records], dtype=np.int64),
            predicted=np.array([r["predicted"] for r in records], dtype=np.int64),
            layers=list(layers),
            per_clip={
                row: {m: array([r["rows"][row]["scores"][m] for r in records]) for m in METRICS}
                for row in rows
            },
            curves={
                row: {
                    k: np.stack([array(r["rows"][row][k]) for r in records])
                    for k in ("deletion", "insertion")
                }
                for row in rows
            },
            fractions=np.asarray(fractions, dtype=float),
            sanity={
                row: np.stack([array(r["rows"][row]["sanity"]) for r in records], axis=1)
                for row in rows
            },
            seconds=seconds,
        )

    def subset(self, indices: Sequence[int]) -> BenchmarkResult:
        """The result over clips ``indices`` only (in that order)."""
        records = [self.clip_record(i) for i in indices]
        return BenchmarkResult.from_records(
            self.config, self.layers, self.fractions, records, self.seconds
        )

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
