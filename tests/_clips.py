"""Clips and mappings shared by the comparison and temporal tests."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from saliency_tubes.synthetic import make_clip
from saliency_tubes.video import TubeMapper, VideoWriter, probe
from saliency_tubes.zoo import Preset

#: The real clips (arm_wrestling.mp4, eye_makeup.avi, pool_cleaning_32f.mp4): the folder
#: in SALIENCY_TUBES_CLIPS, else ../shared/videos beside the project.
CLIPS = Path(
    os.environ.get("SALIENCY_TUBES_CLIPS")
    or Path(__file__).resolve().parents[1].parent / "shared" / "videos"
)


def real_clip(name: str) -> Path:
    """The real clip ``name``, or a skip that says how to provide it."""
    path = CLIPS / name
    if not path.is_file():
        pytest.skip(
            f"real clip {name} not found in {CLIPS}: set SALIENCY_TUBES_CLIPS to a folder "
            "holding arm_wrestling.mp4, eye_makeup.avi and pool_cleaning_32f.mp4 to run it"
        )
    return path


def write_demo_clip(folder: Path) -> Path:
    """A held-out synthetic clip (seed 1001, class 'shrink'), 24 frames of 96x128 at 12 fps:
    tiny-actions resizes it (full frame), the default preset crops its centre."""
    clip = make_clip(seed=1001, frames=24, size=(96, 128))
    path = folder / "shrink.mp4"
    with VideoWriter(path, fps=12, crf=12) as writer:
        writer.write_frames(clip.video)
    return path


def write_evaluation_clip(folder: Path):
    """A 16-frame 96 x 96 synthetic clip (the embedded model's own size: no resize) written
    losslessly as ``folder/clip.mp4``, its object's mask as ``folder/mask.npy``; returns
    (video, mask file, the clip)."""
    clip = make_clip(seed=1001, frames=16, size=(96, 96))
    video = folder / "clip.mp4"
    with VideoWriter(video, fps=12, crf=0) as writer:
        writer.write_frames(clip.video)
    np.save(folder / "mask.npy", clip.mask)
    return video, folder / "mask.npy", clip


def mapped(tube: np.ndarray, indices: list[int], preset: Preset, video: Path) -> np.ndarray:
    """The (F, H, W) tube of the clip sampled at ``indices``, on every source frame."""
    info = probe(video)
    mapper = TubeMapper(tube, info.timestamps[indices], preset.preprocess().geometry(info.size))
    return np.stack([mapper.frame(float(t)) for t in info.timestamps])
