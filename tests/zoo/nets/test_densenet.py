"""3D-DenseNet (Hara et al. family): key layout, checkpoints, exact CAM, CLI end to end."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import saliency_tubes as st
from _models import hooks_left
from saliency_tubes.cli import main
from saliency_tubes.synthetic import make_clip
from saliency_tubes.video import VideoWriter, read_frames
from saliency_tubes.zoo import DenseNet3D, available_models, densenet3d, load_model, load_weights
from saliency_tubes.zoo.nets.densenet3d import HalvingAvgPool3d


def _small(num_classes: int = 5, seed: int = 0) -> DenseNet3D:
    """A two-layers-per-block DenseNet3D (8 stem channels, growth 4) with random BN statistics.

    Channels: 8 -> 16 -> 8 -> 16 -> 8 -> 16 -> 8 -> 16 (norm5, relu5, classifier input).
    """
    torch.manual_seed(seed)
    model = DenseNet3D(
        (2, 2, 2, 2), num_classes=num_classes, growth_rate=4, num_init_features=8, bn_size=2
    )
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.5)
        model.classifier.bias.copy_(torch.randn(num_classes, generator=g))
    return model.eval()


def _densenet_params(blocks: tuple[int, ...], num_classes: int, k: int = 32, c0: int = 64) -> int:
    """DenseNet-BC parameter count by hand: convs (no bias), BN (weight + bias), linear."""
    total = 3 * c0 * 7**3 + 2 * c0  # stem conv 7x7x7, norm1
    c = c0
    for b, n in enumerate(blocks):
        for i in range(n):
            cin = c + i * k
            total += 2 * cin + cin * 4 * k + 2 * 4 * k + 4 * k * k * 27
        c += n * k
        if b < len(blocks) - 1:
            total += 2 * c + c * (c // 2)
            c //= 2
    return total + 2 * c + c * num_classes + num_classes


def test_key_layout_matches_the_family() -> None:
    """Keys and sizes as in kenshohara/3D-ResNets-PyTorch models/densenet.py (2020 master)."""
    model = densenet3d(121, num_classes=400)
    state = model.state_dict()
    for key in (
        "features.conv1.weight",
        "features.norm1.running_var",
        "features.denseblock1.denselayer1.norm1.weight",
        "features.denseblock1.denselayer1.conv1.weight",
        "features.denseblock1.denselayer6.conv2.weight",
        "features.transition1.norm.num_batches_tracked",
        "features.transition3.conv.weight",
        "features.denseblock4.denselayer16.norm2.bias",
        "features.norm5.weight",
        "classifier.weight",
        "classifier.bias",
    ):
        assert key in state, key
    assert (
        "features.conv0.weight" not in state
        and "features.denseblock4.denselayer17.conv1.weight" not in state
    )
    assert state["features.conv1.weight"].shape == (64, 3, 7, 7, 7)
    assert state["features.denseblock1.denselayer1.conv2.weight"].shape == (32, 128, 3, 3, 3)
    assert state["features.transition1.conv.weight"].shape == (128, 256, 1, 1, 1)
    assert state["classifier.weight"].shape == (400, 1024)
    assert len(state) == 727  # counted on the family's own DenseNet-121
    params = sum(p.numel() for p in model.parameters())
    assert params == _densenet_params((6, 12, 24, 16), 400) == 11_696_528
    widths = {d: densenet3d(d, num_classes=2).classifier.in_features for d in (169, 201, 264)}
    assert widths == {169: 1664, 201: 1920, 264: 2688}
    with pytest.raises(ValueError, match=r"expected a 3D-DenseNet depth in \[121, 169, 201, 264\]"):
        densenet3d(122)


def test_transition_pool_halves_and_keeps_size_one_dimensions() -> None:
    x = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(1, 1, 2, 4, 4)
    torch.testing.assert_close(HalvingAvgPool3d()(x), torch.nn.AvgPool3d(2, 2)(x))
    flat = x[:, :, :1]  # T = 1: only H and W are pooled
    expected = torch.tensor([[2.5, 4.5], [10.5, 12.5]]).reshape(1, 1, 1, 2, 2)
    torch.testing.assert_close(HalvingAvgPool3d()(flat), expected)
    # Any clip length: an 8-frame clip reaches T' = 1 before the last transition.
    assert _small()(torch.zeros(1, 3, 8, 64, 64)).shape == (1, 5)


def test_cam_is_exact_at_relu5_and_equals_normalised_gradcam() -> None:
    model = _small(num_classes=6)
    clip = torch.randn(2, 3, 32, 64, 64, generator=torch.Generator().manual_seed(1))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cam = st.SaliencyTubes(model)(clip, classes=[0, 3, 5])
    assert cam.layer == "relu5" and cam.classifier == "classifier"  # found automatically
    assert cam.raw.shape == (2, 3, 2, 2, 2) and cam.maps.shape == (2, 3, 32, 64, 64)
    # GAP + linear: class score = space-time mean of the raw tube + bias.
    expected = cam.raw.mean(dim=(2, 3, 4)) + model.classifier.bias[cam.classes]
    torch.testing.assert_close(expected, cam.logits.gather(1, cam.classes), rtol=1e-5, atol=1e-5)
    grad = st.GradCAM(model, layer="relu5", relu=False)(clip, classes=[0, 3, 5])
    torch.testing.assert_close(grad.maps, cam.maps, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(grad.raw * 8, cam.raw, rtol=1e-4, atol=1e-5)  # T'H'W' = 8
    # Before the final ReLU (features = norm5's output) the identity fails: relu5 is needed.
    pre = st.SaliencyTubes(model, layer="features")(clip, classes=[0, 3, 5])
    pre_score = pre.raw.mean(dim=(2, 3, 4)) + model.classifier.bias[pre.classes]
    assert not torch.allclose(pre_score, pre.logits.gather(1, pre.classes), atol=1e-3)
    assert hooks_left(model) == 0 and not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize(
    ("fmt", "wrap"),
    [
        ("pth", "plain"),
        ("pth", "module_prefix"),
        ("pth", "nested"),
        ("safetensors", "plain"),
        ("safetensors", "module_prefix"),
    ],
)
def test_checkpoint_round_trip(tmp_path: Path, fmt: str, wrap: str) -> None:
    source = _small(num_classes=7, seed=3)
    state = source.state_dict()
    if wrap in ("module_prefix", "nested"):  # the family saves DataParallel models
        state = {f"module.{k}": v for k, v in state.items()}
    path = tmp_path / f"save_10.{fmt}"
    if fmt == "safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    elif wrap == "nested":  # as the family's training loop saves it
        optimizer = torch.optim.SGD(source.parameters(), lr=0.1, momentum=0.9)
        torch.save(
            {
                "epoch": 10,
                "arch": "densenet-121",
                "state_dict": state,
                "optimizer": optimizer.state_dict(),
            },
            path,
        )
    else:
        torch.save(state, path)
    target = load_weights(_small(num_classes=7, seed=4), path)
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key
    clip = torch.randn(1, 3, 8, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(target.eval()(clip), source(clip), rtol=0, atol=0)


def _legacy_key(key: str) -> str:
    """This layout -> the released CVPR 2018 checkpoints' (conv0/norm0, norm.1/conv.1 ...)."""
    key = re.sub(r"^features\.(conv|norm)1\.", r"features.\g<1>0.", key)
    return re.sub(r"(denselayer\d+\.(?:norm|conv))([12])\.", r"\1.\2.", key)


def test_released_cvpr2018_layout_is_converted(tmp_path: Path) -> None:
    """densenet-121-kinetics.pth style: module.features.conv0, denselayerN.norm.1, no counters."""
    source = _small(num_classes=4, seed=5)
    legacy = {
        f"module.{_legacy_key(k)}": v
        for k, v in source.state_dict().items()
        if not k.endswith("num_batches_tracked")
    }
    assert "module.features.conv0.weight" in legacy
    assert "module.features.denseblock1.denselayer1.norm.1.weight" in legacy
    assert "module.features.denseblock2.denselayer2.conv.2.weight" in legacy
    assert "module.features.transition1.conv.weight" in legacy
    path = tmp_path / "densenet-121-kinetics.pth"
    torch.save({"epoch": 200, "arch": "densenet-121", "state_dict": legacy}, path)
    target = load_weights(_small(num_classes=4, seed=6), path)
    for key, value in source.state_dict().items():
        expected = torch.zeros_like(value) if key.endswith("num_batches_tracked") else value
        assert torch.equal(target.state_dict()[key], expected), key


def test_class_count_mismatch_explains_and_hints(tmp_path: Path) -> None:
    path = tmp_path / "k400.pth"
    torch.save({"state_dict": _small(num_classes=400).state_dict()}, path)
    with pytest.raises(
        st.ModelLoadError,
        match=r"shape mismatches \[classifier.weight: checkpoint \(400, 16\) vs model \(101, 16\), "
        r"classifier.bias: checkpoint \(400,\) vs model \(101,\)\].*--num-classes",
    ):
        load_weights(_small(num_classes=101), path)
    loaded = load_weights(_small(num_classes=400, seed=1), path)  # the right count loads
    assert loaded.classifier.out_features == 400


def test_load_model_explains_with_exact_cam_and_leaves_the_model_unchanged() -> None:
    assert {"densenet3d-121", "densenet3d-169", "densenet3d-201", "densenet3d-264"} <= set(
        available_models()
    )
    loaded = load_model("densenet3d-121", num_classes=10)
    assert (loaded.layer, loaded.classifier) == ("relu5", "classifier")
    assert loaded.preset.frames == 16 and loaded.preset.size == (112, 112)
    model = loaded.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [p.requires_grad for p in model.parameters()]
    clip = torch.randn(1, 3, 8, 64, 64, generator=torch.Generator().manual_seed(2))
    tubes = loaded.explainer("cam")(clip, classes="top2")
    assert tubes.maps.shape == (1, 2, 8, 64, 64) and tubes.raw.shape == (1, 2, 1, 2, 2)
    assert float(tubes.maps.amin()) == 0.0 and float(tubes.maps.amax()) == 1.0
    score = tubes.raw.mean(dim=(2, 3, 4)) + model.classifier.bias[tubes.classes]
    logits = tubes.logits.gather(1, tubes.classes)
    torch.testing.assert_close(score, logits, rtol=1e-4, atol=1e-4 * float(logits.abs().max()))
    assert hooks_left(model) == 0 and not model.training
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_cli_explains_a_short_clip(tmp_path: Path) -> None:
    clip = make_clip(label=2, seed=1000, frames=10, size=(64, 80))
    video = tmp_path / "clip.mp4"
    with VideoWriter(video, fps=10, crf=10) as writer:
        for frame in clip.video:
            writer.write(frame)
    out = tmp_path / "out"
    torch.manual_seed(0)  # the CLI builds densenet3d-121 with random weights from this state
    result = CliRunner().invoke(
        main,
        [
            "explain", str(video), "--out", str(out), "--model", "densenet3d-121",
            "--frames", "8", "--format", "npy", "--layouts", "heat", "--quiet",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"]["layer"] == "relu5" and manifest["model"]["classifier"] == "classifier"
    assert manifest["tube"]["layer_grid"] == [1, 3, 3]  # 8x112x112 -> T'=1, H'=W'=3
    tube = np.load(out / "tube.npy")
    assert tube.shape == (1, 8, 112, 112)
    # The same tube through the API, from the same weights and the same sampled frames.
    torch.manual_seed(0)
    loaded = load_model("densenet3d-121")
    frames = read_frames(video, manifest["clips"][0]["frame_indices"])
    tubes = loaded.explainer("cam")(loaded.preset.preprocess()(frames)[None], classes="top1")
    assert int(tubes.classes[0, 0]) == manifest["classes"][0]["index"]
    np.testing.assert_allclose(tube, tubes.maps[0].numpy(), atol=1e-4)
