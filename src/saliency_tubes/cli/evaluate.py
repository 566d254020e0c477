"""``saliency-tubes evaluate``: how faithful and how well placed a method's tubes are, on one video or on
the benchmark's held-out clips."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..commands import probability
from . import flags, parse
from .running import (
    echo,
    guarded,
    loaded,
    stages,
)

if TYPE_CHECKING:
    from ..commands import Protocol


@click.command("evaluate", context_settings=flags.CONTEXT)
@click.argument("video", required=False, type=click.Path(path_type=Path))
@click.option(
    "--gt",
    "ground_truth",
    type=click.Path(path_type=Path),
    default=None,
    help="Ground truth of VIDEO: per-frame boxes (.json) or a mask (.npy, or .npz with one array; FILE.npz:KEY for one of several); see the README.",
)
@flags.options(flags.MODEL, flags.WEIGHTS, flags.ALLOW_PICKLE, flags.NUM_CLASSES, flags.CATEGORIES)
@flags.options(flags.LAYER, flags.CLASSIFIER)
@click.option(
    "--class", "target", default="top1", show_default=True, help="VIDEO: class to explain."
)
@click.option(
    "--method",
    "--methods",
    "methods",
    default=None,
    help="Comma-separated: " + flags.METHODS + ". [benchmark: cam,gradcam,gradcam++; VIDEO: "
    "cam,gradcam,gradcam++ on a network, the callable's auto (rise) on a plain callable]",
)
@click.option(
    "--interpolation",
    "interpolations",
    default=None,
    help="Benchmark: comma-separated modes [all four]. VIDEO: one mode [cubic].",
)
@click.option(
    "--protocol",
    "protocol_name",
    type=click.Choice(["quick", "full"]),
    default=None,
    help="VIDEO: quick [default]: baselines uniform,centre,motion, units voxel,tube, sanity "
    "check at its two ends (top block random, all random): at most 400 clip forwards. "
    "full: every baseline, every unit, every step of the sanity cascade. "
    "--baselines and --units override either.",
)
@click.option(
    "--baselines",
    default=None,
    help="Comma-separated: uniform | centre | random | motion. "
    "[benchmark: all four; VIDEO: from --protocol]",
)
@click.option("--clips", type=int, default=None, help="Benchmark: held-out clips [32].")
@click.option("--seed", type=int, default=None, help="Benchmark: data seed [10000].")
@click.option("--steps", type=int, default=16, show_default=True, help="Deletion/insertion steps.")
@click.option("--substrate", default="blur", show_default=True, help="blur | mean | zeros.")
@click.option(
    "--increase-tolerance",
    type=float,
    default=1e-5,  # INCREASE_TOLERANCE (not imported here: the CLI starts without torch)
    show_default=True,
    help="How much the class probability must rise, kept where the tube is high, to count as "
    "an increase in confidence (float noise does not; a GPU's TF32 needs more).",
)
@click.option(
    "--units", default=None, help="VIDEO: curve units, voxel | frame | tube [from --protocol]."
)
@click.option(
    "--batch",
    type=int,
    default=None,
    help="VIDEO: perturbed clips per forward [as many as fit in memory, up to 256 MiB of input].",
)
@flags.options(flags.out("evaluate_out"))
@flags.options(flags.DEVICE)
@click.option(
    "--threads", type=int, default=None, help="CPU threads for torch (1 is fastest on a busy box)."
)
@flags.options(flags.QUIET)
def evaluate_command(video: Path | None, **params: Any) -> None:
    """Score tubes: pointing game, mass, IoU, deletion/insertion AUC, sanity check.

    \b
    Without VIDEO: the synthetic benchmark (held-out clips with ground-truth masks, the
    embedded model; every method, interpolation mode and baseline, 95 % bootstrap
    intervals). Writes results.md, results.json and PNG plots.
    With VIDEO --gt boxes.json|mask.npy: the same metrics on your video, model and ground
    truth. Writes report.json, deletion_insertion.png and sanity.png (not for a plain
    callable: its sanity check is n/a, it has no parameters to randomise).
    Both first say how many clip forwards they will run and about how long that takes
    (timed on the first forwards), then show a bar with an ETA on a terminal.
    """
    if params["threads"] is not None:
        import torch

        torch.set_num_threads(max(1, params["threads"]))
    if video is None:
        guarded(lambda: _benchmark(params))
        return
    result = guarded(lambda: _evaluate_video(video, params))
    if result is None:
        return
    report = result.manifest
    c = report["class"]
    from .evaluate_table import video_table

    echo(f"class {c['index']} {c['name']}: p={probability(c['score'], 3)}")
    echo(video_table(report))
    echo(f"wrote report.json and plots to {result.out_dir} in {result.seconds:.1f} s")


def _benchmark(params: dict[str, Any]) -> None:
    from ..commands import BenchmarkConfig, InputError, benchmark, write_benchmark

    if (
        params["ground_truth"] is not None
        or params["model_name"] != "tiny-actions"
        or params["weights"] is not None
    ):
        raise InputError(
            "expected VIDEO with --gt or --model/--weights; without VIDEO the benchmark "
            "runs the embedded tiny-actions model on synthetic clips"
        )
    for flag, key in (("--protocol", "protocol_name"), ("--units", "units"), ("--batch", "batch")):
        if params[key] is not None:
            raise InputError(
                f"expected {flag} with VIDEO only, but got it for the benchmark; drop it, or "
                "give VIDEO --gt"
            )
    modes = parse.names(params["interpolations"]) if params["interpolations"] else None
    config = BenchmarkConfig(
        clips=32 if params["clips"] is None else params["clips"],
        seed=10_000 if params["seed"] is None else params["seed"],
        methods=BenchmarkConfig().methods
        if params["methods"] is None
        else parse.names(params["methods"]),
        interpolations=modes or BenchmarkConfig().interpolations,
        baselines=parse.names(params["baselines"])
        if params["baselines"] is not None
        else BenchmarkConfig().baselines,
        device=params["device"],
        protocol=_protocol(params),
    )
    config.check()
    parse.model_options(params)  # checks the device
    result = benchmark(config, show=not params["quiet"], on_stage=stages(params["quiet"]))
    files = write_benchmark(result, params["out_dir"])
    from .evaluate_table import protocol_lines

    protocol = asdict(config.protocol)
    echo("\n".join(protocol_lines(protocol, ["voxel"], result.layers, [1, len(result.layers)])))
    echo(result.table())
    echo(
        f"model accuracy on the {config.clips} clips: {result.accuracy:.3f}; wrote "
        f"{len(files)} file(s) to {params['out_dir']} in {result.seconds:.1f} s"
    )


def _evaluate_video(video: Path, params: dict[str, Any]) -> Any:
    from ..commands import EvaluateOptions, InputError, evaluate_video, probe

    if params["ground_truth"] is None:
        raise InputError(
            "expected --gt boxes.json or mask.npy with VIDEO, but got none; see the "
            "boxes format in the README"
        )
    if params["clips"] is not None or params["seed"] is not None:
        raise InputError("--clips and --seed are for the benchmark; drop them with VIDEO")
    modes = parse.names(params["interpolations"]) if params["interpolations"] else None
    if modes is not None and len(modes) != 1:
        raise InputError(
            f"expected one --interpolation with VIDEO, but got {params['interpolations']}"
        )
    spec = parse.class_spec(params["target"])
    chosen: dict[str, Any] = {
        # no --method: None, the model's defaults (EvaluateOptions.for_model)
        "methods": None if params["methods"] is None else parse.names(params["methods"]),
        "classes": spec[0] if isinstance(spec, list) and len(spec) == 1 else spec,
        "interpolation": modes[0] if modes else "cubic",
        "protocol": _protocol(params),
        "batch_size": params["batch"],
        "progress": not params["quiet"],
    }
    for key in ("baselines", "units"):
        if params[key] is not None:
            chosen[key] = parse.names(params[key])
    make = EvaluateOptions.full if params["protocol_name"] == "full" else EvaluateOptions
    options = make(**chosen)
    model = parse.model_options(params)
    info = probe(video, min_frames=2)  # a bad video is reported before any model is built
    net = loaded(model)
    return evaluate_video(
        video,
        params["ground_truth"],
        params["out_dir"],
        net,
        options,
        info=info,
        on_stage=stages(params["quiet"]),
    )


def _protocol(params: dict[str, Any]) -> Protocol:
    """The scoring protocol the options give (the benchmark's and a video's alike)."""
    from ..commands import Protocol  # here: the CLI starts without torch

    return Protocol(
        steps=params["steps"],
        substrate=params["substrate"],
        increase_tolerance=params["increase_tolerance"],
    )
