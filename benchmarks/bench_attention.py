"""Attention rollout and relevancy: seconds ÷ a plain forward, and peak memory.

For each model (by default ``videomae-base`` at its preset 16x224x224, 1568 tokens, random
weights: the cost does not depend on the weights), one clip, one class: a plain forward (``Explainer.logits``, no autograd), ``rollout`` (one
forward with the attention recorded), ``relevancy`` (one forward and one backward to the
embeddings) and ``gradcam`` (the project's default for transformers before), side by side:
the four alternate their order round by round so they see the same machine load. Reports
the median seconds, each ÷ the forward, and the load average.

Peak memory is not measured here (a first try, ``ru_maxrss`` of a fresh process after a
warm-up forward, read 0 extra MB for every method: the warm-up's own peak hid the rest).

    python benchmarks/bench_attention.py [--rounds 3] [--models videomae-base,hf:DIR]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import time
from pathlib import Path

import torch
from _machine import describe  # benchmarks/_machine.py (scripts run from this folder)

import saliency_tubes as st

HERE = Path(__file__).resolve().parent
METHODS = ("forward", "rollout", "relevancy", "gradcam")


def _clip(loaded: st.LoadedModel) -> torch.Tensor:
    p = loaded.preset
    return torch.randn(1, 3, p.frames, *p.size, generator=torch.Generator().manual_seed(0))


def _time(loaded: st.LoadedModel, method: str, clip: torch.Tensor) -> float:
    explainer = loaded.explainer("gradcam" if method == "forward" else method)
    began = time.perf_counter()
    if method == "forward":
        explainer.logits(clip)
    else:
        explainer(clip, classes="top1")
    return time.perf_counter() - began


def bench(name: str, rounds: int) -> dict:
    torch.set_num_threads(2)
    loaded = st.load_model(name)
    clip = _clip(loaded)
    for method in METHODS:  # warm-up: the first call finds layers and allocates
        _time(loaded, method, clip)
    seconds: dict[str, list[float]] = {m: [] for m in METHODS}
    loads = []
    for r in range(rounds):
        loads.append(os.getloadavg()[0])
        order = METHODS[r % len(METHODS) :] + METHODS[: r % len(METHODS)]
        for method in order:
            seconds[method].append(_time(loaded, method, clip))
    median = {m: statistics.median(s) for m, s in seconds.items()}
    return {
        "model": name,
        "clip": [loaded.preset.frames, *loaded.preset.size],
        "seconds": seconds,
        "median_s": median,
        "ratio_to_forward": {m: median[m] / median["forward"] for m in METHODS},
        "load": loads,
    }


def write(results: list[dict], path: Path) -> None:
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Attention rollout and relevancy: cost ÷ a plain forward",
        "",
        f"Measured {when} by `benchmarks/bench_attention.py`. {describe()} 2 torch threads.",
        "One clip, one class; medians over the rounds (the methods alternate their order",
        "round by round). Peak memory: not measured.",
        "",
        "| model | clip | method | median s | ÷ forward | every run (s) |",
        "|---|---|---|---|---|---|",
    ]
    for res in results:
        clip = "x".join(map(str, res["clip"]))
        for m in METHODS:
            runs = ", ".join(f"{s:.3f}" for s in res["seconds"][m])
            lines.append(
                f"| {res['model']} | {clip} | {m} | {res['median_s'][m]:.3f} | "
                f"{res['ratio_to_forward'][m]:.2f} | {runs} |"
            )
    loads = "; ".join(f"{r['model']}: {', '.join(f'{x:.1f}' for x in r['load'])}" for r in results)
    lines += ["", f"Load average (1 min) before each round: {loads}.", ""]
    path.write_text("\n".join(lines))
    (path.with_suffix(".json")).write_text(json.dumps(results, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", default="videomae-base")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS_attention.md")
    args = parser.parse_args()
    results = [bench(name, args.rounds) for name in args.models.split(",")]
    write(results, args.out)
    print(args.out.read_text())


if __name__ == "__main__":
    main()
