#!/usr/bin/env python
"""Train the embedded default model (TinyActionNet) on synthetic action clips, on CPU.

Seeded and reproducible: the training clips come from ``make_dataset(seed=1000 + seed)``,
the validation clips from ``make_dataset(seed=2000 + seed)``, and torch runs with a fixed
seed, deterministic algorithms and a fixed number of threads. Each training clip is
randomly flipped horizontally / vertically and reversed in time, with the label mapped
accordingly (e.g. a horizontal flip turns ``left`` into ``right`` and ``clockwise`` into
``counterclockwise``), so every clip is seen in 8 consistent variants.

``--task colour`` trains the colour CNN instead: ``TinyActionNet(motion=False)``
(no frame differences) on the colour clips of ``saliency_tubes.synthetic_colours``
(``make_colour_dataset``, same data seeds, 16 x 64 x 64), written to
``src/saliency_tubes/zoo/weights/tiny_colours.safetensors`` (the registered
``tiny-colours``); flips and time reversal keep a colour, so the labels stay as they are.
``--task colour-vit`` trains the registered ``tiny-colours-vit``
(:class:`saliency_tubes.zoo.nets.tiny_vit.TinyVideoViT` with ``tiny_vit.SHIPPED``: a conv
stem, tubelets 4 x 8 x 8, 3 blocks, a class token) on the same clips, written beside it:
AdamW (lr 1.5e-3, weight decay 0.05, one-cycle schedule with 15 % warm-up, gradients
clipped at norm 1), batch 32, and a fresh set of 1920 clips every epoch (``Task.fresh``),
5 epochs. ``--vit-head mean`` (VideoMAE's head: the token mean, LayerNormed) or
``--vit-head norm-tokens`` (each token LayerNormed, then the mean) trains the same network
with another head, to an ``--out`` of your own (``benchmarks/vit_gradcam_heads.py`` compares
Grad-CAM under the three heads). ``--task colour-mvit`` trains the registered ``tiny-colours-mvit``
(:func:`saliency_tubes.zoo.nets.tiny_mvit.tiny_mvit`: torchvision's ``MViT`` class in MViTv2
form, 4 x 8 x 8 patches, 3 blocks, one of them striding its queries) the same way, 8 epochs.

Writes the safetensors weights (``--out``) and a JSON record next to them (same name,
``.json``) with the seed, sizes, epochs, validation accuracy, training time, date and
torch version.

Usage::

    .venv/bin/python scripts/train_default_model.py --seed 0
    .venv/bin/python scripts/train_default_model.py --task colour --threads 1
    .venv/bin/python scripts/train_default_model.py --task colour-vit --threads 2
    .venv/bin/python scripts/train_default_model.py --task colour-mvit --threads 2
    .venv/bin/python scripts/train_default_model.py --task colour-vit --vit-head mean \
        --out /tmp/vit_mean/tiny_colours_vit.safetensors
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from saliency_tubes.synthetic import CLASSES, make_dataset
from saliency_tubes.synthetic_colours import COLOURS, make_colour_dataset
from saliency_tubes.zoo.nets.tiny import COLOUR_PRESET, PRESET, WEIGHTS_PATH, TinyActionNet
from saliency_tubes.zoo.nets.tiny_mvit import BLOCKS, MVIT_WEIGHTS, PATCH, tiny_mvit
from saliency_tubes.zoo.nets.tiny_vit import CNN_WEIGHTS, SHIPPED, VIT_WEIGHTS, TinyVideoViT

TRAIN_DATA_OFFSET = 1000
VAL_DATA_OFFSET = 2000
FRESH_DATA_STEP = 10_000
"""With fresh clips each epoch, epoch ``e`` draws its training set with the data seed
``1000 + seed + 10000 e`` (never the validation's ``2000 + seed``)."""


def _label_map(pairs: list[tuple[str, str]]) -> torch.Tensor:
    """Label permutation that swaps each pair of class names."""
    perm = list(range(len(CLASSES)))
    for a, b in pairs:
        i, j = CLASSES.index(a), CLASSES.index(b)
        perm[i], perm[j] = j, i
    return torch.tensor(perm, dtype=torch.long)


HFLIP = _label_map([("left", "right"), ("clockwise", "counterclockwise")])
VFLIP = _label_map([("up", "down"), ("clockwise", "counterclockwise")])
TREVERSE = _label_map(
    [("left", "right"), ("up", "down"), ("clockwise", "counterclockwise"), ("grow", "shrink")]
)


@dataclass(frozen=True)
class Task:
    """What one task trains: its classes, data, network, preset, label maps and defaults."""

    classes: tuple[str, ...]
    dataset: Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]]
    architecture: str
    """The network, as the record names it."""
    build: Callable[[int, dict], torch.nn.Module]
    """Builds the freshly initialised network for a number of classes and a config (the
    task's ``config``, or another head's: ``--vit-head``)."""
    preset: dict
    flips: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    """The label maps of a horizontal flip, a vertical flip and a time reversal."""
    out: Path
    train_size: int
    val_size: int
    epochs: int
    lr: float = 3e-3
    weight_decay: float = 5e-4
    batch_size: int = 16
    config: dict | None = None
    """The network's constructor options, as the record keeps them."""
    fresh: bool = False
    """Draw a fresh training set every epoch (the transformer needs more clips than fit in
    memory at once; each set takes seconds to render)."""


_KEEP = torch.arange(len(COLOURS))
TASKS = {
    "motion": Task(
        classes=CLASSES,
        dataset=make_dataset,
        architecture="TinyActionNet",
        build=lambda n, _: TinyActionNet(num_classes=n, motion=True),
        preset=PRESET,
        flips=(HFLIP, VFLIP, TREVERSE),
        out=WEIGHTS_PATH,
        train_size=2400,
        val_size=512,
        epochs=12,
    ),
    "colour": Task(
        classes=COLOURS,
        dataset=make_colour_dataset,
        architecture="TinyActionNet(motion=False)",
        build=lambda n, _: TinyActionNet(num_classes=n, motion=False),
        preset=COLOUR_PRESET,
        flips=(_KEEP, _KEEP, _KEEP),
        out=CNN_WEIGHTS,
        train_size=1200,
        val_size=384,
        epochs=8,
    ),
    "colour-vit": Task(
        classes=COLOURS,
        dataset=make_colour_dataset,
        architecture="TinyVideoViT",
        build=lambda n, config: TinyVideoViT(num_classes=n, **config),
        preset=COLOUR_PRESET,
        flips=(_KEEP, _KEEP, _KEEP),
        out=VIT_WEIGHTS,
        train_size=1920,
        val_size=384,
        epochs=5,
        lr=1.5e-3,
        weight_decay=0.05,
        batch_size=32,
        config=SHIPPED,
        fresh=True,
    ),
    "colour-mvit": Task(
        classes=COLOURS,
        dataset=make_colour_dataset,
        architecture="torchvision MViT (tiny_mvit.BLOCKS)",
        build=lambda n, _: tiny_mvit(n),
        preset=COLOUR_PRESET,
        flips=(_KEEP, _KEEP, _KEEP),
        out=MVIT_WEIGHTS,
        train_size=1920,
        val_size=384,
        epochs=8,
        lr=1.5e-3,
        weight_decay=0.05,
        batch_size=32,
        config={"blocks": [list(b) for b in BLOCKS], "patch": list(PATCH), "version": "v2"},
        fresh=True,
    ),
}


def to_input(videos: np.ndarray) -> torch.Tensor:
    """``(N, T, H, W, 3)`` uint8 -> normalised ``(N, 3, T, H, W)`` float32."""
    x = torch.from_numpy(videos).permute(0, 4, 1, 2, 3).float().div_(255.0)
    mean = torch.tensor(PRESET["mean"]).view(1, 3, 1, 1, 1)
    std = torch.tensor(PRESET["std"]).view(1, 3, 1, 1, 1)
    return (x - mean) / std


def augment(
    x: torch.Tensor,
    y: torch.Tensor,
    gen: torch.Generator,
    flips: tuple[torch.Tensor, torch.Tensor, torch.Tensor] = (HFLIP, VFLIP, TREVERSE),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random label-consistent flips and time reversal, per clip.

    Args:
        x: ``(N, 3, T, H, W)`` batch.
        y: ``(N,)`` labels.
        gen: Random generator.
        flips: The label maps of a horizontal flip, a vertical flip and a time reversal.

    Returns:
        The augmented batch and labels.
    """
    x, y = x.clone(), y.clone()
    for dim, perm in zip((4, 3, 2), flips, strict=True):
        sel = torch.rand(x.shape[0], generator=gen) < 0.5
        if sel.any():
            x[sel] = x[sel].flip(dim)
            y[sel] = perm[y[sel]]
    return x, y


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, videos: np.ndarray, labels: np.ndarray, batch: int = 32
) -> float:
    """Top-1 accuracy of ``model`` (in eval mode) on uint8 clips."""
    model.eval()
    correct = 0
    for i in range(0, len(videos), batch):
        pred = model(to_input(videos[i : i + batch])).argmax(1)
        correct += int((pred == torch.from_numpy(labels[i : i + batch])).sum())
    return correct / len(videos)


def train_seed(seed: int, epoch: int) -> int:
    """The data seed of epoch ``epoch``'s training clips (:data:`FRESH_DATA_STEP`)."""
    return TRAIN_DATA_OFFSET + seed + FRESH_DATA_STEP * epoch


VIT_HEADS = {
    "cls": {"readout": "cls"},
    "mean": {"readout": "mean"},
    "norm-tokens": {"readout": "mean", "norm_tokens": True},
}
"""``--vit-head``: the transformer's head options over ``SHIPPED`` (``cls``: as shipped)."""


def head_config(task: Task, head: str) -> dict | None:
    """The network's config (the record's ``config``): the task's, with ``--vit-head``'s
    options for the transformer."""
    if task.config is None or task.architecture != "TinyVideoViT":
        return task.config
    config = {k: v for k, v in task.config.items() if k not in ("readout", "norm_tokens")}
    return config | VIT_HEADS[head]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1] if __doc__ else None)
    p.add_argument(
        "--task",
        choices=sorted(TASKS),
        default="motion",
        help="motion: tiny-actions; colour: tiny-colours (the colour CNN); colour-vit: "
        "tiny-colours-vit; colour-mvit: tiny-colours-mvit",
    )
    p.add_argument("--seed", type=int, default=0, help="training seed (data seeds derive from it)")
    p.add_argument(
        "--train-size", type=int, help="training clips (motion 2400, colour 1200, colour-vit 1920)"
    )
    p.add_argument(
        "--val-size", type=int, help="validation clips (motion 512, colour 384, colour-vit 384)"
    )
    p.add_argument(
        "--epochs", type=int, help="epochs (motion 12, colour 8, colour-vit 5, colour-mvit 8)"
    )
    p.add_argument("--batch-size", type=int, help="clips per step (colour-vit/-mvit 32, else 16)")
    p.add_argument(
        "--lr", type=float, help="peak AdamW learning rate (colour-vit/-mvit 1.5e-3, else 3e-3)"
    )
    p.add_argument(
        "--weight-decay", type=float, help="AdamW weight decay (colour-vit/-mvit 0.05, else 5e-4)"
    )
    p.add_argument(
        "--vit-head",
        choices=sorted(VIT_HEADS),
        default="cls",
        help="colour-vit's head: cls (the shipped class token), mean (VideoMAE's: the token "
        "mean LayerNormed), norm-tokens (each token LayerNormed, then the mean); train another "
        "than the shipped one to an --out of your own",
    )
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--clip", type=float, default=1.0, help="gradient-norm clipping")
    p.add_argument("--out", type=Path, help="output .safetensors path (default: the task's)")
    args = p.parse_args(argv)
    task = TASKS[args.task]
    if args.vit_head != "cls" and args.task != "colour-vit":
        p.error(f"expected --vit-head only with --task colour-vit, but got --task {args.task}")
    if args.vit_head != "cls" and args.out is None:
        p.error(
            f"expected --out with --vit-head {args.vit_head}: the shipped weights "
            f"({task.out.name}) are the class-token model's; give a path of your own"
        )
    for name in ("train_size", "val_size", "epochs", "out", "lr", "weight_decay", "batch_size"):
        if getattr(args, name) is None:
            setattr(args, name, getattr(task, name))
    return args


def main(argv: list[str] | None = None) -> int:
    """Train, evaluate and write the weights and the JSON record."""
    args = parse_args(argv)
    task = TASKS[args.task]
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    frames, size = int(task.preset["frames"]), tuple(task.preset["size"])
    start = time.time()

    train_x, _, train_y = task.dataset(
        args.train_size, seed=TRAIN_DATA_OFFSET + args.seed, frames=frames, size=size
    )
    val_x, _, val_y = task.dataset(
        args.val_size, seed=VAL_DATA_OFFSET + args.seed, frames=frames, size=size
    )
    print(
        f"data: {len(train_x)} train / {len(val_x)} val clips in {time.time() - start:.0f}s",
        flush=True,
    )

    config = head_config(task, args.vit_head)
    model = task.build(len(task.classes), config or {})
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = len(train_x) // args.batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch, pct_start=0.15
    )
    gen = torch.Generator().manual_seed(args.seed)
    train_labels = torch.from_numpy(train_y)
    val_acc = 0.0
    for epoch in range(args.epochs):
        model.train()
        if task.fresh and epoch > 0:
            train_x, _, train_y = task.dataset(
                args.train_size, seed=train_seed(args.seed, epoch), frames=frames, size=size
            )
            train_labels = torch.from_numpy(train_y)
        order = torch.randperm(len(train_x), generator=gen)
        total, correct, loss_sum = 0, 0, 0.0
        t0 = time.time()
        for step in range(steps_per_epoch):
            idx = order[step * args.batch_size : (step + 1) * args.batch_size]
            x, y = augment(to_input(train_x[idx.numpy()]), train_labels[idx], gen, task.flips)
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(y)
            correct += int((logits.argmax(1) == y).sum())
            total += len(y)
        val_acc = evaluate(model, val_x, val_y)
        print(
            f"epoch {epoch + 1}/{args.epochs}: loss {loss_sum / total:.3f} "
            f"train acc {correct / total:.3f} val acc {val_acc:.4f} ({time.time() - t0:.0f}s)",
            flush=True,
        )
    elapsed = time.time() - start

    args.out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    architecture = task.architecture
    save_file(state, str(args.out), metadata={"format": "pt", "model": architecture})
    record = {
        "model": architecture,
        "task": args.task,
        "weights": args.out.name,
        "seed": args.seed,
        "train_data_seed": TRAIN_DATA_OFFSET + args.seed,
        "train_data": (
            f"fresh clips every epoch, data seed {TRAIN_DATA_OFFSET} + seed + "
            f"{FRESH_DATA_STEP} x epoch"
            if task.fresh
            else "one set"
        ),
        "val_data_seed": VAL_DATA_OFFSET + args.seed,
        "train_size": args.train_size,
        "val_size": args.val_size,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "grad_clip": args.clip,
        "config": config,
        "threads": args.threads,
        "frames": frames,
        "size": list(size),
        "categories": list(task.classes),
        "parameters": n_params,
        "val_accuracy": round(val_acc, 4),
        "training_time_s": round(elapsed, 1),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
    }
    record_path = args.out.with_suffix(".json")
    record_path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"val accuracy {val_acc:.4f}; {n_params} parameters; {elapsed:.0f}s in total")
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes) and {record_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
