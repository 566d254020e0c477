"""Average drop and increase in confidence (Chattopadhay et al. 2018) of one tube, by hand
on a model whose score is a known function of the clip; and in evaluate's report."""

from __future__ import annotations

import math

import pytest
import torch

from saliency_tubes import InputError
from saliency_tubes.metrics.protocol import (
    INCREASE_TOLERANCE,
    Protocol,
    confidence_change,
    confidence_forwards,
    score_tube,
)


class LastFrame(torch.nn.Module):
    """Class 0's logit is 4 x the mean of channel 0 over the last frame; class 1's is 0:
    p_0 = sigmoid(4 m)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        evidence = 4.0 * x[:, 0, -1].mean(dim=(1, 2))
        return torch.stack([evidence, torch.zeros_like(evidence)], dim=1)


def sigmoid(v: float) -> float:
    return 1 / (1 + math.exp(-v))


def test_the_drop_and_the_increase_by_hand() -> None:
    model = LastFrame()
    clip = torch.zeros(1, 2, 3, 4, 4)
    clip[:, 0] = 1.0
    zeros = torch.zeros_like(clip)
    last = torch.zeros(3, 4, 4)
    last[-1] = 1.0
    # The tube keeps the evidence: O = Y, no drop, no increase.
    assert confidence_change(model, clip, last, 0, zeros) == {"average_drop": 0.0, "increase": 0.0}
    # Half of everything: O = sigmoid(2), drop (Y - O) / Y.
    half = confidence_change(model, clip, torch.full((3, 4, 4), 0.5), 0, zeros)
    assert half["average_drop"] == pytest.approx((sigmoid(4) - sigmoid(2)) / sigmoid(4), abs=1e-6)
    assert half["increase"] == 0.0
    # A blurred-like substrate of 1 where the tube is 0: O from the blend.
    ones = torch.ones_like(clip)
    assert confidence_change(model, clip, 1 - last, 0, ones)["average_drop"] == 0.0
    # Evidence for and against in the last frame: keeping the part for raises the score.
    mixed = clip.clone()
    mixed[0, 0, -1, :, 2:] = -1.0  # mean 0: Y = 1/2
    keep = torch.zeros(3, 4, 4)
    keep[-1, :, :2] = 1.0
    up = confidence_change(model, mixed, keep, 0, zeros)
    assert up == {"average_drop": 0.0, "increase": 1.0}  # O = sigmoid(2) > 1/2
    # Y given: the same numbers, one forward instead of two.
    calls: list[int] = []
    handle = model.register_forward_pre_hook(lambda _m, a: calls.append(a[0].shape[0]))
    try:
        known = confidence_change(model, mixed, keep, 0, zeros, p_clip=0.5)
    finally:
        handle.remove()
    assert known == up and sum(calls) == confidence_forwards(True) == 1
    assert confidence_forwards(False) == 2


@pytest.mark.parametrize(("delta", "counted"), [(8e-6, False), (4e-5, True)])
def test_an_increase_within_the_tolerance_is_float_noise(delta: float, counted: bool) -> None:
    """Y = 1/2 (the last frame's mean is 0); the tube keeps all of it but 1 - delta of its
    negative half, so the mean rises by delta / 2, the logit by 2 delta and O - Y by about
    delta / 2: delta = 8e-6 (O - Y = 4e-6) is under INCREASE_TOLERANCE (1e-5) and no
    increase, delta = 4e-5 (O - Y = 2e-5) is one; with no tolerance both are."""
    assert INCREASE_TOLERANCE == 1e-5
    model = LastFrame()
    clip = torch.zeros(1, 2, 3, 4, 4)
    clip[0, 0, -1, :, :2] = 1.0
    clip[0, 0, -1, :, 2:] = -1.0
    tube = torch.ones(3, 4, 4)
    tube[-1, :, 2:] = 1.0 - delta
    zeros = torch.zeros_like(clip)
    gap = sigmoid(2 * delta) - 0.5
    assert gap == pytest.approx(delta / 2, rel=1e-3)
    got = confidence_change(model, clip, tube, 0, zeros)
    assert got["increase"] == float(counted)
    assert got["average_drop"] == 0.0
    assert confidence_change(model, clip, tube, 0, zeros, tolerance=0.0)["increase"] == 1.0


def test_score_tube_counts_an_increase_with_the_protocol_s_tolerance() -> None:
    """The path ``evaluate`` and the benchmark take: :func:`score_tube` hands the protocol's
    ``increase_tolerance`` to the confidence change (O - Y = 4e-6 here, as above), and the
    protocol refuses a negative one."""
    model = LastFrame()
    clip = torch.zeros(1, 2, 3, 4, 4)
    clip[0, 0, -1, :, :2] = 1.0
    clip[0, 0, -1, :, 2:] = -1.0
    tube = torch.ones(3, 4, 4)
    tube[-1, :, 2:] = 1.0 - 8e-6
    mask = torch.zeros(3, 4, 4, dtype=torch.bool)
    mask[-1, :, :2] = True
    zeros = torch.zeros_like(clip)
    got = {}
    for tolerance in (INCREASE_TOLERANCE, 1e-6, 0.0):
        protocol = Protocol(steps=2, cell=(1, 1, 1), increase_tolerance=tolerance)
        scores, _ = score_tube(model, clip, tube, mask, 0, protocol, substrate=zeros)
        got[tolerance] = scores["increase"]
    assert got == {INCREASE_TOLERANCE: 0.0, 1e-6: 1.0, 0.0: 1.0}
    assert Protocol().increase_tolerance == INCREASE_TOLERANCE
    with pytest.raises(InputError, match="expected increase_tolerance >= 0, but got -1"):
        Protocol(increase_tolerance=-1.0).check()


def test_evaluate_s_option_defaults_to_the_constant() -> None:
    """``evaluate --increase-tolerance`` writes its default out (the CLI starts without
    torch): it is :data:`INCREASE_TOLERANCE`."""
    from saliency_tubes.cli.evaluate import evaluate_command

    option = next(p for p in evaluate_command.params if p.name == "increase_tolerance")
    assert option.default == INCREASE_TOLERANCE
