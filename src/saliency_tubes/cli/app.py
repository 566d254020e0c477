"""The ``saliency-tubes`` command line: parses, calls :mod:`saliency_tubes.commands`, reports.

Every user error ends with one line on stderr (``error: ...``) and exit code 2; nothing
half-written is left in the output folder. Options are parsed here (strings into numbers,
lists and pairs) and validated once, by the commands' option objects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from . import flags
from .batch import batch, demo_dataset
from .compare import compare_classes_command, compare_models_command
from .evaluate import evaluate_command
from .pyramid import pyramid_command
from .running import (
    Group,
    echo,
    guarded,
    on_video,
    quiet_notes,
    report_classes,
    stages,
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
        return on_video(explain_video, video, dict(params, out_dir=out_dir), options)

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
    help="A shipped model: tiny-actions (motion CNN), tiny-colours (colour CNN), "
    "tiny-colours-vit (colour transformer; auto: relevancy) or tiny-colours-mvit (colour "
    "MViT; needs torchvision).",
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


for _command in (
    compare_classes_command,
    compare_models_command,
    pyramid_command,
    evaluate_command,
    batch,
):
    main.add_command(_command)


if __name__ == "__main__":
    main()
