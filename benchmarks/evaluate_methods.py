"""Every explanation method on the evaluation benchmark, side by side, with what each costs.

What runs: :func:`saliency_tubes.metrics.benchmark_run.run_benchmark` on the held-out synthetic
clips of ``benchmarks/evaluate_tubes.py`` (``make_dataset(seed=10000)``, the embedded
``tiny-actions`` model at 16x96x96, each clip's true class explained) for every method in
:data:`saliency_tubes.METHODS` (installed extras included; cubic splines where a method
upsamples) and the motion-energy baseline: pointing game, mass, IoU, deletion, insertion and
the cascading-randomisation sanity check. Then, per method, what one explanation of one
clip costs on this model: clip forwards counted by a forward pre-hook on the model (the
batch size of every call), and seconds (median of 5 calls, after a warm-up), one torch
thread.

Outputs: ``benchmarks/RESULTS_methods.md`` and the text between the ``methods-results``
markers of README.md (the Methods section's table of measured numbers).

Usage (from the repository root):
    .venv/bin/python benchmarks/evaluate_methods.py               # 40 clips, ~30 min here
    .venv/bin/python benchmarks/evaluate_methods.py --clips 8 --no-write
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import torch
from _machine import describe  # benchmarks/_machine.py (scripts run from this folder)
from evaluate_tubes import update_pages  # the same marker replacement

from saliency_tubes import METHODS
from saliency_tubes.commands import benchmark
from saliency_tubes.metrics.benchmark import BenchmarkConfig
from saliency_tubes.synthetic import make_dataset
from saliency_tubes.vocabulary import INPUT_METHODS
from saliency_tubes.zoo import load_model

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- methods-results:begin -->", "<!-- methods-results:end -->"


def costs(methods: list[str]) -> dict[str, tuple[int, float]]:
    """Per method: clip forwards and seconds (median of 5) to explain one held-out clip's
    true class on tiny-actions."""
    loaded = load_model("tiny-actions")
    preset = loaded.preset
    videos, _, labels = make_dataset(8, seed=10_000, frames=preset.frames, size=preset.size)
    clip = preset.preprocess()(videos[0])[None]
    target = [[int(labels[0])]]
    seen = [0]

    def count(_module: torch.nn.Module, args: tuple) -> None:
        first = args[0] if args else None
        seen[0] += int(first.shape[0]) if isinstance(first, torch.Tensor) else 1

    out: dict[str, tuple[int, float]] = {}
    for name in methods:
        explainer = loaded.explainer(name)
        explainer(clip, classes=target)  # warm-up; finds the layer (a traced forward)
        handle = loaded.model.register_forward_pre_hook(count)
        try:
            seen[0] = 0
            explainer(clip, classes=target)
            forwards = seen[0]
        finally:
            handle.remove()
        times = []
        for _ in range(5):
            started = time.perf_counter()
            explainer(clip, classes=target)
            times.append(time.perf_counter() - started)
        out[name] = (forwards, statistics.median(times))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", type=int, default=40, help="held-out clips (default 40)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--no-write", action="store_true", help="print only; write no files")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    # The captum methods (occlusion, integrated gradients) where their extra is installed.
    captum = importlib.util.find_spec("captum") is not None
    methods = [m for m in METHODS if captum or m not in INPUT_METHODS]
    config = BenchmarkConfig(
        clips=args.clips, methods=tuple(methods), interpolations=("cubic",), baselines=("motion",)
    )
    result = benchmark(config, show=True, on_stage=lambda m: print(f"- {m}", file=sys.stderr))
    table, versus = result.table(), result.versus_table()
    cost = costs(methods)
    names = {name: METHODS[name].__name__ for name in methods}
    cost_lines = [
        "| `--method` | class | clip forwards per explanation | seconds per clip (median of 5) |",
        "|---|---|---:|---:|",
        *(f"| `{m}` | `st.{names[m]}` | {cost[m][0]} | {cost[m][1]:.3f} |" for m in methods),
    ]
    total = time.perf_counter() - started
    n = int(result.labels.size)
    summary = (
        f"{n} held-out clips (`make_dataset(seed=10000)`, 16x96x96, {n // 8} per class) on "
        f"the embedded tiny-actions model, explained class = the true class (accuracy "
        f"{result.accuracy:.3f}); mean [95 % percentile-bootstrap interval over clips]; "
        f"deletion / insertion {config.protocol.steps} steps, blur substrate, 1 frame x 4 x 4 "
        "px cells; cubic splines where a method upsamples. Costs: one clip, its true class, "
        f"{args.threads} torch thread(s). Benchmark {result.seconds / 60:.1f} min, whole "
        f"script {total / 60:.1f} min ({datetime.date.today().isoformat()}). {describe()}"
    )
    block = f"{summary}\n\n{table}\n\n{versus}\n\n" + "\n".join(cost_lines)
    print(block)
    if args.no_write:
        return
    command = (
        f"`.venv/bin/python benchmarks/evaluate_methods.py --clips {args.clips} "
        f"--threads {args.threads}`"
    )
    (ROOT / "benchmarks" / "RESULTS_methods.md").write_text(
        f"# Every method on the evaluation benchmark\n\n{command}\n\n{block}\n", encoding="utf-8"
    )
    pages = update_pages(block, BEGIN, END)
    print(f"wrote benchmarks/RESULTS_methods.md, {', '.join(pages)} ({total / 60:.1f} min)")


if __name__ == "__main__":
    main()
