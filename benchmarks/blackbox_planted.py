"""Planted evidence for the black-box methods (issue 23): RISE, LIME and Kernel SHAP at
their default settings on the colour task.

What runs: the trained colour model of the tests (``tests/data/tiny_colours.safetensors``,
``TinyActionNet(motion=False)``, validation accuracy 0.9974) on the twelve colour clips of
the tests (``make_colour_clip(seed=s, frames=16, size=(64, 64))``, s = 0..11, not chosen:
one coloured target among 2-5 grey look-alikes, only its hue tells the class). Each clip's
true class is explained with the method's defaults, one clip per call. A frame counts as
on the object when the centre of its maximum (the mean position of the voxels at the
frame's maximum: a supervoxel's tube is flat on the supervoxel) lies on the object dilated
by 0, 4 or 8 px (the tests' tolerances: none, half and one cell of the 8 x 8 layer grid of
a 64 x 64 frame).

Each clip's record is appended to ``benchmarks/RESULTS_blackbox_planted.jsonl`` as it
finishes (with the load average), so that a long run on a busy machine leaves what it
measured; ``--summary`` writes ``benchmarks/RESULTS_blackbox.md`` from that file.

Usage (from the repository root):
    .venv/bin/python benchmarks/blackbox_planted.py rise lime kernelshap
    .venv/bin/python benchmarks/blackbox_planted.py --summary
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _machine import describe  # benchmarks/_machine.py (scripts run from this folder)
from scipy.ndimage import binary_dilation

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
LOG = HERE / "RESULTS_blackbox_planted.jsonl"
OUT = HERE / "RESULTS_blackbox.md"


def plateau_centres(maps: np.ndarray, near: np.ndarray) -> np.ndarray:
    """(T,) bool: whether the centre of each frame's maximum lies in ``near``."""
    hits = np.zeros(maps.shape[0], dtype=bool)
    for t, frame in enumerate(maps):
        ys, xs = np.nonzero(frame >= frame.max())
        hits[t] = near[t, int(round(ys.mean())), int(round(xs.mean()))]
    return hits


def run(methods: list[str], seeds: list[int]) -> None:
    from _colour_model import colour_preprocess, load_colour_model
    from saliency_tubes.hooks import counted_forwards
    from saliency_tubes.synthetic_colours import make_colour_clip

    loaded = load_colour_model()
    preprocess = colour_preprocess()
    cross = np.ones((1, 3, 3), dtype=bool)
    explainers = {method: loaded.explainer(method) for method in methods}
    for seed in seeds:  # clip-major: a run cut short has every method on its first clips
        for method, explainer in explainers.items():
            clip = make_colour_clip(seed=seed, frames=16, size=(64, 64))
            x = preprocess(clip.video)[None]
            start = time.perf_counter()
            with counted_forwards(loaded.model) as counted:
                tubes = explainer(x, classes=[[clip.label]])
            seconds = time.perf_counter() - start
            maps = tubes.maps[0, 0].numpy()
            record = {
                "method": method,
                "seed": seed,
                "forwards": counted[0],
                "seconds": round(seconds, 2),
                "load": [round(v, 2) for v in os.getloadavg()],
                "torch_threads": torch.get_num_threads(),
                "right": int(tubes.logits.argmax(1)[0]) == clip.label,
            }
            for d in (0, 4, 8):
                near = binary_dilation(clip.mask, cross, iterations=d) if d else clip.mask
                record[f"hits_{d}px"] = int(plateau_centres(maps, near).sum())
            record["frames"] = int(maps.shape[0])
            with LOG.open("a") as f:
                f.write(json.dumps(record) + "\n")
            print(json.dumps(record), flush=True)


def summary() -> None:
    rows = [json.loads(line) for line in LOG.read_text().splitlines() if line.strip()]
    lines = [
        "# Black-box methods: planted evidence on the colour task",
        "",
        f"Written {datetime.date.today()} by `benchmarks/blackbox_planted.py --summary` from "
        f"`RESULTS_blackbox_planted.jsonl` (every clip's record, with the load average).",
        describe(),
        "",
        "Default settings, the twelve colour clips (seeds 0-11), each clip's true class. "
        "Frames whose maximum's centre lies on the coloured object, undilated / dilated 4 px / "
        "8 px (of 16 per clip); forwards counted on the model; seconds per clip on a shared "
        "machine (load average beside them: compare none across loads).",
        "",
        "| method | clips | on object (0 px) | (4 px) | (8 px) | forwards / clip | s / clip (median) | load (1 min) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for method in dict.fromkeys(r["method"] for r in rows):
        got = [r for r in rows if r["method"] == method]
        frames = sum(r["frames"] for r in got)
        share = {d: sum(r[f"hits_{d}px"] for r in got) / frames for d in (0, 4, 8)}
        seconds = float(np.median([r["seconds"] for r in got]))
        loads = [r["load"][0] for r in got]
        lines.append(
            f"| {method} | {len(got)} | {share[0]:.3f} | {share[4]:.3f} | {share[8]:.3f} | "
            f"{got[0]['forwards']} | {seconds:.1f} | {min(loads):.1f}-{max(loads):.1f} |"
        )
    lines += ["", "Per clip (frames on the object dilated 4 px, of 16):", ""]
    for method in dict.fromkeys(r["method"] for r in rows):
        got = [r for r in rows if r["method"] == method]
        lines.append(f"- {method}: " + ", ".join(f"seed {r['seed']}: {r['hits_4px']}" for r in got))
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _seeds(text: str) -> list[int]:
    if "-" in text:
        low, high = text.split("-")
        return list(range(int(low), int(high) + 1))
    return [int(s) for s in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("methods", nargs="*", default=[])
    parser.add_argument("--seeds", default="0-11", help="clips, e.g. 0-11 or 0,3,5")
    parser.add_argument("--summary", action="store_true")
    args = parser.parse_args()
    if args.methods:
        run(args.methods, _seeds(args.seeds))
    if args.summary:
        summary()


if __name__ == "__main__":
    main()
