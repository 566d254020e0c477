"""Planted evidence and sanity on the shipped transformer ``tiny-colours-vit``.

Twelve colour clips (``make_colour_clip(seed=s)``, s = 0..11: not in its training data,
whose clip seeds are spawned 64-bit numbers, nor its validation data, and not chosen): one
coloured target among 2-5 grey look-alikes of the same shapes, sizes and motions; only its
hue tells the class. Measured first by ``benchmarks/vit_planted.py``
(``benchmarks/RESULTS_vit_planted.md``); the bounds below keep a margin under what it
measured on these twelve clips.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _planted import classifies_the_clips, peaks_on, planted_set, sanity_medians
from saliency_tubes.metrics import energy_inside


@pytest.fixture(scope="module")
def planted():
    return planted_set("tiny-colours-vit")


def test_the_model_classifies_the_twelve_clips(planted) -> None:
    loaded, x, classes, _, _ = planted
    assert classifies_the_clips(loaded, x, classes)


def test_relevancy_and_rollout_peak_on_the_planted_object(planted) -> None:
    """Measured on these clips (load 5): relevancy 0.984 of the 192 frames within one cell
    (0.974 within 4 px), its worst clip 0.812; rollout 1.000. The issue's bar: 0.9."""
    loaded, x, classes, _, near = planted
    for method in ("relevancy", "rollout"):
        maps = loaded.explainer(method)(x, classes=classes[:, :1]).maps[:, 0]
        hits = peaks_on(maps, near)
        assert hits.mean() >= 0.9, (method, hits.mean())
        assert hits.mean(1).min() >= 0.75, (method, hits.mean(1))


def test_gradcam_on_the_transformer_is_below_the_bar(planted) -> None:
    """Grad-CAM on the tokens entering the last block (``blocks.1``, its best layer: on
    clips 100..123, 0.685 against 0.547 for ``blocks.0``, 0.352 for ``embed``, 0.456 for
    ``blocks.2.norm1`` and 0 for ``blocks.2``, whose patch tokens never reach the class
    token; benchmarks/vit_planted.py) peaks on the object in 0.745 of these frames, its
    worst clip 0.375 (0.794 on clips 0..23): it does NOT reach the issue's 0.9 on this
    transformer, nor does any layer under VideoMAE's mean head or a token-normed mean head
    (benchmarks/vit_gradcam_heads.py: best 0.747 and 0.760; the channel weights average the
    gradient over the tokens, and the object's token often scores below the rest: a sign
    flip). Kept as a measured fact, with a margin both ways, so that a change is seen."""
    loaded, x, classes, _, near = planted
    assert loaded.layer == "blocks.1"
    maps = loaded.explainer("gradcam")(x, classes=classes[:, :1]).maps[:, 0]
    assert 0.6 <= peaks_on(maps, near).mean() < 0.9


def test_the_wrong_class_changes_relevancy_s_tube_but_not_its_peak(planted) -> None:
    """Explaining the complementary hue: relevancy's tube changes (median Spearman rho
    0.539 with the true class's; mass on the object 0.292 -> 0.244) but its peak stays on
    the object (1.000 of the frames): the object is the only thing whose colour any class
    score reads, so the attention paths to it carry both classes' relevance. Rollout's
    tube is the same for both (it has no class)."""
    from saliency_tubes.metrics import spearman

    loaded, x, classes, masks, near = planted
    tubes = loaded.explainer("relevancy")(x, classes=classes)
    right, wrong = tubes.maps[:, 0], tubes.maps[:, 1]
    rho = np.median([spearman(right[i], wrong[i]) for i in range(len(x))])
    assert 0.3 < rho < 0.8
    mask = torch.from_numpy(masks)
    mass = [
        np.mean([float(energy_inside(m[i], mask[i])) for i in range(len(x))])
        for m in (right, wrong)
    ]
    assert mass[1] < mass[0]
    assert peaks_on(wrong, near).mean() >= 0.9
    rollout = loaded.explainer("rollout")(x, classes=classes).maps
    torch.testing.assert_close(rollout[:, 0], rollout[:, 1], rtol=0, atol=0)


def test_randomising_the_head_changes_relevancy_and_not_rollout(planted) -> None:
    """The project's sanity check (cascading randomisation, leaf layers, top first). Step 1
    randomises the head ``fc``: relevancy's tube changes (median rho 0.591 measured),
    rollout's cannot (it never reads the head: rho exactly 1); with every layer random
    both lose their ranking (relevancy 0.104, rollout 0.099 measured)."""
    loaded, x, classes, _, _ = planted
    found = sanity_medians(loaded, x, classes, "fc")
    assert found["rollout"][0] == pytest.approx(1.0, abs=1e-9)
    assert found["relevancy"][0] < 0.8
    assert found["relevancy"][1] < 0.3 and found["rollout"][1] < 0.3
