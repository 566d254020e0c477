"""``report.html``: one self-contained, offline page to look at an explanation.

The page (:func:`~saliency_tubes.commands.report.page.report_page`) plays the source video and
draws the tube over it on a canvas in sync with playback: each class's tube is stored at
every source frame on a coarse grid over the region the model saw (at most
:data:`GRID` cells on the long side, uint8, deflate-compressed, base64) and resized by the
browser; the unseen borders are hatched as in the videos. It has an opacity slider, heat /
focus, a class selector with the probabilities, the temporal curve (click or drag to
seek), frame stepping, and the model, method, weights and options in a side panel. The
video is referenced by a relative path (a copy is encoded when browsers cannot play the
source), or embedded with ``embed=True``.
"""

from __future__ import annotations

import base64
import json
import os
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
from PIL import Image

from ... import render
from ...numbers import probability
from ...video import VideoInfo, iter_frames
from ..options import ExplainOptions
from ..pipeline.explaining import Explained
from ..pipeline.model_line import ModelFacts, caveats, model_words
from ..pipeline.outputs import OutputFolder
from ..pipeline.track import Summary, TubeTrack
from .facts import report_facts
from .page import report_page

__all__ = ["GRID", "MAX_MAPS", "PLAYABLE", "json_for_script", "report_data", "write_report"]

#: Cells of the stored tube on its long side.
GRID = 64
#: Stored maps per class at most (longer videos store every k-th frame's).
MAX_MAPS = 3000
#: Source suffixes browsers play (others get an H.264 copy, ``source.mp4``).
PLAYABLE = (".mp4", ".m4v", ".webm", ".mov")


def _maps(
    track: TubeTrack, k: int, info: VideoInfo, grid: tuple[int, int], step: int, per_frame: bool
) -> str:
    """Tube ``k`` at every ``step``-th source frame on ``grid``, uint8 (a signed track's
    ``[-1, 1]`` as ``(s + 1) / 2``; with ``per_frame`` an unsigned one stretched to each
    frame's range), delta-coded in time, deflated, base64."""
    out = np.empty((len(range(0, info.num_frames, step)), *grid), dtype=np.uint8)
    for j, f in enumerate(range(0, info.num_frames, step)):
        m = np.nan_to_num(track.grid(k, float(info.timestamps[f]))).astype(np.float32)
        if track.signed:
            m = (m + 1.0) / 2.0
        elif per_frame:
            m = np.asarray(render.stretch(m))
        small = Image.fromarray(m, mode="F").resize((grid[1], grid[0]), Image.Resampling.BILINEAR)
        out[j] = np.rint(np.clip(np.asarray(small), 0.0, 1.0) * 255.0).astype(np.uint8)
    # Each map as its difference from the previous one (mod 256): consecutive frames differ
    # little, so the deltas deflate to a fraction of the maps' size; the page adds them up.
    deltas = np.diff(out, axis=0, prepend=np.zeros((1, *grid), np.uint8))
    return base64.b64encode(zlib.compress(deltas.tobytes(), 9)).decode("ascii")


def _entry(
    label: str,
    track: TubeTrack,
    k: int,
    summary: Summary,
    info: VideoInfo,
    grid: Any,
    step: int,
    per_frame: bool = False,
) -> dict[str, Any]:
    curve = summary.curve
    return {
        "label": label,
        "signed": track.signed,
        "curve_mean": np.round(np.nan_to_num(curve.mean), 4).tolist(),
        "curve_max": np.round(np.nan_to_num(curve.max), 4).tolist(),
        "key_frames": curve.key_frames.tolist(),
        "maps": _maps(track, k, info, grid, step, per_frame),
    }


def report_data(
    info: VideoInfo,
    e: Explained,
    summaries: Sequence[Summary],
    options: ExplainOptions,
    manifest: dict[str, Any],
    video_src: str,
    contrast: tuple[str, TubeTrack, Summary] | None = None,
) -> dict[str, Any]:
    """What the page shows, as JSON-able data (``contrast``: a contrastive track's label,
    track and summary, shown after the classes in a diverging colour map)."""
    geometry = e.track.geometry
    h, w = e.clip_size[1], e.clip_size[2]
    scale = GRID / max(h, w)
    grid = (max(1, round(h * scale)), max(1, round(w * scale))) if scale < 1 else (h, w)
    step = max(1, -(-info.num_frames // MAX_MAPS))
    per_frame = options.normalise == "frame"
    classes = [
        _entry(f"{name} (p={probability(score)})", e.track, k, summary, info, grid, step, per_frame)
        for k, (name, score, summary) in enumerate(zip(e.names, e.scores, summaries, strict=True))
    ]
    if contrast is not None:
        label, track, summary = contrast
        classes.append(_entry(label, track, 0, summary, info, grid, step))
    facts = ModelFacts.from_dict(manifest.get("model"))
    return {
        "title": f"{Path(str(info.path)).name}: {e.loaded.name} ({e.method})",
        "warning": "; ".join(caveats(facts)),
        "model": model_words(facts),
        "video": {
            "src": video_src,
            "fps": float(info.fps),
            "timestamps": np.round(info.timestamps, 6).tolist(),
            "size": [int(info.size[0]), int(info.size[1])],
        },
        "geometry": {
            "top": float(geometry.top),
            "left": float(geometry.left),
            "height": float(geometry.height),
            "width": float(geometry.width),
        },
        "grid": list(grid),
        "step": step,
        "colormap": render.colormap(options.colormap).reshape(-1).tolist(),
        "diverging": render.colormap(render.DIVERGING).reshape(-1).tolist(),
        "floor": float(options.floor),
        "classes": classes,
        "facts": report_facts(manifest),
        "scale": render.FRAME_NOTE if per_frame else "",
    }


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as None (JSON.parse refuses them)."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def json_for_script(data: dict[str, Any]) -> str:
    """JSON that cannot end its ``<script>`` element nor open a comment or tag."""
    try:  # most data hold no NaN: one pass, without copying it
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:
        text = json.dumps(_finite(data), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _video_src(
    video: Path, info: VideoInfo, outputs: OutputFolder, embed: bool, options: ExplainOptions
) -> tuple[str, str | None]:
    """The page's video: a relative path to the source (or to an H.264 copy the browser can
    play), or a data URI with ``embed``; and the copy's name, if one was written.

    A segment (``--start``/``--end``) is always a copy of its frames: the page takes the
    player's time 0 as the first explained frame, which the whole file is not."""
    copy = None
    path = video
    if video.is_dir() or info.whole is not None or video.suffix.lower() not in PLAYABLE:
        writer, copy = outputs.video(
            "source.mp4", info.rate, crf=options.crf, preset=options.preset
        )
        with writer:
            writer.write_frames(frame.image for frame in iter_frames(video, info=info))
        path = outputs.staging / copy  # until the run's files move into place
    if embed:
        kind = "webm" if path.suffix.lower() == ".webm" else "mp4"
        payload = base64.b64encode(path.read_bytes()).decode("ascii")
        return f"data:video/{kind};base64,{payload}", copy
    if copy:
        return quote(copy), copy
    rel = os.path.relpath(video.resolve(), outputs.root.resolve())
    return quote(Path(rel).as_posix()), copy


def write_report(
    outputs: OutputFolder,
    video: Path,
    info: VideoInfo,
    e: Explained,
    summaries: Sequence[Summary],
    options: ExplainOptions,
    manifest: dict[str, Any],
    *,
    embed: bool = False,
    contrast: tuple[str, TubeTrack, Summary] | None = None,
) -> list[str]:
    """Write ``report.html`` (and ``source.mp4`` when needed); their relative names."""
    src, copy = _video_src(video, info, outputs, embed, options)
    data = report_data(info, e, summaries, options, manifest, src, contrast)
    # One pass: a value (a file name, say) holding a placeholder is never filled again.
    page = report_page(src, options.opacity, json_for_script(data))
    written = [outputs.write_bytes("report.html", page.encode("utf-8"))]
    return written + ([copy] if copy else [])
