"""``evaluate``: score tubes against ground truth, on the benchmark or on a user's video.

* :func:`benchmark`: the synthetic benchmark (:func:`saliency_tubes.metrics.benchmark_run.run_benchmark`,
  with a progress bar) and :func:`write_benchmark`: its table, JSON and plots;
* :func:`evaluate_video`: one video, a model and its ground truth (per-frame boxes or a
  mask, see :mod:`saliency_tubes.metrics.groundtruth`): ``report.json`` and the plots.

Both count the clip forwards they will run before the long part and say so in one line,
with a time estimated from the forwards already timed (:class:`Meter`); then a bar with
an ETA names the method and unit under way (on a terminal; elsewhere one line per part).
Both leave nothing behind when they fail.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import render
from ..errors import InputError
from ..hooks import model_device
from ..metrics.benchmark import BenchmarkConfig, BenchmarkResult, ClipScores, row_label, score_rows
from ..metrics.benchmark_run import run_benchmark
from ..metrics.faithfulness import DEFAULT_MAX_BYTES, make_substrate
from ..metrics.groundtruth import load_ground_truth
from ..metrics.protocol import Forwards, Progress, json_number
from ..metrics.scoring import select_target
from ..metrics.stats import bootstrap_mean
from ..numbers import probability
from ..render import Panel, Series
from ..resources import ACTIVATION_FACTOR, available_memory
from ..video import VideoInfo, check_min_frames, probe, read_frames, sample_uniform
from ..zoo import LoadedModel
from .options import EvaluateOptions
from .pipeline import manifest
from .pipeline.outputs import OutputFolder, Run, output_folder, produce, progress
from .pipeline.result import CommandResult

__all__ = [
    "DEFINITIONS",
    "Meter",
    "benchmark",
    "benchmark_panels",
    "evaluate_video",
    "write_benchmark",
]


DEFINITIONS = {
    "forwards": "clip forwards of the run (a batch of B clips counts B): total, by part in "
    "run order (selecting the class scores the clip and its substrate; one explanation per "
    "method; one trace of the sanity layers; per method the sanity steps after the trained "
    "one; per tube and unit its deletion and insertion curves, n - 1 perturbed clips each "
    "since both ends are scored once per clip), and run: those run (the explanations and sanity "
    "steps counted on the model as they ran, the curves as batched); the same as total but for "
    "Score-CAM's sanity steps, planned at its first explanation's count of varying channels, "
    "which a randomised layer may change by a few",
    "sanity_steps": "the cascade steps of every tube's sanity list: 0 is the trained model, "
    "step i has the top i of sanity_layers randomised (cumulatively, top first); none for a "
    "plain callable, whose tubes' sanity entry says n/a (no parameters to randomise)",
    "seconds_per_forward_estimate": "seconds per clip forward that the time estimate used: "
    "the fastest of the forward batches timed before the long part",
}
"""What the ``evaluation`` entries of ``report.json`` mean, as stored in it."""


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class Meter(Progress):
    """The forwards of one run: timed until the plan is known, then one estimate line, then
    a bar with an ETA (on a terminal) or one line per part (elsewhere).

    Args:
        say: where the estimate line and the part lines go (None: nowhere).
        show: draw the bar (stderr, only when it is a terminal; see :func:`progress`).
        first: parts the command ran before the scoring counted its own (label, clips).
    """

    def __init__(
        self, say: Callable[[str], None] | None, show: bool, first: tuple[str, int] | None = None
    ) -> None:
        self.say = say or (lambda _m: None)
        self.show = show
        self.first = first
        self.bar: Any = None
        self.forwards: Forwards | None = None
        self.done = 0
        self.timed: list[float] = []  # seconds per clip forward, per batch before the plan
        self.mark = time.perf_counter()

    def start(self) -> None:
        """Start the clock of the next timed forward."""
        self.mark = time.perf_counter()

    def advance(self, clips: int) -> None:
        now = time.perf_counter()
        if self.bar is None and clips:
            self.timed.append((now - self.mark) / clips)
        self.mark = now
        self.done += clips
        if self.bar is not None:
            self.bar.update(clips)

    @property
    def per_forward(self) -> float:
        """Seconds per clip forward: the fastest of the forward batches timed before the
        plan (the first batch carries the warm-up; an explanation costs a forward and more)."""
        return min(self.timed) if self.timed else float("nan")

    def plan(self, forwards: Forwards) -> None:
        if self.first is not None:
            forwards = forwards.first(*self.first)
        self.forwards = forwards
        left = forwards.total - forwards.done
        per = self.per_forward
        self.say(
            f"{forwards.total} clip forwards in all ({forwards.done} done), {left} to go: "
            f"about {_duration(left * per)} for them (an estimate: {per:.3f} s per clip forward, the "
            f"fastest of this run's first {len(self.timed)} forward batches)"
        )
        self.bar = progress(left, "evaluate", self.show, unit="forward")

    def part(self, label: str, clips: int) -> None:
        if self.bar is not None and not self.bar.disable:
            self.bar.set_description_str(label)
        elif clips:
            self.say(f"{label}: {clips} clip forwards")

    def close(self) -> None:
        """Close the bar."""
        if self.bar is not None:
            self.bar.close()


def benchmark(
    config: BenchmarkConfig | None = None,
    *,
    show: bool = False,
    on_stage: Callable[[str], None] | None = None,
    skip: Collection[int] = (),
    on_chunk: Callable[[BenchmarkResult, list[int]], None] | None = None,
) -> BenchmarkResult:
    """:func:`~saliency_tubes.metrics.benchmark_run.run_benchmark` with the estimate line and a
    progress bar (per chunk of clips and method); ``skip`` and ``on_chunk`` are passed on."""
    config = config or BenchmarkConfig()
    meter = Meter(on_stage, show)
    try:
        return run_benchmark(
            config, on_stage=on_stage, progress=meter, skip=skip, on_chunk=on_chunk
        )
    finally:
        meter.close()


def _max_bytes(clip: torch.Tensor) -> int:
    """Perturbed input held at once: at most 256 MiB, and little enough that the batch's
    activations (:data:`~saliency_tubes.resources.ACTIVATION_FACTOR` times its input) take
    no more than half the memory available."""
    one = clip.numel() * clip.element_size()
    free = available_memory()
    if free is None:
        return DEFAULT_MAX_BYTES
    return max(one, min(DEFAULT_MAX_BYTES, free // (2 * ACTIVATION_FACTOR)))


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
        figures = {
            "deletion_insertion": render.figure_png(panels[:2], title),
            "sanity": render.figure_png(panels[2:], title, width=6.0),
            "evaluation": render.figure_png(panels, title),
        }
        written = {name: outputs.write_bytes(f"{name}.png", png) for name, png in figures.items()}
        written["table"] = outputs.write_bytes(
            "results.md", (result.table() + "\n").encode("utf-8")
        )
        record = result.to_json()
        record["versions"] = manifest.versions()
        record["outputs"] = dict(written, json="results.json")
        written["json"] = outputs.write_json("results.json", record)
    return written


def evaluate_video(
    video: str | Path,
    ground_truth: str | Path,
    out_dir: str | Path,
    loaded: LoadedModel,
    options: EvaluateOptions | None = None,
    *,
    info: VideoInfo | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> CommandResult:
    """Score tubes of one video against its ground truth; write ``report.json`` and plots.

    One clip of the model's preset length is sampled uniformly over the video, as
    ``saliency-tubes explain`` does; the ground truth is sampled, resized and cropped the
    same way. The class explained is the first of ``options.classes`` (default: the top-1
    prediction); every method and baseline explains that class.

    Args:
        video: a video file or a folder of numbered frames.
        ground_truth: boxes (``.json``) or a mask (``.npy``), see
            :mod:`saliency_tubes.metrics.groundtruth`.
        out_dir: output folder (created if missing).
        loaded: the model (:func:`saliency_tubes.load_model`).
        options: see :class:`~saliency_tubes.commands.EvaluateOptions` (its methods left
            out: the model's defaults, :meth:`~saliency_tubes.commands.EvaluateOptions.for_model`).
        info: the video's :func:`~saliency_tubes.video.probe`, if already known.
        on_stage: called with a short message at each stage.

    Returns:
        The result; its manifest is the report (also written as ``report.json``). On error
        nothing is left behind.
    """
    options = (options or EvaluateOptions()).for_model(loaded)
    for method in options.methods or ():
        loaded.check_method(method)  # a plain callable: the methods that only run it
    info = probe(video, min_frames=2) if info is None else check_min_frames(info, 2)
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

    sampling = (indices, prep)
    work = partial(
        _evaluate_work, loaded=loaded, options=options, truth=truth, mask=mask, sampling=sampling
    )
    record, run, _ = produce(
        video, out_dir, work, info=info, on_stage=on_stage, manifest_name="report.json"
    )
    return CommandResult.of("evaluate", record, run)


def _evaluate_work(
    run: Run,
    loaded: LoadedModel,
    options: EvaluateOptions,
    truth: Any,
    mask: torch.Tensor,
    sampling: tuple[np.ndarray, Any],
) -> tuple[dict[str, Any], tuple[()]]:
    """evaluate's work in its output folder: the report, and no tubes to summarise (see
    :func:`evaluate_video`); ``sampling`` is the clip's frame indices and preprocessing."""
    info, protocol, preset = run.info, options.protocol, loaded.preset
    indices, prep = sampling
    run.say(f"reading {preset.frames} frames of {info.path}")
    meter = Meter(run.say, options.progress, first=("select the class", 2))
    try:
        with run.stage("explain"):
            model = loaded.model
            device = model_device(model) or torch.device("cpu")
            clip = prep(read_frames(run.video, indices, info=info))[None].to(device)
            base = make_substrate(clip, protocol.substrate)
            meter.start()
            chosen = select_target(loaded, clip, base, options.classes)
            meter.advance(2)
            target = chosen.target
            name = loaded.categories[target] if loaded.categories else str(target)
        n_rows = len(options.settled) + len(options.baselines)
        run.say(
            f"scoring {n_rows} tubes of class {name!r} (p={probability(chosen.probability, 3)})"
        )
        with run.stage("score"):
            scores = score_rows(
                loaded,
                clip,
                mask,
                target,
                methods=options.settled,
                interpolation=options.interpolation,
                baselines=options.baselines,
                units=options.units,
                protocol=protocol,
                cascade=options.cascade,  # type: ignore[arg-type]
                substrate=base,
                ends=chosen.ends,
                batch_size=options.batch_size,
                max_bytes=_max_bytes(clip),
                progress=meter,
            )
    finally:
        meter.close()
    with run.stage("write"):
        files = _video_plots(run.outputs, scores, f"{loaded.name}: {name}")
    record = manifest.evaluate(
        info,
        loaded,
        truth,
        mask,
        (target, name, chosen.probability),
        indices,
        clip.shape[2:],
        protocol,
        options.interpolation,
        scores,
        files,
    )
    record["evaluation"] = _evaluation(options, scores, meter)
    return record, ()


def _evaluation(options: EvaluateOptions, scores: Any, meter: Meter) -> dict[str, Any]:
    """The report's ``evaluation`` entry: what was scored, the forwards, the definitions."""
    forwards = meter.forwards or scores.forwards
    return {
        "methods": list(options.settled),
        "baselines": list(options.baselines),
        "units": list(options.units),
        "cascade": options.cascade,
        "sanity_steps": scores.steps,
        "forwards": {**forwards.as_dict(), "run": meter.done},
        "seconds_per_forward_estimate": json_number(meter.per_forward),
        "definitions": DEFINITIONS,
    }


def _step_label(step: int, shown: list[int], layers: list[str]) -> str:
    """The tick of a sanity step: ``trained``, the top layer, ``+layer`` after the step
    before it, or ``all random`` / ``top N random`` when steps were skipped."""
    if step == 0:
        return "trained"
    if step == 1:
        return layers[0]
    if step - 1 in shown:
        return "+" + layers[step - 1]
    return "all random" if step == len(layers) else f"top {step} random"


def _video_plots(outputs: OutputFolder, scores: ClipScores, title: str) -> dict[str, str]:
    """``deletion_insertion.png`` and ``sanity.png`` (none without a sanity check: a plain
    callable) of one clip's scores."""
    rows, curves, tubes, layers = scores.rows, scores.curves, scores.tubes, scores.layers
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
    figures = [("deletion_insertion", panels)]
    if layers:
        figures.append(("sanity", [_sanity_panel(scores)]))
    files = {
        stem: outputs.write_bytes(f"{stem}.png", render.figure_png(chosen, title))
        for stem, chosen in figures
    }
    files["report"] = "report.json"
    return files


def _sanity_panel(scores: ClipScores) -> Panel:
    """The sanity cascade's panel: each row's Spearman ρ per step explained."""
    rows, tubes, layers = scores.rows, scores.tubes, scores.layers
    shown = scores.steps or list(range(len(layers) + 1))
    x = np.arange(len(shown))
    sanity = [
        Series(
            row_label(r),
            x,
            np.array(tubes[r]["sanity"], dtype=float),
            dashed=r.startswith("baseline/"),
        )
        for r in rows
    ]
    ticks = [_step_label(s, shown, layers) for s in shown]
    return Panel(
        "sanity check",
        "layers randomised (top first)",
        "Spearman ρ",
        sanity,
        xticks=ticks,
        ylim=(-1.05, 1.05),
    )
