"""Values of the CAM tube and the Grad-CAM family on tiny fixed-weight networks."""

from __future__ import annotations

import pytest
import torch

import saliency_tubes as st
from _models import ConvHeadNet, HandNet, MLPHeadNet, SmallResNet3D, hand_clip

# Raw tubes of HandNet on hand_clip(), computed by hand:
# A0 = 2 * x0 = 0, 2, ..., 14 ; A1 = 3 everywhere ; W = [[1, -1], [0.5, 0.5], [0, 1]].
RAW0 = torch.tensor([-3.0, -1, 1, 3, 5, 7, 9, 11]).reshape(2, 2, 2)  # 2*x0 - 3
RAW1 = torch.tensor([1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5]).reshape(2, 2, 2)  # x0 + 1.5
RAW2 = torch.full((2, 2, 2), 3.0)
# logits = space-time mean of the raw tube + bias: 4 + 0.1, 5, 3.
LOGITS = torch.tensor([[4.1, 5.0, 3.0]])


def test_cam_equals_hand_computation() -> None:
    tubes = st.SaliencyTubes(HandNet())(hand_clip(), classes=[0, 1, 2])
    torch.testing.assert_close(tubes.raw[0], torch.stack([RAW0, RAW1, RAW2]))
    torch.testing.assert_close(tubes.logits, LOGITS)
    # Clip grid == layer grid: upsampling is the identity, then min-max over the tube.
    torch.testing.assert_close(tubes.maps[0, 0], (RAW0 + 3) / 14)
    torch.testing.assert_close(tubes.maps[0, 1], (RAW1 - 1.5) / 7)
    # A constant tube has nothing salient: zeros, no division by zero.
    assert torch.equal(tubes.maps[0, 2], torch.zeros(2, 2, 2))
    assert tubes.layer == "conv" and tubes.classifier == "fc" and tubes.method == "cam"
    torch.testing.assert_close(tubes.scores, torch.softmax(LOGITS, 1))


def test_cam_topk_orders_classes_by_score() -> None:
    tubes = st.SaliencyTubes(HandNet())(hand_clip(), classes="top3")
    assert tubes.classes.tolist() == [[1, 0, 2]]
    assert tubes.scores[0, 0] > tubes.scores[0, 1] > tubes.scores[0, 2]


def test_cam_feature_selection_options() -> None:
    clip = hand_clip()
    top = st.SaliencyTubes(HandNet(), top_features=1)(clip, classes=0)
    torch.testing.assert_close(top.raw[0, 0], RAW0 + 3)  # only feature 0 (weight 1): 2 * x0
    thr = st.SaliencyTubes(HandNet(), weight_threshold=0.5)(clip, classes=0)
    torch.testing.assert_close(thr.raw[0, 0], RAW0 + 3)  # normalised weights (1, 0): feature 0 kept
    act = st.SaliencyTubes(HandNet(), activation_threshold=0.5)(clip, classes=0)
    # Channel 0 normalised is x0 / 7: kept from x0 >= 3.5; channel 1 is constant (normalised 0): dropped.
    torch.testing.assert_close(
        act.raw[0, 0], torch.tensor([0.0, 0, 0, 0, 8, 10, 12, 14]).reshape(2, 2, 2)
    )
    relu = st.SaliencyTubes(HandNet(), relu=True)(clip, classes=0)
    torch.testing.assert_close(relu.raw[0, 0], RAW0.clamp_min(0))


def test_cam_upsampling_and_score_identity_on_resnet() -> None:
    model = SmallResNet3D()
    clip = torch.randn(2, 3, 8, 32, 32, generator=torch.Generator().manual_seed(0))
    tubes = st.SaliencyTubes(model)(clip, classes="top2")
    assert tubes.layer == "layer2" and tubes.classifier == "fc"
    assert tubes.maps.shape == (2, 2, 8, 32, 32) and tubes.raw.shape == (2, 2, 4, 8, 8)
    # GAP + linear: the class score is the space-time mean of the raw tube plus the bias.
    expected = tubes.raw.mean(dim=(2, 3, 4)) + model.fc.bias[tubes.classes]
    torch.testing.assert_close(
        expected, tubes.logits.gather(1, tubes.classes), rtol=1e-5, atol=1e-5
    )
    ref = st.normalize_tubes(st.upsample(tubes.raw, (8, 32, 32), mode="cubic"))
    torch.testing.assert_close(tubes.maps, ref)
    assert float(tubes.maps.amin()) == 0.0 and float(tubes.maps.amax()) == 1.0


@pytest.mark.parametrize("per_frame", [False, True])
def test_cam_equals_normalised_gradcam_for_gap_linear_head(per_frame: bool) -> None:
    model = SmallResNet3D(num_classes=6)
    clip = torch.randn(2, 3, 8, 32, 32, generator=torch.Generator().manual_seed(1))
    cam = st.SaliencyTubes(model)(clip, classes=[0, 3, 5])
    grad = st.GradCAM(model, relu=False, per_frame_weights=per_frame)(clip, classes=[0, 3, 5])
    torch.testing.assert_close(grad.maps, cam.maps, rtol=1e-4, atol=1e-5)
    # Grad-CAM's raw map is the CAM divided by T'H'W' (the gradient of the mean pool).
    torch.testing.assert_close(grad.raw * (4 * 8 * 8), cam.raw, rtol=1e-4, atol=1e-4)


def test_cam_with_conv_head_is_exact() -> None:
    model = ConvHeadNet()
    clip = torch.randn(1, 3, 8, 16, 16, generator=torch.Generator().manual_seed(2))
    tubes = st.SaliencyTubes(model)(clip, classes="top2")
    assert tubes.layer == "features" and tubes.classifier == "logits"
    expected = tubes.raw.mean(dim=(2, 3, 4)) + model.logits.bias[tubes.classes]
    torch.testing.assert_close(
        expected, tubes.logits.gather(1, tubes.classes), rtol=1e-5, atol=1e-5
    )


def _reference_gradients(
    model: torch.nn.Module, layer: torch.nn.Module, clip: torch.Tensor, cls: int
):
    """Activation and gradient by a plain full backward (retain_grad), the textbook way."""
    store = {}

    def hook(_m, _i, out):
        out.retain_grad()
        store["a"] = out

    handle = layer.register_forward_hook(hook)
    try:
        model.eval()
        x = clip.clone().requires_grad_(True)
        out = model(x)
        out[:, cls].sum().backward()
    finally:
        handle.remove()
    return store["a"].detach(), store["a"].grad.detach()


def test_gradcam_matches_full_backward_on_nonlinear_head() -> None:
    model = MLPHeadNet()
    clip = torch.randn(1, 3, 8, 16, 16, generator=torch.Generator().manual_seed(3))
    act, grad = _reference_gradients(model, model.features, clip, 2)
    model.zero_grad(set_to_none=True)
    tubes = st.GradCAM(model, layer="features", relu=False)(clip, classes=2)
    expected = (grad.mean(dim=(2, 3, 4), keepdim=True) * act).sum(1)
    torch.testing.assert_close(tubes.raw[:, 0], expected, rtol=1e-5, atol=1e-6)
    per_frame = st.GradCAM(model, layer="features", relu=False, per_frame_weights=True)(
        clip, classes=2
    )
    expected_t = (grad.mean(dim=(3, 4), keepdim=True) * act).sum(1)
    torch.testing.assert_close(per_frame.raw[:, 0], expected_t, rtol=1e-5, atol=1e-6)
    # The explainer asked autograd for the layer's gradient only: no parameter gradients.
    assert all(p.grad is None for p in model.parameters())


def test_gradcam_plus_plus_formula() -> None:
    model = MLPHeadNet()
    clip = torch.randn(1, 3, 8, 16, 16, generator=torch.Generator().manual_seed(4))
    act, g = _reference_gradients(model, model.features, clip, 1)
    tubes = st.GradCAMPlusPlus(model, layer="features")(clip, classes=1)
    a_sum = act.sum(dim=(2, 3, 4), keepdim=True)
    num = g**2
    den = 2 * g**2 + a_sum * g**3
    alpha = torch.where(
        den != 0, num / torch.where(den != 0, den, torch.ones_like(den)), torch.zeros_like(num)
    )
    weights = (alpha * torch.relu(g)).sum(dim=(2, 3, 4), keepdim=True)
    expected = torch.relu((weights * act).sum(1))
    torch.testing.assert_close(tubes.raw[:, 0], expected, rtol=1e-4, atol=1e-7)
    assert tubes.method == "gradcam++"


@pytest.mark.parametrize("method", [st.SaliencyTubes, st.GradCAM, st.GradCAMPlusPlus])
def test_batch_equals_one_sample_at_a_time(method: type[st.Explainer]) -> None:
    model = SmallResNet3D()
    clip = torch.randn(3, 3, 8, 32, 32, generator=torch.Generator().manual_seed(5))
    explainer = method(model)
    batch = explainer(clip, classes="top2")
    for i in range(3):
        single = explainer(clip[i : i + 1], classes="top2")
        torch.testing.assert_close(batch.maps[i], single.maps[0], rtol=1e-4, atol=1e-5)
        assert batch.classes[i].tolist() == single.classes[0].tolist()


def test_class_specifications() -> None:
    model = HandNet()
    categories = ["take", "wash", "turn-on"]
    clip = torch.cat([hand_clip(), hand_clip() * 2])
    explainer = st.SaliencyTubes(model, categories=categories)
    assert explainer(clip, classes=2).classes.tolist() == [[2], [2]]
    assert explainer(clip, classes=[2, 0]).classes.tolist() == [[2, 0], [2, 0]]
    assert explainer(clip, classes=[[0], [1]]).classes.tolist() == [[0], [1]]
    assert explainer(clip, classes=["Wash", "take"]).classes.tolist() == [[1, 0], [1, 0]]
    assert explainer(clip, classes="turn-on").classes.tolist() == [[2], [2]]
    assert explainer(clip, classes=torch.tensor([1])).classes.tolist() == [[1], [1]]
    tubes = explainer(clip, classes="top2")
    assert tubes.names() == [["wash", "take"], ["wash", "take"]]
    assert explainer(clip, classes="all").classes.tolist() == [[0, 1, 2], [0, 1, 2]]
    # A function of this forward's scores: the lowest-scoring class of each clip.
    lowest = explainer(clip, classes=lambda logits: logits.argmin(1, keepdim=True))
    assert lowest.classes.tolist() == tubes.logits.argmin(1, keepdim=True).tolist()
    with pytest.raises(st.ClassSelectionError, match="returned a function"):
        explainer(clip, classes=lambda logits: lambda: 0)


@pytest.mark.parametrize("method", [st.SaliencyTubes, st.GradCAM, st.GradCAMPlusPlus])
def test_every_class_on_the_layer_grid_is_each_class_alone(method: type[st.Explainer]) -> None:
    model = SmallResNet3D()
    clip = torch.randn(2, 3, 8, 32, 32, generator=torch.Generator().manual_seed(6))
    explainer = method(model)
    every = explainer(clip, classes="all", upsample=False)
    assert every.maps.shape == every.raw.shape  # left on the layer's grid
    torch.testing.assert_close(every.maps, st.normalize_tubes(every.raw))
    for c in range(every.raw.shape[1]):
        alone = explainer(clip, classes=[c])
        torch.testing.assert_close(every.raw[:, c], alone.raw[:, 0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(
            st.normalize_tubes(st.upsample(every.raw[:, c : c + 1], (8, 32, 32))), alone.maps
        )


_GRAD_MODES = {
    "no_grad": torch.no_grad,
    "inference_mode": torch.inference_mode,
}


@pytest.mark.parametrize("mode", sorted(_GRAD_MODES))
@pytest.mark.parametrize("method", [st.GradCAM, st.GradCAMPlusPlus, st.SaliencyTubes])
def test_explainers_work_under_no_grad_and_inference_mode(
    method: type[st.Explainer], mode: str
) -> None:
    model = SmallResNet3D(num_classes=4).train()
    clip = torch.randn(2, 3, 4, 16, 16, generator=torch.Generator().manual_seed(3))
    reference = method(model)(clip, classes="top2")
    with _GRAD_MODES[mode]():
        inside = clip.clone()  # an inference tensor under inference_mode
        tubes = method(model)(inside, classes="top2")
        assert torch.is_grad_enabled() is False  # the caller's mode is left as it was
    assert torch.equal(tubes.maps, reference.maps) and torch.equal(tubes.raw, reference.raw)
    assert torch.equal(tubes.classes, reference.classes)
    assert all(m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("mode", sorted(_GRAD_MODES))
def test_pooled_head_cam_under_no_grad_and_inference_mode(mode: str) -> None:
    model = MLPHeadNet()
    head = torch.nn.Sequential(model.hidden, torch.nn.ReLU(), model.out)
    clip = torch.randn(1, 3, 4, 8, 8, generator=torch.Generator().manual_seed(4))
    reference = st.SaliencyTubes(model, layer="features", pooled_head=head)(clip, classes=[0, 2])
    with _GRAD_MODES[mode]():
        tubes = st.SaliencyTubes(model, layer="features", pooled_head=head)(clip, classes=[0, 2])
    assert torch.equal(tubes.raw, reference.raw) and torch.equal(tubes.maps, reference.maps)


def test_gradcam_refuses_a_model_built_under_inference_mode() -> None:
    with torch.inference_mode():
        model = SmallResNet3D(num_classes=3)
    clip = torch.randn(1, 3, 4, 16, 16)
    with pytest.raises(
        st.InputError,
        match=r"^expected SmallResNet3D's parameters to be normal tensors .* outside "
        r"torch.inference_mode$",
    ):
        st.GradCAM(model)(clip)
    # CAM takes no gradient: it still works.
    assert st.SaliencyTubes(model)(clip).maps.shape == (1, 1, 4, 16, 16)
