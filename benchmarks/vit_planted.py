"""Planted evidence and sanity for the shipped transformers ``tiny-colours-vit`` and
``tiny-colours-mvit`` (issue 22).

What runs: ``--model`` (default ``tiny-colours-vit``; its weights: ``--weights``, default
the shipped ones) on
colour clips ``make_colour_clip(seed=s, frames=16, size=(64, 64))``, s in ``--seeds``
(default 0..23: not in its training data, whose clips come from spawned 64-bit seeds, nor
its validation data, and not chosen): one coloured target among 2-5 grey look-alikes of
the same shapes, sizes and motions; only its hue tells the class. For ``relevancy``,
``gradcam`` and ``rollout``:

* **planted**: the fraction of frames whose tube maximum (the first voxel at the frame's
  maximum) lies on the target dilated by 0, 4 or 8 px (8 px: one token cell, the model's
  patch), explaining the true class;
* **wrong class**: the same for the complementary hue ((label + 3) mod 6), the mass of the
  tube on the target (``energy_inside``) for the true and the wrong class, and the
  Spearman correlation between the two tubes (median over clips);
* **sanity** (Adebayo et al.): :func:`saliency_tubes.metrics.sanity_check` with the
  project's cascade over the leaf layers (:func:`~saliency_tubes.metrics.cascade_layers`,
  ``"leaf"``: the head first), the median over clips of the Spearman correlation of the
  true class's tube after the head (``fc``; the MViT's ``head.1``) is randomised and after
  every layer is.

It also scores Grad-CAM at each layer it could read on other clips (100..123): how its
layer was chosen. The ViT: ``embed``, every block's output, and the LayerNorm before the
last block's attention (``blocks.2.norm1``: pytorch-grad-cam's recipe for ViTs); the MViT:
the normed input of each block, on that block's grid.

Writes ``benchmarks/RESULTS_vit_planted.md`` (``RESULTS_mvit_planted.md`` for the MViT; with
the load average) and prints the table.

Usage (from the repository root):
    .venv/bin/python benchmarks/vit_planted.py
    .venv/bin/python benchmarks/vit_planted.py --model tiny-colours-mvit
    .venv/bin/python benchmarks/vit_planted.py --weights /tmp/vit.safetensors --no-write
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _machine import (  # benchmarks/_machine.py (scripts run from this folder)
    planted_arguments,
    write_results,
)
from scipy.ndimage import binary_dilation

from saliency_tubes.methods.attention_sites import AttentionRecorder, find_layout
from saliency_tubes.metrics import (
    cascade_layers,
    energy_inside,
    explainer_fn,
    sanity_check,
    spearman,
)
from saliency_tubes.splines import upsample
from saliency_tubes.synthetic_colours import COLOURS, make_colour_clip
from saliency_tubes.tokens import TokenGrid
from saliency_tubes.zoo import load_model

HERE = Path(__file__).resolve().parent
METHODS = ("relevancy", "gradcam", "rollout")
COMPLEMENT = 3
RESULTS = {
    "tiny-colours-vit": "RESULTS_vit_planted.md",
    "tiny-colours-mvit": "RESULTS_mvit_planted.md",
}


def gradcam_candidates(model: str, depth: int) -> list[tuple[str, TokenGrid | None]]:
    """The layers Grad-CAM could read, with their token grids (None: the model's reshape).
    The ViT: ``embed``, each block's output, the last block's ``norm1``; the MViT: each
    block's normed input (its attention's tokens), on that block's grid."""
    if model == "tiny-colours-mvit":
        return [
            ("blocks.0.norm1", TokenGrid((4, 8, 8), 1)),
            ("blocks.1.norm1", TokenGrid((4, 8, 8), 1)),
            ("blocks.2.norm1", TokenGrid((4, 16, 16), 1)),
        ]
    blocks = [f"blocks.{i}" for i in range(depth)]
    return [(name, None) for name in ("embed", *blocks, f"blocks.{depth - 1}.norm1")]


def planted_clips(
    loaded: object, seeds: list[int], dilations: tuple[int, ...] = (0, 4, 8)
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray, dict[int, np.ndarray]]:
    """The clips of ``seeds`` for ``loaded``: the input batch, the labels, the target masks
    (N, T, H, W) and those masks grown by each of ``dilations`` px in every direction of
    the frame, diagonals included (a square neighbourhood: 8 px is one token cell)."""
    prep = loaded.preset.preprocess()  # type: ignore[attr-defined]
    clips = [make_colour_clip(seed=s, frames=16, size=(64, 64)) for s in seeds]
    x = torch.stack([prep(c.video) for c in clips])
    labels = torch.tensor([c.label for c in clips])
    masks = np.stack([c.mask for c in clips])
    cross = np.ones((1, 3, 3), dtype=bool)
    near = {
        px: masks
        if px == 0
        else np.stack([binary_dilation(m, cross, iterations=px) for m in masks])
        for px in dilations
    }
    return x, labels, masks, near


def peaks_on(maps: np.ndarray, near: np.ndarray) -> np.ndarray:
    """(N, T) bool: each frame's maximum (first voxel at it) lies in ``near``."""
    n, t = maps.shape[:2]
    flat = maps.reshape(n, t, -1).argmax(-1)
    ys, xs = np.unravel_index(flat, maps.shape[2:])
    return near[np.arange(n)[:, None], np.arange(t)[None], ys, xs]


def measure(model: str, weights: str | None, seeds: list[int]) -> tuple[list[str], dict]:
    loaded = load_model(model, weights=weights)
    x, labels, masks, near = planted_clips(loaded, seeds, (0, 4, 8, 16))
    classes = torch.stack([labels, (labels + COMPLEMENT) % len(COLOURS)], dim=1)
    coarse = []  # within 16 px: one cell of the MViT's pooled 4x4x4 grid
    with torch.no_grad():
        accuracy = float((loaded.model(x).argmax(1) == labels).double().mean())
    lines = [f"accuracy on the {len(seeds)} clips: {accuracy:.3f}", ""]
    lines += [
        "| method | peak on target, 0 / 4 / 8 px | worst clip (8 px) | wrong class: peak on "
        "target (8 px) | mass true / wrong | rho(true, wrong) | sanity rho: head random / "
        "all random | s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    found: dict = {"accuracy": accuracy}
    layers = cascade_layers(loaded.model, x[:1], "leaf")
    for name in METHODS:
        started = time.perf_counter()
        tubes = loaded.explainer(name)(x, classes=classes)
        right, wrong = tubes.maps[:, 0], tubes.maps[:, 1]
        hits = {px: peaks_on(right.numpy(), near[px]) for px in near}
        off = peaks_on(wrong.numpy(), near[8])
        mask_t = torch.from_numpy(masks)
        mass = [
            float(np.mean([float(energy_inside(m[i], mask_t[i])) for i in range(len(seeds))]))
            for m in (right, wrong)
        ]
        rho_tw = float(np.median([spearman(right[i], wrong[i]) for i in range(len(seeds))]))
        fn = explainer_fn(name, labels.tolist(), **loaded.explainer_options(name))
        check = sanity_check(
            loaded.model, x, fn, layers=layers, steps=(1, len(layers)), reference=right
        )
        head, every = (float(np.nanmedian(check.correlations[i].numpy())) for i in (1, -1))
        seconds = time.perf_counter() - started
        found[name] = {
            "hits": {px: float(h.mean()) for px, h in hits.items()},
            "worst": float(hits[8].mean(1).min()),
            "wrong_hits": float(off.mean()),
            "mass": mass,
            "rho_true_wrong": rho_tw,
            "sanity": (head, every),
        }
        lines.append(
            f"| {name} | {hits[0].mean():.3f} / {hits[4].mean():.3f} / {hits[8].mean():.3f} "
            f"| {hits[8].mean(1).min():.3f} | {off.mean():.3f} | {mass[0]:.3f} / {mass[1]:.3f} "
            f"| {rho_tw:.3f} | {head:.3f} / {every:.3f} | {seconds:.0f} |"
        )
        print(lines[-1], flush=True)
        coarse.append(f"{name} {hits[16].mean():.3f} (worst clip {hits[16].mean(1).min():.3f})")
    lines.append(f"\nwithin 16 px (two patches; one cell of a 2x-pooled grid): {', '.join(coarse)}")
    lines.append(f"\nsanity cascade: {', '.join(layers)} (step 1: {layers[0]} random)")
    return lines, found


def gradcam_layers(model: str, weights: str | None, seeds: list[int]) -> list[str]:
    """Grad-CAM's planted score (8 px) at each layer it could read, on ``seeds`` (other
    clips than the checks'): how its layer was chosen."""
    loaded = load_model(model, weights=weights)
    x, labels, _, near = planted_clips(loaded, seeds, (8,))
    lines = [f"\nGrad-CAM's layer, on clips {seeds[0]}..{seeds[-1]} (peak on target, 8 px):"]
    for layer, grid in gradcam_candidates(model, len(loaded.model.blocks)):
        options = {"layer": layer} | ({"reshape": grid} if grid is not None else {})
        maps = loaded.explainer("gradcam", **options)(x, classes=labels[:, None])
        hits = peaks_on(maps.maps[:, 0].numpy(), near[8])
        lines.append(f"- `{layer}`: {hits.mean():.3f} (worst clip {hits.mean(1).min():.3f})")
    if model == "tiny-colours-vit":
        for name, tube in attention_gradcam(loaded, x, labels).items():
            hits = peaks_on(tube.numpy(), near[8])
            lines.append(f"- {name}: {hits.mean():.3f} (worst clip {hits.mean(1).min():.3f})")
        lines.append(f"\nEach patch token against its class-score gradient, clips {seeds[0]}..")
        for layer, cosines in gradient_cosines(loaded, x, labels).items():
            lines.append(
                f"- `{layer}`: |cosine| median {cosines.median():.2e}, largest {cosines.max():.2e}"
            )
    return lines


def gradient_cosines(loaded: object, x: torch.Tensor, labels: torch.Tensor) -> dict:
    """|cosine| between each patch token of each block's output and the true class score's
    gradient there, over every token of every clip: about 0 for the block before the last
    (its patch tokens reach the class token only through the last block's LayerNorm)."""
    model = loaded.model  # type: ignore[attr-defined]
    names = [f"blocks.{i}" for i in range(len(model.blocks) - 1)]
    kept: dict[str, torch.Tensor] = {}
    handles = [
        model.get_submodule(name).register_forward_hook(
            lambda _m, _a, out, name=name: kept.__setitem__(name, out)
        )
        for name in names
    ]
    try:
        logits = model(x)
    finally:
        for handle in handles:
            handle.remove()
    score = logits.gather(1, labels[:, None]).sum()
    grads = torch.autograd.grad(score, [kept[name] for name in names])
    return {
        name: torch.nn.functional.cosine_similarity(grad[:, 1:], kept[name][:, 1:].detach(), dim=-1)
        .abs()
        .flatten()
        for name, grad in zip(names, grads, strict=True)
    }


def attention_gradcam(loaded: object, x: torch.Tensor, labels: torch.Tensor) -> dict:
    """Grad-CAM with the last attention's heads as its channels, as Chefer, Gur and Wolf
    (CVPR 2021; their Grad-CAM baseline for ViTs) define it: per head the class token's row
    of the probabilities A over the patch tokens, weighted by that row's mean gradient of
    the class score, averaged over the heads, clamped at 0; and that row alone (heads
    averaged, no gradient). Each on the 4x8x8 token grid, extended to the clip with the
    project's cubic splines. The ViT only."""
    model = loaded.model  # type: ignore[attr-defined]
    layout = find_layout(model)
    recorded: list[torch.Tensor] = []
    with AttentionRecorder(lambda _site, probs: recorded.append(probs)).watching(layout.sites[-1:]):
        logits = model(x)
    (grad,) = torch.autograd.grad(logits.gather(1, labels[:, None]).sum(), recorded[0])
    row, row_grad = recorded[0][:, :, 0, 1:].detach(), grad[:, :, 0, 1:]
    raws = {
        f"`{layout.sites[-1].name}`, Grad-CAM over its heads (Chefer et al.)": (
            row_grad.mean(-1, keepdim=True) * row
        )
        .mean(1)
        .clamp(min=0),
        f"`{layout.sites[-1].name}`, the class token's attention row (no gradient)": row.mean(1),
    }
    return {  # not normalised: only each frame's maximum is read
        name: upsample(raw.reshape(len(x), 1, 4, 8, 8), (16, 64, 64), mode="cubic")[:, 0]
        for name, raw in raws.items()
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=sorted(RESULTS), default="tiny-colours-vit")
    args = planted_arguments(p).parse_args()
    torch.set_num_threads(args.threads)
    seeds = list(range(*args.seeds))
    load = os.getloadavg()[0]
    lines, _ = measure(args.model, args.weights, seeds)
    lines += gradcam_layers(args.model, args.weights, list(range(100, 124)))
    write_results(
        None if args.no_write else HERE / RESULTS[args.model],
        f"Planted evidence and sanity on {args.model}",
        "vit_planted.py",
        f"seeds {seeds[0]}..{seeds[-1]}",
        load,
        lines,
    )


if __name__ == "__main__":
    sys.exit(main())
