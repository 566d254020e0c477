"""``pyramid``: a class feature pyramid of one clip of a video, written out.

Decode one clip, build the pyramid (:func:`saliency_tubes.class_feature_pyramid`), and
write ``pyramid.json`` (the graph), ``pyramid.png`` (the figure,
:func:`saliency_tubes.render.draw_pyramid`), the tubes (``tubes/*.npy``), ``pyramid.gif``
and ``manifest.json``; on any error every file written is removed again.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from .. import render
from ..errors import InputError
from ..hooks import model_device
from ..pyramid import ROOT, PyramidNode, class_feature_pyramid
from ..resources import check_clip
from ..video import VideoInfo, read_frames, sample_uniform
from ..zoo import LoadedModel
from .options import PyramidOptions
from .pipeline import manifest
from .pipeline.drawing import slug
from .pipeline.outputs import Run, produce
from .pipeline.result import CommandResult

__all__ = ["pyramid_video"]


def _pooled_layer(loaded: LoadedModel) -> str | None:
    """The adapter's layer feeding the pool; a pyramid starts from one such layer."""
    layer = loaded.layer
    if isinstance(layer, tuple):
        if len(layer) != 1:
            raise InputError(
                f"expected one target layer for a class feature pyramid, but model "
                f"{loaded.name!r} has {len(layer)} ({', '.join(layer)}); pick a single-pathway "
                "model"
            )
        return layer[0]
    return layer


def _tube_name(node: PyramidNode) -> str:
    if node.id == ROOT:
        return "tubes/class.npy"
    return f"tubes/L{node.level}_{slug(node.layer)}_k{node.kernel}.npy"


def pyramid_video(
    video: str | Path,
    out_dir: str | Path,
    loaded: LoadedModel,
    options: PyramidOptions | None = None,
    *,
    info: VideoInfo | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> CommandResult:
    """Build a class feature pyramid for one clip of a video and write it out.

    One clip of ``frames`` frames spread uniformly over the video is preprocessed as the
    model's preset says and back-stepped (:func:`~saliency_tubes.class_feature_pyramid`).

    Args:
        video: a video file or a folder of numbered frames.
        out_dir: output folder (created if missing).
        loaded: the model (see :func:`saliency_tubes.load_model`).
        options: see :class:`~saliency_tubes.commands.PyramidOptions`.
        info: the video's :func:`~saliency_tubes.video.probe`, if already known.
        on_stage: called with a short message at each stage.

    Returns:
        The result; its manifest (also ``manifest.json``): model, class, options, source
        facts, the sampled frames, the figure's frame, per level its node count, the tube
        file of each written node, versions and every output relative to ``out_dir``.
        ``pyramid.json`` holds the graph (:meth:`ClassFeaturePyramid.to_dict`).

    On any error every file this call wrote is removed (and ``out_dir`` too, if this call
    created it).
    """
    options = options or PyramidOptions()

    work = partial(_pyramid_work, loaded=loaded, options=options)
    record, run, _ = produce(video, out_dir, work, info=info, on_stage=on_stage)
    return CommandResult.of("pyramid", record, run)


def _built(run: Run, loaded: LoadedModel, options: PyramidOptions) -> tuple[Any, Any, Any, Any]:
    """Read one clip and back-step from the class: ``(pyramid, clip, preprocess, indices)``."""
    info, say = run.info, run.say
    frames = options.frames or loaded.preset.frames
    size = loaded.preset.size
    check_clip(
        frames,
        size,
        "a pyramid of",
        f"use fewer --frames (the preset's is {loaded.preset.frames})",
    )
    indices = sample_uniform(info.num_frames, frames)
    say(f"reading {len(indices)} of the video's {info.num_frames} frames (one clip)")
    preprocess = loaded.preset.preprocess()
    clip = preprocess(read_frames(run.video, indices, info=info))[None]
    say(f"back-stepping from the class with threshold {options.threshold:g}")
    built = class_feature_pyramid(
        loaded.model,
        clip.to(model_device(loaded.model) or "cpu"),
        options.target,
        depth=options.depth,
        threshold=options.threshold,
        top_n=options.top_n,
        layers=list(options.layers) if options.layers else None,
        layer=_pooled_layer(loaded),
        classifier=loaded.classifier,
        categories=loaded.categories,
    )
    return built, clip, preprocess, indices


def _pyramid_work(
    run: Run, loaded: LoadedModel, options: PyramidOptions
) -> tuple[dict[str, Any], tuple[()]]:
    """pyramid's work in its output folder: the manifest, and no tubes to summarise (see
    :func:`pyramid_video`)."""
    info, outputs, say = run.info, run.outputs, run.say
    with run.stage("explain"):
        built, clip, preprocess, indices = _built(run, loaded, options)
    with run.stage("write"):
        rows = render.drawn_nodes(built, options.per_level)
        drawn = [n for row in rows for n in row]
        written = list(built.nodes.values()) if options.all_tubes else drawn
        say(f"{len(built.nodes)} nodes; writing {len(written)} tube(s), the figure and JSON")
        tubes = built.tubes([n.id for n in written])
        pictures = render.display_frames(clip, preprocess)
        t = render.representative_frame(tubes[ROOT])
        note = "(random weights, untrained)" if loaded.random_weights else ""
        if loaded.caveat:
            note = f"{note} ({loaded.caveat})".strip()
        figure = render.draw_pyramid(
            built, pictures, per_level=options.per_level, frame_index=t, tubes=tubes, note=note
        )
        files: dict[str, list[str]] = {
            "json": [outputs.write_json("pyramid.json", built.to_dict())],
            "png": [outputs.write_bytes("pyramid.png", render.png_bytes(figure))],
        }
        outputs.folder("tubes")
        tube_files = {
            node.id: outputs.save_npy(
                _tube_name(node), tubes[node.id].cpu().numpy().astype(np.float32)
            )
            for node in written
        }
        files["npy"] = list(tube_files.values())
        if options.gif:
            writer, name = outputs.video("pyramid.gif", fps=8)
            with writer:
                for image in render.heat_grid_frames(built, pictures, rows, tubes):
                    writer.write(image)
            files["gif"] = [name]
    ids = [[n.id for n in row] for row in rows]
    return manifest.pyramid(info, loaded, built, options, indices, t, ids, tube_files, files), ()
