"""The manifest (``manifest.json``, ``report.json``) of every command, built here.

What a run did, in one JSON record next to its outputs: the tool and command, the source
video's facts, the model (name, weights, layer, head, method, preset), the options, the
classes and scores, the sampled frames, per tube its statistics and temporal curve, the
definitions of those numbers, the package versions, every output file relative to the
folder, and the seconds it took. :func:`one_model` serves ``explain`` and
``compare-classes``; :func:`compare_models`, :func:`pyramid` and :func:`evaluate` the
other commands; :func:`header`, :func:`versions` and the ``*_entry`` functions are the parts
they share.
"""

from __future__ import annotations

import functools
import importlib.metadata
from collections.abc import Sequence
from typing import Any

import numpy as np

from ... import temporal
from ...hooks import model_device
from ...metrics.benchmark import ClipScores, Protocol
from ...metrics.concentration import DEFINITION as STATS_DEFINITION
from ...metrics.groundtruth import GroundTruth
from ...pyramid import ClassFeaturePyramid
from ...video import VideoInfo
from ...zoo import LoadedModel
from ..options import ExplainOptions, PyramidOptions
from ..plain import plain
from .explaining import Explained
from .track import Summary

__all__ = [
    "DEFINITIONS",
    "compare_models",
    "evaluate",
    "header",
    "one_model",
    "pyramid",
    "versions",
    "video_facts",
]

DEFINITIONS = {
    "temporal": temporal.DEFINITION,
    "stats": STATS_DEFINITION,
    "measured_on": "each source frame's tube is measured on the source pixels ('source "
    "frames': what the videos draw) or, when no video is drawn, on the clip's grid ('clip "
    "grid': the covering windows blended before the resize; spread in fractions of the clip)",
    "mp4_size": "H.264 in yuv420p (what browsers play) needs an even height and width: an odd "
    "one gets its last row or column repeated once in .mp4 outputs; .gif and PNG frames keep "
    "the exact size",
}
"""How the temporal curves and the tube statistics are defined, as stored in manifests."""

_PACKAGES = ("saliency-tubes", "torch", "numpy", "av", "pillow", "matplotlib")


def versions() -> dict[str, str]:
    """The versions of the packages the outputs depend on."""
    return dict(_versions())


@functools.cache
def _versions() -> tuple[tuple[str, str], ...]:
    """Read once per process (17 ms a call: a batch worker wrote them for every video)."""
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return tuple(out.items())


def video_facts(info: VideoInfo) -> dict[str, Any]:
    """The source video: path, upright size, frame count, frame rate, duration, codec, and
    the rotation its display matrix asked for (the frames were turned upright by it); for
    a segment (``--start``/``--end``) the whole file's facts and ``segment``: its first
    frame in the file, its frame count, the times of its first and last frames and the
    times asked for. Frame indices elsewhere in the manifest count from its first frame."""
    if info.whole is not None:
        facts = video_facts(info.whole)
        facts["segment"] = {
            "first_frame": info.first,
            "num_frames": info.num_frames,
            "first_time": float(info.timestamps[0]),
            "last_time": float(info.timestamps[-1]),
            "duration": info.duration,
        }
        return facts
    return {
        "path": str(info.path),
        "width": info.width,
        "height": info.height,
        "num_frames": info.num_frames,
        "fps": info.fps,
        "rate": str(info.rate),
        "duration": info.duration,
        "codec": info.codec,
        "rotation": info.rotation,
    }


def header(command: str, info: VideoInfo) -> dict[str, Any]:
    """The first entries of every manifest: tool, command, source."""
    return {"tool": "saliency-tubes", "command": command, "source": video_facts(info)}


def _device(loaded: LoadedModel) -> str:
    device = model_device(loaded.model)
    return "cpu" if device is None else str(device)


def weights_entry(loaded: LoadedModel) -> dict[str, Any]:
    """Where the weights came from: ``shipped``, ``file``, ``download``, ``random`` (an
    untrained network) or ``factory``; and what the outputs do not mean (``caveat``)."""
    return {
        "weights_source": loaded.weights_source,
        "random_weights": loaded.random_weights,
        "caveat": loaded.caveat,
    }


def model_entry(e: Explained) -> dict[str, Any]:
    """The model that made the tubes."""
    return {
        "name": e.loaded.name,
        "weights": e.loaded.weights,
        **weights_entry(e.loaded),
        "layer": e.layer,
        "classifier": e.classifier,
        "method": e.method,
        "preset": plain(e.loaded.preset),  # as the JSON file has it (lists)
    }


def clips_entry(e: Explained) -> list[dict[str, Any]]:
    """The sampled source frames and their timestamps, per window."""
    return [
        {
            "frame_indices": win.indices.tolist(),
            "timestamps": [round(float(t), 6) for t in win.times],
        }
        for win in e.windows
    ]


def tube_entry(e: Explained) -> dict[str, Any]:
    """The tubes' grids and their normalisation."""
    return {
        "grid": list(e.clip_size),
        "layer_grid": list(e.track.layer_grid),
        "normalisation": "min-max over the whole tube"
        if len(e.windows) == 1
        else "min-max over all windows",
    }


def classes_entry(e: Explained) -> list[dict[str, Any]]:
    """The explained classes with their scores (mean softmax over the windows)."""
    return [
        {"index": c, "name": n, "score": round(float(s), 6)}
        for c, n, s in zip(e.classes, e.names, e.scores, strict=True)
    ]


def tubes_entries(
    e: Explained, summaries: Sequence[Summary], npy: str | None
) -> list[dict[str, Any]]:
    """One entry per tube: model, class, score, where it is stored, statistics, curve."""
    return [
        {
            "model": e.loaded.name,
            "class": cls,
            "npy": {"file": npy, "index": k} if npy else None,
            "stats": summary.stats.to_dict(),
            "temporal": summary.curve.to_dict(),
            "measured_on": summary.measured_on,
        }
        for k, (cls, summary) in enumerate(zip(classes_entry(e), summaries, strict=True))
    ]


def options_entry(options: ExplainOptions, loaded: LoadedModel) -> dict[str, Any]:
    """The options every video command records: a view of the options' ``to_dict`` (their
    one serialisation, which batch fingerprints whole), with the encoder's settings as one
    entry and the model's device."""
    given = options.to_dict()
    entry = {key: given[key] for key in _RECORDED}
    entry["windows"] = entry["windows"] or None
    entry["encoder"] = {"codec": "libx264", "crf": given["crf"], "preset": given["preset"]}
    entry.update({key: given[key] for key in ("max_side", "start", "end")})
    entry["device"] = _device(loaded)
    return entry


#: The options a manifest records as they are (in this order, before the encoder's).
_RECORDED = (
    "windows", "interpolation", "align", "colormap", "opacity", "floor", "background",
    "normalise", "formats", "timeline",
)  # fmt: skip


def one_model(
    command: str,
    info: VideoInfo,
    e: Explained,
    options: ExplainOptions,
    summaries: Sequence[Summary],
    npy: str | None,
    more_options: dict[str, Any],
    files: dict[str, list[str]],
) -> dict[str, Any]:
    """The manifest of a run with one model (``explain``, ``compare-classes``)."""
    return {
        **header(command, info),
        "model": model_entry(e),
        "method": e.method,
        "options": {
            "frames": e.clip_size[0],
            **options_entry(options, e.loaded),
            **more_options,
        },
        "classes": classes_entry(e),
        "clips": clips_entry(e),
        "tube": tube_entry(e),
        "tubes": tubes_entries(e, summaries, npy),
        "definitions": DEFINITIONS,
        "versions": versions(),
        "outputs": files,
    }


def compare_models(
    info: VideoInfo,
    explained: Sequence[Explained],
    options: ExplainOptions,
    more_options: dict[str, Any],
    summaries: Sequence[Sequence[Summary]],
    npys: Sequence[str | None],
    files: dict[str, list[str]],
) -> dict[str, Any]:
    """The manifest of ``compare-models``: per model its entry, and a summary to compare."""
    return {
        **header("compare-models", info),
        "options": {**options_entry(options, explained[0].loaded), **more_options},
        "models": [
            {
                "model": model_entry(e),
                "classes": classes_entry(e),
                "clips": clips_entry(e),
                "tube": tube_entry(e),
            }
            for e in explained
        ],
        "tubes": [
            t
            for e, s, n in zip(explained, summaries, npys, strict=True)
            for t in tubes_entries(e, s, n)
        ],
        "summary": [
            {
                "model": e.loaded.name,
                "class": e.names[0],
                "score": round(e.scores[0], 6),
                **s[0].stats.to_dict(),
            }
            for e, s in zip(explained, summaries, strict=True)
        ],
        "definitions": DEFINITIONS,
        "versions": versions(),
        "outputs": files,
    }


def contrast(e: Explained, ka: int, kb: int, scale: float, summary: Summary) -> dict[str, Any]:
    """The ``contrast`` entry of ``compare-classes``: classes, scale, statistics, curve."""
    return {
        "a": {"index": e.classes[ka], "name": e.names[ka]},
        "b": {"index": e.classes[kb], "name": e.names[kb]},
        "on": "raw",
        "definition": "(up(raw_A - raw_B)) / max|.| over the video, in [-1, 1]; "
        "positive: evidence for A over B",
        "scale": round(float(scale), 6),
        "stats": summary.stats.to_dict(),
        "temporal": summary.curve.to_dict(),
    }


def pyramid(
    info: VideoInfo,
    loaded: LoadedModel,
    built: ClassFeaturePyramid,
    options: PyramidOptions,
    indices: np.ndarray,
    figure_frame: int,
    drawn: Sequence[Sequence[str]],
    tube_files: dict[str, str],
    files: dict[str, list[str]],
) -> dict[str, Any]:
    """The manifest of ``pyramid``: model, class, options, clip, levels, tube files."""
    levels = built.levels()
    t = figure_frame
    return {
        **header("pyramid", info),
        "model": {
            "name": loaded.name,
            "weights": loaded.weights,
            **weights_entry(loaded),
            "feature_layer": built.feature_layer,
            "classifier": built.classifier,
        },
        "class": {
            "index": built.class_index,
            "name": built.class_name,
            "probability": round(built.probability, 6),
        },
        "options": {
            "depth": built.depth,
            "threshold": options.threshold,
            "top_n": options.top_n,
            "layers": list(options.layers) if options.layers else None,
            "per_level": options.per_level,
            "all_tubes": options.all_tubes,
            "device": _device(loaded),
        },
        "clip": {
            "frames": len(indices),
            "size": list(built.clip_size),
            "frame_indices": [int(i) for i in indices],
            "timestamps": [round(float(info.timestamps[i]), 6) for i in indices],
            "figure_frame": {
                "clip_index": t,
                "frame_index": int(indices[t]),
                "timestamp": round(float(info.timestamps[indices[t]]), 6),
            },
        },
        "pyramid": {
            "levels_reached": len(levels) - 1,
            "nodes_per_level": [len(level) for level in levels],
            "drawn": [list(row) for row in drawn],
            "stops": len(built.stops),
        },
        "tubes": tube_files,
        "versions": versions(),
        "outputs": files,
    }


def evaluate(
    info: VideoInfo,
    loaded: LoadedModel,
    truth: GroundTruth,
    mask: Any,
    target: tuple[int, str, float],
    indices: np.ndarray,
    grid: Sequence[int],
    protocol: Protocol,
    interpolation: str,
    scores: ClipScores,
    files: dict[str, str],
) -> dict[str, Any]:
    """The report of ``evaluate VIDEO``: ground truth, model, class, clip, scores per tube."""
    index, name, score = target
    return {
        **header("evaluate", info),
        "ground_truth": {
            "path": str(truth.path),
            "kind": truth.kind,
            "clip_voxels": int(mask.sum()),
            "clip_fraction": round(float(mask.float().mean()), 6),
            "clip_frames_annotated": int(mask.any(dim=(1, 2)).sum()),
        },
        "model": {
            "name": loaded.name,
            "weights": loaded.weights,
            **weights_entry(loaded),
            "layer": loaded.layer,
            "classifier": loaded.classifier,
            "preset": plain(loaded.preset),
        },
        "class": {"index": index, "name": name, "score": round(score, 6)},
        "clip": {"frame_indices": indices.tolist(), "grid": list(grid)},
        "protocol": plain(protocol),
        "interpolation": interpolation,
        "sanity_layers": scores.layers,
        "tubes": scores.tubes,
        "versions": versions(),
        "outputs": files,
    }
