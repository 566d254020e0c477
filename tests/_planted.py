"""The planted-evidence clips of the shipped colour transformers' checks
(``tests/methods/test_attention_planted*.py``; measured first by
``benchmarks/vit_planted.py``).

Twelve colour clips (``make_colour_clip(seed=s)``, s = 0..11: not in the models' training
data, whose clip seeds are spawned 64-bit numbers, nor their validation data, and not
chosen): one coloured target among 2-5 grey look-alikes of the same shapes, sizes and
motions; only its hue tells the class.
"""

from __future__ import annotations

import numpy as np
import torch

import saliency_tubes as st
from saliency_tubes.metrics import cascade_layers, explainer_fn, sanity_check
from saliency_tubes.synthetic_colours import COLOURS, make_colour_clip, make_colour_dataset

SEEDS = range(12)
COMPLEMENT = 3  # the complementary hue: no channel in common


def planted_set(model: str) -> tuple:
    """``model`` loaded, the twelve clips as its input, their (true, complementary) classes,
    the targets' masks and those masks dilated by one token cell (8 px, city-block)."""
    from scipy.ndimage import binary_dilation

    loaded = st.load_model(model)
    prep = loaded.preset.preprocess()
    clips = [make_colour_clip(seed=s, frames=16, size=(64, 64)) for s in SEEDS]
    x = torch.stack([prep(c.video) for c in clips])
    labels = torch.tensor([c.label for c in clips])
    classes = torch.stack([labels, (labels + COMPLEMENT) % len(COLOURS)], dim=1)
    masks = np.stack([c.mask for c in clips])
    cross = np.ones((1, 3, 3), dtype=bool)  # one token cell: 8 px (city-block)
    near = np.stack([binary_dilation(m, cross, iterations=8) for m in masks])
    return loaded, x, classes, masks, near


def peaks_on(maps: torch.Tensor, near: np.ndarray) -> np.ndarray:
    """(N, T) bool: each frame's maximum (its first voxel) lies in ``near``."""
    m = maps.numpy()
    n, t = m.shape[:2]
    ys, xs = np.unravel_index(m.reshape(n, t, -1).argmax(-1), m.shape[2:])
    return near[np.arange(n)[:, None], np.arange(t)[None], ys, xs]


def classifies_the_clips(loaded: object, x: torch.Tensor, classes: torch.Tensor) -> bool:
    """The shipped trained weights (not random), and the true class on top for every clip."""
    if getattr(loaded, "weights_source", None) != "shipped" or loaded.random_weights:  # type: ignore[attr-defined]
        return False
    with torch.no_grad():
        return bool(torch.equal(loaded.model(x).argmax(1), classes[:, 0]))  # type: ignore[attr-defined]


def sanity_medians(
    loaded: object, x: torch.Tensor, classes: torch.Tensor, head: str
) -> dict[str, list[float]]:
    """The project's sanity check (cascading randomisation over the leaf layers, ``head``
    first): per method (relevancy, rollout), the median over clips of the Spearman rho of
    the true class's tube after the head is randomised and after every layer is."""
    model = loaded.model  # type: ignore[attr-defined]
    layers = cascade_layers(model, x[:1], "leaf")
    assert layers[0] == head, layers[:3]
    labels = classes[:, 0].tolist()
    found = {}
    for method in ("relevancy", "rollout"):
        fn = explainer_fn(method, labels, **loaded.explainer_options(method))  # type: ignore[attr-defined]
        check = sanity_check(model, x, fn, layers=layers, steps=(1, len(layers)))
        found[method] = [float(np.nanmedian(check.correlations[i].numpy())) for i in (1, -1)]
    return found


def validation_accuracy(name: str, record: dict) -> float:
    """Shipped model ``name`` on its record's validation clips, regenerated from the
    record's seed, through the preset's own preprocessing: its top-1 accuracy."""
    loaded = st.load_model(name)
    videos, _, labels = make_colour_dataset(
        record["val_size"],
        seed=record["val_data_seed"],
        frames=record["frames"],
        size=tuple(record["size"]),
    )
    prep = loaded.preset.preprocess()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(videos), 64):
            x = torch.stack([prep(v) for v in videos[i : i + 64]])
            correct += int((loaded.model(x).argmax(1).numpy() == labels[i : i + 64]).sum())
    return correct / len(videos)
