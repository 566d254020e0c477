"""``compare-classes`` and ``compare-models``: several tubes of one video in one grid video.

* :func:`compare_classes`: one model, several classes (a panel each), and optionally the
  contrastive tube "why A and not B";
* :func:`compare_models`: several models, each with its own preprocessing, their tubes on
  the same source frames, with the numbers that compare them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..numbers import probability
from ..video import VideoInfo
from ..zoo import LoadedModel
from .options import CompareOptions, check_distinct
from .pipeline import explaining, manifest
from .pipeline.drawing import (
    caption_of,
    contrast_product,
    encode,
    grid_product,
    plot,
    slug,
    summaries_first,
)
from .pipeline.outputs import Run, Say, produce
from .pipeline.result import CommandResult
from .pipeline.track import Summary, TubeTrack
from .report.video import write_report

__all__ = ["compare_classes", "compare_models"]


def compare_classes(
    video: str | Path,
    out_dir: str | Path,
    loaded: LoadedModel,
    options: CompareOptions | None = None,
    *,
    info: VideoInfo | None = None,
    on_stage: Say | None = None,
) -> CommandResult:
    """One model, several classes: one video with a panel per class, and a contrastive tube.

    Every class's panel is exactly what :func:`~saliency_tubes.commands.explain_video`
    draws for that class alone (the tubes come from one forward pass and are normalised
    each on its own), captioned with the class and its probability. With
    ``options.contrast = (A, B)`` it also writes ``contrast_A_vs_B.mp4``: the contrastive
    tube (:func:`~saliency_tubes.contrastive_tube` on the raw maps) over the frame in a
    diverging colour map, with its colour bar.

    Args:
        video: a video file or frame folder.
        out_dir: output folder (created if missing).
        loaded: the model (see :func:`saliency_tubes.load_model`).
        options: see :class:`~saliency_tubes.commands.CompareOptions` (``classes`` picks
            the panels).
        info: the video's probe result, if already known.
        on_stage: progress messages.

    Returns:
        The result; its manifest (``manifest.json``) is as :func:`explain_video`'s, with
        ``contrast`` (classes, scale, statistics and temporal curve of the contrastive
        tube) and the outputs ``compare_classes.mp4`` (grid), ``contrast_A_vs_B.mp4``,
        ``temporal.png``, ``tube.npy`` (K, T, h, w) and ``contrast_A_vs_B.npy`` (T, h, w)
        with "npy".
    """
    options = options or CompareOptions()
    info = explaining.source_info(video, info, options)
    work = partial(_classes_work, loaded=loaded, options=options)
    record, run, explained = produce(video, out_dir, work, info=info, on_stage=on_stage)
    return CommandResult.of("compare-classes", record, run, explained)


def compare_models(
    video: str | Path,
    out_dir: str | Path,
    models: Sequence[LoadedModel],
    options: CompareOptions | None = None,
    *,
    info: VideoInfo | None = None,
    on_stage: Say | None = None,
) -> CommandResult:
    """Several models on one video: a grid with a panel per model, and numbers to compare.

    Each model samples and preprocesses the video with its own preset (frames, size, crop,
    mean/std) and method (``options.method="auto"``: each adapter's default); its tube is
    mapped back through its own geometry onto the same source frames, so panel ``m`` is
    exactly what :func:`~saliency_tubes.commands.explain_video` draws for model ``m``. With
    several classes per model (e.g. ``classes="top2"``) rows are classes and columns models.

    Per model the manifest's ``summary`` gives, for its first class, the tube statistics
    on the source frames (:func:`~saliency_tubes.tube_stats`: the fraction of voxels above
    0.5 and the spatial spread), the numbers that make "deeper networks give tighter
    regions" checkable.

    Args:
        video: a video file or frame folder.
        out_dir: output folder (created if missing).
        models: the loaded models (distinct names), in panel order.
        options: see :class:`~saliency_tubes.commands.CompareOptions` (``frames`` and
            ``contrast`` are not used).
        info: the video's probe result, if already known.
        on_stage: progress messages.

    Returns:
        The result; its manifest has ``models`` (per model: model entry, classes, clips,
        tube grid), ``tubes``, ``summary``, and the outputs ``compare_models.mp4``,
        ``temporal.png`` and ``tube_MODEL.npy`` per model with "npy".
    """
    options = options or CompareOptions(method="auto")
    info = explaining.source_info(video, info, options)
    if "html" in options.formats:
        raise InputError(
            "expected --format without html for compare-models (report.html shows one model: "
            "explain or compare-classes write it), but got html; drop it"
        )
    check_distinct([m.name for m in models])
    work = partial(_models_work, models=models, options=options)
    record, run, explained = produce(video, out_dir, work, info=info, on_stage=on_stage)
    return CommandResult.of("compare-models", record, run, explained)


def _contrast_tracks(
    e: explaining.Explained, contrast: tuple[int | str, int | str] | None
) -> tuple[int, int, list[TubeTrack]]:
    """``(ka, kb, tracks)``: the contrast's two class positions (-1 without one) and the
    tracks to summarise, the classes' and, with a contrast, its signed difference."""
    if contrast is None:
        return -1, -1, [e.track]
    ka, kb = e.position(contrast[0]), e.position(contrast[1])
    if ka == kb:
        raise InputError(
            f"expected a contrast of two different classes, but {contrast[0]!r} and "
            f"{contrast[1]!r} are both class {e.classes[ka]}; name a second class"
        )
    return ka, kb, [e.track, e.track.difference(ka, kb)]


def _pair(e: explaining.Explained, ka: int, kb: int) -> str:
    """The file-name part of a contrast: ``A_vs_B``."""
    return f"{slug(e.names[ka])}_vs_{slug(e.names[kb])}"


def _class_products(
    e: explaining.Explained,
    loaded: LoadedModel,
    options: CompareOptions,
    look: Any,
    summaries: list[list[Summary | None]],
    tracks: list[TubeTrack],
    ka: int,
    kb: int,
) -> list[Any]:
    """compare-classes' videos: the grid of class panels and, with a contrast, its video."""
    panels = [
        (e.track, k, caption_of(loaded, f"{n}  p={probability(s)}"), summary)
        for k, (n, s, summary) in enumerate(zip(e.names, e.scores, summaries[0], strict=True))
    ]
    products = [grid_product("compare_classes", panels, options, look)]
    if len(tracks) > 1:
        names = (e.names[ka], e.names[kb])
        why = caption_of(loaded, f"why {names[0]} and not {names[1]}")
        products.append(
            contrast_product(f"contrast_{_pair(e, ka, kb)}", names, tracks[1], options, why, look)
        )
    return products


def _class_plots(
    outputs: Any,
    name: str,
    e: explaining.Explained,
    summaries: list[list[Summary]],
    ka: int,
    kb: int,
) -> list[str]:
    """compare-classes' temporal plots: every class's curve and, with a contrast, its own."""
    curves = [(n, s.curve) for n, s in zip(e.names, summaries[0], strict=True)]
    title = f"{name}: temporal importance per class"
    files = [plot(outputs, "temporal.png", curves, title, e.sampled())]
    if len(summaries) > 1:
        label = f"{e.names[ka]} vs {e.names[kb]}"
        files.append(
            plot(
                outputs,
                f"temporal_contrast_{_pair(e, ka, kb)}.png",
                [(label, summaries[1][0].curve)],
                f"{name}: contrast {label} (+: {e.names[ka]}, -: {e.names[kb]})",
                e.sampled(),
            )
        )
    return files


def _same_class_count(explained: Sequence[explaining.Explained]) -> None:
    counts = {len(e.classes) for e in explained}
    if len(counts) != 1:
        raise InputError(
            f"expected the same number of classes for every model, but got "
            f"{sorted(counts)}; pass topK or one class list valid for all"
        )


def _model_panels(
    explained: Sequence[explaining.Explained], summaries: list[list[Summary | None]]
) -> list[Any]:
    """compare-models' panels: rows are classes, columns models."""
    return [
        (
            e.track,
            k,
            caption_of(e.loaded, f"{e.loaded.name}: {e.names[k]}  p={probability(e.scores[k])}"),
            summaries[i][k],
        )
        for k in range(len(explained[0].classes))
        for i, e in enumerate(explained)
    ]


def _classes_work(
    run: Run,
    loaded: LoadedModel,
    options: CompareOptions,
) -> tuple[dict[str, Any], list[tuple[explaining.Explained, list[Summary]]]]:
    """compare-classes' work in its output folder (see :func:`compare_classes`): the
    manifest, the explanation and its tubes' summaries."""
    contrast = options.contrast
    info, outputs = run.info, run.outputs
    with run.stage("explain"):
        todo = explaining.plan(info, loaded, options, extra=contrast or ())
        (e,) = explaining.explain(run.video, info, [todo], options.progress, run.say)
    ka, kb, tracks = _contrast_tracks(e, contrast)
    plan = summaries_first(run, info, tracks, options)
    files: dict[str, list[str]] = {}
    npy = None
    pair = _pair(e, ka, kb) if contrast is not None else ""
    with run.stage("write"):
        if "npy" in options.formats:
            npy = outputs.save_npy_stream("tube.npy", *e.track.blocks())
            files["npy"] = [npy]
            if contrast is not None:
                files["npy"].append(
                    outputs.save_npy_stream(f"contrast_{pair}.npy", *tracks[1].blocks(0))
                )
        if plan.formats:
            run.say(f"rendering {info.num_frames} frames of {len(e.classes)} class panels")
            shown = plan.shown()
            products = _class_products(e, loaded, options, plan.look, shown, tracks, ka, kb)
            files.update(encode(run.video, info, outputs, products, plan.formats, options))
        summaries = plan.result()
        if "plot" in options.formats:
            files["plot"] = _class_plots(outputs, loaded.name, e, summaries, ka, kb)
    grid = {"style": options.style, "cols": options.cols}
    record = manifest.one_model("compare-classes", info, e, options, summaries[0], npy, grid, files)
    record["contrast"] = None
    if contrast is not None:
        record["contrast"] = manifest.contrast(
            e, ka, kb, float(tracks[1].bound[0]), summaries[1][0]
        )
    if "html" in options.formats:
        with run.stage("write"):
            versus = None
            if len(tracks) > 1:
                label = f"{e.names[ka]} vs {e.names[kb]} (red: {e.names[ka]}, blue: {e.names[kb]})"
                versus = (label, tracks[1], summaries[1][0])
            files["html"] = write_report(
                outputs, run.video, info, e, summaries[0], options, record,
                embed=options.embed, contrast=versus,
            )  # fmt: skip
    return record, [(e, summaries[0])]


def _models_work(
    run: Run,
    models: Sequence[LoadedModel],
    options: CompareOptions,
) -> tuple[dict[str, Any], list[tuple[explaining.Explained, list[Summary]]]]:
    """compare-models' work in its output folder (see :func:`compare_models`): the
    manifest, the explanations and their tubes' summaries."""
    info, outputs = run.info, run.outputs
    per_model = replace(options, frames=None, contrast=None)
    with run.stage("explain"):
        plans = [explaining.plan(info, m, per_model) for m in models]
        explained = explaining.explain(run.video, info, plans, options.progress, run.say)
    _same_class_count(explained)
    tracks = [e.track for e in explained]
    plan = summaries_first(run, info, tracks, options)
    files: dict[str, list[str]] = {}
    npys: list[str | None] = [None] * len(explained)
    classes = range(len(explained[0].classes))
    with run.stage("write"):
        if "npy" in options.formats:
            npys = [
                outputs.save_npy_stream(f"tube_{slug(e.loaded.name)}.npy", *e.track.blocks())
                for e in explained
            ]
            files["npy"] = [n for n in npys if n]
        if plan.formats:
            run.say(f"rendering {info.num_frames} frames of {len(explained)} model panels")
            panels = _model_panels(explained, plan.shown())
            grid = replace(options, cols=options.cols or len(explained))
            products = [grid_product("compare_models", panels, grid, plan.look)]
            files.update(encode(run.video, info, outputs, products, plan.formats, options))
        summaries = plan.result()
        if "plot" in options.formats:
            curves = [
                (f"{e.loaded.name}: {e.names[k]}", summaries[i][k].curve)
                for k in classes
                for i, e in enumerate(explained)
            ]
            title = "temporal importance per model"
            files["plot"] = [plot(outputs, "temporal.png", curves, title, explained[0].sampled())]
    more = {"style": options.style, "cols": options.cols}
    record = manifest.compare_models(info, explained, options, more, summaries, npys, files)
    return record, list(zip(explained, summaries, strict=True))
