"""The forwards an evaluation runs, counted before it runs them: known curve ends, chosen
sanity steps, rankings computed once; none of them changes a score."""

from __future__ import annotations

import pytest
import torch

from _models import SmallResNet3D
from saliency_tubes import InputError
from saliency_tubes.metrics import (
    cascade_layers,
    curve_forwards,
    deletion,
    explainer_fn,
    insertion,
    perturbation_units,
    sanity_check,
)
from saliency_tubes.metrics.protocol import Forwards, Protocol, tube_forwards
from saliency_tubes.metrics.scoring import cascade_steps

SIGMOID_4 = float(torch.sigmoid(torch.tensor(4.0, dtype=torch.float64)))


class Planted(torch.nn.Module):
    """Class 0's logit is 4 x the mean of channel 0 over the last frame; class 1's is 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        evidence = 4.0 * x[:, 0, -1].mean(dim=(1, 2))
        return torch.stack([evidence, torch.zeros_like(evidence)], dim=1)


def _planted() -> tuple[Planted, torch.Tensor, torch.Tensor]:
    """The model, a clip of ones (p = sigmoid(4)) and the perfect tube (the last frame)."""
    tube = torch.zeros(4, 6, 6)
    tube[-1] = 1.0
    return Planted(), torch.ones(1, 2, 4, 6, 6), tube


def test_curve_forwards() -> None:
    assert curve_forwards(units=100, steps=16) == 17
    assert curve_forwards(units=100, steps=16, ends_known=True) == 15
    assert curve_forwards(units=3, steps=16, ends_known=True) == 2  # n = min(steps, units)
    assert curve_forwards(units=1, steps=16, ends_known=True) == 0  # nothing between the ends


@pytest.mark.parametrize("fn", [deletion, insertion])
def test_known_ends_give_the_same_curve_with_two_forwards_less(fn) -> None:
    model, clip, tube = _planted()
    tube = tube + torch.linspace(0, 0.5, tube.numel()).reshape(tube.shape)
    counted: list[int] = []
    whole = fn(model, clip, tube, 0, steps=4, substrate="zeros", on_batch=counted.append)
    assert sum(counted) == 5
    counted.clear()
    # p(clip) = sigmoid(4) and p(zeros) = 1/2 on the planted model
    ends = fn(model, clip, tube, 0, steps=4, substrate="zeros", ends=(SIGMOID_4, 0.5),
              on_batch=counted.append)  # fmt: skip
    assert sum(counted) == 3
    # the same values (the model computes in float32: the given ends are exact)
    assert ends.scores.tolist() == pytest.approx(whole.scores.tolist(), abs=1e-7)
    assert ends.auc == pytest.approx(whole.auc, abs=1e-7)
    one = fn(model, clip, tube, 0, steps=4, substrate="zeros", ends=(SIGMOID_4, 0.5), batch_size=1)
    assert torch.equal(one.scores, ends.scores)
    with pytest.raises(InputError, match="ends"):
        fn(model, clip, tube, 0, steps=4, ends=(0.5,))


def test_a_ranking_given_is_the_ranking_used() -> None:
    model, clip, tube = _planted()
    ranking = perturbation_units(tube, "tube")
    assert ranking[1].numel() == 2  # the last frame, then the rest
    given = deletion(model, clip, tube, 0, unit="tube", substrate="zeros", ranking=ranking)
    found = deletion(model, clip, tube, 0, unit="tube", substrate="zeros")
    assert torch.equal(given.scores, found.scores) and given.fractions.tolist() == [0.0, 0.25, 1.0]
    assert tube_forwards(tube, "tube", Protocol(), ranking=ranking) == 2 * 3
    assert tube_forwards(tube, "tube", Protocol(), ends_known=True) == 2 * 1
    with pytest.raises(InputError, match="ranking"):
        deletion(model, clip, tube, 0, ranking=perturbation_units(tube[:2], "frame"))


def test_sanity_steps_and_reference_keep_the_cascade_values() -> None:
    """Explaining only the ends of the cascade, or reusing the trained tube, leaves each
    step's correlation as the whole cascade computes it (the layers are randomised in the
    same order either way)."""
    model = SmallResNet3D(num_classes=3)
    clip = torch.randn(2, 3, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    layers = cascade_layers(model, clip[:1])
    assert layers == ["fc", "layer2", "layer1", "stem"]
    calls: list[int] = []
    explain = explainer_fn("cam", [0, 2], layer="layer2", classifier="fc")

    def fn(m: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return explain(m, x)

    whole = sanity_check(model, clip, fn, layers=layers, seed=5)
    assert len(calls) == 5 and whole.steps == (0, 1, 2, 3, 4)
    calls.clear()
    ends = sanity_check(
        model,
        clip,
        fn,
        layers=layers,
        seed=5,
        steps=cascade_steps(4, "ends"),
        reference=fn(model, clip),
    )
    assert len(calls) == 1 + 2  # the reference, then steps 1 and 4
    assert ends.steps == (0, 1, 4)
    assert torch.equal(ends.correlations, whole.correlations[[0, 1, 4]])
    assert ends.correlations[0].tolist() == pytest.approx([1.0, 1.0], abs=1e-12)
    with pytest.raises(InputError, match="sanity steps"):
        sanity_check(model, clip, fn, layers=layers, steps=(5,))
    assert cascade_steps(1, "ends") == [0, 1] and cascade_steps(3, "every") == [0, 1, 2, 3]


def test_forwards_add_up() -> None:
    plan = Forwards((("explain", 3), ("CAM, cubic: voxel", 30)), done=3).first("select", 2)
    assert plan.total == 35 and plan.done == 5
    assert plan.as_dict() == {
        "total": 35,
        "parts": {"select": 2, "explain": 3, "CAM, cubic: voxel": 30},
    }


def test_an_input_space_method_has_one_row_without_a_mode() -> None:
    from saliency_tubes.metrics.benchmark import BenchmarkConfig
    from saliency_tubes.metrics.protocol import row_groups, row_label

    groups = row_groups(
        ["cam", "occlusion", "integrated-gradients"], ["cubic", "linear"], ["uniform"]
    )
    assert groups == [
        ("cam", ["cam/cubic", "cam/linear"]),
        ("occlusion", ["occlusion/cubic"]),
        ("integrated-gradients", ["integrated-gradients/cubic"]),
        ("baseline/uniform", ["baseline/uniform"]),
    ]
    assert [row_label(k) for _, keys in groups for k in keys] == [
        "CAM, cubic",
        "CAM, linear",
        "Occlusion",
        "Integrated gradients",
        "uniform (baseline)",
    ]
    config = BenchmarkConfig(methods=("gradcam", "occlusion"), interpolations=("cubic", "nearest"))
    assert config.rows()[:3] == ["gradcam/cubic", "gradcam/nearest", "occlusion/cubic"]


def test_protocol_localisation_scores_with_its_pointing_tolerances() -> None:
    """The one localisation scoring of evaluate and of the batch's ground-truth columns."""
    from saliency_tubes.metrics import localisation
    from saliency_tubes.metrics.protocol import Protocol

    tube = torch.zeros(4, 16, 16)
    tube[2, 3, 9] = 1.0  # the peak: 1 frame and 5 px from the box (rows 8..11)
    mask = torch.zeros(4, 16, 16, dtype=torch.bool)
    mask[1, 8:12, 8:12] = True
    assert localisation(tube, mask)["pointing"] == 0.0
    strict = Protocol(tolerance_frames=0, tolerance_px=0.0).localisation(tube, mask)
    assert strict == localisation(tube, mask)
    scores = Protocol().localisation(tube, mask)  # 1 frame, 6 px
    assert scores["pointing"] == 1.0
    assert scores == localisation(tube, mask, tolerance_frames=1, tolerance_px=6.0)
    assert scores["mass"] == 0.0
