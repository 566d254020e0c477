"""``evaluate``: score tubes against ground truth, on the benchmark or on a user's video.

* :func:`benchmark`: the synthetic benchmark (:func:`saliency_tubes.metrics.benchmark.run_benchmark`,
  with a progress bar) and :func:`write_benchmark`: its table, JSON and plots;
* :func:`evaluate_video`: one video, a model and its ground truth (per-frame boxes or a
  mask, see :mod:`saliency_tubes.metrics.groundtruth`): ``report.json`` and the plots.

Both leave nothing behind when they fail.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import render
from ..errors import InputError
from ..hooks import model_device
from ..metrics.benchmark import (
    BenchmarkConfig,
    BenchmarkResult,
    ClipScores,
    row_label,
    run_benchmark,
    score_rows,
)
from ..metrics.groundtruth import load_ground_truth
from ..metrics.stats import bootstrap_mean
from ..render import Panel, Series
from ..video import VideoInfo, check_min_frames, probe, read_frames, sample_uniform
from ..zoo import LoadedModel
from . import manifest
from .options import EvaluateOptions
from .outputs import OutputFolder, Run, output_folder, produce, progress
from .result import CommandResult

__all__ = ["benchmark", "benchmark_panels", "evaluate_video", "write_benchmark"]


def benchmark(
    config: BenchmarkConfig | None = None,
    *,
    show: bool = False,
    on_stage: Callable[[str], None] | None = None,
) -> BenchmarkResult:
    """:func:`~saliency_tubes.metrics.benchmark.run_benchmark` with a progress bar."""
    config = config or BenchmarkConfig()
    bar = progress(config.clips, "evaluate", show)
    try:
        return run_benchmark(config, on_stage=on_stage, on_progress=bar.update)
    finally:
        bar.close()


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
        options: see :class:`~saliency_tubes.commands.EvaluateOptions`.
        info: the video's :func:`~saliency_tubes.video.probe`, if already known.
        on_stage: called with a short message at each stage.

    Returns:
        The result; its manifest is the report (also written as ``report.json``). On error
        nothing is left behind.
    """
    options = options or EvaluateOptions()
    options.check()
    protocol = options.protocol
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

    def work(run: Run) -> dict[str, Any]:
        run.say(f"reading {preset.frames} frames of {info.path}")
        with run.stage("explain"):
            model = loaded.model
            device = model_device(model) or torch.device("cpu")
            clip = prep(read_frames(run.video, indices, info=info))[None].to(device)
            first = options.methods[0] if options.methods else "cam"
            pick = loaded.explainer(
                first, interpolation=options.interpolation, align=protocol.align
            )(clip, classes=options.classes)
            target = int(pick.classes[0, 0])
            name = loaded.categories[target] if loaded.categories else str(target)
            score = float(pick.scores[0, 0])
        n_rows = len(options.methods) + len(options.baselines)
        run.say(f"scoring {n_rows} tubes of class {name!r} (p={score:.3f})")
        with run.stage("score"):
            scores = score_rows(
                loaded,
                clip,
                mask,
                target,
                methods=options.methods,
                interpolation=options.interpolation,
                baselines=options.baselines,
                units=options.units,
                protocol=protocol,
            )
        with run.stage("write"):
            files = _video_plots(run.outputs, scores, f"{loaded.name}: {name}")
        return manifest.evaluate(
            info,
            loaded,
            truth,
            mask,
            (target, name, score),
            indices,
            clip.shape[2:],
            protocol,
            options.interpolation,
            scores,
            files,
        )

    record, run = produce(
        video, out_dir, work, info=info, on_stage=on_stage, manifest_name="report.json"
    )
    return CommandResult.of("evaluate", record, run)


def _video_plots(outputs: OutputFolder, scores: ClipScores, title: str) -> dict[str, str]:
    """``deletion_insertion.png`` and ``sanity.png`` of one clip's scores."""
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
    files = {
        stem: outputs.write_bytes(f"{stem}.png", render.figure_png(chosen, title))
        for stem, chosen in (("deletion_insertion", panels), ("sanity", [sanity_panel]))
    }
    files["report"] = "report.json"
    return files
