"""Attention rollout and relevancy: seconds ÷ a plain forward, and peak memory.

For each model (by default ``videomae-base`` at its preset 16x224x224, 1568 tokens, random
weights: the cost does not depend on the weights), one clip, one class: a plain forward (``Explainer.logits``, no autograd), ``rollout`` (one
forward with the attention recorded), ``relevancy`` (one forward and one backward to the
embeddings) and ``gradcam`` (the project's default for transformers before), side by side:
the four alternate their order round by round so they see the same machine load. Reports
the median seconds, each ÷ the forward, and the load average.

Peak memory (``--memory``): each method runs once in a fresh process of its own. After the
model and the clip are built, the process returns freed heap to the system
(``malloc_trim``), reads its resident memory (the baseline) and resets the kernel's peak
(``/proc/self/clear_refs``: 5); after the one call it reads the peak resident memory
(``VmHWM``). The extra peak is the difference: what the method itself needed, torch's
allocator included (``tracemalloc`` would not see it). Each process also reports the
bytes of the attention probabilities one forward computes (every block's and the largest
one), to check the numbers against: a plain forward needs about the largest. ``--before
FILE`` adds the extra peaks of an earlier run (its JSON) beside the new ones:
``RESULTS_attention_memory_full_graph.json`` holds those of the relevancy that kept every
block's attention for one backward, before each block was recomputed in the backward.

    python benchmarks/bench_attention.py [--rounds 3 | --rounds 15,3] [--models videomae-base,hf:DIR]
    python benchmarks/bench_attention.py --memory [--repeat 3] [--before RESULTS_attention_memory_full_graph.json]
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import json
import os
import statistics
import subprocess
import sys
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


CONTROL_MB = 256
"""The memory run's control: a float32 tensor of this many MiB, filled, in the same window
(the extra peak must read about this)."""


def _status_mb(key: str) -> float:
    """VmRSS / VmHWM of this process in MB (Linux)."""
    with open("/proc/self/status", encoding="utf-8") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


def _attention_bytes(loaded: st.LoadedModel, clip: torch.Tensor) -> tuple[int, int]:
    """(all blocks', the largest block's) attention probability bytes of one forward."""
    from saliency_tubes.methods.attention_sites import AttentionRecorder, find_layout

    layout = find_layout(loaded.model)
    if layout is None:
        return 0, 0
    sizes: list[int] = []
    recorder = AttentionRecorder(lambda _s, p: sizes.append(p.numel() * p.element_size()))
    with recorder.watching(layout.sites):
        loaded.explainer("gradcam").logits(clip)
    return sum(sizes), max(sizes)


def child(name: str, method: str) -> dict:
    """One method once in this (fresh) process: its extra peak resident memory."""
    torch.set_num_threads(2)
    loaded = st.load_model(name)
    clip = _clip(loaded)
    if method == "maps":  # a process of its own: its forward must not warm the others
        every, largest = _attention_bytes(loaded, clip)
        return {
            "model": name,
            "method": method,
            "all_mb": every / 2**20,
            "largest_mb": largest / 2**20,
        }
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    baseline = _status_mb("VmRSS")
    with open("/proc/self/clear_refs", "w", encoding="utf-8") as f:
        f.write("5")  # the peak resident memory starts again from the current one
    if method == "control":
        began = time.perf_counter()
        block = torch.ones(CONTROL_MB * 2**18)
        seconds = time.perf_counter() - began
        del block
    else:
        seconds = _time(loaded, method, clip)
    peak = _status_mb("VmHWM")
    return {
        "model": name,
        "method": method,
        "baseline_mb": baseline,
        "peak_mb": peak,
        "extra_mb": peak - baseline,
        "seconds": seconds,
        "load": os.getloadavg()[0],
    }


def memory(name: str, repeat: int) -> list[dict]:
    """Each method ``repeat`` times (round after round), each time in a fresh process: a
    row per method with the median run and every run's extra peak; the maps once."""
    runs: dict[str, list[dict]] = {}
    for r in range(repeat):
        for method in ("control", *METHODS) + (("maps",) if r == 0 else ()):
            out = subprocess.run(
                [sys.executable, __file__, "--child", name, method],
                check=True,
                capture_output=True,
                text=True,
                cwd=HERE,
            )
            runs.setdefault(method, []).append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(json.dumps(runs[method][-1]), flush=True)
    rows = []
    for method, done in runs.items():
        if method == "maps":
            rows.append(done[0])
            continue
        extras = [r["extra_mb"] for r in done]
        row = dict(sorted(done, key=lambda r: r["extra_mb"])[len(done) // 2])
        row["extra_mb"] = statistics.median(extras)
        row["extra_runs_mb"] = extras
        rows.append(row)
    return rows


def write_memory(rows: list[dict], path: Path, before: Path | None = None, repeat: int = 1) -> None:
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    earlier: dict[tuple[str, str], float] = {}
    if before is not None:
        earlier = {
            (r["model"], r["method"]): r["extra_mb"]
            for r in json.loads(before.read_text())
            if "extra_mb" in r
        }
    lines = [
        "# Attention rollout and relevancy: peak memory",
        "",
        f"Measured {when} by `benchmarks/bench_attention.py --memory`. {describe()}",
        f"2 torch threads. Each method {repeat} time(s), each in a fresh process: extra peak = peak resident",
        "memory during the call (VmHWM, reset with /proc/self/clear_refs after the model",
        "and the clip were built and the heap trimmed) minus the resident memory then.",
        "Attention maps: the bytes of every block's attention probabilities in one forward",
        "(float32), all blocks together and the largest block's.",
        "",
        f"Before: the extra peak of the same model and method in `{before.name}`."
        if before is not None
        else "",
        "",
        "| model | method | baseline MiB | extra peak MiB (median) | every run | before MiB | s | load |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["method"] != "maps":
            old = earlier.get((r["model"], r["method"]))
            lines.append(
                f"| {r['model']} | {r['method']} | {r['baseline_mb']:.0f} | {r['extra_mb']:.0f} | "
                f"{', '.join(f'{x:.0f}' for x in r.get('extra_runs_mb', [r['extra_mb']]))} | "
                f"{'' if old is None else f'{old:.0f}'} | {r['seconds']:.1f} | {r['load']:.1f} |"
            )
    lines += [
        "",
        "| model | attention maps, all blocks (MiB) | largest block (MiB) |",
        "|---|---|---|",
    ]
    for r in rows:
        if r["method"] == "maps":
            lines.append(f"| {r['model']} | {r['all_mb']:.0f} | {r['largest_mb']:.0f} |")
    path.write_text("\n".join(lines) + "\n")
    path.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")


def write(results: list[dict], path: Path) -> None:
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Attention rollout and relevancy: cost ÷ a plain forward",
        "",
        f"Measured {when} by `benchmarks/bench_attention.py`. {describe()} 2 torch threads.",
        "One clip, one class; medians over the rounds (the methods alternate their order",
        "round by round). Peak memory: `--memory` (RESULTS_attention_memory.md).",
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
    parser.add_argument(
        "--rounds", default="3", help="rounds per model, in the models' order (one: all)"
    )
    parser.add_argument("--models", default="videomae-base")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS_attention.md")
    parser.add_argument("--memory", action="store_true", help="peak memory instead of time")
    parser.add_argument("--repeat", type=int, default=1, help="--memory: fresh runs per method")
    parser.add_argument(
        "--before", type=Path, help="an earlier --memory run's JSON, shown beside the new one"
    )
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    if args.memory:
        rows = [row for name in args.models.split(",") for row in memory(name, args.repeat)]
        out = args.out.with_name("RESULTS_attention_memory.md")
        write_memory(rows, out, args.before, args.repeat)
        print(out.read_text())
        return
    names = args.models.split(",")
    rounds = [int(r) for r in args.rounds.split(",")]
    rounds += rounds[-1:] * (len(names) - len(rounds))  # one number: every model's
    results = [bench(name, r) for name, r in zip(names, rounds, strict=False)]
    write(results, args.out)
    print(args.out.read_text())


if __name__ == "__main__":
    main()
