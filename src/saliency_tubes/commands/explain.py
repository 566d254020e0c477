"""``explain``: one model, one video: heat, focus and side-by-side videos per class."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from ..numbers import probability
from ..video import VideoInfo
from ..zoo import LoadedModel
from .options import ExplainOptions
from .pipeline import explaining, manifest
from .pipeline.drawing import encode, explain_product, plot, slug, summaries_first
from .pipeline.outputs import Run, produce
from .pipeline.result import CommandResult
from .pipeline.track import Summary
from .report.video import write_report

__all__ = ["explain_video", "explained_video"]


def explain_video(
    video: str | Path,
    out_dir: str | Path,
    loaded: LoadedModel,
    options: ExplainOptions | None = None,
    *,
    info: VideoInfo | None = None,
    manifest_extra: dict[str, Any] | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> CommandResult:
    """Explain a video file and write heat, focus and side-by-side videos at its own size.

    Args:
        video: a video file (anything FFmpeg reads) or a folder of numbered frames.
        out_dir: output folder (created if missing).
        loaded: the model and its preset (see :func:`saliency_tubes.load_model`).
        options: see :class:`~saliency_tubes.commands.ExplainOptions`.
        info: the video's :func:`~saliency_tubes.video.probe` result, if already known.
        manifest_extra: more top-level entries for the manifest (the demo records its seed).
        on_stage: called with a short message at each stage (the CLI prints them).

    Returns:
        The :class:`~saliency_tubes.commands.CommandResult`: the manifest (also written as
        ``manifest.json``: model, layer, method, options, classes and scores, source video
        facts, the sampled frames, per tube its statistics and temporal importance curve
        with key frames, package versions and every output file relative to ``out_dir``),
        the files (``LAYOUT_K_NAME.mp4`` per class and layout, ``temporal_K_NAME.png`` with
        the "plot" format, ``tube.npy`` with "npy"), each tube's numbers and the timings.

    On any error every file this call wrote is removed (and ``out_dir`` too, if this call
    created it); outputs appear under their final names only once complete.
    """
    return _explained(video, out_dir, loaded, options, info, manifest_extra, on_stage)[0]


def explained_video(
    video: str | Path,
    out_dir: str | Path,
    loaded: LoadedModel,
    options: ExplainOptions,
    info: VideoInfo,
    given: explaining.Explained | None = None,
) -> tuple[CommandResult, explaining.Explained]:
    """:func:`explain_video`, returning the explanation too (every window's tubes on the
    clip grid: ``batch`` scores it against ground truth and draws thumbnails from it).
    ``given``: the explanation, made already (``batch --batch-size``: several videos' clips
    in one forward); nothing is decoded or run again."""
    return _explained(video, out_dir, loaded, options, info, given=given)


def _explained(
    video: str | Path,
    out_dir: str | Path,
    loaded: LoadedModel,
    options: ExplainOptions | None,
    info: VideoInfo | None,
    manifest_extra: dict[str, Any] | None = None,
    on_stage: Callable[[str], None] | None = None,
    given: explaining.Explained | None = None,
) -> tuple[CommandResult, explaining.Explained]:
    """The run of :func:`explain_video`: its result and the explanation."""
    options = options or ExplainOptions()
    info = explaining.source_info(video, info, options)
    work = partial(_explain_work, loaded=loaded, options=options, given=given)
    record, run, (e, tubes) = produce(
        video, out_dir, work, info=info, manifest_extra=manifest_extra, on_stage=on_stage
    )
    return CommandResult.of("explain", record, run, [(e, tubes)]), e


def _explain_work(
    run: Run, loaded: LoadedModel, options: ExplainOptions, given: explaining.Explained | None
) -> tuple[dict[str, Any], tuple[explaining.Explained, list[Summary]]]:
    """explain's work in its output folder: the manifest, the explanation (``given``, or
    made now) and its tubes' summaries (see :func:`explain_video`)."""
    info, outputs = run.info, run.outputs
    e = given
    if e is None:
        with run.stage("explain"):
            todo = explaining.plan(info, loaded, options)
            (e,) = explaining.explain(run.video, info, [todo], options.progress, run.say)
    plan = summaries_first(run, info, [e.track], options)
    files: dict[str, list[str]] = {}
    npy = None
    with run.stage("write"):
        if "npy" in options.formats:
            npy = outputs.save_npy_stream("tube.npy", *e.track.blocks())
            files["npy"] = [npy]
        if plan.formats:
            run.say(
                f"rendering {info.num_frames} frames ({', '.join(options.layouts)}) "
                f"to {', '.join(plan.formats)}"
            )
            (shown,) = plan.shown()
            products = [explain_product(e, k, s, options, plan.look) for k, s in enumerate(shown)]
            files.update(encode(run.video, info, outputs, products, plan.formats, options))
        (tubes,) = plan.result()
        if "plot" in options.formats:
            files["plot"] = _plots(outputs, loaded.name, e, tubes)
    layouts = {"layouts": list(options.layouts)}
    record = manifest.one_model("explain", info, e, options, tubes, npy, layouts, files)
    if "html" in options.formats:
        with run.stage("write"):
            files["html"] = _report(run, e, tubes, options, record)
    return record, (e, tubes)


def _plots(outputs: Any, model: str, e: explaining.Explained, tubes: list[Any]) -> list[str]:
    """One temporal-importance plot per class: ``temporal_K_NAME.png``."""
    return [
        plot(
            outputs,
            f"temporal_{k + 1}_{slug(name)}.png",
            [(name, summary.curve)],
            f"{model}: {name} (p={probability(score)}), temporal importance",
            e.sampled(),
        )
        for k, (name, score, summary) in enumerate(zip(e.names, e.scores, tubes, strict=True))
    ]


def _report(
    run: Run, e: explaining.Explained, tubes: list[Any], options: ExplainOptions, record: Any
) -> list[str]:
    """``report.html`` of the explanation (see :func:`~.report.write_report`)."""
    return write_report(
        run.outputs, run.video, run.info, e, tubes, options, record, embed=options.embed
    )
