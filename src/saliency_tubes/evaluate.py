"""Is the tube right? The ground-truth benchmark, and the metrics on a user's own video.

:func:`run_benchmark` generates a held-out synthetic set (:mod:`saliency_tubes.synthetic`,
seeds disjoint from the embedded model's training and validation data), explains the true
class of every clip with each method and interpolation mode, computes the same tubes for
the baselines, and scores them all with :mod:`saliency_tubes.metrics`: pointing game, mass
and IoU against the target object's mask, deletion and insertion AUC, and the sanity
check's correlation, each a mean over the clips with a 95 % percentile-bootstrap interval.
:func:`write_benchmark` writes the table, the JSON and the plots.

:func:`evaluate_video` does the same for one video, a model and a ground truth (per-frame
boxes or a mask, see :mod:`saliency_tubes.metrics.groundtruth`) and writes ``report.json``
and the plots. Both leave nothing behind when they fail.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import InputError
from .hooks import preserved_state
from .methods import METHODS
from .methods.base import ClassSpec, logits_of
from .metrics import (
    BASELINES,
    SUBSTRATES,
    UNITS,
    baseline_fn,
    cascade_layers,
    deletion,
    explainer_fn,
    insertion,
    localisation,
    make_substrate,
    sanity_check,
)
from .metrics.groundtruth import load_ground_truth
from .metrics.plots import Panel, Series, figure_png
from .metrics.sanity import SaliencyFn
from .metrics.stats import Estimate, bootstrap_mean, paired_difference
from .pipeline import _Outputs, _progress, _versions, _video_facts, output_folder
from .synthetic import make_dataset
from .upsample import MODES
from .video import atomic_write_bytes, atomic_write_json, probe, read_frames, sample_uniform
from .zoo import load_model
from .zoo.registry import LoadedModel

__all__ = [
    "HELD_OUT_SEED",
    "METRICS",
    "BenchmarkConfig",
    "BenchmarkResult",
    "Protocol",
    "evaluate_video",
    "run_benchmark",
    "write_benchmark",
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
    interpolations: tuple[str, ...] = ("cubic", "quadratic", "linear", "nearest")
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
        for what, values, known in (
            ("methods", self.methods, tuple(METHODS)),
            ("interpolations", self.interpolations, tuple(MODES)),
            ("baselines", self.baselines, tuple(BASELINES)),
        ):
            bad = [v for v in values if v not in known]
            if bad:
                raise InputError(
                    f"expected {what} among {', '.join(known)}, but got {', '.join(bad)}"
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


def _num(x: float, digits: int = 6) -> float | None:
    """``x`` rounded for JSON; None for NaN (undefined)."""
    return None if np.isnan(x) else round(float(x), digits)


def _device(model: torch.nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


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
                "mean": [_num(e.mean) for e in est],
                "low": [_num(e.low) for e in est],
                "high": [_num(e.high) for e in est],
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
                    row: {m: [_num(x) for x in v.tolist()] for m, v in metrics.items()}
                    for row, metrics in self.per_clip.items()
                },
            },
            "seconds": round(self.seconds, 1),
            "versions": _versions(),
        }


def run_benchmark(
    config: BenchmarkConfig | None = None,
    *,
    progress: bool = False,
    on_stage: Callable[[str], None] | None = None,
) -> BenchmarkResult:
    """Score every method, interpolation mode and baseline on held-out synthetic clips.

    Each clip's *true* class is explained; its ground truth is the target object's mask
    (the only thing whose motion defines the class). Clips are generated at the model's
    preset size and length, so the mask needs no resizing.

    Args:
        config: what to run (default :class:`BenchmarkConfig`).
        progress: show a progress bar (stderr).
        on_stage: called with a short message at each stage.

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
    clips = torch.stack([prep(v) for v in videos]).to(_device(model))
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
    bar = _progress(n, "evaluate", progress)
    try:
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
            bar.update(len(idx))
    finally:
        bar.close()
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


def _band(values: np.ndarray, resamples: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    est = [bootstrap_mean(values[:, i], resamples=resamples) for i in range(values.shape[1])]
    return (
        np.array([e.mean for e in est]),
        np.array([e.low for e in est]),
        np.array([e.high for e in est]),
    )


def _plot_rows(result: BenchmarkResult) -> list[str]:
    """Rows drawn in the plots: the first interpolation mode of each method, and the baselines."""
    first = result.config.interpolations[0] if result.config.interpolations else None
    return [r for r in result.rows if r.startswith("baseline/") or r.endswith(f"/{first}")]


def benchmark_panels(result: BenchmarkResult) -> list[Panel]:
    """The deletion, insertion and sanity-cascade panels of a benchmark result."""
    rows = _plot_rows(result)
    b = result.config.protocol.resamples
    panels = []
    for name in ("deletion", "insertion"):
        series = []
        for row in rows:
            mean, low, high = _band(result.curves[row][name], b)
            series.append(
                Series(
                    row_label(row), result.fractions, mean, low, high, row.startswith("baseline/")
                )
            )
        panels.append(
            Panel(
                f"{name} ({result.config.protocol.substrate} substrate)",
                "fraction of voxels " + ("deleted" if name == "deletion" else "inserted"),
                "p(true class)",
                series,
                ylim=(0.0, 1.0),
            )
        )
    steps = np.arange(len(result.layers) + 1)
    ticks = ["trained"] + [("+" if i else "") + layer for i, layer in enumerate(result.layers)]
    series = []
    for row in rows:
        mean, low, high = _band(result.sanity[row].T, b)
        series.append(Series(row_label(row), steps, mean, low, high, row.startswith("baseline/")))
    panels.append(
        Panel(
            "sanity check: cascading randomisation",
            "layers randomised (top first, cumulative)",
            "Spearman ρ with the trained tube",
            series,
            xticks=ticks,
            ylim=(-0.5, 1.05),
        )
    )
    return panels


def write_benchmark(result: BenchmarkResult, out_dir: str | Path) -> dict[str, str]:
    """Write ``results.json``, ``results.md`` and the plots; return the files by kind.

    Plots: ``deletion_insertion.png`` (mean curves with 95 % bands), ``sanity.png`` (the
    cascade) and ``evaluation.png`` (all three panels, the README's figure).
    """
    with output_folder(out_dir) as outputs:
        panels = benchmark_panels(result)
        n = int(result.labels.size)
        title = f"{result.config.model}, {n} held-out synthetic clips"
        files = {
            "deletion_insertion": figure_png(panels[:2], title),
            "sanity": figure_png(panels[2:], title, width=6.0),
            "evaluation": figure_png(panels, title),
        }
        written = {}
        for name, png in files.items():
            path = outputs.add(f"{name}.png")
            atomic_write_bytes(path, png)
            written[name] = outputs.rel(path)
        table = result.table()
        md = outputs.add("results.md")
        atomic_write_bytes(md, (table + "\n").encode("utf-8"))
        written["table"] = outputs.rel(md)
        record = result.to_json()
        record["outputs"] = dict(written, json="results.json")
        atomic_write_json(outputs.add("results.json"), record)
        written["json"] = "results.json"
    return written


# --------------------------------------------------------------------------------------
# A user's video
# --------------------------------------------------------------------------------------


def evaluate_video(
    video: str | Path,
    ground_truth: str | Path,
    out_dir: str | Path,
    loaded: LoadedModel,
    *,
    methods: Sequence[str] = ("cam",),
    classes: ClassSpec = "top1",
    interpolation: str = "cubic",
    baselines: Sequence[str] = tuple(BASELINES),
    units: Sequence[str] = UNITS,
    protocol: Protocol | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Score tubes of one video against its ground truth; write ``report.json`` and plots.

    One clip of the model's preset length is sampled uniformly over the video, as
    ``saliency-tubes explain`` does; the ground truth is sampled, resized and cropped the
    same way. The class explained is the first of ``classes`` (default: the top-1
    prediction); every method and baseline explains that class.

    Args:
        video: a video file or a folder of numbered frames.
        ground_truth: boxes (``.json``) or a mask (``.npy``), see
            :mod:`saliency_tubes.metrics.groundtruth`.
        out_dir: output folder (created if missing).
        loaded: the model (:func:`saliency_tubes.zoo.load_model`).
        methods: explainers to score.
        classes: the class to explain: ``"top1"``, an index or a name.
        interpolation: upsampling mode of the explainers.
        baselines: baselines scored alongside.
        units: deletion / insertion units (``"voxel"``, ``"frame"``, ``"tube"``).
        protocol: the settings (default :class:`Protocol`).
        on_stage: called with a short message at each stage.

    Returns:
        The report (also written as ``report.json``). On error nothing is left behind.
    """
    protocol = protocol or Protocol()
    protocol.check()
    say = on_stage or (lambda _m: None)
    started = time.perf_counter()
    bad = [m for m in methods if m not in METHODS] + [b for b in baselines if b not in BASELINES]
    if bad or not (methods or baselines):
        raise InputError(
            f"expected methods among {', '.join(METHODS)} and baselines among "
            f"{', '.join(BASELINES)}, but got {', '.join(bad) or 'none'}"
        )
    if interpolation not in MODES:
        raise InputError(
            f"expected interpolation among {', '.join(MODES)}, but got {interpolation!r}"
        )
    unknown = [u for u in units if u not in UNITS]
    if unknown or not units:
        raise InputError(
            f"expected units among {', '.join(UNITS)}, but got {', '.join(unknown) or 'none'}"
        )
    info = probe(video, min_frames=2)
    truth = load_ground_truth(ground_truth, info.num_frames, info.size)
    preset = loaded.preset
    prep = preset.preprocess()
    indices = sample_uniform(info.num_frames, preset.frames)
    mask = truth.on_clip(indices, prep)
    if not bool(mask.any()):
        raise InputError(
            f"expected the ground truth to cover part of the {preset.frames} sampled frames "
            f"({indices.tolist()}), but it covers none; annotate those frames or more of them"
        )
    with output_folder(out_dir) as outputs:
        say(f"reading {preset.frames} frames of {info.path}")
        model = loaded.model
        clip = prep(read_frames(video, indices, info=info))[None].to(_device(model))
        first = methods[0] if methods else "cam"
        pick = loaded.explainer(first, interpolation=interpolation, align=protocol.align)(
            clip, classes=classes
        )
        target = int(pick.classes[0, 0])
        name = loaded.categories[target] if loaded.categories else str(target)
        layers = cascade_layers(model, clip, protocol.granularity)  # type: ignore[arg-type]
        base = make_substrate(clip, protocol.substrate)
        groups = _groups(methods, [interpolation], baselines)
        rows = [key for _, keys in groups for key in keys]
        say(f"scoring {len(rows)} tubes of class {name!r} (p={float(pick.scores[0, 0]):.3f})")
        tubes: dict[str, Any] = {}
        curves: dict[str, dict[str, dict[str, torch.Tensor]]] = {}
        for kind, (row,) in groups:
            maps, corr = _tubes_and_sanity(
                kind, [interpolation], loaded, clip, [target], layers, protocol
            )
            scores, row_curves = score_tube(
                model, clip, maps[0, 0], mask, target, protocol, substrate=base, units=units
            )
            curves[row] = row_curves
            entry: dict[str, Any] = {k: _num(v) for k, v in scores.items()}
            tubes[row] = {
                **entry,
                "sanity": [_num(float(c)) for c in corr[:, 0, 0]],
                "curves": {
                    k: {"fractions": c["fractions"].tolist(), "scores": c["scores"].tolist()}
                    for k, c in row_curves.items()
                },
            }
        files = _video_plots(outputs, rows, curves, tubes, layers, f"{loaded.name}: {name}")
        report: dict[str, Any] = {
            "tool": "saliency-tubes",
            "command": "evaluate",
            "source": _video_facts(info),
            "ground_truth": {
                "path": str(truth.path),
                "kind": truth.kind,
                "clip_voxels": int(mask.sum()),
                "clip_fraction": round(float(mask.float().mean()), 6),
                "clip_frames_annotated": int(mask.any(dim=(1, 2)).sum()),
            },
            "model": {
                "name": loaded.name,
                "weights": loaded.weights,
                "layer": loaded.layer,
                "classifier": loaded.classifier,
                "preset": asdict(preset),
            },
            "class": {"index": target, "name": name, "score": round(float(pick.scores[0, 0]), 6)},
            "clip": {"frame_indices": indices.tolist(), "grid": list(clip.shape[2:])},
            "protocol": asdict(protocol),
            "interpolation": interpolation,
            "sanity_layers": layers,
            "tubes": tubes,
            "versions": _versions(),
            "outputs": files,
        }
        report["seconds"] = round(time.perf_counter() - started, 3)
        atomic_write_json(outputs.add("report.json"), report)
    return report


def _video_plots(
    outputs: _Outputs,
    rows: list[str],
    curves: dict[str, dict[str, dict[str, torch.Tensor]]],
    tubes: dict[str, Any],
    layers: list[str],
    title: str,
) -> dict[str, str]:
    panels = []
    for name in ("deletion", "insertion"):
        series = [
            Series(
                f"{row_label(r)} ({tubes[r][name]:.3f})",
                curves[r][name]["fractions"].numpy(),
                curves[r][name]["scores"].numpy(),
                dashed=r.startswith("baseline/"),
            )
            for r in rows
        ]
        panels.append(
            Panel(f"{name} (AUC in legend)", "fraction of voxels", "p(class)", series, ylim=(0, 1))
        )
    steps = np.arange(len(layers) + 1)
    sanity = [
        Series(row_label(r), steps, np.array(tubes[r]["sanity"]), dashed=r.startswith("baseline/"))
        for r in rows
    ]
    ticks = ["trained"] + [("+" if i else "") + layer for i, layer in enumerate(layers)]
    sanity_panel = Panel(
        "sanity check",
        "layers randomised (top first)",
        "Spearman ρ",
        sanity,
        xticks=ticks,
        ylim=(-1.05, 1.05),
    )
    files = {}
    for stem, chosen in (("deletion_insertion", panels), ("sanity", [sanity_panel])):
        path = outputs.add(f"{stem}.png")
        atomic_write_bytes(path, figure_png(chosen, title))
        files[stem] = outputs.rel(path)
    files["report"] = "report.json"
    return files
