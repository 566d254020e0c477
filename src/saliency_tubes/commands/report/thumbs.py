"""The pictures of a batch's index: a thumbnail per video and a strip of its key frames.

``thumbs/<video_id>.png`` is the top-1 tube's heat frame at its most prominent key frame,
:data:`THUMB_HEIGHT` pixels high (the index shows it at that size);
``thumbs/<video_id>.keys.png`` is the heat frames of the first :data:`MAX_KEYS` key frames
side by side, :data:`KEY_HEIGHT` pixels high with :data:`KEY_GAP` pixels between them, in
time order (the index's hover preview, labelled with the row's ``key_times``). Both are
drawn as ``explain`` draws a heat frame (colour map, opacity, ``--normalise``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ... import render
from ...video import atomic_write_bytes, read_frames
from ..options import ExplainOptions
from ..pipeline.explaining import Explained

__all__ = ["KEY_GAP", "KEY_HEIGHT", "MAX_KEYS", "THUMB_HEIGHT", "write_thumbnails"]

#: Height of a thumbnail (px).
THUMB_HEIGHT = 120
#: Height of each frame of the key-frame strip (px), the gap between them and their number.
KEY_HEIGHT, KEY_GAP, MAX_KEYS = 160, 4, 6


def _resized(image: np.ndarray, height: int) -> np.ndarray:
    from PIL import Image

    h, w = image.shape[:2]
    size = (max(1, round(w * height / h)), height)
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))


def _heat(e: Explained, info: Any, options: ExplainOptions, frames: list[int]) -> list[np.ndarray]:
    """The top-1 heat pictures of source ``frames``."""
    images = read_frames(info.path, frames, info=info)
    out = []
    for f, image in zip(frames, images, strict=True):
        tube = e.track.frame(0, float(info.timestamps[f]))
        if options.normalise == "frame":
            tube = np.asarray(render.stretch(tube))
        out.append(render.heat(image, tube, options.colormap, options.opacity))
    return out


def write_thumbnails(
    e: Explained, curve: Any, info: Any, options: ExplainOptions, folder: Path, video_id: str
) -> list[Path]:
    """Write ``<video_id>.png`` and, when the curve has key frames, ``<video_id>.keys.png``
    into ``folder`` (atomically); their paths."""
    keys = [int(k) for k in curve.key_frames]
    if keys:
        best = keys[int(np.argmax(curve.prominence))]
    else:
        best = int(np.nanargmax(curve.mean)) if np.isfinite(curve.mean).any() else 0
    folder.mkdir(parents=True, exist_ok=True)
    shown = sorted(keys)[:MAX_KEYS]
    pictures = _heat(e, info, options, [best, *shown])
    written = [
        atomic_write_bytes(
            folder / f"{video_id}.png", render.png_bytes(_resized(pictures[0], THUMB_HEIGHT))
        )
    ]
    if shown:
        strip = [_resized(p, KEY_HEIGHT) for p in pictures[1:]]
        gap = np.full((KEY_HEIGHT, KEY_GAP, 3), 255, np.uint8)
        parts = [x for p in strip for x in (p, gap)][:-1]
        written.append(
            atomic_write_bytes(
                folder / f"{video_id}.keys.png", render.png_bytes(np.concatenate(parts, axis=1))
            )
        )
    return written
