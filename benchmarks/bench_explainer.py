"""Explainer time relative to a plain forward pass, measured side by side.

Model: 3D-ResNet-18 (Hara et al. layout, 400 classes, random weights, eval mode).
Input: 1 x 3 x 16 x 112 x 112. Each round times, in turn: a plain ``torch.no_grad``
forward; CAM (st.SaliencyTubes); Grad-CAM; Grad-CAM++; and the textbook Grad-CAM that
calls ``backward()`` with every parameter requiring gradients (what the gradient-to-
the-layer-only design avoids). Medians over rounds; ratios are to the plain forward of
the same rounds. The first explainer call (layer discovery: one extra forward) is
excluded by a warm-up and reported separately.

Usage: python benchmarks/bench_explainer.py [--rounds 7] [--threads 2] [--upsample]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import torch
from _machine import cpu_model  # benchmarks/_machine.py (scripts run from this folder)

import saliency_tubes as st
from saliency_tubes.zoo.nets.resnet3d import resnet3d


def _time(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def textbook_gradcam(model: torch.nn.Module, clip: torch.Tensor) -> torch.Tensor:
    """Grad-CAM as most libraries do it: full backward, parameter gradients included."""
    store: dict[str, torch.Tensor] = {}

    def hook(_m: torch.nn.Module, _i: object, out: torch.Tensor) -> None:
        out.retain_grad()
        store["a"] = out

    handle = model.layer4.register_forward_hook(hook)
    try:
        out = model(clip)
        out[0, out[0].argmax()].backward()
    finally:
        handle.remove()
    a, g = store["a"], store["a"].grad
    assert g is not None
    model.zero_grad(set_to_none=True)
    return torch.relu((g.mean(dim=(2, 3, 4), keepdim=True) * a).sum(1)).detach()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--upsample",
        action="store_true",
        help="time the full call (with cubic upsampling to 16x112x112); default: the same, "
        "always on; this flag is kept for symmetry",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = resnet3d(18, num_classes=400).eval()
    clip = torch.randn(1, 3, 16, 112, 112)

    explainers = {
        "CAM (st.SaliencyTubes)": st.SaliencyTubes(model),
        "Grad-CAM (st.GradCAM)": st.GradCAM(model),
        "Grad-CAM++ (st.GradCAMPlusPlus)": st.GradCAMPlusPlus(model),
    }
    first_call = {name: _time(lambda e=e: e(clip)) for name, e in explainers.items()}

    def forward() -> None:
        with torch.no_grad():
            model(clip)

    cases: dict[str, Callable[[], object]] = {"plain forward (no_grad)": forward}
    cases.update({name: (lambda e=e: e(clip)) for name, e in explainers.items()})
    cases["textbook Grad-CAM (full backward)"] = lambda: textbook_gradcam(model, clip)
    for fn in cases.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, fn in cases.items():
            times[name].append(_time(fn))
    base = statistics.median(times["plain forward (no_grad)"])

    print(
        f"machine: {cpu_model()} ({platform.machine()}), torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}, rounds {args.rounds}"
    )
    print("\n| what | median s | / plain forward |")
    print("|---|---|---|")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"| {name} | {med:.3f} | {med / base:.2f} |")
    print("\nfirst call (includes layer discovery, one extra forward):")
    for name, value in first_call.items():
        print(f"- {name}: {value:.3f} s ({value / base:.2f} x forward)")


if __name__ == "__main__":
    main()
