"""``demo``: a generated clip explained by the embedded model, offline."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..synthetic import CLASSES, make_clip
from ..video import VideoWriter, atomic_save_npy
from ..zoo import DEFAULT_MODEL, load_model
from .explain import explain_video
from .options import ExplainOptions
from .result import CommandResult

DEMO_SEED = 7
DEMO_FRAMES = 48
DEMO_SIZE = (224, 224)
DEMO_FPS = 16


def run_demo(
    out_dir: str | Path = "demo_out",
    *,
    seed: int = DEMO_SEED,
    label: int | None = None,
    classes: str = "top2",
    method: str = "cam",
    formats: tuple[str, ...] = ("mp4", "gif", "npy"),
    progress: bool = True,
    on_stage: Callable[[str], None] | None = None,
) -> CommandResult:
    """Generate a synthetic action clip, explain it with the embedded model, write videos.

    Writes ``input.mp4`` (the generated clip), ``input_mask.npy`` (the target object's
    ground-truth mask, (T, H, W) bool), and the heat, focus and side-by-side videos of
    :func:`~saliency_tubes.commands.explain_video` for the top classes; returns its result
    (the manifest records the seed and the true class under ``demo``).
    """
    out = Path(out_dir)
    clip = make_clip(label, seed=seed, frames=DEMO_FRAMES, size=DEMO_SIZE)
    out.mkdir(parents=True, exist_ok=True)
    source = out / "input.mp4"
    with VideoWriter(source, fps=DEMO_FPS, crf=12) as writer:
        for image in clip.video:
            writer.write(np.ascontiguousarray(image))
    atomic_save_npy(out / "input_mask.npy", clip.mask)
    loaded = load_model(DEFAULT_MODEL)
    options = ExplainOptions(method=method, classes=classes, formats=formats, progress=progress)
    demo = {
        "seed": seed,
        "true_class": CLASSES[clip.label],
        "input": "input.mp4",
        "mask": "input_mask.npy",
    }
    return explain_video(
        source, out, loaded, options, manifest_extra={"demo": demo}, on_stage=on_stage
    )
