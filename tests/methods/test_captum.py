"""Occlusion and integrated gradients (through captum): each against its formula computed by
hand on a tiny fixed-weight net, every class from one set of occluded forwards, batches and
the memory bound, the progress callback, the forwards each costs, the options refused, and
the one error line when captum is missing."""

from __future__ import annotations

import itertools
import math
import sys

import pytest
import torch
from torch import nn

import saliency_tubes as st
from _models import LinearNet, SmallResNet3D, hooks_left, passes

pytest.importorskip("captum", reason="the captum methods need the extra saliency-tubes[captum]")

from saliency_tubes.methods.attribution import occlusion_windows  # noqa: E402

# --------------------------------------------------------------------------- a hand net

CONV = torch.tensor([[1.0, -0.5], [-0.7, 0.4], [0.3, 0.9]]).reshape(3, 2, 1, 1, 1)
FC = torch.tensor([[0.8, -0.6, 0.5], [-0.2, 0.9, -1.0]])
BIAS = torch.tensor([0.1, -0.2])


class SquareNet(nn.Module):
    """1x1x1 conv -> square -> global average pool -> linear: a score whose gradient at
    the clip varies over space and time (it is linear in the clip's voxels squared)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Conv3d(2, 3, kernel_size=1, bias=False)
        self.fc = nn.Linear(3, 2)
        with torch.no_grad():
            self.features.weight.copy_(CONV)
            self.fc.weight.copy_(FC)
            self.fc.bias.copy_(BIAS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).pow(2).mean(dim=(2, 3, 4)))


def square_clip(n: int = 1, seed: int = 0, size: tuple[int, int, int] = (4, 8, 8)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, *size, generator=g)


def _starts(length: int, window: int, stride: int) -> list[int]:
    """captum's window starts along one axis: 0, stride, ... until the axis is covered."""
    return [i * stride for i in range(math.ceil((length - window) / stride) + 1)]


def hand_occlusion(
    model: nn.Module, clip: torch.Tensor, cls: int, window: tuple, stride: tuple
) -> torch.Tensor:
    """Zero each window (all channels), the class logit's drop, each voxel the mean drop of
    the windows covering it, summed over the channels: (T, H, W)."""
    size = clip.shape[2:]
    total = torch.zeros(size)
    count = torch.zeros(size)
    with torch.no_grad():
        full = model(clip)[0, cls]
        axes = [_starts(s, w, d) for s, w, d in zip(size, window, stride, strict=True)]
        for t, y, x in itertools.product(*axes):
            occluded = clip.clone()
            part = (
                slice(t, t + window[0]),
                slice(y, y + window[1]),
                slice(x, x + window[2]),
            )
            occluded[(0, slice(None), *part)] = 0.0
            total[part] += float(full - model(occluded)[0, cls])
            count[part] += 1
    return clip.shape[1] * total / count


@pytest.mark.parametrize(
    "window, stride",
    [((2, 4, 4), (1, 2, 2)), ((2, 3, 3), (2, 2, 2)), (None, None)],  # overlapping, cut, default
)
def test_occlusion_equals_a_hand_loop_over_windows(window, stride) -> None:
    model = SquareNet()
    clip = square_clip(seed=1)
    tubes = st.Occlusion(model, window=window, stride=stride, sign="signed")(clip, classes=[0, 1])
    win, step, count = occlusion_windows((4, 8, 8), window, stride)
    if window is None:
        assert (win, step, count) == ((1, 2, 2), (1, 1, 1), 4 * 7 * 7)  # a quarter, half of it
    for c in range(2):
        expected = hand_occlusion(model, clip, c, win, step)
        torch.testing.assert_close(tubes.raw[0, c], expected, rtol=1e-4, atol=1e-5)
    assert tubes.raw.shape == tubes.maps.shape == (1, 2, 4, 8, 8)
    assert tubes.layer == "input" and tubes.classifier == "" and tubes.method == "occlusion"
    torch.testing.assert_close(tubes.maps, st.normalize_tubes(tubes.raw))  # no spline
    positive = st.Occlusion(model, window=window, stride=stride)(clip, classes=[1])
    torch.testing.assert_close(positive.raw[0, 0], tubes.raw[0, 1].clamp_min(0))
    absolute = st.Occlusion(model, window=window, stride=stride, sign="absolute")(clip, classes=1)
    torch.testing.assert_close(absolute.raw[0, 0], tubes.raw[0, 1].abs())


def test_occlusion_every_class_batches_memory_bound_and_progress() -> None:
    model = SmallResNet3D(num_classes=4)
    clip = torch.randn(2, 3, 4, 16, 16, generator=torch.Generator().manual_seed(7))
    explainer = st.Occlusion(model, window=(2, 8, 8), stride=(2, 4, 4))
    every = explainer(clip, classes="all")
    for c in range(4):
        alone = explainer(clip, classes=[c])
        torch.testing.assert_close(every.raw[:, c], alone.raw[:, 0], rtol=1e-4, atol=1e-5)
    for i in range(2):
        single = explainer(clip[i : i + 1], classes="all")
        torch.testing.assert_close(every.raw[i], single.raw[0], rtol=1e-4, atol=1e-5)
    seen: list[tuple[int, int]] = []
    batched = st.Occlusion(
        model,
        window=(2, 8, 8),
        stride=(2, 4, 4),
        batch_size=4,
        progress=lambda d, t: seen.append((d, t)),
    )(clip, classes="all")
    tiny = st.Occlusion(model, window=(2, 8, 8), stride=(2, 4, 4), max_bytes=1)(clip, classes="all")
    torch.testing.assert_close(batched.raw, every.raw, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(tiny.raw, every.raw, rtol=1e-4, atol=1e-5)
    windows = 2 * 3 * 3
    assert seen[-1] == (2 * (1 + windows), 2 * (1 + windows))
    # captum's unoccluded forward (2 clips), then 4 windows of 2 clips per forward.
    assert [d for d, _ in seen] == [2] + [min(2 + 8 * (i + 1), 38) for i in range(len(seen) - 1)]


def test_integrated_gradients_on_a_linear_model_is_input_times_weight() -> None:
    clip = square_clip(2, seed=2)
    model = LinearNet(tuple(clip.shape[1:]))
    for baseline in (0.0, 0.5):
        tubes = st.IntegratedGradients(model, sign="signed", n_steps=3, baseline=baseline)(
            clip, classes=[0, 2]
        )
        for j, c in enumerate((0, 2)):
            expected = ((clip - baseline) * model.weight[c].detach()).sum(1)  # summed over channels
            torch.testing.assert_close(tubes.raw[:, j], expected, rtol=1e-4, atol=1e-5)
    assert tubes.layer == "input" and tubes.method == "integrated-gradients"


def _hand_trapezoid(model: nn.Module, clip: torch.Tensor, cls: int, steps: int) -> torch.Tensor:
    """(X - 0) times captum's riemann_trapezoid sum of the gradient along the straight path
    from 0 to X: n points 0, 1/(n-1), ..., 1, each weighed 1/n, the two ends half that (so
    the weights add up to 1 - 1/n: captum's rule, not the textbook trapezoid's 1/(n-1))."""
    total = torch.zeros_like(clip)
    for i in range(steps):
        alpha = i / (steps - 1)
        weight = (0.5 if i in (0, steps - 1) else 1.0) / steps
        point = (alpha * clip).requires_grad_(True)
        (grad,) = torch.autograd.grad(model(point)[:, cls].sum(), point)
        total += weight * grad
    return (clip * total).sum(1)


@pytest.mark.parametrize("cls", [0, 1])
def test_integrated_gradients_equals_a_hand_riemann_sum_and_is_complete(cls: int) -> None:
    model = SquareNet()
    clip = square_clip(seed=3)
    ig = st.IntegratedGradients(model, sign="signed", n_steps=7, integration="riemann_trapezoid")
    tubes = ig(clip, classes=cls)
    torch.testing.assert_close(
        tubes.raw[:, 0], _hand_trapezoid(model, clip, cls, 7), rtol=1e-4, atol=1e-6
    )
    # Completeness: the attributions add up to f(X) - f(0) (Gauss-Legendre, exact here:
    # the score is quadratic along the path).
    exact = st.IntegratedGradients(model, sign="signed", n_steps=4)(clip, classes=cls)
    with torch.no_grad():
        gap = model(clip)[0, cls] - model(torch.zeros_like(clip))[0, cls]
    assert float(exact.raw.sum()) == pytest.approx(float(gap), rel=1e-4)
    absolute = st.IntegratedGradients(model, n_steps=4, sign="absolute")(clip, classes=cls)
    torch.testing.assert_close(absolute.raw, exact.raw.abs())
    positive = st.IntegratedGradients(model, n_steps=4)(clip, classes=cls)  # the default sign
    torch.testing.assert_close(positive.raw, exact.raw.clamp_min(0))


def test_integrated_gradients_batches_memory_bound_and_progress() -> None:
    model = SmallResNet3D(num_classes=4)
    clip = torch.randn(2, 3, 4, 16, 16, generator=torch.Generator().manual_seed(8))
    whole = st.IntegratedGradients(model, n_steps=6)(clip, classes="top2")
    seen: list[tuple[int, int]] = []
    parts = st.IntegratedGradients(
        model, n_steps=6, batch_size=4, progress=lambda d, t: seen.append((d, t))
    )(clip, classes="top2")
    tiny = st.IntegratedGradients(model, n_steps=6, max_bytes=1)(clip, classes="top2")
    torch.testing.assert_close(parts.raw, whole.raw, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(tiny.raw, whole.raw, rtol=1e-4, atol=1e-6)
    assert seen[-1] == (2 * 2 * 6, 2 * 2 * 6)  # samples x classes x steps
    for i in range(2):
        single = st.IntegratedGradients(model, n_steps=6)(clip[i : i + 1], classes="top2")
        torch.testing.assert_close(single.raw[0], whole.raw[i], rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------- costs


def test_what_each_costs_is_what_forwards_says() -> None:
    clip = torch.randn(1, 3, 4, 16, 16, generator=torch.Generator().manual_seed(9))
    occlusion = st.Occlusion(SmallResNet3D())
    for classes, k in (([0, 3], 2), ("all", 5)):
        assert passes(occlusion, clip, classes) == (2 + 4 * 7 * 7, 0)  # whatever the classes
        assert occlusion.forwards((4, 16, 16), k) == 2 + 196
    ig = st.IntegratedGradients(SmallResNet3D(), n_steps=10, batch_size=5)
    assert passes(ig, clip, [0, 3]) == (1 + 2 * 10, 2 * 2)  # a backward per batch of 5 steps
    assert ig.forwards((4, 16, 16), 2) == 21


# --------------------------------------------------------------------------- options


def test_options_that_mean_nothing_here_are_refused_or_ignored() -> None:
    model = SmallResNet3D()
    clip = torch.randn(1, 3, 4, 16, 16, generator=torch.Generator().manual_seed(1))
    # The zoo's layer and head are accepted and ignored: the tube is the same without them.
    with_layer = st.Occlusion(model, layer="layer2", classifier="fc", window=4)(clip)
    torch.testing.assert_close(with_layer.raw, st.Occlusion(model, window=4)(clip).raw)
    assert with_layer.layer == "input"
    with pytest.raises(TypeError):
        st.IntegratedGradients(model, per_frame_weights=True)  # type: ignore[call-arg]
    for bad, match in (
        (dict(sign="relu"), "^expected sign one of positive, absolute, signed"),
        (dict(window=(1, 2)), r"^expected window as three positive ints"),
        (dict(window=0), r"^expected window as three positive ints"),
        (dict(batch_size=0), "^expected batch_size"),
        (dict(max_bytes=0), "^expected max_bytes"),
        (dict(baseline=float("nan")), "^expected a finite baseline"),
    ):
        with pytest.raises(st.InputError, match=match):
            st.Occlusion(model, **bad)
    with pytest.raises(st.InputError, match="^expected an occlusion stride no larger"):
        st.Occlusion(model, window=(1, 2, 2), stride=(1, 4, 4))(clip)
    for bad, match in (
        (dict(n_steps=0), "^expected n_steps"),
        (dict(integration="simpson"), "^expected integration one of gausslegendre"),
    ):
        with pytest.raises(st.InputError, match=match):
            st.IntegratedGradients(model, **bad)


def test_without_captum_one_error_line_says_how_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "captum", None)  # `import captum.attr` now raises
    monkeypatch.setitem(sys.modules, "captum.attr", None)
    clip = torch.randn(1, 3, 4, 16, 16)
    for name in ("occlusion", "integrated-gradients"):
        with pytest.raises(st.InputError) as caught:
            st.METHODS[name](SmallResNet3D())(clip)
        assert str(caught.value) == (
            f"--method {name} needs captum, which is not installed; install it with "
            "pip install 'saliency-tubes[captum]'"
        )


def test_the_model_comes_back_unchanged_when_progress_raises() -> None:
    for method in (st.Occlusion, st.IntegratedGradients):
        model = SmallResNet3D(num_classes=4).train()
        model.layer1.requires_grad_(False)
        before = (
            [m.training for m in model.modules()],
            [p.requires_grad for p in model.parameters()],
        )

        def stop(done: int, total: int) -> None:
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            method(model, batch_size=2, progress=stop)(torch.randn(1, 3, 4, 16, 16))
        after = [m.training for m in model.modules()], [p.requires_grad for p in model.parameters()]
        assert after == before and hooks_left(model) == 0
        assert all(p.grad is None for p in model.parameters())


def test_check_gradients_refuses_only_missing_gradients() -> None:
    """batch's probe: a model that fails on the probe's clip (it takes 8 frames only) is
    not refused, the videos will tell; scores without gradients are, in one line."""

    class Fussy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.shape[2] != 8:
                raise RuntimeError("this model takes 8 frames")
            return self.fc(x.mean(dim=(2, 3, 4)))

    model = Fussy()
    ig = st.IntegratedGradients(model)
    ig.check_gradients(torch.zeros(1, 3, 5, 4, 4))  # fails on the probe: not refused
    ig.check_gradients(torch.zeros(1, 3, 8, 4, 4))  # has gradients: not refused

    class Frozen(nn.Module):  # its scores computed under torch.no_grad
        def __init__(self) -> None:
            super().__init__()
            self.inner = Fussy()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return self.inner(x)

    with pytest.raises(st.InputError, match="expected the model's scores to carry gradients"):
        st.IntegratedGradients(Frozen()).check_gradients(torch.zeros(1, 3, 8, 4, 4))
