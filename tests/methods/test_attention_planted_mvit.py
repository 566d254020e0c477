"""Planted evidence and sanity on the shipped MViT ``tiny-colours-mvit`` (pooling attention:
relevance carried through the query-strided block's pools and max-pooled skip back to the
4 x 8 x 8 patch grid).

The twelve clips of ``tests/_planted.py`` (seeds 0..11, not in its training or validation
data, not chosen). Measured first by ``benchmarks/vit_planted.py --model tiny-colours-mvit``
(``benchmarks/RESULTS_mvit_planted.md``); the bounds below keep a margin under what it
measured on these twelve clips.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _models import torchvision_or_skip
from _planted import classifies_the_clips, peaks_on, planted_set, sanity_medians

torchvision_or_skip()


@pytest.fixture(scope="module")
def planted():
    return planted_set("tiny-colours-mvit")


def test_the_mvit_classifies_the_twelve_clips(planted) -> None:
    loaded, x, classes, _, _ = planted
    assert classifies_the_clips(loaded, x, classes)


def test_relevancy_peaks_near_the_object_but_under_the_bar_within_one_patch(planted) -> None:
    """Measured on these clips (load 3.5): relevancy's maximum lies within one patch (8 px)
    of the object in 0.875 of the 192 frames (0.826 on clips 0..23: under the issue's 0.9,
    so the MViT presets keep Grad-CAM), and within 16 px (one cell of the 2x-pooled 4x4x4
    grid that the last two blocks attend over) in 0.990 (worst clip 0.875). Rollout: 0.583
    within 8 px, 0.682 within 16 px."""
    loaded, x, classes, masks, near = planted
    from scipy.ndimage import binary_dilation

    cross = np.ones((1, 3, 3), dtype=bool)
    near16 = np.stack([binary_dilation(m, cross, iterations=16) for m in masks])
    relevancy = loaded.explainer("relevancy")(x, classes=classes[:, :1]).maps[:, 0]
    assert peaks_on(relevancy, near).mean() >= 0.75
    hits16 = peaks_on(relevancy, near16)
    assert hits16.mean() >= 0.9 and hits16.mean(1).min() >= 0.6
    rollout = loaded.explainer("rollout")(x, classes=classes[:, :1]).maps[:, 0]
    assert 0.4 <= peaks_on(rollout, near).mean() < 0.8


def test_gradcam_on_the_first_block_s_tokens(planted) -> None:
    """Grad-CAM on ``blocks.0.norm1`` (chosen on clips 100..123: 0.654 there, against 0.487
    for ``blocks.1.norm1`` and 0.115 for the last attention's tokens ``blocks.2.norm1``):
    0.958 of these frames within 8 px (0.859 on clips 0..23)."""
    loaded, x, classes, _, near = planted
    assert loaded.layer == "blocks.0.norm1" and loaded.default_method == "gradcam"
    maps = loaded.explainer("gradcam")(x, classes=classes[:, :1]).maps[:, 0]
    assert peaks_on(maps, near).mean() >= 0.8


def test_the_wrong_class_moves_relevancy_s_tube_off_the_object(planted) -> None:
    """Explaining the complementary hue: relevancy's tube changes (median rho 0.621 with
    the true class's), its mass on the object halves (0.066 -> 0.030) and its peak leaves
    the object in most frames (0.401 still within 8 px). Rollout's tube is the same."""
    from saliency_tubes.metrics import energy_inside, spearman

    loaded, x, classes, masks, near = planted
    tubes = loaded.explainer("relevancy")(x, classes=classes)
    right, wrong = tubes.maps[:, 0], tubes.maps[:, 1]
    rho = np.median([spearman(right[i], wrong[i]) for i in range(len(x))])
    assert 0.3 < rho < 0.85
    mask = torch.from_numpy(masks)
    mass = [
        np.mean([float(energy_inside(m[i], mask[i])) for i in range(len(x))])
        for m in (right, wrong)
    ]
    assert mass[1] < 0.75 * mass[0]
    assert peaks_on(wrong, near).mean() <= 0.6
    rollout = loaded.explainer("rollout")(x, classes=classes).maps
    torch.testing.assert_close(rollout[:, 0], rollout[:, 1], rtol=0, atol=0)


def test_randomising_the_head_changes_relevancy_and_not_rollout(planted) -> None:
    """The project's sanity check (cascading randomisation, leaf layers, ``head.1``
    first): relevancy's tube changes (median rho 0.744 measured), rollout's cannot (rho
    exactly 1). With every layer random relevancy keeps little (0.252); rollout keeps a
    rank correlation of 0.669 (measured): its tube follows the poolings' geometry and the
    skip's argmax as much as the attention."""
    loaded, x, classes, _, _ = planted
    found = sanity_medians(loaded, x, classes, "head.1")
    assert found["rollout"][0] == pytest.approx(1.0, abs=1e-9)
    assert found["relevancy"][0] < 0.85
    assert found["relevancy"][1] < 0.4
