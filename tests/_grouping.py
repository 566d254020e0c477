"""What the tests of batch's groups (test_groups.py) and decoders (test_decoders.py) share:
a worker writing ``.npy`` tubes, the jobs of some videos in groups, the tube a video gets
from ``explain`` alone, and how far a grouped tube may be from it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from saliency_tubes.commands import (
    BatchSettings,
    ExplainOptions,
    ModelOptions,
    explain_video,
)
from saliency_tubes.commands.batch.groups import Job
from saliency_tubes.commands.batch.inputs import Item, video_id
from saliency_tubes.commands.batch.worker import VideoWorker

# A clip's convolutions in a batch of several may add in another order than alone: the raw
# maps then differ in the last bits of float32 (5.96e-7 measured on arm_wrestling.mp4 with
# tiny-actions on an Intel Xeon). Tubes are normalised to [0, 1]: 1e-6 of their range.
TOLERANCE = 1e-6


def npy_worker(out: Path, loaded: Any, **explain: Any) -> VideoWorker:
    """A batch's worker on ``loaded`` writing only tubes under ``out/videos`` (1 thread)."""
    options = ExplainOptions(formats=("npy",), progress=False, **explain)
    settings = BatchSettings(ModelOptions(), options, out / "videos", threads=1)
    return VideoWorker(settings, loaded)


def grouped_jobs(paths: list[Path], size: int) -> tuple[int, Iterator[list[Job]]]:
    """The videos' jobs (index, item, fingerprint) in groups of ``size``, and their count."""
    jobs = [(i, Item(p.resolve(), video_id(p.name)), f"print-{i}") for i, p in enumerate(paths)]
    return len(jobs), iter([jobs[i : i + size] for i in range(0, len(jobs), size)])


def explained_alone(path: Path, out: Path, loaded: Any, **explain: Any) -> tuple[np.ndarray, dict]:
    """``explain``'s tube and manifest for one video (``.npy`` only)."""
    options = ExplainOptions(formats=("npy",), progress=False, **explain)
    result = explain_video(path, out, loaded, options)
    return np.load(result.files["npy"][0]), result.manifest
