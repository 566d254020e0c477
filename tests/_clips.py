"""Clips and mappings shared by the comparison and temporal tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from saliency_tubes.synthetic import make_clip
from saliency_tubes.video import TubeMapper, VideoWriter, probe
from saliency_tubes.zoo import Preset


def write_demo_clip(folder: Path) -> Path:
    """A held-out synthetic clip (seed 1001, class 'shrink'), 24 frames of 96x128 at 12 fps:
    tiny-actions resizes it (full frame), the default preset crops its centre."""
    clip = make_clip(seed=1001, frames=24, size=(96, 128))
    path = folder / "shrink.mp4"
    with VideoWriter(path, fps=12, crf=12) as writer:
        writer.write_frames(clip.video)
    return path


def mapped(tube: np.ndarray, indices: list[int], preset: Preset, video: Path) -> np.ndarray:
    """The (F, H, W) tube of the clip sampled at ``indices``, on every source frame."""
    info = probe(video)
    mapper = TubeMapper(tube, info.timestamps[indices], preset.preprocess().geometry(info.size))
    return np.stack([mapper.frame(float(t)) for t in info.timestamps])
