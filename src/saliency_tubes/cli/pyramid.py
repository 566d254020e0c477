"""``saliency-tubes pyramid``: the class feature pyramid of one video."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..commands import probability
from . import flags
from .running import (
    echo,
    guarded,
    on_video,
    wrote,
)


@click.command("pyramid", context_settings=flags.CONTEXT)
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
@flags.options(flags.out("pyramid_out"))
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
        return on_video(pyramid_video, video, params, options)

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
