"""How often LIME's tube is all zero on the black-box benchmark's clips.

What runs: LIME (captum's default Lasso surrogate) at 500 samples, the settings of the
black-box table in docs/methods.md (``evaluate_methods.py --blackbox --clips 4 --samples
500``), on the same 4 held-out clips (``make_dataset(4, seed=10000)``), each clip's true
class, with the trained tiny-actions model and with its classifier re-initialised (the
sanity cascade's first step). A tube is all zero when the Lasso keeps no positive
coefficient. Prints and writes ``benchmarks/RESULTS_blackbox_lime_zeros.md``.

Usage (from the repository root):
    .venv/bin/python benchmarks/blackbox_lime_zeros.py     # ~2 min here
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import torch
from _machine import describe  # benchmarks/_machine.py (scripts run from this folder)

import saliency_tubes as st
from saliency_tubes.synthetic import make_dataset
from saliency_tubes.zoo import load_model

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    torch.set_num_threads(1)
    load_before = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    loaded = load_model("tiny-actions")
    preset = loaded.preset
    videos, _, labels = make_dataset(4, seed=10_000, frames=preset.frames, size=preset.size)
    clips = torch.stack([preset.preprocess()(v) for v in videos])
    random_head = copy.deepcopy(loaded.model)
    torch.manual_seed(0)
    for module in random_head.modules():
        if isinstance(module, torch.nn.Linear):
            module.reset_parameters()
    lines = ["| model | clip | class | voxels > 0 |", "|---|---:|---:|---:|"]
    zeros = {}
    for name, model in (("trained", loaded.model), ("classifier random", random_head)):
        explainer = st.Lime(model, samples=500)
        zeros[name] = 0
        for i in range(len(labels)):
            tube = explainer(clips[i : i + 1], classes=[[int(labels[i])]]).maps[0, 0]
            positive = float((tube > 0).float().mean())
            zeros[name] += positive == 0
            lines.append(f"| {name} | {i} | {int(labels[i])} | {positive:.4f} |")
            print(lines[-1], flush=True)
    load_after = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    summary = (
        f"All-zero LIME tubes (500 samples, captum's Lasso): {zeros['trained']} of 4 clips "
        f"with the trained model, {zeros['classifier random']} of 4 with a random classifier. "
        f"Load average at the start {load_before}, at the end {load_after}. {describe()}"
    )
    print(summary)
    text = "\n".join(lines)
    (ROOT / "benchmarks" / "RESULTS_blackbox_lime_zeros.md").write_text(
        "# LIME's all-zero tubes on the black-box benchmark's clips\n\n"
        f"`.venv/bin/python benchmarks/blackbox_lime_zeros.py`\n\n{summary}\n\n{text}\n",
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
