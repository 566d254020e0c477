"""``saliency-tubes compare-classes`` and ``compare-models``: several classes, or several models, on one clip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from . import flags, parse
from .running import (
    guarded,
    on_video,
    report_classes,
    report_contrast,
    report_models,
)

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


@click.command("compare-classes", context_settings=flags.CONTEXT)
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
        return on_video(compare_classes, video, params, options)

    result = guarded(run)
    if result is not None:
        report_contrast(result)
        report_classes(result)


@click.command("compare-models", context_settings=flags.CONTEXT)
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
        return on_video(compare_models, video, params, options, _model_specs(params, model_names))

    result = guarded(run)
    if result is not None:
        report_models(result)
