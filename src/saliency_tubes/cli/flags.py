"""The flags several commands share, defined once (click options)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..commands import BACKGROUNDS as _BACKGROUNDS
from ..commands import INTERPOLATIONS as _INTERPOLATIONS
from ..commands import METHOD_NAMES

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
"""Click settings of every command: -h too, wide help."""


def options(*decorators: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Apply click option decorators in the order listed (first listed, first in --help)."""

    def apply(command: Any) -> Any:
        for decorator in reversed(decorators):
            command = decorator(command)
        return command

    return apply


METHODS = " | ".join(METHOD_NAMES)
INTERPOLATIONS = " | ".join(_INTERPOLATIONS)
BACKGROUNDS = " | ".join(_BACKGROUNDS)


def out(default: str | None = None, help: str = "Output folder (created if missing).") -> Any:
    """``--out DIR`` (into ``out_dir``): required without a ``default``; with one, shown."""
    return click.option(
        "--out",
        "out_dir",
        required=default is None,
        default=default,
        show_default=default is not None,
        type=click.Path(path_type=Path),
        help=help,
    )


OUT = out()
FORMAT = click.option(
    "--format",
    "formats",
    default="mp4,plot",
    show_default=True,
    help="Comma-separated: mp4,gif,png,npy,plot,html (plot: the temporal importance curves as "
    "PNG; html: report.html, an interactive page to scrub the video and fade the tube).",
)
MODEL = click.option(
    "--model",
    "model_name",
    default="tiny-actions",
    show_default=True,
    help="A registered name (see `saliency-tubes models`), 'package.module:factory', or "
    "hf:DIR (a Hugging Face VideoMAE/TimeSformer/ViViT save_pretrained folder). The "
    "default, tiny-actions, is the embedded demo model: it knows only 8 synthetic motion "
    "classes (left, right, up, down, clockwise, counterclockwise, grow, shrink).",
)


def classes(default: str, help: str) -> Callable[[Any], Any]:
    """``--classes`` with a command's own default and help."""
    return click.option("--classes", default=default, show_default=True, help=help)


def path_option(flag: str, help: str) -> Callable[[Any], Any]:
    return click.option(flag, type=click.Path(path_type=Path), default=None, help=help)


WEIGHTS = path_option(
    "--weights",
    "Checkpoint (.pth/.pt weights-only, or .safetensors). Default: the shipped weights, if "
    "any. torchvision and pytorchvideo models also take kinetics400 (torchvision: or the enum "
    "name): downloads the official weights. Hugging Face models take a save_pretrained folder.",
)
ALLOW_PICKLE = click.option(
    "--allow-pickle",
    is_flag=True,
    help="Allow a full-pickle checkpoint. Only for files you trust: a pickle can run code.",
)
NUM_CLASSES = click.option(
    "--num-classes",
    type=int,
    default=None,
    help="Size of the classifier head, if it differs from the model's default.",
)
CATEGORIES = path_option("--categories", "Class names: .txt (one per line) or .json.")
DEVICE = click.option(
    "--device", default="cpu", show_default=True, help="cpu | cuda | cuda:1 | mps."
)
LAYER = click.option(
    "--layer",
    default=None,
    help="Target layer name (default: the adapter's, or the last 5-D layer feeding the pool).",
)
CLASSIFIER = click.option(
    "--classifier", default=None, help="Classifier head name (default: the final nn.Linear)."
)
QUIET = click.option("--quiet", is_flag=True, help="No progress bars or stage messages.")
INTERPOLATION = click.option(
    "--interpolation", default="cubic", show_default=True, help=INTERPOLATIONS + "."
)
ALIGN = click.option(
    "--align",
    default="corners",
    show_default=True,
    help="corners | centers: upsampling grid: corners (scipy.ndimage.zoom, the authors') or "
    "half-pixel centres.",
)
COLORMAP = click.option(
    "--colormap", default="jet", show_default=True, help="Any matplotlib colour map for heat tubes."
)
OPACITY = click.option(
    "--opacity", type=float, default=0.5, show_default=True, help="Heat map opacity."
)
BACKGROUND = click.option(
    "--background",
    default="black",
    show_default=True,
    help=f"{BACKGROUNDS}: what focus tubes show where the model did not look.",
)
WINDOWS = click.option(
    "--windows",
    default=None,
    metavar="LEN,STRIDE",
    help="Explain sliding windows covering the whole video and stitch them (default: one uniform clip).",
)
TIMELINE = click.option(
    "--timeline", is_flag=True, help="Draw the temporal importance bar under each frame."
)
NO_CAPTION = click.option(
    "--no-caption",
    is_flag=True,
    help="Draw no text on the videos: neither the class, probability and caveat strips "
    "above side-by-side and compare panels nor the model label in the corner of heat and "
    "focus videos.",
)
NORMALISE = click.option(
    "--normalise",
    type=click.Choice(["video", "frame"]),
    default="video",
    show_default=True,
    help="What the drawn colours span: video (one scale for the whole video, so moments "
    "compare) or frame (each frame stretched to its own peak, so quiet stretches show "
    "where they look). Curves and statistics stay on the video's scale.",
)
FRAMES = click.option(
    "--frames", type=int, default=None, help="Clip length T (default: the model preset's)."
)
MEAN = click.option(
    "--mean",
    default=None,
    help="Per-channel mean R,G,B of pixels on the [0, 1] scale (default: the model's preset).",
)
STD = click.option(
    "--std",
    default=None,
    help="Per-channel std R,G,B on the [0, 1] scale (default: the model's preset).",
)
METHOD = click.option(
    "--method",
    default=None,
    help=f"{METHODS} | auto: cam is the paper's Saliency Tubes (one forward); the gradcam "
    "family weighs channels or voxels by gradients (one backward per class); scorecam masks "
    "the clip with each channel (one forward per channel); eigencam is class-agnostic; "
    "occlusion (one forward per window) and integrated-gradients (a forward and backward per "
    "step and class) attribute the clip's pixels through captum (pip install "
    "'saliency-tubes[captum]'; no --layer). "
    "rise (one forward per random mask), lime and kernelshap (one per sample and class; pip "
    "install 'saliency-tubes[blackbox]') only run the model: any model, a plain callable too. "
    "rollout and relevancy follow a video transformer's attention. "
    "Default: the model's (see `saliency-tubes models`; relevancy for VideoMAE, TimeSformer, "
    "ViViT and tiny-colours-vit, gradcam for MViT, rise for a plain callable, cam otherwise).",
)
LAYOUTS = click.option(
    "--layouts",
    default="heat,focus,side_by_side",
    show_default=True,
    help="Comma-separated: heat,focus,side_by_side.",
)
EMBED = click.option(
    "--embed",
    is_flag=True,
    help="With --format html: put the video inside report.html (one file to send someone).",
)
CRF = click.option(
    "--crf",
    type=int,
    default=18,
    show_default=True,
    help="H.264 quality of the mp4 outputs, 0-51: 18 is visually lossless, 23 writes files "
    "about half as big.",
)
X264_PRESET = click.option(
    "--x264-preset",
    default="superfast",
    show_default=True,
    help="ultrafast ... veryslow: libx264's speed preset for the mp4 outputs (medium: files "
    "about a quarter smaller, 2.5x slower to write).",
)
MAX_SIDE = click.option(
    "--max-side",
    type=int,
    default=None,
    metavar="N",
    help="Scale the rendered videos so their longest side is at most N pixels (the "
    "side-by-side and grid layouts included; the tube is mapped at that size). Default: "
    "panels at the source's size.",
)
START = click.option(
    "--start",
    type=float,
    default=None,
    metavar="S",
    help="Explain only the frames shown from S seconds on (the file's times); the outputs "
    "cover the segment and --windows lie inside it.",
)
END = click.option(
    "--end",
    type=float,
    default=None,
    metavar="S",
    help="... up to (not including) S seconds.",
)
EXPLAIN = options(
    MODEL,
    WEIGHTS,
    ALLOW_PICKLE,
    NUM_CLASSES,
    CATEGORIES,
    MEAN,
    STD,
    LAYER,
    CLASSIFIER,
    classes("top1", "top3 | 12 | name | comma-separated indices or names."),
    METHOD,
    FRAMES,
    WINDOWS,
    INTERPOLATION,
    ALIGN,
    COLORMAP,
    OPACITY,
    BACKGROUND,
    FORMAT,
    CRF,
    X264_PRESET,
    EMBED,
    LAYOUTS,
    MAX_SIDE,
    START,
    END,
    NO_CAPTION,
    NORMALISE,
    TIMELINE,
    DEVICE,
)
"""Every flag of ``explain`` but ``--out`` and ``--quiet`` (``batch`` takes them all)."""


def explain_options(params: dict[str, Any]) -> Any:
    """The :class:`~saliency_tubes.commands.ExplainOptions` of the explain flags, checked."""
    from ..commands import ExplainOptions
    from . import parse

    options = ExplainOptions(
        method=params["method"] or "auto",  # auto: the adapter's default method
        frames=params["frames"],
        layouts=parse.names(params["layouts"]),
        **parse.render_settings(params),
    )
    return options
