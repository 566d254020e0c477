"""The user's model comes back unchanged; layer/head discovery; clear errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import saliency_tubes as st
from _models import (
    FlattenHeadNet,
    HandNet,
    MLPHeadNet,
    NoHeadNet,
    SmallResNet3D,
    hand_clip,
    hooks_left,
)
from saliency_tubes.hooks import counted_forwards, find_layer_and_head, trace_calls

METHODS = [st.SaliencyTubes, st.GradCAM, st.GradCAMPlusPlus]


def _state(model: nn.Module) -> tuple[list[bool], list[bool]]:
    return [m.training for m in model.modules()], [p.requires_grad for p in model.parameters()]


def _odd_state_model() -> SmallResNet3D:
    model = SmallResNet3D()
    model.train()
    model.layer1.eval()  # mixed modes must survive
    model.stem[0].weight.requires_grad_(False)  # frozen stem
    return model


@pytest.mark.parametrize("method", METHODS)
def test_model_unchanged_after_success(method: type[st.Explainer]) -> None:
    model = _odd_state_model()
    before = _state(model)
    params = {k: v.clone() for k, v in model.state_dict().items()}
    method(model)(torch.randn(1, 3, 4, 16, 16), classes="top1")
    assert hooks_left(model) == 0
    assert _state(model) == before
    for k, v in model.state_dict().items():
        assert torch.equal(v, params[k]), k  # eval mode: batch-norm statistics untouched
    assert all(p.grad is None for p in model.parameters())


class Boom(RuntimeError):
    pass


@pytest.mark.parametrize("method", METHODS)
def test_model_unchanged_after_exception_inside_forward(method: type[st.Explainer]) -> None:
    model = _odd_state_model()
    before = _state(model)
    explainer = method(model, layer="layer2", classifier="fc")

    def explode(_m: nn.Module, _i: object, _o: object) -> None:
        raise Boom("inside forward")

    handle = model.avgpool.register_forward_hook(explode)  # fires after the target layer
    try:
        # A RuntimeError inside the model's forward is reported as an InputError naming
        # the clip's size, with the original error chained.
        with pytest.raises(st.errors.InputError, match="inside forward") as info:
            explainer(torch.randn(1, 3, 4, 16, 16))
        assert isinstance(info.value.__cause__, Boom)
    finally:
        handle.remove()
    assert hooks_left(model) == 0
    assert _state(model) == before
    assert torch.is_grad_enabled()


def test_default_layer_is_outermost_module_feeding_the_pool() -> None:
    model = SmallResNet3D()
    calls = trace_calls(model, torch.randn(1, 3, 4, 16, 16))
    layer, _, head, _ = find_layer_and_head(model, calls, None, None)
    assert (layer, head) == ("layer2", "fc")
    assert hooks_left(model) == 0


def test_layer_given_as_module_and_by_name() -> None:
    model = SmallResNet3D()
    clip = torch.randn(1, 3, 4, 16, 16)
    by_module = st.SaliencyTubes(model, layer=model.layer1, classifier=model.fc)
    # layer1 has 8 channels but fc takes 16: CAM on it is undefined and says so.
    with pytest.raises(
        st.LayerNotFoundError, match="expected the classifier to take the layer's 8 channels"
    ):
        by_module(clip)
    tubes = st.GradCAM(model, layer="layer1.0.conv2")(clip)
    assert tubes.layer == "layer1.0.conv2" and tubes.raw.shape[-3:] == (4, 8, 8)


def test_error_non_5d_input() -> None:
    explainer = st.SaliencyTubes(HandNet())
    with pytest.raises(
        st.InputError,
        match=r"expected a 5-D clip \(N, C, T, H, W\), but got shape \(2, 2, 2, 2\); add a batch",
    ):
        explainer(hand_clip()[0])
    with pytest.raises(st.InputError, match="expected the clip as a torch.Tensor"):
        explainer([[1.0]])  # type: ignore[arg-type]
    with pytest.raises(st.InputError, match="floating-point"):
        explainer(hand_clip().to(torch.uint8))
    with pytest.raises(st.InputError, match="NaN or inf"):
        explainer(hand_clip() * float("nan"))


def test_check_clip_tells_overflow_from_non_finite() -> None:
    # the check sums the clip first: a finite clip whose sum overflows must still pass,
    # and +inf beside -inf (a NaN sum) or one NaN among finite values must not
    from saliency_tubes.methods.inputs import check_clip

    big = torch.full((1, 1, 2, 2, 2), 3e38)
    assert not torch.isfinite(big.sum())
    assert check_clip(big) is big
    for bad in (float("inf"), float("-inf"), float("nan")):
        clip = torch.zeros(1, 1, 2, 2, 2)
        clip[0, 0, 1, 1, 1] = bad
        if bad == float("inf"):
            clip[0, 0, 0, 0, 0] = float("-inf")
        with pytest.raises(st.InputError, match="NaN or inf"):
            check_clip(clip)


def test_error_layer_name_not_found_suggests_names() -> None:
    with pytest.raises(
        st.LayerNotFoundError,
        match=r"layer 'layer22' not found in SmallResNet3D; did you mean 'layer2'",
    ):
        st.SaliencyTubes(SmallResNet3D(), layer="layer22", classifier="fc")
    with pytest.raises(st.LayerNotFoundError, match="not among model.named_modules"):
        st.SaliencyTubes(HandNet(), layer=nn.Conv3d(1, 1, 1), classifier="fc")


def test_error_no_classifier_found() -> None:
    with pytest.raises(
        st.LayerNotFoundError,
        match=r"could not find the classifier of NoHeadNet: .* pass classifier=",
    ):
        st.SaliencyTubes(NoHeadNet())(torch.randn(1, 3, 4, 8, 8))


def test_error_cannot_decide_lists_candidates() -> None:
    with pytest.raises(
        st.LayerNotFoundError,
        match=r"could not decide the target layer: .*last 5-D layers: 'features'.*pass layer=",
    ):
        st.SaliencyTubes(FlattenHeadNet())(torch.randn(1, 3, 4, 8, 8))


def test_cam_refuses_non_linear_head_but_gradcam_works() -> None:
    model = MLPHeadNet()
    clip = torch.randn(1, 3, 4, 8, 8)
    with pytest.raises(st.LayerNotFoundError, match="could not decide the target layer"):
        st.SaliencyTubes(model)(clip)  # 'out' takes 8 features, no 5-D layer has 8 channels
    assert st.GradCAM(model, layer="features")(clip).maps.shape == (1, 1, 4, 8, 8)


def test_error_class_index_out_of_range_and_unknown_name() -> None:
    explainer = st.SaliencyTubes(HandNet(), categories=["take", "wash", "turn-on"])
    with pytest.raises(
        st.ClassSelectionError, match=r"class index 3 out of range: expected 0 <= index < 3"
    ):
        explainer(hand_clip(), classes=3)
    with pytest.raises(
        st.ClassSelectionError, match=r"unknown class name 'wahs'; did you mean 'wash'"
    ):
        explainer(hand_clip(), classes="wahs")
    with pytest.raises(st.ClassSelectionError, match=r"expected top-K with 1 <= K <= 3"):
        explainer(hand_clip(), classes="top4")
    with pytest.raises(st.ClassSelectionError, match="has no category names"):
        st.SaliencyTubes(HandNet())(hand_clip(), classes="wash")
    with pytest.raises(st.ClassSelectionError, match="one list of classes per sample"):
        explainer(hand_clip(), classes=[[0], [1]])


def test_error_nan_model_output() -> None:
    model = HandNet()
    with torch.no_grad():
        model.fc.bias.fill_(float("nan"))
    with pytest.raises(st.InputError, match="NaN or inf scores"):
        st.SaliencyTubes(model)(hand_clip())
    assert hooks_left(model) == 0


def test_bad_options() -> None:
    with pytest.raises(st.InputError, match="interpolation"):
        st.SaliencyTubes(HandNet(), interpolation="bicubic")
    with pytest.raises(st.InputError, match="weight_threshold in"):
        st.SaliencyTubes(HandNet(), weight_threshold=2.0)
    with pytest.raises(st.InputError, match="top_features"):
        st.SaliencyTubes(HandNet(), top_features=0)
    with pytest.raises(TypeError, match="expected a torch.nn.Module"):
        st.SaliencyTubes("resnet")  # type: ignore[arg-type]


def test_counted_forwards_counts_clips_and_leaves_no_hook() -> None:
    """A batch of B counts B (a list of pathways by its first tensor); the hook is gone
    afterwards, also when the block raises."""

    class Pathways(torch.nn.Module):
        def forward(self, x):
            return x[0].flatten(1) if isinstance(x, list) else x.flatten(1)

    model = Pathways()
    with counted_forwards(model) as counted:
        model(torch.zeros(3, 2))
        model([torch.zeros(5, 2), torch.zeros(5, 4)])
        model(torch.zeros(1, 2))
    assert counted == [9] and not model._forward_pre_hooks
    model(torch.zeros(4, 2))  # after the block: not counted
    assert counted == [9]
    with pytest.raises(RuntimeError, match="boom"), counted_forwards(model):
        model(torch.zeros(2, 2))
        raise RuntimeError("boom")
    assert not model._forward_pre_hooks


def test_hooked_registers_pre_and_post_hooks_and_removes_them_on_every_way_out() -> None:
    from saliency_tubes.hooks import Hook, hooked

    model = HandNet()
    order: list[str] = []
    hooks = [
        Hook(model.conv, lambda _m, _a: order.append("before conv"), before=True),
        Hook(model.conv, lambda _m, _a, _o: order.append("after conv")),
        Hook(model.fc, lambda _m, _a, _o: order.append("after fc")),
    ]
    with hooked(model, hooks):
        assert hooks_left(model) == 3
        model(hand_clip())
    assert order == ["before conv", "after conv", "after fc"]
    assert hooks_left(model) == 0
    with pytest.raises(RuntimeError, match="in the block"), hooked(model, hooks):
        raise RuntimeError("in the block")
    assert hooks_left(model) == 0

    class NotAModule:  # registering the second hook raises: the first is removed too
        pass

    with pytest.raises(AttributeError), hooked(model, [hooks[0], Hook(NotAModule(), print)]):  # type: ignore[arg-type]
        pass
    assert hooks_left(model) == 0


def test_an_explanation_in_training_mode_leaves_the_batch_norm_statistics() -> None:
    # eval_mode=False runs the user's model as it is, in training mode here: its forwards
    # update batch norm's running statistics, which must be put back (explaining never
    # trains the model), as must everything else.
    import saliency_tubes as st
    from _models import SmallResNet3D

    model = SmallResNet3D().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    clip = torch.randn(2, 3, 4, 16, 16, generator=torch.Generator().manual_seed(3))
    st.GradCAM(model, eval_mode=False)(clip)
    after = model.state_dict()
    changed = [k for k, v in before.items() if not torch.equal(v, after[k])]
    assert changed == []
    assert model.training
