"""Why Grad-CAM does not find the object on ``tiny-colours-vit``: the same transformer under
three heads (issue 22).

What runs: each ``--weights`` file (a ``TinyVideoViT`` trained by
``scripts/train_default_model.py --task colour-vit``, with its record ``.json`` beside it,
whose ``config`` builds the network; default: the shipped class-token model only) on the
colour clips 100..123 (``make_colour_clip(seed=s, frames=16, size=(64, 64))``: held out,
the clips ``vit_planted.py`` chooses Grad-CAM's layer on, never its test clips 0..23), the
true class explained. Heads (``--vit-head`` of the training script):

* ``cls``: a class token, LayerNormed, linear (the shipped one, ViViT's);
* ``mean``: the token mean, LayerNormed, linear (VideoMAE's);
* ``norm-tokens``: each token LayerNormed, then the mean, linear (timm's ViT with average
  pooling): the score is exactly the mean over tokens of ``fc``'s weights times
  ``fc_norm``'s output, so Grad-CAM on ``fc_norm`` is each token's exact share of it.

Per head and layer (the conv stem's outputs, the embedded tokens, every block's output, the
last block's ``norm1``, and ``fc_norm`` under ``norm-tokens``): the share of frames whose
Grad-CAM maximum lies within one token cell (8 px) of the object, and the share whose
*minimum* (Grad-CAM without its ReLU) does: a high second number is the object scored as
the least evidence. Then relevancy and rollout on the same clips, and the worst clip.

Writes ``benchmarks/RESULTS_vit_gradcam_heads.md`` (with the load average) and prints it.

Usage (from the repository root; the variants first, 13-18 min each on 2 cores):
    .venv/bin/python scripts/train_default_model.py --task colour-vit --vit-head mean \\
        --out /tmp/vit_mean/tiny_colours_vit.safetensors
    .venv/bin/python scripts/train_default_model.py --task colour-vit --vit-head norm-tokens \\
        --out /tmp/vit_tok/tiny_colours_vit.safetensors
    .venv/bin/python benchmarks/vit_gradcam_heads.py --weights \\
        /tmp/vit_mean/tiny_colours_vit.safetensors /tmp/vit_tok/tiny_colours_vit.safetensors
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
from _machine import write_results  # benchmarks/_machine.py (scripts run from this folder)
from scipy.ndimage import binary_dilation
from vit_planted import peaks_on

import saliency_tubes as st
from saliency_tubes.synthetic_colours import make_colour_clip
from saliency_tubes.zoo import load_model
from saliency_tubes.zoo.checkpoints import read_state_dict
from saliency_tubes.zoo.nets.tiny_vit import VIT_WEIGHTS, TinyVideoViT, embed_grid

HERE = Path(__file__).resolve().parent
OUT = HERE / "RESULTS_vit_gradcam_heads.md"
SEEDS = range(100, 124)


def head_name(config: dict) -> str:
    if config.get("readout") == "cls":
        return "cls"
    return "norm-tokens" if config.get("norm_tokens") else "mean"


def build(path: Path) -> tuple[TinyVideoViT, dict]:
    """The network of ``path``'s record, with its weights, in eval mode; and the record."""
    record = json.loads(path.with_suffix(".json").read_text())
    model = TinyVideoViT(num_classes=len(record["categories"]), **record["config"])
    model.load_state_dict(read_state_dict(path))
    return model.eval(), record


def layers_of(model: TinyVideoViT) -> list[str]:
    last = len(model.blocks) - 1
    names = ["embed.proj.0", "embed.proj.2", "embed"]
    names += [f"blocks.{i}" for i in range(last + 1)] + [f"blocks.{last}.norm1"]
    return names + (["fc_norm"] if model.norm_tokens else [])


def score(model: TinyVideoViT, x: torch.Tensor, classes: list, near: np.ndarray) -> dict:
    """Per layer: (max on target, min on target, worst clip's max on target); then relevancy
    and rollout: (max on target, worst clip)."""
    grid = embed_grid(1 if model.readout == "cls" else 0, model.tubelet)
    found: dict[str, tuple[float, ...]] = {}
    for layer in layers_of(model):
        reshape = None if layer.startswith("embed.proj") else grid  # conv outputs: 5-D
        peak = st.GradCAM(model, layer=layer, reshape=reshape)(x, classes=classes)
        signed = st.GradCAM(model, layer=layer, reshape=reshape, relu=False)(x, classes=classes)
        hits = peaks_on(peak.maps[:, 0].numpy(), near)
        lows = peaks_on(-signed.maps[:, 0].numpy(), near)
        found[layer] = (float(hits.mean()), float(lows.mean()), float(hits.mean(1).min()))
    for name, method in (("relevancy", st.AttentionRelevancy), ("rollout", st.AttentionRollout)):
        hits = peaks_on(method(model)(x, classes=classes).maps[:, 0].numpy(), near)
        found[name] = (float(hits.mean()), float(hits.mean(1).min()))
    return found


def token_stats(model: TinyVideoViT, x: torch.Tensor, clips: list, layer: str) -> tuple:
    """At ``layer``'s tokens (the class token dropped), the true class's gradient: the median
    share of its energy on the object's tokens (any object pixel in the tubelet), their
    share of the tokens, the mean cosine between tokens, and in how many clips Grad-CAM's
    raw score (no ReLU) is higher on the object's tokens than on the rest, on average."""
    kept: list[torch.Tensor] = []
    module = dict(model.named_modules())[layer]

    def keep(_m: torch.nn.Module, _i: object, out: torch.Tensor) -> None:
        out.retain_grad()
        kept.append(out)

    handle = module.register_forward_hook(keep)
    try:
        labels = torch.tensor([c.label for c in clips])
        model(x).gather(1, labels[:, None]).sum().backward()
    finally:
        handle.remove()
    skip = 1 if model.readout == "cls" else 0
    act, grad = kept[0].detach()[:, skip:], kept[0].grad[:, skip:]  # type: ignore[index]
    masks = torch.from_numpy(np.stack([c.mask for c in clips])).float()[:, None]
    on = torch.nn.functional.avg_pool3d(masks, model.tubelet)[:, 0].flatten(1) > 0
    energy = (grad.pow(2).sum(-1) * on).sum(1) / grad.pow(2).sum(-1).sum(1)
    unit = torch.nn.functional.normalize(act, dim=-1)
    cosine = float((unit @ unit.transpose(1, 2)).mean())
    raw = (grad.mean(1, keepdim=True) * act).sum(-1)
    above = (raw * on).sum(1) / on.sum(1) > (raw * ~on).sum(1) / (~on).sum(1)
    model.zero_grad(set_to_none=True)
    return float(energy.median()), float(on.float().mean()), cosine, int(above.sum())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, nargs="*", default=[], help="variants' .safetensors")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    prep = load_model("tiny-colours-vit").preset.preprocess()
    clips = [make_colour_clip(seed=s, frames=16, size=(64, 64)) for s in SEEDS]
    x = torch.stack([prep(c.video) for c in clips])
    classes = [[c.label] for c in clips]
    cross = np.ones((1, 3, 3), dtype=bool)
    near = np.stack([binary_dilation(c.mask, cross, iterations=8) for c in clips])
    results, stats = {}, {}
    for path in [VIT_WEIGHTS, *args.weights]:
        model, record = build(path)
        name = head_name(record["config"]) + (" (shipped)" if path == VIT_WEIGHTS else "")
        layer = f"blocks.{len(model.blocks) - (2 if model.readout == 'cls' else 1)}"
        stats[name] = (layer, token_stats(model, x, clips, layer))
        results[name] = (record, score(model, x, classes, near))
        print(name, results[name][1], flush=True)
    lines = table(results) + ["", f"Tokens and gradient ({len(clips)} clips):", ""]
    for name, (layer, (energy, share, cosine, above)) in stats.items():
        lines.append(
            f"- {name}, `{layer}`: {energy:.3f} of the gradient's energy (median) on the "
            f"object's tokens ({share:.3f} of the tokens); mean cosine between tokens "
            f"{cosine:.3f}; Grad-CAM's raw score higher on the object's tokens than on the "
            f"rest in {above} of {len(clips)} clips"
        )
    write_results(
        None if args.no_write else OUT,
        "Grad-CAM under three heads of tiny-colours-vit",
        "vit_gradcam_heads.py",
        f"clips {SEEDS[0]}..{SEEDS[-1]} (held out)",
        load,
        lines,
    )


def table(results: dict) -> list[str]:
    names = list(results)
    lines = [
        "Each cell: Grad-CAM's maximum within 8 px (one token cell) of the object / its "
        "minimum (no ReLU) within 8 px / the worst clip's first number. "
        "Validation accuracy (384 clips, the record's): "
        + ", ".join(f"{n} {results[n][0]['val_accuracy']:.4f}" for n in names)
        + ".",
        "",
        "| layer | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    layers = list(dict.fromkeys(k for n in names for k in results[n][1]))
    layers.sort(key=lambda k: k in ("relevancy", "rollout"))  # Grad-CAM's layers first
    for layer in layers:
        cells = []
        for n in names:
            v = results[n][1].get(layer)
            cells.append("—" if v is None else " / ".join(f"{a:.3f}" for a in v))
        label = layer if layer in ("relevancy", "rollout") else f"Grad-CAM `{layer}`"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("relevancy and rollout: maximum within 8 px / the worst clip.")
    return lines


if __name__ == "__main__":
    sys.exit(main())
