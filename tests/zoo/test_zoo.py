"""Registry, 3D-ResNet key layout, and safe checkpoint loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import saliency_tubes as st
from _models import hooks_left
from saliency_tubes.zoo import (
    ModelAdapter,
    Preset,
    available_models,
    load_model,
    load_weights,
    read_categories,
    register,
    resnet3d,
)


def _hara_keys_ok(model: torch.nn.Module) -> None:
    keys = set(model.state_dict())
    for key in (
        "conv1.weight",
        "bn1.running_mean",
        "layer1.0.conv1.weight",
        "layer2.0.downsample.0.weight",
        "layer2.0.downsample.1.weight",
        "layer4.0.bn2.bias",
        "fc.weight",
        "fc.bias",
    ):
        assert key in keys, key


def test_resnet3d_family_layout_and_cam() -> None:
    model = resnet3d(10, num_classes=7).eval()
    _hara_keys_ok(model)
    clip = torch.randn(1, 3, 8, 64, 64, generator=torch.Generator().manual_seed(0))
    tubes = st.SaliencyTubes(model)(clip, classes="top1")
    assert tubes.layer == "layer4" and tubes.classifier == "fc"
    assert tubes.maps.shape == (1, 1, 8, 64, 64) and tubes.raw.shape == (1, 1, 1, 2, 2)
    assert hooks_left(model) == 0
    bottleneck = resnet3d(50, num_classes=3)
    assert bottleneck.fc.in_features == 2048 and "layer1.0.conv3.weight" in bottleneck.state_dict()


@pytest.mark.parametrize("wrap", ["plain", "module_prefix", "nested"])
def test_checkpoint_round_trip_hara_layout(tmp_path: Path, wrap: str) -> None:
    source = resnet3d(10, num_classes=5)
    state = source.state_dict()
    if wrap == "module_prefix":
        state = {f"module.{k}": v for k, v in state.items()}
    payload = {"arch": "resnet-10", "epoch": 3, "state_dict": state} if wrap == "nested" else state
    path = tmp_path / "ckpt.pth"
    torch.save(payload, path)
    target = load_weights(resnet3d(10, num_classes=5), path)
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


def test_safetensors_checkpoint(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    source = resnet3d(10, num_classes=4)
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    target = load_weights(resnet3d(10, num_classes=4), path)
    assert torch.equal(target.fc.weight, source.fc.weight)


def test_class_count_mismatch_explains_and_hints(tmp_path: Path) -> None:
    path = tmp_path / "k400.pth"
    torch.save(resnet3d(10, num_classes=400).state_dict(), path)
    with pytest.raises(
        st.ModelLoadError,
        match=r"shape mismatches \[fc.weight: checkpoint \(400, 512\) vs model \(101, 512\).*pass num_classes",
    ):
        load_weights(resnet3d(10, num_classes=101), path)


def test_missing_and_unexpected_keys_listed(tmp_path: Path) -> None:
    state = resnet3d(10, num_classes=3).state_dict()
    state.pop("fc.bias")
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(
        st.ModelLoadError, match=r"missing keys \[fc.bias\]; unexpected keys \[extra.weight\]"
    ):
        load_weights(resnet3d(10, num_classes=3), path)


class _Payload:
    """A pickle that would create a file when unpickled."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (Path(self.marker),))


def test_pickle_payload_refused_without_opt_in(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save(
        {"state_dict": resnet3d(10, num_classes=2).state_dict(), "x": _Payload(str(marker))}, path
    )
    with pytest.raises(st.ModelLoadError, match=r"refused to unpickle evil.pth.*allow_pickle=True"):
        load_weights(resnet3d(10, num_classes=2), path)
    assert not marker.exists()
    # With the explicit opt-in the pickle is trusted (and its payload runs).
    load_weights(resnet3d(10, num_classes=2), path, allow_pickle=True)
    assert marker.exists()


def test_missing_checkpoint_and_categories(tmp_path: Path) -> None:
    with pytest.raises(st.ModelLoadError, match="checkpoint not found"):
        load_weights(resnet3d(10, num_classes=2), tmp_path / "nope.pth")
    (tmp_path / "c.txt").write_text("take\nwash\n\nturn-on\n")
    assert read_categories(tmp_path / "c.txt") == ("take", "wash", "turn-on")
    (tmp_path / "c.json").write_text(json.dumps({"1": "b", "0": "a", "10": "k"}))
    assert read_categories(tmp_path / "c.json") == ("a", "b", "k")
    (tmp_path / "l.json").write_text(json.dumps(["x", "y"]))
    assert read_categories(tmp_path / "l.json") == ("x", "y")


def test_registry_refuses_duplicates_and_unknown_names() -> None:
    assert {"tiny-actions", "resnet3d-18", "resnet3d-50", "resnet3d-101", "resnet3d-152"} <= set(
        available_models()
    )
    adapter = ModelAdapter(
        name="tiny-actions",
        builder=lambda **_: torch.nn.Identity(),
        layer=None,
        classifier=None,
        preset=Preset(),
    )
    with pytest.raises(ValueError, match="already registered"):
        register(adapter)
    with pytest.raises(st.ModelLoadError, match=r"unknown model 'resnet3d-19'; did you mean"):
        load_model("resnet3d-19")


def test_load_model_with_weights_and_factory(tmp_path: Path) -> None:
    path = tmp_path / "r18.pth"
    torch.save(
        {
            "state_dict": {
                f"module.{k}": v for k, v in resnet3d(18, num_classes=3).state_dict().items()
            }
        },
        path,
    )
    (tmp_path / "names.txt").write_text("a\nb\nc\n")
    loaded = load_model(
        "resnet3d-18", weights=path, num_classes=3, categories=tmp_path / "names.txt"
    )
    assert (
        loaded.layer == "layer4"
        and loaded.categories == ("a", "b", "c")
        and not loaded.model.training
    )
    custom = load_model("_models:SmallResNet3D", num_classes=4)
    assert custom.model.fc.out_features == 4
    with pytest.raises(st.ModelLoadError, match="could not import 'no_such_mod'"):
        load_model("no_such_mod:build")


# The Hara-layout families and the embedded model, every registered depth: the torchvision
# and pytorchvideo adapters have their own modules (test_zoo_torchvision/_pytorchvideo).
# (tiny-colours-vit and tiny-colours-mvit read a class token: no CAM; zoo/nets/test_tiny_vit.py
# and test_tiny_mvit.py check it.)
_OWN = [
    n
    for n in st.zoo.available_models()
    if n.startswith(("resnet3d-", "densenet3d-", "tiny"))
    and n not in ("tiny-colours-vit", "tiny-colours-mvit")
]


@pytest.mark.parametrize("name", _OWN)
def test_every_own_adapter_explains_and_cam_equals_gradcam(name: str) -> None:
    loaded = st.zoo.load_model(name)
    torch.manual_seed(0)
    clip = torch.randn(1, 3, 8, 48, 48)
    cam = loaded.explainer("cam")(clip, classes="top2")
    grad = loaded.explainer("gradcam", relu=False)(clip, classes="top2")
    assert cam.maps.shape == (1, 2, 8, 48, 48) and not hooks_left(loaded.model)
    assert cam.raw.abs().amax() > 0  # the identity below must not hold trivially
    # Global average pool + linear head: exact decomposition, and Grad-CAM agrees.
    head = dict(loaded.model.named_modules())[cam.classifier]
    c = cam.classes[0]
    torch.testing.assert_close(
        cam.raw[0].mean(dim=(1, 2, 3)) + head.bias[c], cam.logits[0, c], rtol=1e-4, atol=1e-4
    )
    torch.testing.assert_close(grad.maps, cam.maps, rtol=1e-4, atol=1e-4)


def test_a_clip_the_model_cannot_take_is_a_one_line_error() -> None:
    """A model with a fixed pool fails on a shorter clip with an InputError, not a traceback."""

    class FixedPool(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv3d(3, 4, 1)
            self.pool = torch.nn.AvgPool3d((8, 4, 4))
            self.fc = torch.nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.pool(self.conv(x)).flatten(1))

    model = FixedPool()
    explainer = st.SaliencyTubes(model, layer="conv", classifier="fc")
    assert explainer(torch.randn(1, 3, 8, 4, 4)).maps.shape == (1, 1, 8, 4, 4)
    for e in (explainer, st.SaliencyTubes(model), st.GradCAM(model, layer="conv")):
        with pytest.raises(
            st.errors.InputError, match=r"could not run on a clip of 4 frames of 4x4 \("
        ):
            e(torch.randn(1, 3, 4, 4, 4))
        with pytest.raises(st.errors.InputError, match="could not run"):
            e.logits(torch.randn(1, 3, 4, 4, 4))
    assert not hooks_left(model) and model.training


def test_logits_of_tuple_and_dict_outputs() -> None:
    class TupleOut(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv3d(3, 4, 1)
            self.fc = torch.nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            a = self.conv(x)
            return self.fc(a.mean(dim=(2, 3, 4))), a

    model = TupleOut()
    clip = torch.randn(2, 3, 4, 6, 6)
    with torch.no_grad():
        expected = model(clip)[0]
    torch.testing.assert_close(st.SaliencyTubes(model).logits(clip), expected)
    torch.testing.assert_close(st.methods.base.logits_of({"logits": expected}, 2), expected)


def test_cam_refused_where_the_head_reads_no_pooled_features() -> None:
    adapter = st.zoo.ModelAdapter(
        name="cls-token-net",
        builder=lambda pretrained=False: torch.nn.Linear(2, 2),
        layer="x",
        classifier="y",
        preset=st.zoo.Preset(),
        default_method="gradcam",
        cam_exact=False,
    )
    loaded = st.zoo.LoadedModel(
        model=torch.nn.Linear(2, 2),
        name="cls-token-net",
        layer=None,
        classifier=None,
        preset=st.zoo.Preset(),
        categories=None,
        weights=None,
        adapter=adapter,
    )
    with pytest.raises(
        st.SaliencyTubesError, match="CAM does not apply to cls-token-net.*--method gradcam"
    ):
        loaded.explainer("cam")
    assert isinstance(loaded.explainer("gradcam"), st.GradCAM)
