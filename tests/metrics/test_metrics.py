"""Metrics on hand-built cases with known answers (saliency_tubes.metrics)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage, stats
from torch import nn

from _models import SmallResNet3D, hooks_left
from saliency_tubes import GradCAM, InputError, SaliencyTubes
from saliency_tubes.errors import ClassSelectionError
from saliency_tubes.metrics import (
    auc,
    boxes_mask,
    cascade_layers,
    cascading_randomization,
    centre_gaussian,
    deletion,
    energy_inside,
    explainer_fn,
    gaussian_blur,
    gaussian_like,
    insertion,
    iou_top,
    load_ground_truth,
    localisation,
    make_substrate,
    motion_energy,
    perturbation_units,
    pointing_game,
    random_tube,
    rankdata,
    sanity_check,
    spearman,
    temporal_hit,
    uniform,
)
from saliency_tubes.metrics._tubes import connected_components
from saliency_tubes.metrics.stats import bootstrap_mean, paired_difference
from saliency_tubes.video import Preprocess

SIGMOID_4 = 1.0 / (1.0 + math.exp(-4.0))


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Tiny tensors: one torch thread (two threads spin-wait on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------- AUC


def test_auc_uniform_steps_is_the_petsiuk_formula() -> None:
    s = [1.0, 0.5, 0.25, 0.0]
    # (sum s - s0/2 - sn/2) / n = (1.75 - 0.5 - 0) / 3
    assert auc(s) == pytest.approx(1.25 / 3, abs=1e-12)
    assert auc(s, [0, 1 / 3, 2 / 3, 1]) == pytest.approx(1.25 / 3, abs=1e-12)


def test_auc_trapezoid_over_uneven_fractions() -> None:
    # 0.25 * (1 + .5) / 2 + 0.25 * (.5 + .25) / 2 + 0.5 * (.25 + 0) / 2
    assert auc([1.0, 0.5, 0.25, 0.0], [0.0, 0.25, 0.5, 1.0]) == pytest.approx(0.34375, abs=1e-12)
    with pytest.raises(InputError):
        auc([1.0])
    with pytest.raises(InputError):
        auc([1.0, 0.0], [0.0, 0.5, 1.0])


# --------------------------------------------------------------------------- localisation


def _volume() -> tuple[torch.Tensor, torch.Tensor]:
    """A (4, 8, 8) clip grid with a 2x2x2 object G at t 1..2, y 2..3, x 2..3; another at x 6..7."""
    g = torch.zeros(4, 8, 8, dtype=torch.bool)
    g[1:3, 2:4, 2:4] = True
    other = torch.zeros(4, 8, 8, dtype=torch.bool)
    other[1:3, 2:4, 6:8] = True
    return g, other


def test_tube_equal_to_the_ground_truth_scores_one() -> None:
    g, _ = _volume()
    scores = localisation(g.float(), g)
    assert scores == {"pointing": 1.0, "mass": 1.0, "iou": 1.0, "temporal_hit": 1.0}


def test_tube_on_the_wrong_object_scores_zero() -> None:
    g, other = _volume()
    assert pointing_game(other.float(), g) == 0.0
    assert energy_inside(other.float(), g) == 0.0
    assert iou_top(other.float(), g) == 0.0


def test_tied_maxima_and_uniform_tube_score_chance() -> None:
    g, other = _volume()
    both = (g | other).float()
    assert pointing_game(both, g) == 0.5  # half of the tied maxima are on the object
    assert energy_inside(both, g) == 0.5
    chance = 8 / (4 * 8 * 8)
    assert pointing_game(torch.ones(4, 8, 8), g) == pytest.approx(chance)
    assert energy_inside(torch.ones(4, 8, 8), g) == pytest.approx(chance)
    assert energy_inside(torch.zeros(4, 8, 8), g) == pytest.approx(
        chance
    )  # zero mass: no preference


def test_iou_of_a_shifted_tube() -> None:
    g, _ = _volume()
    shifted = torch.zeros(4, 8, 8)
    shifted[1:3, 2:4, 3:5] = 1.0  # overlaps G on x = 3 only: 4 voxels of 8
    assert iou_top(shifted, g) == pytest.approx(4 / 12)


def test_pointing_game_tolerance_in_pixels_and_frames() -> None:
    g, _ = _volume()
    tube = torch.zeros(4, 8, 8)
    tube[1, 2, 6] = 1.0  # 3 px right of G's last column (x = 3)
    assert pointing_game(tube, g, tolerance_px=2) == 0.0
    assert pointing_game(tube, g, tolerance_px=3) == 1.0
    late = torch.zeros(4, 8, 8)
    late[3, 2, 2] = 1.0  # one frame after G's last frame
    assert pointing_game(late, g) == 0.0
    assert pointing_game(late, g, tolerance_frames=1) == 1.0


def test_temporal_hit() -> None:
    g, _ = _volume()  # annotated interval: frames 1..2
    tube = torch.zeros(4, 8, 8)
    tube[3] = 1.0
    assert temporal_hit(tube, g) == 0.0
    tube[2] = 2.0
    assert temporal_hit(tube, g) == 1.0
    assert temporal_hit(torch.ones(4, 8, 8), g) == 0.5  # 2 of the 4 tied frames


def test_localisation_rejects_bad_input() -> None:
    g, _ = _volume()
    with pytest.raises(InputError, match="empty"):
        pointing_game(torch.ones(4, 8, 8), torch.zeros(4, 8, 8, dtype=torch.bool))
    with pytest.raises(InputError, match="shape"):
        energy_inside(torch.ones(4, 8, 8), g[:, :4])
    with pytest.raises(InputError, match="non-negative"):
        iou_top(-torch.ones(4, 8, 8), g)
    with pytest.raises(InputError, match="finite"):
        iou_top(torch.full((4, 8, 8), float("nan")), g)


# --------------------------------------------------------------------------- deletion / insertion


class PlantedNet(nn.Module):
    """Class 0's logit is 4 x the mean of channel 0 over the last frame; class 1's is 0."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(4.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        evidence = self.scale * x[:, 0, -1].mean(dim=(1, 2))
        return torch.stack([evidence, torch.zeros_like(evidence)], dim=1)


def _planted() -> tuple[PlantedNet, torch.Tensor, torch.Tensor]:
    clip = torch.ones(1, 2, 4, 6, 6)
    evidence = torch.zeros(4, 6, 6)
    evidence[-1] = 1.0  # the perfect tube: the last frame, a quarter of the voxels
    return PlantedNet(), clip, evidence


def test_deletion_of_a_perfect_ranking_beats_its_reverse() -> None:
    model, clip, tube = _planted()
    good = deletion(model, clip, tube, 0, steps=4, substrate="zeros")
    bad = deletion(model, clip, 1 - tube, 0, steps=4, substrate="zeros")
    assert good.fractions.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert good.scores.tolist() == pytest.approx([SIGMOID_4, 0.5, 0.5, 0.5, 0.5])
    assert bad.scores.tolist() == pytest.approx([SIGMOID_4] * 4 + [0.5])
    assert good.auc == pytest.approx((SIGMOID_4 + 4 * 0.5 - SIGMOID_4 / 2 - 0.25) / 4)
    assert bad.auc == pytest.approx((4 * SIGMOID_4 + 0.5 - SIGMOID_4 / 2 - 0.25) / 4)
    assert good.auc < bad.auc


def test_insertion_of_a_perfect_ranking_beats_its_reverse() -> None:
    model, clip, tube = _planted()
    good = insertion(model, clip, tube, 0, steps=4, substrate="zeros")
    bad = insertion(model, clip, 1 - tube, 0, steps=4, substrate="zeros")
    assert good.scores.tolist() == pytest.approx([0.5] + [SIGMOID_4] * 4)
    assert bad.scores.tolist() == pytest.approx([0.5] * 4 + [SIGMOID_4])
    assert good.auc > bad.auc


def test_frame_and_tube_units_on_the_planted_model() -> None:
    model, clip, tube = _planted()
    frames = deletion(model, clip, tube, 0, unit="frame", substrate="zeros")
    assert frames.scores.tolist() == pytest.approx([SIGMOID_4, 0.5, 0.5, 0.5, 0.5])
    region = deletion(model, clip, tube, 0, unit="tube", substrate="zeros")
    # one salient region (the last frame), then the rest of the clip as one unit
    assert region.fractions.tolist() == [0.0, 0.25, 1.0]
    assert region.scores.tolist() == pytest.approx([SIGMOID_4, 0.5, 0.5])
    assert region.auc == pytest.approx(0.25 * (SIGMOID_4 + 0.5) / 2 + 0.75 * 0.5)


def test_batches_and_memory_bound_do_not_change_the_curve() -> None:
    model, clip, tube = _planted()
    tube = tube + torch.linspace(0, 0.5, tube.numel()).reshape(tube.shape)
    whole = deletion(model, clip, tube, 0, steps=6, substrate="mean")
    ones = deletion(model, clip, tube, 0, steps=6, substrate="mean", batch_size=1)
    tiny = deletion(model, clip, tube, 0, steps=6, substrate="mean", max_bytes=1)
    assert torch.equal(whole.scores, ones.scores) and torch.equal(whole.scores, tiny.scores)


def test_units_grid_and_ties() -> None:
    tube = torch.zeros(2, 4, 4)
    tube[1, 2:, 2:] = 1.0
    membership, order = perturbation_units(tube, "voxel", grid=(2, 2, 2))
    assert membership.max() == 7 and int(order[0]) == 7  # the cell (t1, y1, x1) is first
    a = perturbation_units(torch.ones(2, 4, 4), "voxel", seed=0)[1]
    b = perturbation_units(torch.ones(2, 4, 4), "voxel", seed=1)[1]
    assert not torch.equal(a, b)  # flat tubes are not read in raster order
    with pytest.raises(InputError, match="grid"):
        perturbation_units(tube, "voxel", grid=(3, 2, 2))
    with pytest.raises(InputError, match="unit"):
        perturbation_units(tube, "pixel")  # type: ignore[arg-type]


def test_substrates() -> None:
    clip = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(1, 2, 3, 4, 5)
    assert torch.equal(make_substrate(clip, "zeros"), torch.zeros_like(clip))
    mean = make_substrate(clip, "mean")
    assert torch.allclose(mean[0, 0], clip[0, 0].mean().expand(3, 4, 5))
    flat = torch.full((1, 3, 4, 6, 6), 2.5)
    assert torch.allclose(make_substrate(flat, "blur"), flat)
    with pytest.raises(InputError, match="substrate"):
        make_substrate(clip, "noise")


def test_gaussian_blur_matches_scipy() -> None:
    x = torch.rand(1, 1, 6, 9, 11, generator=torch.Generator().manual_seed(0))
    ours = gaussian_blur(x, (1.0, 2.0, 0.0))[0, 0].numpy()
    ref = ndimage.gaussian_filter(
        x[0, 0].numpy().astype(np.float64), (1.0, 2.0, 0.0), mode="nearest", truncate=3.0
    )
    assert np.abs(ours - ref).max() < 1e-5


def test_connected_components_match_scipy() -> None:
    rng = np.random.default_rng(0)
    for connectivity, rank in ((6, 1), (26, 3)):
        for _ in range(5):
            volume = rng.random((5, 9, 11)) < 0.35
            labels, count = connected_components(torch.from_numpy(volume), connectivity)
            ref, ref_count = ndimage.label(volume, ndimage.generate_binary_structure(3, rank))
            assert count == ref_count and np.array_equal(labels.numpy(), ref)


def test_wrong_target_and_clip_are_reported() -> None:
    model, clip, tube = _planted()
    with pytest.raises(ClassSelectionError, match="target"):
        deletion(model, clip, tube, 5, steps=2)
    with pytest.raises(InputError, match="clip's"):
        deletion(model, clip, tube[:2], 0, steps=2)
    with pytest.raises(InputError, match="one clip"):
        deletion(model, clip.repeat(2, 1, 1, 1, 1), tube, 0, steps=2)


# --------------------------------------------------------------------------- model unchanged


def _state(model: nn.Module) -> list[tuple[bool, ...]]:
    return [
        tuple(m.training for m in model.modules()),
        tuple(p.requires_grad for p in model.parameters()),
    ]


def test_metrics_leave_the_model_unchanged() -> None:
    model = SmallResNet3D(num_classes=3).train()
    model.stem[0].weight.requires_grad_(False)
    before = _state(model)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    clip = torch.randn(1, 3, 4, 16, 16, generator=torch.Generator().manual_seed(1))
    tube = torch.rand(4, 16, 16, generator=torch.Generator().manual_seed(2))
    deletion(model, clip, tube, 1, steps=3)
    insertion(model, clip, tube, 1, steps=3, unit="tube")
    fn = explainer_fn("gradcam", [1], layer="layer2", classifier="fc")
    sanity_check(model, clip, fn)
    cascade_layers(model, clip, "leaf")
    with pytest.raises(ClassSelectionError):
        deletion(model, clip, tube, 7, steps=3)  # fails inside the batched forward
    assert _state(model) == before and hooks_left(model) == 0
    after = model.state_dict()
    assert all(torch.equal(weights[k], after[k]) for k in weights)


# --------------------------------------------------------------------------- sanity check


class RampNet(nn.Module):
    """1x1x1 conv (identity, 2 channels) -> ReLU -> global pool -> linear; class 0 weighs channel 0."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(2, 2, 1, bias=False)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(2, 2)
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(2).reshape(2, 2, 1, 1, 1))
            self.fc.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
            self.fc.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.relu(self.conv(x))).flatten(1))


def _ramp_clip() -> torch.Tensor:
    ramp = torch.arange(1, 9, dtype=torch.float32).expand(2, 4, 8)  # (T, H, W), grows along x
    return torch.stack([ramp, 9 - ramp]).unsqueeze(0)  # channel 1: the reversed ramp


def _cam(model: nn.Module, clip: torch.Tensor) -> torch.Tensor:
    return SaliencyTubes(model, layer="relu", classifier="fc")(clip, classes=[0]).maps[:, 0]


def test_sanity_check_known_correlation_drop() -> None:
    """fc swapped -> class 0 weighs the reversed ramp (rho = -1); conv zeroed -> constant (0)."""

    def scripted(module: nn.Module, _gen: torch.Generator) -> None:
        with torch.no_grad():
            if isinstance(module, nn.Linear):
                module.weight.copy_(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
            else:
                module.weight.zero_()

    model = RampNet()
    result = sanity_check(model, _ramp_clip(), _cam, layers=["fc", "conv"], randomize=scripted)
    assert result.layers == ("fc", "conv")
    assert result.correlations[:, 0].tolist() == pytest.approx([1.0, -1.0, 0.0], abs=1e-12)
    assert torch.equal(model.fc.weight, torch.eye(2))  # the user's model is untouched


def test_sanity_check_gaussian_randomisation_is_seeded() -> None:
    """Re-drawn fc weights (w0, w1) give the tube (w0 - w1) * ramp + c: rho = sign(w0 - w1)."""
    model = RampNet()
    weight = model.fc.weight.detach().double()
    gen = torch.Generator().manual_seed(3)
    drawn = torch.randn((2, 2), generator=gen, dtype=torch.float64) * weight.std() + weight.mean()
    expected = 1.0 if drawn[0, 0] > drawn[0, 1] else -1.0
    result = sanity_check(model, _ramp_clip(), _cam, layers=["fc"], seed=3)
    assert result.final.tolist() == pytest.approx([expected], abs=1e-12)


def test_cascade_copies_and_layers() -> None:
    model = SmallResNet3D(num_classes=3)
    clip = torch.randn(1, 3, 4, 16, 16)
    assert cascade_layers(model, clip) == ["fc", "layer2", "layer1", "stem"]
    leaves = cascade_layers(model, clip, "leaf")
    assert leaves[0] == "fc" and leaves[-1] == "stem.0" and "layer2.0.down.0" in leaves
    seen = []
    for name, twin in cascading_randomization(model, ["fc"], seed=0):
        assert twin is not model
        seen.append((name, twin.fc.weight.clone()))
    assert seen[0][0] == "" and torch.equal(seen[0][1], model.fc.weight)
    assert not torch.equal(seen[1][1], model.fc.weight)


def test_gaussian_like_keeps_the_scale() -> None:
    layer = nn.Linear(64, 64)
    weight = layer.weight.detach()
    mean, std = float(weight.mean()), float(weight.std())
    gaussian_like(layer, torch.Generator().manual_seed(0))
    weight = layer.weight.detach()
    assert float(weight.mean()) == pytest.approx(mean, abs=3 * std / 64)
    assert float(weight.std()) == pytest.approx(std, rel=0.05)


def test_explainer_fn_modes_equal_the_explainer() -> None:
    model = SmallResNet3D(num_classes=3)
    clip = torch.randn(2, 3, 4, 16, 16, generator=torch.Generator().manual_seed(4))
    fn = explainer_fn("gradcam", [1, 2], interpolations=["cubic", "nearest"], layer="layer2")
    maps = fn(model, clip)
    for k, mode in enumerate(["cubic", "nearest"]):
        ref = GradCAM(model, layer="layer2", interpolation=mode)(clip, classes=[[1], [2]]).maps
        assert torch.allclose(maps[:, k], ref[:, 0], atol=1e-6)
    with pytest.raises(InputError, match="by name"):
        explainer_fn("cam", [0], layer=model.layer2)


def test_rankdata_and_spearman_match_scipy() -> None:
    x = torch.randint(0, 6, (3, 5, 7)).float()
    assert np.allclose(rankdata(x).numpy(), stats.rankdata(x.numpy().ravel()))
    a, b = torch.rand(200), torch.rand(200)
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b)[0], abs=1e-12)
    assert math.isnan(spearman(torch.ones(5), torch.arange(5.0)))


# --------------------------------------------------------------------------- baselines


def test_baselines() -> None:
    clip = torch.zeros(2, 3, 4, 9, 9)
    assert torch.equal(uniform(clip), torch.ones(2, 4, 9, 9))
    centre = centre_gaussian(clip, sigma=2 / 9)  # sigma = 2 px
    assert centre[0, 0, 4, 4] == 1.0
    assert float(centre[1, 3, 4, 6]) == pytest.approx(math.exp(-0.5))
    assert float(centre[0, 0, 6, 6]) == pytest.approx(math.exp(-1.0))
    r = random_tube(clip, seed=5)
    assert torch.equal(r, random_tube(clip, seed=5)) and not torch.equal(
        r, random_tube(clip, seed=6)
    )
    assert 0 <= float(r.min()) and float(r.max()) < 1
    moving = torch.zeros(1, 3, 4, 5, 5)
    moving[0, 0, 2, 1, 1] = 3.0  # appears in frame 2, gone in frame 3
    energy = motion_energy(moving)
    expected = torch.zeros(1, 4, 5, 5)
    expected[0, 2:, 1, 1] = 1.0  # (3)^2 at frames 2 and 3, normalised; frame 0 copies frame 1
    assert torch.equal(energy, expected)
    assert sanity_check(
        nn.Linear(1, 1), moving, lambda _m, c: motion_energy(c), layers=[""]
    ).final.tolist() == [1.0]


# --------------------------------------------------------------------------- ground truth


def test_boxes_mask_covers_pixel_centres() -> None:
    mask = boxes_mask([(0, 0, 2, 1), (3.2, 2.2, 3.4, 2.4)], (4, 5))
    expected = np.zeros((4, 5), dtype=bool)
    expected[0, 0:2] = True
    expected[2, 3] = True  # too small for a pixel centre: the pixel under its centre
    assert np.array_equal(mask, expected)


def test_ground_truth_files_and_clip_mapping(tmp_path: Path) -> None:
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"size": [16, 24], "boxes": {"1": [[0, 0, 12, 8]], "2": []}}))
    truth = load_ground_truth(boxes, num_frames=3, size=(32, 48))  # drawn at half size
    frames = truth.frames(np.array([0, 1]))
    assert not frames[0].any() and frames[1].sum() == 16 * 24 and frames[1][:16, :24].all()
    clip = truth.on_clip(np.array([1, 1]), Preprocess(size=(16, 24), resize="full"))
    assert clip.shape == (2, 16, 24) and int(clip[0].sum()) == 8 * 12
    mask = tmp_path / "mask.npy"
    values = np.zeros((3, 32, 48), dtype=np.uint8)
    values[2, 4:6, 10:13] = 1  # an all-zero mask is refused: the object must be somewhere
    np.save(mask, values)
    truth = load_ground_truth(mask, 3, (32, 48))
    assert truth.kind == "mask" and np.array_equal(
        truth.frames(np.array([0, 2])), values[[0, 2]] != 0
    )


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("missing.json", None, "does not exist"),
        ("gt.txt", "x", r"\.json.*\.npy"),
        ("bad.json", "{not json", "JSON"),
        ("nobox.json", json.dumps({"frames": {}}), '"boxes"'),
        ("range.json", json.dumps({"boxes": {"9": [[0, 0, 2, 2]]}}), r"\[0, 3\)"),
        ("flip.json", json.dumps({"boxes": {"0": [[4, 0, 2, 2]]}}), "x0 < x1"),
        ("empty.json", json.dumps({"boxes": {"0": []}}), "at least one box"),
    ],
)
def test_ground_truth_errors(tmp_path: Path, name: str, content: str | None, match: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputError, match=match):
        load_ground_truth(path, num_frames=3, size=(32, 48))


def test_mask_of_the_wrong_shape(tmp_path: Path) -> None:
    path = tmp_path / "mask.npy"
    np.save(path, np.zeros((2, 32, 48), dtype=bool))
    with pytest.raises(InputError, match=r"\(3, 32, 48\)"):
        load_ground_truth(path, num_frames=3, size=(32, 48))


# --------------------------------------------------------------------------- statistics


def test_bootstrap_intervals() -> None:
    e = bootstrap_mean([0.5] * 10)
    assert (e.mean, e.low, e.high, e.n) == (0.5, 0.5, 0.5, 10)
    e = bootstrap_mean([0.0, 1.0] * 20, seed=0)
    assert e.mean == 0.5 and e.low < 0.5 < e.high and e.high - e.low < 0.4
    nan = bootstrap_mean([float("nan"), 1.0, 3.0])
    assert nan.n == 2 and nan.mean == 2.0
    assert math.isnan(bootstrap_mean([float("nan")]).mean)
    d = paired_difference([1.0, 2.0, 3.0], [0.5, 1.5, 2.5])
    assert d.mean == pytest.approx(0.5) and d.low == pytest.approx(0.5)
