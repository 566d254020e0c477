"""``demo``: a generated clip explained by the embedded model, offline."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..synthetic import CLASSES, SyntheticClip, make_clip
from ..synthetic_colours import make_colour_clip
from ..video import VideoWriter, atomic_save_npy
from ..zoo import DEFAULT_MODEL, load_model
from .explain import explain_video
from .options import ExplainOptions
from .pipeline.result import CommandResult

DEMO_SEED = 7
DEMO_FRAMES = 48
DEMO_SIZE = (224, 224)
DEMO_FPS = 16
DEMO_MODELS: dict[str, str] = {
    DEFAULT_MODEL: "motion",
    "tiny-colours": "colour",
    "tiny-colours-vit": "colour",
    "tiny-colours-mvit": "colour",
}
"""The shipped models the demo can show, and the synthetic task each knows."""


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
    model: str = DEFAULT_MODEL,
) -> CommandResult:
    """Generate a synthetic action clip, explain it with the embedded model, write videos.

    Writes ``input.mp4`` (the generated clip), ``input_mask.npy`` (the target object's
    ground-truth mask, (T, H, W) bool), and the heat, focus and side-by-side videos of
    :func:`~saliency_tubes.commands.explain_video` for the top classes; returns its result
    (the manifest records the seed and the true class under ``demo``). The options are
    checked first; if the run fails, the folder is left as it was (an earlier demo's
    inputs are put back). ``model`` is one of :data:`DEMO_MODELS`: the colour CNN gets a
    synthetic colour clip.
    """
    if model not in DEMO_MODELS:
        raise InputError(
            f"expected the demo's model to be one of {', '.join(DEMO_MODELS)} (the shipped "
            f"models), but got {model!r}; explain other models with `saliency-tubes explain`"
        )
    options = ExplainOptions(method=method, classes=classes, formats=formats, progress=progress)
    out = Path(out_dir)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    inputs = [out / "input.mp4", out / "input_mask.npy"]
    aside = Path(tempfile.mkdtemp(prefix=".saliency-tubes-demo-", dir=out))
    kept: list[Path] = []
    try:
        for path in inputs:  # an earlier demo's inputs, put back if this one fails
            if path.exists():
                os.replace(path, aside / path.name)
                kept.append(path)
        clip = _demo_clip(DEMO_MODELS[model], label, seed)
        with VideoWriter(inputs[0], fps=DEMO_FPS, crf=12) as writer:
            for image in clip.video:
                writer.write(np.ascontiguousarray(image))
        atomic_save_npy(inputs[1], clip.mask)
        demo = {
            "seed": seed,
            "true_class": clip.name,
            "input": "input.mp4",
            "mask": "input_mask.npy",
        }
        result = explain_video(
            inputs[0],
            out,
            load_model(model),
            options,
            manifest_extra={"demo": demo},
            on_stage=on_stage,
        )
    except BaseException:
        for path in inputs:
            if path not in kept or (aside / path.name).exists():
                path.unlink(missing_ok=True)
        for path in kept:
            if (aside / path.name).exists():
                os.replace(aside / path.name, path)
        shutil.rmtree(aside, ignore_errors=True)
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    shutil.rmtree(aside, ignore_errors=True)
    return result


def _demo_clip(task: str, label: int | None, seed: int) -> SyntheticClip:
    if task == "colour":
        return make_colour_clip(label, seed=seed, frames=DEMO_FRAMES, size=DEMO_SIZE)
    return make_clip(label, seed=seed, frames=DEMO_FRAMES, size=DEMO_SIZE)


#: Videos of the demo dataset, and the seed of its first one.
DATASET_VIDEOS = 8
DATASET_SEED = 5000


def write_demo_dataset(
    folder: str | Path, videos: int = DATASET_VIDEOS, seed: int = DATASET_SEED
) -> Path:
    """Generate ``videos`` labelled synthetic clips with their ground-truth masks into
    ``folder`` and the table that lists them (``labels.csv``: ``path``, ``label``, ``gt``);
    return the table's path. The clips are held out from the embedded model's training
    (seeds from 5000)."""
    import csv

    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for k in range(videos):
        clip = make_clip(k % len(CLASSES), seed=seed + k, frames=32, size=(128, 160))
        name = f"clip_{k:02d}_{clip.name}"
        with VideoWriter(root / f"{name}.mp4", fps=DEMO_FPS, crf=12) as writer:
            for image in clip.video:
                writer.write(np.ascontiguousarray(image))
        atomic_save_npy(root / f"{name}_mask.npy", clip.mask)
        rows.append({"path": f"{name}.mp4", "label": clip.name, "gt": f"{name}_mask.npy"})
    table = root / "labels.csv"
    with table.open("w", newline="", encoding="utf-8") as fh:
        writer_ = csv.DictWriter(fh, fieldnames=["path", "label", "gt"])
        writer_.writeheader()
        writer_.writerows(rows)
    return table
