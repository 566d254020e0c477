"""The ``saliency-tubes`` command line: parses, calls :mod:`saliency_tubes.commands`, reports.

Every user error ends with one line on stderr (``error: ...``) and exit code 2; nothing
half-written is left in the output folder. Options are parsed here (strings into numbers,
lists and pairs) and validated once, by the commands' option objects.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..commands import probability
from . import flags, parse
from .batch import batch, demo_dataset
from .running import (
    Group,
    echo,
    guarded,
    loaded,
    quiet_notes,
    report_classes,
    report_contrast,
    report_models,
    stages,
    wrote,
)


def _on_video(
    command: Callable[..., Any],
    video: Path,
    params: dict[str, Any],
    options: Any,
    specs: list[Any] | None = None,
) -> Any:
    """Check the model flags, probe VIDEO (a bad video is reported before any model is
    built), load the model and run ``command`` on it; with ``specs`` (model options, one per
    model: compare-models), load each and run ``command`` on the list."""
    from ..commands import probe

    several = specs is not None
    specs = specs if specs is not None else [parse.model_options(params)]
    info = probe(video, min_frames=2)
    models = [loaded(spec) for spec in specs]
    return command(
        video,
        params["out_dir"],
        models if several else models[0],
        options,
        info=info,
        on_stage=stages(params["quiet"]),
    )


# -- commands ---------------------------------------------------------------------------


@click.group(cls=Group, context_settings=flags.CONTEXT)
@click.version_option(package_name="saliency-tubes")
@click.option(
    "--verbose",
    is_flag=True,
    help="Also say what the library notes on the way (e.g. that torchvision runs with its "
    "CPU operator workaround), once each. Put it before the command.",
)
def main(verbose: bool) -> None:
    """See where in space and time a video classifier looked.

    \b
    Saliency Tubes (Stergiou et al., ICIP 2019): the class weights of the final linear
    layer times the last 3-D conv layer's activations, extended to the clip by spline
    interpolation, shown as heat tubes (colour map) and focus tubes (the rest dimmed).

    \b
    Start with:   saliency-tubes demo
    Then:         saliency-tubes explain VIDEO --out DIR --model resnet3d-50 --weights ckpt.pth
    """
    quiet_notes(verbose)


@main.command(context_settings=flags.CONTEXT)
@click.argument("video", type=click.Path(path_type=Path))
@flags.options(flags.OUT, flags.EXPLAIN, flags.QUIET)
def explain(video: Path, out_dir: Path, **params: Any) -> None:
    """Explain VIDEO (a file FFmpeg reads, or a folder of numbered frames).

    Writes, per explained class, heat / focus / side-by-side videos at the source's size,
    frame count and frame rate, its temporal importance plot (temporal_K_NAME.png), plus
    manifest.json (with the per-frame curves and key frames) and tube.npy with --format npy.
    """

    def run() -> Any:
        from ..commands import explain_video

        options = flags.explain_options(params)
        return _on_video(explain_video, video, dict(params, out_dir=out_dir), options)

    result = guarded(run)
    if result is not None:
        report_classes(result)


@main.command(context_settings=flags.CONTEXT)
@click.option(
    "--out",
    "out_dir",
    default=None,
    type=click.Path(path_type=Path),
    help="Output folder [demo_out; with --dataset: demo_dataset_out].",
)
@click.option(
    "--dataset",
    is_flag=True,
    help="The dataset variant: 8 labelled synthetic clips with ground-truth masks, run "
    "through `batch` (index.parquet, summary.md, a folder per video).",
)
@click.option(
    "--seed", default=None, type=int, help="Seed of the generated clip (default: the demo's)."
)
@click.option(
    "--classes",
    default="top2",
    show_default=True,
    help="Classes to explain: topK, an index or a name.",
)
@click.option(
    "--method", default="auto", show_default=True, help=flags.METHODS + " (auto: the model's)."
)
@click.option(
    "--model",
    "model",
    default="tiny-actions",
    show_default=True,
    help="A shipped model: tiny-actions (motion CNN) or tiny-colours (colour CNN).",
)
@flags.options(flags.QUIET)
def demo(
    out_dir: Path | None,
    dataset: bool,
    seed: int | None,
    classes: str,
    method: str,
    model: str,
    quiet: bool,
) -> None:
    """Offline demo: generate a clip, explain it with the embedded model, write the videos.

    No arguments, no network, no GPU: the model (a small 3D CNN trained on synthetic
    motion classes) and its weights ship with the package. With --dataset: a labelled
    dataset of generated clips through `batch` (under a minute).
    """
    if dataset:
        demo_dataset(out_dir or Path("demo_dataset_out"), classes, method, quiet)
        return
    out_dir = out_dir or Path("demo_out")

    def run() -> Any:
        from ..commands import DEMO_SEED, run_demo

        return run_demo(
            out_dir,
            seed=DEMO_SEED if seed is None else seed,
            classes=classes,
            method=method,
            progress=not quiet,
            on_stage=stages(quiet),
            model=model,
        )

    result = guarded(run)
    if result is not None:
        echo(f"true class of the generated clip: {result.manifest['demo']['true_class']}")
        report_classes(result)


@main.command(context_settings=flags.CONTEXT)
def models() -> None:
    """List the registered models with their layer, head, preset and default method.

    cam=exact: the class score is the CAM tube's mean plus a constant (global pool and a
    linear head after the layer); cam=approx: the paper's formula, not exact for this head;
    cam=n/a: no pooled linear head over the layer (MViT's class token), Grad-CAM only.
    """
    from ..commands import model_lines

    for line in model_lines():
        echo(line)


# -- comparisons: compare-classes, compare-models ---------------------------------------

_COMPARE = flags.options(
    flags.OUT,
    click.option(
        "--method",
        default="auto",
        show_default=True,
        help=f"{flags.METHODS} | auto: auto is each model's default (cam for the 3D CNNs).",
    ),
    flags.WINDOWS,
    flags.INTERPOLATION,
    flags.ALIGN,
    click.option(
        "--style", default="focus", show_default=True, help="focus | heat: what each panel shows."
    ),
    click.option("--cols", type=int, default=None, help="Panels per row of the grid."),
    flags.COLORMAP,
    flags.OPACITY,
    flags.BACKGROUND,
    flags.FORMAT,
    flags.CRF,
    flags.X264_PRESET,
    flags.MAX_SIDE,
    flags.START,
    flags.END,
    flags.TIMELINE,
    flags.NO_CAPTION,
    flags.NORMALISE,
    flags.ALLOW_PICKLE,
    flags.DEVICE,
    flags.QUIET,
)


def _compare_options(params: dict[str, Any], **extra: Any) -> Any:
    from ..commands import CompareOptions

    options = CompareOptions(
        method=params["method"],
        style=params["style"],
        cols=params["cols"],
        **parse.render_settings(params),
        **extra,
    )
    return options


def _model_specs(params: dict[str, Any], model_names: str) -> list[Any]:
    """compare-models' ``--models`` with the per-model ``--weights``, ``--num-classes`` and
    ``--categories``: one model options object per name (distinct names)."""
    from ..commands.options import check_distinct

    names = [s.strip() for s in model_names.split(",") if s.strip()]
    if not names or len(set(names)) != len(names):
        check_distinct(names)
    paths = parse.per_model(params["weights"], names, "--weights", "PATH")
    counts = {
        k: parse.positive(v, "--num-classes")
        for k, v in parse.per_model(params["num_classes"], names, "--num-classes", "N").items()
    }
    labels = parse.per_model(params["categories"], names, "--categories", "PATH")
    return [
        parse.model_options(
            params,
            name=name,
            weights=Path(paths[name]) if name in paths else None,
            num_classes=counts.get(name),
            categories=Path(labels[name]) if name in labels else None,
        )
        for name in names
    ]


@main.command("compare-classes", context_settings=flags.CONTEXT)
@click.argument("video", type=click.Path(path_type=Path))
@flags.options(flags.MODEL, flags.WEIGHTS, flags.CATEGORIES, flags.NUM_CLASSES)
@flags.classes("top3", "top3 | comma-separated names or indices: one panel each.")
@click.option(
    "--contrast",
    default=None,
    metavar="A,B",
    help="Also write the contrastive tube 'why A and not B' (raw maps A - B, diverging colours).",
)
@flags.options(flags.FRAMES)
@_COMPARE
def compare_classes_command(video: Path, **params: Any) -> None:
    """One model, several classes of VIDEO side by side (one panel per class).

    Writes compare_classes.mp4 (panels captioned with class and probability), with
    --contrast A,B also contrast_A_vs_B.mp4, temporal.png (per-frame saliency and key
    frames), manifest.json (tubes, statistics, curves) and tube.npy with --format npy.
    """

    def run() -> Any:
        from ..commands import compare_classes

        options = _compare_options(
            params, frames=params["frames"], contrast=parse.pair(params["contrast"])
        )
        return _on_video(compare_classes, video, params, options)

    result = guarded(run)
    if result is not None:
        report_contrast(result)
        report_classes(result)


@main.command("compare-models", context_settings=flags.CONTEXT)
@click.argument("video", type=click.Path(path_type=Path))
@click.option(
    "--models",
    "model_names",
    required=True,
    help="Comma-separated registered names (see `saliency-tubes models`): one panel each.",
)
@click.option("--weights", default=None, metavar="M=PATH,...", help="Checkpoint per model.")
@click.option(
    "--num-classes", default=None, metavar="M=N,...", help="Head size per model (if not default)."
)
@click.option("--categories", default=None, metavar="M=PATH,...", help="Class names per model.")
@flags.classes("top1", "topK or names/indices.")
@_COMPARE
def compare_models_command(video: Path, model_names: str, **params: Any) -> None:
    """Several models on VIDEO side by side, each with its own preprocessing.

    Writes compare_models.mp4 (one panel per model, all on the source frames),
    temporal.png, manifest.json and tube_MODEL.npy with --format npy. Prints, per model,
    the fraction of tube voxels above 0.5 and the tube's spatial spread (fractions of the
    frame; smaller is tighter).
    """

    def run() -> Any:
        from ..commands import compare_models

        options = _compare_options(params)
        return _on_video(compare_models, video, params, options, _model_specs(params, model_names))

    result = guarded(run)
    if result is not None:
        report_models(result)


@main.command("pyramid", context_settings=flags.CONTEXT)
@click.argument("video", type=click.Path(path_type=Path))
@flags.options(flags.MODEL, flags.WEIGHTS, flags.ALLOW_PICKLE, flags.NUM_CLASSES, flags.CATEGORIES)
@click.option(
    "--class",
    "target",
    default="top1",
    show_default=True,
    help="Class to back-step from: a name, an index, or top1 (the prediction).",
)
@click.option(
    "--depth", type=int, default=None, help="Levels of kernels [default: 3, or the --layers count]."
)
@click.option(
    "--threshold",
    type=float,
    default=0.6,
    show_default=True,
    help="Keep features and channels whose min-max normalised score is at least this.",
)
@click.option("--top-n", type=int, default=None, help="At most N children per kernel.")
@click.option("--layers", default=None, help="Comma-separated conv names, level 1 first.")
@flags.options(flags.FRAMES)
@click.option("--per-level", type=int, default=6, show_default=True, help="Nodes drawn per level.")
@click.option("--all-tubes", is_flag=True, help="Write every node's tube, not only the drawn.")
@click.option("--no-gif", is_flag=True, help="Do not write pyramid.gif.")
@click.option(
    "--out",
    "out_dir",
    default="pyramid_out",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Output folder (created if missing).",
)
@flags.options(flags.DEVICE, flags.QUIET)
def pyramid_command(video: Path, **params: Any) -> None:
    """Class feature pyramid of VIDEO: back-step from a class through layers and kernels.

    Writes pyramid.json (the class dependency graph), pyramid.png (levels as rows, nodes
    as heat thumbnails), tubes/*.npy (the drawn nodes' tubes), pyramid.gif and manifest.json.
    """

    def run() -> Any:
        from ..commands import PyramidOptions, pyramid_video

        layers = params["layers"]
        options = PyramidOptions(
            target=params["target"].strip(),
            depth=params["depth"],
            threshold=params["threshold"],
            top_n=params["top_n"],
            layers=tuple(s.strip() for s in layers.split(",") if s.strip()) if layers else None,
            frames=params["frames"],
            per_level=params["per_level"],
            all_tubes=params["all_tubes"],
            gif=not params["no_gif"],
        )
        return _on_video(pyramid_video, video, params, options)

    result = guarded(run)
    if result is None:
        return
    manifest = result.manifest
    c = manifest["class"]
    counts = " / ".join(str(n) for n in manifest["pyramid"]["nodes_per_level"][1:])
    name = f" {c['name']}" if c["name"] else ""
    echo(f"class {c['index']}{name}: p={probability(c['probability'], 3)}")
    echo(f"nodes per level (1..{manifest['pyramid']['levels_reached']}): {counts}")
    wrote(result)


@main.command("evaluate", context_settings=flags.CONTEXT)
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
    default="cam,gradcam,gradcam++",
    show_default=True,
    help="Comma-separated: " + flags.METHODS + ".",
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
    "--units", default=None, help="VIDEO: curve units, voxel | frame | tube [from --protocol]."
)
@click.option(
    "--batch",
    type=int,
    default=None,
    help="VIDEO: perturbed clips per forward [as many as fit in memory, up to 256 MiB of input].",
)
@click.option(
    "--out",
    "out_dir",
    default="evaluate_out",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Output folder (created if missing).",
)
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
    truth. Writes report.json, deletion_insertion.png and sanity.png.
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
    from ..commands import BenchmarkConfig, InputError, Protocol, benchmark, write_benchmark

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
        methods=parse.names(params["methods"]),
        interpolations=modes or BenchmarkConfig().interpolations,
        baselines=parse.names(params["baselines"])
        if params["baselines"] is not None
        else BenchmarkConfig().baselines,
        device=params["device"],
        protocol=Protocol(steps=params["steps"], substrate=params["substrate"]),
    )
    config.check()
    parse.model_options(params)  # checks the device
    result = benchmark(config, show=not params["quiet"], on_stage=stages(params["quiet"]))
    files = write_benchmark(result, params["out_dir"])
    from dataclasses import asdict

    from .evaluate_table import protocol_lines

    protocol = asdict(config.protocol)
    echo("\n".join(protocol_lines(protocol, ["voxel"], result.layers, [1, len(result.layers)])))
    echo(result.table())
    echo(
        f"model accuracy on the {config.clips} clips: {result.accuracy:.3f}; wrote "
        f"{len(files)} file(s) to {params['out_dir']} in {result.seconds:.1f} s"
    )


def _evaluate_video(video: Path, params: dict[str, Any]) -> Any:
    from ..commands import EvaluateOptions, InputError, Protocol, evaluate_video, probe

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
        "methods": parse.names(params["methods"]),
        "classes": spec[0] if isinstance(spec, list) and len(spec) == 1 else spec,
        "interpolation": modes[0] if modes else "cubic",
        "protocol": Protocol(steps=params["steps"], substrate=params["substrate"]),
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
    return evaluate_video(
        video,
        params["ground_truth"],
        params["out_dir"],
        loaded(model),
        options,
        info=info,
        on_stage=stages(params["quiet"]),
    )


if __name__ == "__main__":
    main()


main.add_command(batch)
