"""Regenerate the README's demo figures from the offline demo.

Runs ``saliency-tubes demo`` into a temporary folder and writes ``docs/demo.gif`` (its
side-by-side GIF of the top class: original | heat | focus) and ``docs/demo_frames.png``
(that video's frames 0, 16, 32 and 47, stacked).

    python scripts/make_demo_figures.py
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from saliency_tubes.commands import run_demo
from saliency_tubes.video import read_frames

DOCS = Path(__file__).resolve().parents[1] / "docs"
FRAMES = [0, 16, 32, 47]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        result = run_demo(Path(tmp) / "demo", progress=False)
        top = result.tubes[0].name
        gif = Path(tmp) / "demo" / f"side_by_side_1_{top}.gif"
        shutil.copyfile(gif, DOCS / "demo.gif")
        frames = read_frames(Path(tmp) / "demo" / f"side_by_side_1_{top}.mp4", FRAMES)
        Image.fromarray(np.concatenate(list(frames), axis=0)).save(
            DOCS / "demo_frames.png", optimize=True
        )
    print(f"docs/demo.gif and docs/demo_frames.png: {top} p={result.tubes[0].score:.2f}")


if __name__ == "__main__":
    main()
