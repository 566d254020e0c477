"""LayerCAM, XGradCAM, HiResCAM, Score-CAM and EigenCAM: each against its formula computed
by hand, the identities with CAM / Grad-CAM on a pooled linear head, the model left as it
was, batches, every class from one forward, the forwards and backwards each costs, and the
planted evidence: of the embedded model (a class decided by one object's motion) and of the
colour model (a class decided by one coloured object), for every method."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from torch import nn

import saliency_tubes as st
from _models import SmallResNet3D, hooks_left, passes

VARIANTS = [st.LayerCAM, st.XGradCAM, st.HiResCAM, st.ScoreCAM, st.EigenCAM]
GRADIENT_VARIANTS = [st.LayerCAM, st.XGradCAM, st.HiResCAM]
HAS_CAPTUM = importlib.util.find_spec("captum") is not None
NEEDS_CAPTUM = pytest.mark.skipif(not HAS_CAPTUM, reason="needs the extra saliency-tubes[captum]")
# The input-space methods (captum): the model-state tests run them too.
CAPTUM = [
    pytest.param(st.Occlusion, marks=NEEDS_CAPTUM, id="Occlusion"),
    pytest.param(st.IntegratedGradients, marks=NEEDS_CAPTUM, id="IntegratedGradients"),
]
MANY_FORWARDS = (st.ScoreCAM, st.Occlusion, st.IntegratedGradients)

# --------------------------------------------------------------------------- a hand net

CONV = torch.tensor(
    [[1.0, -0.5], [-0.7, 0.4], [0.0, 0.0], [0.3, 0.9]]  # channel 2 is always 0 (constant)
).reshape(4, 2, 1, 1, 1)
FC = torch.tensor([[0.8, -0.6, 0.5, 0.3], [-0.2, 0.9, -1.0, 0.4]])
BIAS = torch.tensor([0.1, -0.2])


class SquareNet(nn.Module):
    """1x1x1 conv (stride 1, 2, 2) -> square -> global average pool -> linear: the gradient
    at the conv's output, 2 W_ck A_k(x) / L, varies over space and time."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Conv3d(2, 4, kernel_size=1, stride=(1, 2, 2), bias=False)
        self.fc = nn.Linear(4, 2)
        with torch.no_grad():
            self.features.weight.copy_(CONV)
            self.fc.weight.copy_(FC)
            self.fc.bias.copy_(BIAS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).pow(2).mean(dim=(2, 3, 4)))


def square_clip(n: int = 1, seed: int = 0) -> torch.Tensor:
    """(n, 2, 3, 8, 8): smooth, signed, different in every sample."""
    g = torch.Generator().manual_seed(seed)
    t, y, x = torch.meshgrid(torch.arange(3.0), torch.arange(8.0), torch.arange(8.0), indexing="ij")
    base = torch.stack([torch.sin(0.7 * x + 0.4 * t) + 0.2 * y, torch.cos(0.5 * y - 0.6 * t)])
    return base + 0.5 * torch.randn(n, 2, 3, 8, 8, generator=g)


def hand_activation(clip: torch.Tensor) -> torch.Tensor:
    """The conv's output by hand: (N, 4, 3, 4, 4)."""
    return torch.einsum("kc,ncthw->nkthw", CONV[:, :, 0, 0, 0], clip[:, :, :, ::2, ::2])


def hand_gradient(a: torch.Tensor, cls: int) -> torch.Tensor:
    """d y_cls / d A = 2 W[cls, k] A_k / L."""
    length = a.shape[2] * a.shape[3] * a.shape[4]
    return 2 * FC[cls].view(1, -1, 1, 1, 1) * a / length


def test_the_hand_net_is_what_the_formulas_assume() -> None:
    clip = square_clip()
    a = hand_activation(clip)
    logits = SquareNet()(clip)
    torch.testing.assert_close(logits, (a**2).mean(dim=(2, 3, 4)) @ FC.T + BIAS)
    g = hand_gradient(a, 1)
    assert float(g[:, 0].std()) > 0 and (g[:, 0] > 0).any() and (g[:, 0] < 0).any()


@pytest.mark.parametrize("cls", [0, 1])
def test_layercam_equals_its_formula(cls: int) -> None:
    clip = square_clip()
    a, g = hand_activation(clip), hand_gradient(hand_activation(clip), cls)
    inner = (g.clamp_min(0) * a).sum(1)
    tubes = st.LayerCAM(SquareNet(), layer="features", relu=False)(clip, classes=cls)
    torch.testing.assert_close(tubes.raw[:, 0], inner, rtol=1e-5, atol=1e-7)
    relu = st.LayerCAM(SquareNet(), layer="features")(clip, classes=cls)
    torch.testing.assert_close(relu.raw[:, 0], inner.clamp_min(0), rtol=1e-5, atol=1e-7)
    assert relu.method == "layercam" and relu.maps.shape == (1, 1, 3, 8, 8)


@pytest.mark.parametrize("cls", [0, 1])
def test_hirescam_equals_its_formula(cls: int) -> None:
    clip = square_clip()
    a = hand_activation(clip)
    expected = (hand_gradient(a, cls) * a).sum(1)  # = 2 / L * sum_k W_ck A_k^2
    tubes = st.HiResCAM(SquareNet(), layer="features", relu=False)(clip, classes=cls)
    torch.testing.assert_close(tubes.raw[:, 0], expected, rtol=1e-5, atol=1e-7)
    relu = st.HiResCAM(SquareNet(), layer="features")(clip, classes=cls)
    torch.testing.assert_close(relu.raw[:, 0], expected.clamp_min(0), rtol=1e-5, atol=1e-7)
    # On this head the sum of the map is the score without its bias (the map is exact).
    torch.testing.assert_close(expected.sum(dim=(1, 2, 3)) / 2 + BIAS[cls], tubes.logits[:, cls])


@pytest.mark.parametrize("cls", [0, 1])
@pytest.mark.parametrize("per_frame", [False, True])
def test_xgradcam_equals_its_formula(cls: int, per_frame: bool) -> None:
    clip = square_clip()
    a = hand_activation(clip)
    g = hand_gradient(a, cls)
    dims = (3, 4) if per_frame else (2, 3, 4)
    total = a.sum(dim=dims, keepdim=True)
    alpha = torch.zeros_like(total)
    for k in range(4):  # channel 2 sums to 0: weight 0
        if float(total[0, k].abs().min()) > 0:
            alpha[:, k] = (a[:, k] * g[:, k]).sum(dim=[d - 1 for d in dims], keepdim=True) / total[
                :, k
            ]
    expected = (alpha * a).sum(1)
    explainer = st.XGradCAM(SquareNet(), layer="features", relu=False, per_frame_weights=per_frame)
    tubes = explainer(clip, classes=cls)
    torch.testing.assert_close(tubes.raw[:, 0], expected, rtol=1e-5, atol=1e-7)
    relu = st.XGradCAM(SquareNet(), layer="features", per_frame_weights=per_frame)(
        clip, classes=cls
    )
    torch.testing.assert_close(relu.raw[:, 0], expected.clamp_min(0), rtol=1e-5, atol=1e-7)


def test_element_wise_methods_refuse_per_frame_weights() -> None:
    for method in (st.LayerCAM, st.HiResCAM):
        with pytest.raises(
            st.InputError, match=r"^expected per_frame_weights=False for \w+, but got True; drop it"
        ):
            method(SquareNet(), per_frame_weights=True)


def _numpy_eigencam(a: np.ndarray) -> np.ndarray:
    """First principal component of one sample's (C, T', H', W') activations, by numpy."""
    c = a.shape[0]
    x = a.reshape(c, -1).T.astype(np.float64)
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    projection = centred @ vt[0]
    if np.corrcoef(projection, x.mean(axis=1))[0, 1] < 0:
        projection = -projection
    return projection.reshape(a.shape[1:])


def test_eigencam_equals_numpy_svd_and_is_class_agnostic() -> None:
    clip = square_clip(2, seed=3)
    a = hand_activation(clip).numpy()
    expected = torch.from_numpy(np.stack([_numpy_eigencam(s) for s in a])).float()
    tubes = st.EigenCAM(SquareNet(), relu=False)(clip, classes=[0, 1])
    assert tubes.layer == "features" and tubes.method == "eigencam" and tubes.class_agnostic
    for k in range(2):
        torch.testing.assert_close(tubes.raw[:, k], expected, rtol=1e-4, atol=1e-5)
    # The same tube for every class; the scores are still each class's own.
    assert torch.equal(tubes.maps[:, 0], tubes.maps[:, 1])
    torch.testing.assert_close(tubes.scores, torch.softmax(tubes.logits, 1))
    relu = st.EigenCAM(SquareNet())(clip, classes=[1])
    torch.testing.assert_close(relu.raw[:, 0], expected.clamp_min(0), rtol=1e-4, atol=1e-5)
    # The other methods are not class-agnostic.
    assert not st.GradCAM(SquareNet())(clip).class_agnostic


def _hand_scorecam(
    model: nn.Module, clip: torch.Tensor, cls: int, *, baseline: bool = False
) -> torch.Tensor:
    """Score-CAM by a loop over the channels, one masked clip per forward."""
    a = hand_activation(clip)[0]
    size = tuple(clip.shape[2:])
    with torch.no_grad():
        base = torch.softmax(model(torch.zeros_like(clip)), 1)[0, cls]
        out = torch.zeros(a.shape[1:])
        for k in range(a.shape[0]):
            up = st.upsample(a[k][None, None], size, mode="cubic")[0, 0]
            if float(up.max() - up.min()) == 0:
                continue  # a constant map masks nothing: skipped (the authors' code)
            mask = (up - up.min()) / (up.max() - up.min())
            p = torch.softmax(model(clip * mask), 1)[0, cls]
            out += (p - base if baseline else p) * a[k]
    return out


@pytest.mark.parametrize("baseline", [False, True])
def test_scorecam_equals_a_hand_loop_over_channels(baseline: bool) -> None:
    model = SquareNet()
    clip = square_clip(seed=1)
    explainer = st.ScoreCAM(model, relu=False, subtract_baseline=baseline)
    tubes = explainer(clip, classes=[0, 1])
    for c in range(2):
        expected = _hand_scorecam(model, clip, c, baseline=baseline)
        torch.testing.assert_close(tubes.raw[0, c], expected, rtol=1e-5, atol=1e-6)
    relu = st.ScoreCAM(model, subtract_baseline=baseline)(clip, classes=[1])
    torch.testing.assert_close(relu.raw[0, 0], tubes.raw[0, 1].clamp_min(0))
    assert relu.method == "scorecam" and not relu.class_agnostic


def test_scorecam_batches_memory_bound_and_progress() -> None:
    model = SmallResNet3D(num_classes=4)
    clip = torch.randn(2, 3, 4, 16, 16, generator=torch.Generator().manual_seed(7))
    whole = st.ScoreCAM(model)(clip, classes="all")
    seen: list[tuple[int, int]] = []
    ones = st.ScoreCAM(model, batch_size=3, progress=lambda d, t: seen.append((d, t)))(
        clip, classes="all"
    )
    tiny = st.ScoreCAM(model, max_bytes=1)(clip, classes="all")  # one masked clip at a time
    torch.testing.assert_close(ones.raw, whole.raw, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(tiny.raw, whole.raw, rtol=1e-5, atol=1e-6)
    total = seen[-1][1]
    assert total <= 2 * 16 and seen[-1][0] == total
    assert [d for d, _ in seen] == [min(3 * (i + 1), total) for i in range(len(seen))]
    for bad in (dict(batch_size=0), dict(max_bytes=0), dict(batch_size=True)):
        with pytest.raises(st.InputError, match="^expected"):
            st.ScoreCAM(model, **bad)


# --------------------------------------------------------------------------- identities


def test_on_a_pooled_linear_head_hirescam_is_cam_and_xgradcam_is_gradcam() -> None:
    model = SmallResNet3D(num_classes=6)
    clip = torch.randn(2, 3, 8, 32, 32, generator=torch.Generator().manual_seed(1))
    classes = [0, 3, 5]
    cam = st.SaliencyTubes(model)(clip, classes=classes)
    hires = st.HiResCAM(model, relu=False)(clip, classes=classes)
    torch.testing.assert_close(hires.maps, cam.maps, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(hires.raw * (4 * 8 * 8), cam.raw, rtol=1e-4, atol=1e-4)
    for per_frame in (False, True):
        grad = st.GradCAM(model, per_frame_weights=per_frame)(clip, classes=classes)
        xgrad = st.XGradCAM(model, per_frame_weights=per_frame)(clip, classes=classes)
        torch.testing.assert_close(xgrad.raw, grad.raw, rtol=1e-4, atol=1e-7)
        torch.testing.assert_close(xgrad.maps, grad.maps, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- the model


def _state(model: nn.Module) -> tuple[list[bool], list[bool]]:
    return [m.training for m in model.modules()], [p.requires_grad for p in model.parameters()]


@pytest.mark.parametrize("method", [*VARIANTS, *CAPTUM], ids=lambda m: m.__name__)
def test_the_model_comes_back_unchanged(method: type[st.Explainer]) -> None:
    model = SmallResNet3D(num_classes=4).train()
    model.layer1.requires_grad_(False)
    model.stem[1].eval()
    before = _state(model)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    clip = torch.randn(1, 3, 4, 16, 16, generator=torch.Generator().manual_seed(2))
    method(model)(clip, classes="top2")
    assert _state(model) == before and hooks_left(model) == 0
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    with pytest.raises(st.ClassSelectionError, match="out of range"):
        method(model)(clip, classes=[9])
    assert _state(model) == before and hooks_left(model) == 0


@pytest.mark.parametrize("method", [*VARIANTS, *CAPTUM], ids=lambda m: m.__name__)
@pytest.mark.parametrize("when", [1, 2])
def test_the_model_comes_back_unchanged_after_an_error_inside_a_forward(
    method: type[st.Explainer], when: int
) -> None:
    """The first forward raises (``when=1``), or the second (Score-CAM's first masked clip,
    captum's first forward for occlusion and integrated gradients)."""
    model = SmallResNet3D(num_classes=4).train()
    model.layer1.eval()
    before = _state(model)
    calls: list[int] = []

    def explode(_m: nn.Module, _i: object, _o: object) -> None:
        calls.append(1)
        if len(calls) == when:
            raise RuntimeError("inside forward")

    explainer = (
        method(model, layer="layer2", classifier="fc", batch_size=2)
        if method in MANY_FORWARDS
        else method(model, layer="layer2", classifier="fc")
    )
    handle = model.avgpool.register_forward_hook(explode)  # after the target layer
    try:
        if when == 2 and method not in MANY_FORWARDS:
            explainer(torch.randn(1, 3, 4, 16, 16))  # one forward only: nothing raises
        else:
            with pytest.raises(st.InputError, match="inside forward"):
                explainer(torch.randn(1, 3, 4, 16, 16))
    finally:
        handle.remove()
    assert _state(model) == before and hooks_left(model) == 0 and torch.is_grad_enabled()
    assert all(p.grad is None for p in model.parameters())


def test_the_model_comes_back_unchanged_when_scorecam_progress_raises() -> None:
    model = SmallResNet3D(num_classes=4).train()
    before = _state(model)

    def stop(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        st.ScoreCAM(model, batch_size=2, progress=stop)(torch.randn(1, 3, 4, 16, 16))
    assert _state(model) == before and hooks_left(model) == 0


@pytest.mark.parametrize("method", VARIANTS, ids=lambda m: m.__name__)
def test_batch_of_two_equals_one_at_a_time(method: type[st.Explainer]) -> None:
    model = SmallResNet3D()
    clip = torch.randn(2, 3, 4, 16, 16, generator=torch.Generator().manual_seed(5))
    explainer = method(model)
    batch = explainer(clip, classes="top2")
    for i in range(2):
        single = explainer(clip[i : i + 1], classes="top2")
        assert batch.classes[i].tolist() == single.classes[0].tolist()
        torch.testing.assert_close(batch.raw[i], single.raw[0], rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(batch.maps[i], single.maps[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("method", VARIANTS, ids=lambda m: m.__name__)
def test_every_class_on_the_layer_grid_is_each_class_alone(method: type[st.Explainer]) -> None:
    model = SmallResNet3D()
    clip = torch.randn(2, 3, 4, 16, 16, generator=torch.Generator().manual_seed(6))
    explainer = method(model)
    every = explainer(clip, classes="all", upsample=False)
    assert every.maps.shape == every.raw.shape == (2, 5, 2, 4, 4)
    torch.testing.assert_close(every.maps, st.normalize_tubes(every.raw))
    for c in range(5):
        alone = explainer(clip, classes=[c])
        torch.testing.assert_close(every.raw[:, c], alone.raw[:, 0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(
            st.normalize_tubes(st.upsample(every.raw[:, c : c + 1], (4, 16, 16))),
            alone.maps,
            rtol=1e-5,
            atol=1e-6,
        )


@pytest.mark.parametrize("method", VARIANTS, ids=lambda m: m.__name__)
def test_tokens_and_pathways(method: type[st.Explainer]) -> None:
    """A token layer (reshape=) and two layers at once go through every variant."""
    from saliency_tubes.tokens import channels_last

    class Tokens(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.a = nn.Conv3d(3, 4, 3, stride=2, padding=1)
            self.b = nn.Conv3d(3, 4, 3, stride=(1, 2, 2), padding=1)
            self.norm = nn.Identity()
            self.fc = nn.Linear(8, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            a = torch.relu(self.a(x)).mean(dim=(2, 3, 4))
            b = self.norm(torch.relu(self.b(x)).permute(0, 2, 3, 4, 1)).mean(dim=(1, 2, 3))
            return self.fc(torch.cat([a, b], 1))

    clip = torch.randn(1, 3, 4, 8, 8, generator=torch.Generator().manual_seed(8))
    model = Tokens()
    single = method(model, layer="norm", reshape=channels_last)(clip, classes=[0, 2])
    assert single.raw.shape == (1, 2, 4, 4, 4) and single.maps.shape == (1, 2, 4, 8, 8)
    both = method(model, layer=["a", "b"])(clip, classes=[1])
    assert set(both.pathways) == {"a", "b"} and both.maps.shape == (1, 1, 4, 8, 8)
    assert both.pathways_raw["a"].shape == (1, 1, 2, 4, 4)


# --------------------------------------------------------------------------- costs


def count_passes(method: type[st.Explainer], classes: object, **options: object) -> tuple[int, int]:
    """(clips forwarded, backward passes through the head) of one call on SmallResNet3D."""
    clip = torch.randn(1, 3, 4, 16, 16, generator=torch.Generator().manual_seed(9))
    explainer = method(SmallResNet3D(), layer="layer2", classifier="fc", **options)
    return passes(explainer, clip, classes)


def test_what_each_method_costs_in_forwards_and_backwards() -> None:
    model = SmallResNet3D().eval()
    seen: list[torch.Tensor] = []
    handle = model.layer2.register_forward_hook(lambda _m, _i, out: seen.append(out.detach()))
    with torch.no_grad():
        model(torch.randn(1, 3, 4, 16, 16, generator=torch.Generator().manual_seed(9)))
    handle.remove()
    flat = seen[0][0].flatten(1)
    channels = int((flat.amax(1) > flat.amin(1)).sum())  # Score-CAM skips constant channels
    assert 0 < channels < 16  # here some of layer2's 16 channels are dead (all 0 after ReLU)
    captum = ("occlusion", "integrated-gradients")
    transformers_only = ("rollout", "relevancy")  # tests/methods/test_attention.py counts theirs
    costs = {
        name: (count_passes(st.METHODS[name], [0, 3]), count_passes(st.METHODS[name], "all"))
        for name in st.METHODS
        if name not in captum + transformers_only
    }
    assert costs["cam"] == ((1, 0), (1, 0))
    for name in ("gradcam", "gradcam++", "layercam", "xgradcam", "hirescam"):
        assert costs[name] == ((1, 2), (1, 5)), name  # one backward to the layer per class
    assert costs["eigencam"] == ((1, 0), (1, 0))
    assert costs["scorecam"] == ((1 + channels, 0), (1 + channels, 0))  # C, whatever the classes
    assert count_passes(st.ScoreCAM, [0], subtract_baseline=True) == (2 + channels, 0)
    if HAS_CAPTUM:  # 4 x 7 x 7 windows of 1 x 4 x 4 (a quarter of 4 x 16 x 16), for all classes
        assert count_passes(st.Occlusion, "all") == (2 + 196, 0)
        assert count_passes(st.IntegratedGradients, [0, 3], n_steps=8) == (1 + 2 * 8, 2)
    if HAS_CAPTUM:  # counted on the model for every class (5), as the others below
        costs["occlusion"] = ((0, 0), count_passes(st.Occlusion, "all"))
        costs["integrated-gradients"] = ((0, 0), count_passes(st.IntegratedGradients, "all"))
    for name in (n for n in st.METHODS if n not in transformers_only):  # what each says
        said = st.METHODS[name](model).forwards((4, 16, 16), 5)
        assert said == (None if name == "scorecam" else costs[name][1][0]), name
    # Without layer and classifier, the first call traces one forward more to find them.
    calls: list[int] = []
    handle = model.register_forward_pre_hook(lambda _m, args: calls.append(args[0].shape[0]))
    try:
        st.EigenCAM(model)(torch.randn(1, 3, 4, 16, 16))
    finally:
        handle.remove()
    assert calls == [1, 1]


# --------------------------------------------------------------------------- planted evidence

SEEDS = range(12)  # the first twelve synthetic clips, not chosen


@pytest.fixture(scope="module")
def planted():
    """The embedded model and twelve synthetic clips whose class is decided by one object."""
    from scipy.ndimage import binary_dilation

    from saliency_tubes.synthetic import make_clip

    loaded = st.load_model("tiny-actions")
    preprocess = loaded.preset.preprocess()
    clips = [make_clip(seed=s, frames=16, size=loaded.preset.size) for s in SEEDS]
    x = torch.stack([preprocess(c.video) for c in clips])
    labels = torch.tensor([[c.label] for c in clips])
    # The target dilated by 8 pixels: one cell of the layer's 12x12 grid on a 96x96 frame.
    near = np.stack([binary_dilation(c.mask, np.ones((1, 3, 3)), iterations=8) for c in clips])
    return loaded, x, labels, near


def _frames_on_target(maps: torch.Tensor, near: np.ndarray) -> np.ndarray:
    """(clips, frames) bool: the frame's maximum lies on (near) the target object."""
    m = maps.numpy()
    hits = np.zeros(m.shape[:2], dtype=bool)
    for i in range(m.shape[0]):
        for t in range(m.shape[1]):
            y, x = np.unravel_index(int(m[i, t].argmax()), m[i, t].shape)
            hits[i, t] = near[i, t, y, x]
    return hits


@pytest.mark.parametrize("name", ["layercam", "xgradcam", "hirescam", "eigencam", "scorecam"])
def test_planted_evidence_each_frame_points_at_the_object(planted, name: str) -> None:
    loaded, x, labels, near = planted
    tubes = loaded.explainer(name)(x, classes=labels)
    assert torch.equal(tubes.logits.argmax(1, keepdim=True), labels)  # all twelve are right
    hits = _frames_on_target(tubes.maps[:, 0], near)
    if name != "scorecam":
        assert hits.mean() >= 0.9, (name, hits.mean(1))
    else:
        # Score-CAM genuinely misses on two of the twelve clips (seeds 0 and 2, 1 and 9 frames
        # of 16): a channel whose broad map keeps the target visible scores high, and its
        # activation's peak can sit on a distractor. Pooled: 170 of 192 frames (0.885).
        assert hits.mean() >= 0.85 and (hits.mean(1) >= 0.9).sum() >= 10, hits.mean(1)
    if name == "eigencam":
        # It passes because this layer's dominant pattern is the moving object, not because
        # it found the class's evidence: another class gets the very same tube.
        other = loaded.explainer(name)(x, classes=(labels + 1) % 8)
        assert torch.equal(other.maps, tubes.maps) and tubes.class_agnostic


def _plateau_centres_on_target(maps: torch.Tensor, near: np.ndarray) -> np.ndarray:
    """(clips, frames) bool: the centre of the frame's maximal plateau lies near the target.

    Occlusion's map is piecewise constant on cells of its stride (12 px here): its argmax is
    the top-left pixel of the best cell, a corner rather than where the cell points; the
    plateau's centre is."""
    m = maps.numpy()
    hits = np.zeros(m.shape[:2], dtype=bool)
    for i in range(m.shape[0]):
        for t in range(m.shape[1]):
            frame = m[i, t]
            ys, xs = np.nonzero(frame >= frame.max())
            hits[i, t] = near[i, t, int(round(ys.mean())), int(round(xs.mean()))]
    return hits


@NEEDS_CAPTUM
@pytest.mark.parametrize(
    "name", [pytest.param("occlusion", marks=pytest.mark.slow), "integrated-gradients"]
)
def test_planted_evidence_of_the_input_space_methods(planted, name: str) -> None:
    """Measured, not chosen: both miss the 0.9 the layer methods reach (see the README).

    Occlusion (default windows 4 x 24 x 24, stride 2 x 12 x 12; 4128 forwards for the twelve
    clips): 164 of 192 plateau centres on the target (0.854; argmax 0.698), misses on seeds
    0 and 5 (9 and 8 of 16 frames). Integrated gradients (16 steps, positive part): 147 of
    192 (0.766), the same with 50 steps (0.771) or a spatial box filter on the map; it
    misses on seeds 0, 2, 5 and 10 (pixel maps peak on distractors' edges)."""
    loaded, x, labels, near = planted
    options = {"n_steps": 16} if name == "integrated-gradients" else {}
    tubes = loaded.explainer(name, **options)(x, classes=labels)
    assert torch.equal(tubes.logits.argmax(1, keepdim=True), labels)
    assert tubes.layer == "input" and tubes.maps.shape == (12, 1, 16, 96, 96)
    if name == "occlusion":
        hits = _plateau_centres_on_target(tubes.maps[:, 0], near)
        assert hits.mean() >= 0.84 and (hits.mean(1) >= 0.9).sum() >= 7, hits.mean(1)
    else:
        hits = _frames_on_target(tubes.maps[:, 0], near)
        assert hits.mean() >= 0.75 and (hits.mean(1) >= 0.9).sum() >= 6, hits.mean(1)


# --------------------------------------------------------------------------- planted colour
# Issue 15's literal check: a class decided by one coloured object. The colour model
# (tests/_colour_model.py: TinyActionNet without its frame differences, trained by
# scripts/train_default_model.py --task colour, validation accuracy 0.9974) and the first
# twelve colour clips (seeds 0..11, not chosen): one coloured target among 2-5 grey
# look-alikes of the same shapes, sizes and motions; only its hue tells the class.

COMPLEMENT = 3  # the wrong class asked for: the opposite hue (red <-> cyan ...), no channel shared
# Where a wrong class's tube leaves the target (fraction of frames still on it, measured
# 0.00 for CAM, Grad-CAM, XGradCAM and HiResCAM, 0.016 for occlusion) and where it stays.
LEAVES = {"cam", "gradcam", "xgradcam", "hirescam", "occlusion"}
STAYS = {"gradcam++", "layercam", "scorecam", "integrated-gradients"}


@pytest.fixture(scope="module")
def planted_colour():
    """The colour model, the twelve clips, their true and complementary classes, and the
    target dilated by 8 px (one cell of the 8 x 8 grid of the layer on a 64 x 64 frame; 15 %
    of the frame), by 4 px (half a cell; 7 %) and not at all (1.5 %)."""
    from scipy.ndimage import binary_dilation

    from _colour_model import colour_preprocess, load_colour_model
    from saliency_tubes.synthetic_colours import COLOURS, make_colour_clip

    loaded = load_colour_model()
    preprocess = colour_preprocess()
    clips = [make_colour_clip(seed=s, frames=16, size=(64, 64)) for s in SEEDS]
    x = torch.stack([preprocess(c.video) for c in clips])
    labels = torch.tensor([[c.label] for c in clips])
    classes = torch.cat([labels, (labels + COMPLEMENT) % len(COLOURS)], dim=1)
    cross = np.ones((1, 3, 3), dtype=bool)
    near = {
        d: np.stack([binary_dilation(c.mask, cross, iterations=d) if d else c.mask for c in clips])
        for d in (8, 4, 0)
    }
    return loaded, x, classes, near


def _colour_check(planted_colour, name: str, **options) -> st.Tubes:
    """The checks every method passes on the colour clips; the tubes, for more."""
    loaded, x, classes, near = planted_colour
    tubes = loaded.explainer(name, **options)(x, classes=classes)
    assert torch.equal(tubes.logits.argmax(1), classes[:, 0])  # all twelve are right
    # Occlusion's map is constant on cells of its stride (8 px): where the best cell points
    # is its plateau's centre, its argmax a corner (both measured 1.0 within one cell).
    on = _plateau_centres_on_target if name == "occlusion" else _frames_on_target
    hits = {d: on(tubes.maps[:, 0], near[d]) for d in near}
    # Measured: every method 192 of 192 frames within one cell and within half a cell.
    assert hits[8].mean() >= 0.9 and (hits[8].mean(1) >= 0.9).all(), (name, hits[8].mean(1))
    assert hits[4].mean() >= 0.95, (name, hits[4].mean(1))
    assert _frames_on_target(tubes.maps[:, 0], near[8]).mean() >= 0.9  # the argmax itself
    wrong = on(tubes.maps[:, 1], near[8]).mean()
    if name == "eigencam":
        # Class-agnostic: it passes because the coloured object is that layer's dominant
        # pattern; the complementary colour gets the very same tube.
        assert tubes.class_agnostic and torch.equal(tubes.maps[:, 1], tubes.maps[:, 0])
        return tubes
    differ = (tubes.maps[:, 1] - tubes.maps[:, 0]).abs().amax(dim=(1, 2, 3))
    assert bool((differ > 0.05).all()), (name, differ)  # class-sensitive: another tube
    if name in LEAVES:
        # The complementary colour has no evidence on the target: its tube goes elsewhere.
        assert wrong <= 0.1, (name, wrong)
    else:
        assert name in STAYS
        # Measured 1.0 (0.97 for integrated gradients; 0.98 to 1.0 with the adjacent hue
        # too): ReLU(gradient) weights (Grad-CAM++, LayerCAM) and Score-CAM's positive
        # softmax weights add up the channels active on the target for any class, and the
        # target's pixels are where every logit's (positive) gradient lies; these tubes
        # say where the features are, not which class they speak for.
        assert wrong >= 0.9, (name, wrong)
    return tubes


@pytest.mark.parametrize(
    "name",
    ["cam", "gradcam", "gradcam++", "layercam", "xgradcam", "hirescam", "scorecam", "eigencam"],
)
def test_planted_colour_each_frame_points_at_the_coloured_object(planted_colour, name) -> None:
    """Every layer method: each frame's maximum on (near) the one coloured object."""
    _colour_check(planted_colour, name)


@NEEDS_CAPTUM
@pytest.mark.parametrize(
    "name", [pytest.param("occlusion", marks=pytest.mark.slow), "integrated-gradients"]
)
def test_planted_colour_of_the_input_space_methods(planted_colour, name: str) -> None:
    """Unlike the motion check (0.85, 0.77), both reach the bar here: the evidence is the
    target's own pixels. Integrated gradients (16 steps) even peaks on the target itself in
    every frame (192 of 192, undilated); occlusion (default windows 4 x 16 x 16, stride
    2 x 8 x 8: 343 per clip, 4140 forwards, 13 s in the suite on 2 cores) on its best cell."""
    options = {"n_steps": 16} if name == "integrated-gradients" else {}
    tubes = _colour_check(planted_colour, name, **options)
    assert tubes.layer == "input" and tubes.maps.shape == (12, 2, 16, 64, 64)
    if name == "integrated-gradients":
        assert _frames_on_target(tubes.maps[:, 0], planted_colour[3][0]).mean() >= 0.95
