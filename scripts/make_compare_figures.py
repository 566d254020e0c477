#!/usr/bin/env python
"""Make the README pictures of the comparison commands from real runs, and print the numbers.

Runs, on the offline demo clip (``saliency_tubes.commands.demo``: seed 7, 48 frames, 224x224, kept
as lossless PNG frames) and,
when present, on ``../shared/videos/arm_wrestling.mp4``:

* ``compare_classes`` (top 3 classes of tiny-actions, contrast shrink vs grow, timeline),
* ``compare_models`` (tiny-actions and the 3D-ResNets / 3D-DenseNet-121 of the slides,
  random weights seeded with ``torch.manual_seed(0)``: no checkpoint can be downloaded
  here; pass real ones to the CLI with ``--weights NAME=PATH``),

then writes one frame of each output video, and the temporal plot, as small PNGs in
``docs/``, and prints the fraction of voxels above 0.5 and the spread per model.

Usage::

    .venv/bin/python scripts/make_compare_figures.py [--work /tmp/compare_figures]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from saliency_tubes.commands import CompareOptions, compare_classes, compare_models
from saliency_tubes.commands.demo import DEMO_FPS, DEMO_FRAMES, DEMO_SEED, DEMO_SIZE
from saliency_tubes.synthetic import make_clip
from saliency_tubes.video import VideoWriter, read_frames
from saliency_tubes.zoo import LoadedModel, load_model

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SHARED = ROOT.parent / "shared" / "videos"
MODELS = ("tiny-actions", "resnet3d-18", "resnet3d-50", "resnet3d-101", "densenet3d-121")


def save_frame(video: Path, index: int, out: Path, colors: int = 256) -> None:
    """Frame ``index`` of ``video`` as a palette PNG (small, for the README)."""
    frame = read_frames(video, [index])[0]
    image = Image.fromarray(frame).quantize(colors, method=Image.Quantize.MEDIANCUT)
    image.save(out, optimize=True)
    print(f"{out.relative_to(ROOT)}: {out.stat().st_size // 1024} KB")


def seeded_models(names: tuple[str, ...]) -> list[LoadedModel]:
    models: list[LoadedModel] = []
    for name in names:
        torch.manual_seed(0)
        models.append(load_model(name))
    return models


def numbers(manifest: dict[str, Any], label: str) -> None:
    print(f"\n{label}")
    print("| model | class (p) | fraction above 0.5 | spread (y, x) |")
    print("|---|---|---|---|")
    for row in manifest["summary"]:
        print(
            f"| {row['model']} | {row['class']} ({row['score']:.3f}) | "
            f"{row['fraction_above']:.3f} | {row['spread']:.3f} "
            f"({row['spread_y']:.3f}, {row['spread_x']:.3f}) |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/compare_figures"))
    args = parser.parse_args()
    work: Path = args.work
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    torch.set_num_threads(2)

    clip = make_clip(seed=DEMO_SEED, frames=DEMO_FRAMES, size=DEMO_SIZE)
    # A lossless PNG frame folder: H.264 encodes of the same frames are not bit-identical
    # from run to run here, and the numbers below should be reproducible.
    demo = work / "demo"
    with VideoWriter(demo, fps=DEMO_FPS) as writer:
        writer.write_frames(clip.video)
    print(f"demo clip: seed {DEMO_SEED}, true class {clip.name}")

    options = CompareOptions(
        classes="top3", contrast=("shrink", "grow"), timeline=True, progress=False
    )
    manifest = compare_classes(demo, work / "classes", load_model("tiny-actions"), options).manifest
    key = manifest["tubes"][0]["temporal"]["key_frames"]
    frame = key[0] if key else DEMO_FRAMES // 2
    print("classes:", [(c["name"], c["score"]) for c in manifest["classes"]], "key frames", key)
    save_frame(work / "classes" / "compare_classes.mp4", frame, DOCS / "compare_classes.png")
    save_frame(work / "classes" / "contrast_shrink_vs_grow.mp4", frame, DOCS / "contrast.png")
    shutil.copy(work / "classes" / "temporal.png", DOCS / "temporal.png")
    print(f"docs/temporal.png: {(DOCS / 'temporal.png').stat().st_size // 1024} KB")
    print("contrast:", json.dumps({k: manifest["contrast"][k] for k in ("scale", "stats")}))

    grid = CompareOptions(method="auto", cols=3, progress=False, formats=("mp4", "plot"))
    manifest = compare_models(demo, work / "models", seeded_models(MODELS), grid).manifest
    save_frame(work / "models" / "compare_models.mp4", frame, DOCS / "compare_models.png")
    numbers(manifest, f"demo clip ({DEMO_FRAMES} frames, {DEMO_SIZE[0]}x{DEMO_SIZE[1]})")

    real = SHARED / "arm_wrestling.mp4"
    if real.is_file():
        only = CompareOptions(method="auto", progress=False, formats=("npy",))
        manifest = compare_models(real, work / "real", seeded_models(MODELS), only).manifest
        numbers(manifest, "arm_wrestling.mp4 (280 frames, 256x340)")
    else:
        print(f"{real} is absent: skipped the real clip")


if __name__ == "__main__":
    main()
