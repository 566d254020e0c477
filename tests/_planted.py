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
from saliency_tubes.synthetic_colours import COLOURS, make_colour_clip

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
