"""Two threads explaining two models at once, against one thread explaining one model.

Model: the Hara-layout 3D-ResNet-18 at 50 classes (random weights, eval mode), one copy per
thread; input 1 x 3 x 8 x 112 x 112; method Grad-CAM; torch intra-op threads set to 1, so
each explanation uses one core. A round times, side by side:

- ``one``: one thread explains ``--clips`` clips with model A;
- ``two``: two threads, each explains ``--clips`` clips with its own model (A, B) at once;
- ``two, one lock``: the same two threads with ``hooks.model_lock`` replaced by one global
  re-entrant lock (what the library did before the lock per model), for reference;
- ``forward one`` / ``forward two``: the same with a plain ``torch.no_grad`` forward in
  place of the explanation (no lock at all): the machine's own ceiling, ``forward two /
  forward one``, which a busy machine without two free cores pushes towards 2.

The ratio ``two / one`` is near 1 when the two models explain in parallel (it needs two
free cores) and near 2 when they take turns. Medians over rounds.

Usage: python benchmarks/bench_model_lock.py [--rounds 5] [--clips 4]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable

import torch
from _machine import describe  # benchmarks/_machine.py (scripts run from this folder)

import saliency_tubes as st
from saliency_tubes import hooks
from saliency_tubes.zoo.nets.resnet3d import resnet3d


def _explain_all(model: torch.nn.Module, clips: list[torch.Tensor]) -> None:
    explainer = st.GradCAM(model)
    for clip in clips:
        explainer(clip, classes="top1")


def _forward_all(model: torch.nn.Module, clips: list[torch.Tensor]) -> None:
    with torch.no_grad():
        for clip in clips:
            model(clip)


def _threads(
    models: list[torch.nn.Module],
    clips: list[torch.Tensor],
    work: Callable[[torch.nn.Module, list[torch.Tensor]], None] = _explain_all,
) -> float:
    workers = [threading.Thread(target=work, args=(m, clips)) for m in models]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clips", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    models = [resnet3d(18, num_classes=50).eval() for _ in range(2)]
    gen = torch.Generator().manual_seed(0)
    clips = [torch.randn(1, 3, 8, 112, 112, generator=gen) for _ in range(args.clips)]
    _threads(models, clips[:1])  # warm-up: layer discovery, allocator
    per_lock = hooks.model_lock
    one_lock = hooks.ModelLock((hooks._Lock(-1),))  # noqa: SLF001 (the reference only)
    names = ["one", "two", "two, one lock", "forward one", "forward two"]
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(args.rounds):
        times["forward one"].append(_threads(models[:1], clips, _forward_all))
        times["forward two"].append(_threads(models, clips, _forward_all))
        times["one"].append(_threads(models[:1], clips))
        times["two"].append(_threads(models, clips))
        hooks.model_lock = lambda _model: one_lock  # type: ignore[assignment]
        try:
            times["two, one lock"].append(_threads(models, clips))
        finally:
            hooks.model_lock = per_lock
    one = statistics.median(times["one"])
    print(
        describe(), f"torch {torch.__version__}, torch threads 1,", f"load {os.getloadavg()[0]:.2f}"
    )
    print(f"python {platform.python_version()}; {args.rounds} rounds, {args.clips} clips a thread")
    print("| run | median s | ratio to its one | every round s |")
    print("|---|---:|---:|---|")
    for name, values in times.items():
        median = statistics.median(values)
        rounds = ", ".join(f"{v:.2f}" for v in values)
        base = statistics.median(times["forward one"]) if name.startswith("forward") else one
        print(f"| {name} | {median:.2f} | {median / base:.2f}x | {rounds} |")


if __name__ == "__main__":
    main()
