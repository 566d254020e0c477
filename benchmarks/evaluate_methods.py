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
markers of the pages (docs/methods.md: the Methods page's table of measured numbers).

The black-box methods (RISE, LIME, Kernel SHAP: about 1000 forwards per explanation and per
sanity step) are left out of that run; ``--blackbox`` measures them on fewer clips (8 by
default, one per class) beside CAM, occlusion and integrated gradients re-measured on the
same clips, into ``benchmarks/RESULTS_methods_blackbox.md`` and the ``methods-blackbox``
markers. The two tables hold different clips: compare rows within one table.

Usage (from the repository root):
    .venv/bin/python benchmarks/evaluate_methods.py               # 40 clips, ~30 min here
    .venv/bin/python benchmarks/evaluate_methods.py --clips 8 --no-write
    .venv/bin/python benchmarks/evaluate_methods.py --blackbox    # 8 clips: ~50 min idle
    .venv/bin/python benchmarks/evaluate_methods.py --blackbox --clips 4 --samples 500
        # what the docs' table holds: ~46 000 forwards, 40+ min on 2 busy shared cores
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import torch
from _machine import describe  # benchmarks/_machine.py (scripts run from this folder)
from evaluate_tubes import update_pages  # the same marker replacement

from saliency_tubes import METHODS
from saliency_tubes.commands import benchmark
from saliency_tubes.metrics.benchmark import BenchmarkConfig
from saliency_tubes.synthetic import make_dataset
from saliency_tubes.vocabulary import BLACKBOX_METHODS, INPUT_METHODS
from saliency_tubes.zoo import load_model

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- methods-results:begin -->", "<!-- methods-results:end -->"
BLACKBOX_BEGIN, BLACKBOX_END = "<!-- methods-blackbox:begin -->", "<!-- methods-blackbox:end -->"
BLACKBOX_REFERENCES = ("cam", "occlusion", "integrated-gradients")
"""Re-measured beside the black-box methods on the same clips (``--blackbox``)."""


def costs(methods: list[str], repeats: int = 5) -> dict[str, tuple[int, float]]:
    """Per method: clip forwards and seconds (median of ``repeats``) to explain one held-out
    clip's true class on tiny-actions."""
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
        for _ in range(repeats):
            started = time.perf_counter()
            explainer(clip, classes=target)
            times.append(time.perf_counter() - started)
        out[name] = (forwards, statistics.median(times))
    return out


def use_samples(count: int) -> None:
    """Run RISE with ``count`` masks and LIME / Kernel SHAP with ``count`` samples instead
    of their default 1000, in this process only: every explainer the benchmark builds comes
    from :data:`saliency_tubes.METHODS` (the benchmark, its sanity steps, its forward plan and
    :func:`costs`), so its entries are replaced by subclasses with that default."""
    for name, key in (("rise", "masks"), ("lime", "samples"), ("kernelshap", "samples")):
        base = METHODS[name]

        def init(self, *args, _base=base, _key=key, **options) -> None:  # noqa: ANN001
            options.setdefault(_key, count)
            _base.__init__(self, *args, **options)

        METHODS[name] = type(base.__name__, (base,), {"__init__": init})


def load() -> str:
    """The load average over 1, 5 and 15 minutes, as ``uptime`` says it."""
    return ", ".join(f"{v:.1f}" for v in os.getloadavg())


def settings(methods: list[str]) -> list[str]:
    """The black-box methods' settings as the benchmark runs them (``loaded.explainer``'s
    defaults), read off the explainers, one line each."""
    loaded = load_model("tiny-actions")
    preset = loaded.preset
    size = (preset.frames, *preset.size)
    lines = []
    for name in methods:
        e = loaded.explainer(name)
        if name == "rise":
            what = (
                f"{e.masks} masks on a {'x'.join(map(str, e.grid(size)))} (t x h x w) grid, "
                f"p = {e.p}, {e.substrate} substrate, {e.score} weights, seed {e.seed}"
            )
        else:
            segments = (
                f"SLIC (n_segments {e.n_segments}, compactness {e.compactness:g})"
                if e.segments == "slic"
                else f"a {e.segments} of cells {e.cells}"
            )
            extra = f", {e.surrogate} surrogate" if hasattr(e, "surrogate") else ""
            what = f"{e.samples} samples over {segments} supervoxels, seed {e.seed}{extra}"
        lines.append(f"`{name}` ({METHODS[name].__name__}): {what}")
    return lines


def arguments() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", type=int, help="held-out clips (default 40; 8 with --blackbox)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument(
        "--blackbox",
        action="store_true",
        help=f"{', '.join(BLACKBOX_METHODS)} beside {', '.join(BLACKBOX_REFERENCES)} "
        "(their own table and markers)",
    )
    p.add_argument(
        "--repeats", type=int, help="timed explanations per method (default 5; 3 with --blackbox)"
    )
    p.add_argument(
        "--samples",
        type=int,
        help="RISE's masks and LIME's / Kernel SHAP's samples (default: theirs, 1000)",
    )
    p.add_argument("--no-write", action="store_true", help="print only; write no files")
    args = p.parse_args()
    if args.clips is None:
        args.clips = 8 if args.blackbox else 40
    if args.repeats is None:
        args.repeats = 3 if args.blackbox else 5
    return args


def main() -> None:
    args = arguments()
    torch.set_num_threads(args.threads)
    if args.samples is not None:
        use_samples(args.samples)
    started = time.perf_counter()
    load_before = load()
    # The captum methods (occlusion, integrated gradients) where their extra is installed;
    # the black-box methods only with --blackbox.
    captum = importlib.util.find_spec("captum") is not None
    if args.blackbox:
        methods = [*BLACKBOX_REFERENCES, *BLACKBOX_METHODS]
    else:
        methods = [m for m in METHODS if captum or m not in INPUT_METHODS]
        methods = [m for m in methods if m not in BLACKBOX_METHODS]
    config = BenchmarkConfig(
        clips=args.clips, methods=tuple(methods), interpolations=("cubic",), baselines=("motion",)
    )
    result = benchmark(config, show=True, on_stage=lambda m: print(f"- {m}", file=sys.stderr))
    table, versus = result.table(), result.versus_table()
    cost = costs(methods, args.repeats)
    names = {name: METHODS[name].__name__ for name in methods}
    cost_lines = [
        "| `--method` | class | clip forwards per explanation "
        f"| seconds per clip (median of {args.repeats}) |",
        "|---|---|---:|---:|",
        *(f"| `{m}` | `st.{names[m]}` | {cost[m][0]} | {cost[m][1]:.3f} |" for m in methods),
    ]
    total = time.perf_counter() - started
    n = int(result.labels.size)
    counts = Counter(int(c) for c in result.labels.tolist())
    if len(set(counts.values())) == 1 and len(counts) == 8:
        classes = f"{n // 8} per class"
    else:
        classes = "classes " + ", ".join(f"{c}: {counts[c]}" for c in sorted(counts))
    summary = (
        f"{n} held-out clips (`make_dataset(seed=10000)`, 16x96x96, {classes}) on "
        f"the embedded tiny-actions model, explained class = the true class (accuracy "
        f"{result.accuracy:.3f}); mean [95 % percentile-bootstrap interval over clips]; "
        f"deletion / insertion {config.protocol.steps} steps, blur substrate, 1 frame x 4 x 4 "
        "px cells; cubic splines where a method upsamples. Costs: one clip, its true class, "
        f"{args.threads} torch thread(s). Benchmark {result.seconds / 60:.1f} min, whole "
        f"script {total / 60:.1f} min ({datetime.date.today().isoformat()}). {describe()}"
    )
    summary += f" Load average (1, 5, 15 min) at the start {load_before}, at the end {load()}."
    if args.blackbox:
        which = "the defaults" if args.samples is None else f"{args.samples} masks / samples"
        summary += (
            f" Black-box settings ({which}): "
            + "; ".join(settings([m for m in methods if m in BLACKBOX_METHODS]))
            + "."
        )
    block = f"{summary}\n\n{table}\n\n{versus}\n\n" + "\n".join(cost_lines)
    print(block)
    if args.no_write:
        return
    command = (
        f"`.venv/bin/python benchmarks/evaluate_methods.py --clips {args.clips} "
        f"--threads {args.threads}{' --blackbox' if args.blackbox else ''} "
        f"--repeats {args.repeats}"
        f"{'' if args.samples is None else f' --samples {args.samples}'}`"
    )
    name, title = ("RESULTS_methods.md", "Every method on the evaluation benchmark")
    markers = (BEGIN, END)
    if args.blackbox:
        name, title = ("RESULTS_methods_blackbox.md", "The black-box methods on the benchmark")
        markers = (BLACKBOX_BEGIN, BLACKBOX_END)
    (ROOT / "benchmarks" / name).write_text(f"# {title}\n\n{command}\n\n{block}\n", "utf-8")
    pages = update_pages(block, *markers)
    print(f"wrote benchmarks/{name}, {', '.join(pages)} ({total / 60:.1f} min)")


if __name__ == "__main__":
    main()
