"""The evaluation rows of the attention methods on the shipped transformer (issue 22).

What runs: :func:`saliency_tubes.metrics.score_rows` (what ``saliency-tubes evaluate VIDEO
--gt MASK`` computes for one clip) on ``--clips`` held-out colour clips
(``make_colour_dataset(n, seed=10000)`` at the model's 16x64x64: neither its training seeds
nor its validation seed 2000), each clip's true class explained, for ``relevancy``,
``rollout`` and ``gradcam`` on ``tiny-colours-vit`` and the uniform and centre baselines;
then ``gradcam`` and ``cam`` on the colour CNN ``tiny-colours`` on the same clips, for
comparison. Pointing game, mass, IoU top-|G|, deletion and insertion AUC (voxel cells,
blur substrate, 16 steps: the project's :class:`~saliency_tubes.metrics.benchmark.Protocol`
defaults) and the sanity check at its two ends (top layer random, all random: the project's
block cascade), mean with a 95 % percentile-bootstrap interval over clips, and seconds per
clip (all of a row's scoring, load included).

Writes ``benchmarks/RESULTS_vit_evaluation.md`` (with the load average) and prints it.

Usage (from the repository root):
    .venv/bin/python benchmarks/evaluate_vit.py --clips 24
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _machine import describe  # benchmarks/_machine.py (scripts run from this folder)

from saliency_tubes.metrics.benchmark import Protocol
from saliency_tubes.metrics.scoring import score_rows
from saliency_tubes.metrics.stats import bootstrap_mean
from saliency_tubes.synthetic_colours import make_colour_dataset
from saliency_tubes.zoo import load_model

HERE = Path(__file__).resolve().parent
OUT = HERE / "RESULTS_vit_evaluation.md"
SEED = 10_000
RUNS = (
    ("tiny-colours-vit", ("relevancy", "rollout", "gradcam"), ("uniform", "centre")),
    ("tiny-colours", ("gradcam", "cam"), ()),
)
COLUMNS = ("pointing", "mass", "iou", "deletion", "insertion", "sanity_top", "sanity_all")


def run(model: str, methods: tuple[str, ...], baselines: tuple[str, ...], n: int) -> dict:
    loaded = load_model(model)
    prep = loaded.preset.preprocess()
    videos, masks, labels = make_colour_dataset(
        n, seed=SEED, frames=loaded.preset.frames, size=loaded.preset.size
    )
    protocol = Protocol()
    rows: dict[str, dict[str, list[float]]] = {}
    seconds: dict[str, float] = {}
    correct = 0
    for i in range(n):
        clip = prep(videos[i])[None]
        with torch.no_grad():
            correct += int(loaded.model(clip).argmax(1)[0]) == int(labels[i])
        for name in (*methods, *(f"baseline/{b}" for b in baselines)):
            is_base = name.startswith("baseline/")
            started = time.perf_counter()
            scores = score_rows(
                loaded, clip, torch.from_numpy(masks[i]), int(labels[i]),
                methods=() if is_base else (name,), interpolation="cubic",
                baselines=(name.split("/", 1)[1],) if is_base else (), units=("voxel",),
                protocol=protocol, cascade="ends",
            )  # fmt: skip
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started
            (row,) = scores.tubes.values()
            values = {k: row.get(k) for k in COLUMNS[:5]}
            sanity = row["sanity"]
            values["sanity_top"], values["sanity_all"] = sanity[1], sanity[-1]
            for k, v in values.items():
                rows.setdefault(name, {}).setdefault(k, []).append(
                    float("nan") if v is None else float(v)
                )
        print(f"{model}: clip {i + 1}/{n}", flush=True)
    return {"rows": rows, "seconds": seconds, "accuracy": correct / n, "layers": scores.layers}


def table(model: str, found: dict, n: int) -> list[str]:
    lines = [
        f"**{model}** (accuracy on these clips {found['accuracy']:.3f}; sanity cascade "
        f"{', '.join(found['layers'])})",
        "",
        "| tube | pointing ↑ | mass ↑ | IoU top-\\|G\\| ↑ | deletion ↓ | insertion ↑ | sanity ρ "
        "top random ↓ | sanity ρ all random ↓ | s / clip |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, cols in found["rows"].items():
        cells = []
        for k in COLUMNS:
            est = bootstrap_mean(np.array(cols[k]))
            cells.append(f"{est.mean:.3f} [{est.low:.3f}, {est.high:.3f}]")
        per = found["seconds"][name] / n
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {per:.1f} |")
    return lines + [""]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", type=int, default=24)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    lines: list[str] = []
    for model, methods, baselines in RUNS:
        lines += table(model, run(model, methods, baselines, args.clips), args.clips)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    head = [
        "# Evaluation rows of the attention methods on tiny-colours-vit",
        "",
        f"Written by `benchmarks/evaluate_vit.py` on {stamp}: {args.clips} held-out colour "
        f"clips (`make_colour_dataset(n, seed={SEED})`, 16x64x64), true class explained; mean "
        "[95 % percentile-bootstrap interval over clips]; deletion / insertion on voxel cells, "
        f"blur substrate, 16 steps. {describe()} {args.threads} torch threads; load average "
        f"{load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end; "
        f"{(time.perf_counter() - started) / 60:.1f} min in all.",
        "",
    ]
    text = "\n".join(head + lines)
    print(text)
    if not args.no_write:
        OUT.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
