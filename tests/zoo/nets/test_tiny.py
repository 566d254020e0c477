"""Tests of the shipped default model (TinyActionNet) and its weights."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import nn

from saliency_tubes.errors import InputError, ModelLoadError
from saliency_tubes.synthetic import CLASSES, make_dataset
from saliency_tubes.zoo.nets import tiny
from saliency_tubes.zoo.nets.tiny import PRESET, WEIGHTS_PATH, TinyActionNet, tiny_action_net

RECORD_PATH = WEIGHTS_PATH.with_suffix(".json")
FRESH_SEED = 424242  # never used by scripts/train_default_model.py (1000 + s, 2000 + s)
FRESH_N = 96


def _record() -> dict[str, Any]:
    return json.loads(RECORD_PATH.read_text())


def _to_input(videos: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(videos).permute(0, 4, 1, 2, 3).float() / 255.0
    mean = torch.tensor(PRESET["mean"]).view(1, 3, 1, 1, 1)
    std = torch.tensor(PRESET["std"]).view(1, 3, 1, 1, 1)
    return (x - mean) / std


@pytest.fixture(scope="module")
def model() -> TinyActionNet:
    return tiny_action_net()


@pytest.fixture(scope="module")
def fresh() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return make_dataset(FRESH_N, seed=FRESH_SEED, frames=PRESET["frames"], size=PRESET["size"])


def test_preset_matches_record_and_classes() -> None:
    record = _record()
    assert PRESET["categories"] == CLASSES
    assert PRESET["frames"] == record["frames"] == 16
    assert tuple(PRESET["size"]) == tuple(record["size"]) == (96, 96)
    assert PRESET["layer"] == "features" and PRESET["classifier"] == "fc"
    assert PRESET["seed"] == record["seed"]
    assert PRESET["val_accuracy"] == pytest.approx(record["val_accuracy"])
    assert float(PRESET["val_accuracy"]) >= 0.95
    assert len(PRESET["mean"]) == len(PRESET["std"]) == 3
    assert all(0.0 < s < 1.0 for s in PRESET["std"])
    assert record["categories"] == list(CLASSES)


def test_weights_file_small_and_safetensors() -> None:
    size = WEIGHTS_PATH.stat().st_size
    assert size <= 5 * 1024 * 1024, f"weights are {size} bytes"
    reference = TinyActionNet().state_dict()
    with safe_open(str(WEIGHTS_PATH), framework="pt") as f:
        keys = set(f.keys())
        assert keys == set(reference)
        for key in keys:
            tensor = f.get_tensor(key)
            assert tensor.shape == reference[key].shape, key
            assert tensor.dtype == reference[key].dtype, key
            assert torch.isfinite(tensor.float()).all(), key


def test_architecture_layer_and_classifier(model: TinyActionNet) -> None:
    assert not model.training and all(not m.training for m in model.modules())
    modules = dict(model.named_modules())
    layer, classifier = modules[PRESET["layer"]], modules[PRESET["classifier"]]
    assert isinstance(classifier, nn.Linear)
    assert classifier.out_features == len(CLASSES)
    grabbed: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: grabbed.append(out))
    try:
        x = torch.zeros(2, 3, PRESET["frames"], *PRESET["size"])
        with torch.no_grad():
            logits = model(x)
    finally:
        handle.remove()
    assert logits.shape == (2, len(CLASSES))
    assert grabbed[0].shape == (2, classifier.in_features, 8, 12, 12)
    # The head is exactly: global average pool -> (dropout, off in eval) -> fc.
    with torch.no_grad():
        again = classifier(grabbed[0].mean(dim=(2, 3, 4)))
    torch.testing.assert_close(again, logits)
    assert sum(p.numel() for p in model.parameters()) < 1_000_000


def test_accuracy_on_fresh_clips(
    model: TinyActionNet, fresh: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    videos, _, labels = fresh
    with torch.no_grad():
        pred = torch.cat(
            [model(_to_input(videos[i : i + 32])).argmax(1) for i in range(0, FRESH_N, 32)]
        )
    accuracy = float((pred.numpy() == labels).mean())
    recorded = float(_record()["val_accuracy"])
    n_val = int(_record()["val_size"])
    # Both accuracies are binomial estimates of the same rate p; their difference has
    # standard deviation sqrt(p (1 - p) (1/n_fresh + 1/n_val)). Allow 3 of those (a false
    # failure has probability ~0.1 %), with p at least 0.02 so that a recorded 1.0 still
    # leaves room for a mistake or two.
    p = min(max(1.0 - recorded, 0.02), 0.5)
    margin = 3.0 * math.sqrt(p * (1.0 - p) * (1.0 / FRESH_N + 1.0 / n_val))
    assert accuracy >= recorded - margin, f"accuracy {accuracy:.3f} < {recorded:.3f} - {margin:.3f}"
    assert accuracy >= 0.9


def test_cam_sits_on_the_moving_target(
    model: TinyActionNet, fresh: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    """Class activation maps of the predicted class point at the target object."""
    videos, masks, _ = fresh
    n = 24
    grabbed: list[torch.Tensor] = []
    handle = model.features.register_forward_hook(lambda _m, _i, out: grabbed.append(out))
    try:
        with torch.no_grad():
            logits = model(_to_input(videos[:n]))
    finally:
        handle.remove()
    with torch.no_grad():
        weights = model.fc.weight[logits.argmax(1)]  # (n, C)
        cam = torch.einsum("nc,ncthw->nthw", weights, grabbed[0])
        up = F.interpolate(cam[:, None], size=videos.shape[1:4], mode="trilinear")
    maps = up[:, 0].clamp_min(0).numpy()
    hits = 0
    for i in range(n):
        t, y, x = np.unravel_index(int(maps[i].argmax()), maps[i].shape)
        # Dilate the target by 4 pixels: the map lives on an 8x coarser grid.
        box = masks[i, t, max(0, y - 4) : y + 5, max(0, x - 4) : x + 5]
        hits += bool(box.any())
    assert hits / n >= 0.75


def test_missing_weights_raise_model_load_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(tiny, "WEIGHTS_PATH", tmp_path / "nope.safetensors")
    with pytest.raises(ModelLoadError, match=r"expected the TinyActionNet weights at .*missing"):
        tiny_action_net()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    monkeypatch.setattr(tiny, "WEIGHTS_PATH", bad)
    with pytest.raises(ModelLoadError, match=r"safetensors"):
        tiny_action_net()


def test_builder_options() -> None:
    fresh_model = tiny_action_net(pretrained=False)
    assert isinstance(fresh_model, TinyActionNet) and not fresh_model.training
    head5 = tiny_action_net(num_classes=5)
    assert head5.fc.out_features == 5
    shipped = tiny_action_net()
    torch.testing.assert_close(head5.layer2[0].weight, shipped.layer2[0].weight)
    with pytest.raises(InputError, match=r"expected num_classes"):
        tiny_action_net(num_classes=0)


# --------------------------------------------------------------------------- the colour model


def test_the_motion_layer_is_optional() -> None:
    """``motion=False``: the same parameters and keys, but the frames themselves are read
    (a static clip is not zeroed by frame differences)."""
    plain = TinyActionNet(motion=False)
    assert isinstance(plain.motion, nn.Identity)
    assert set(plain.state_dict()) == set(TinyActionNet().state_dict())
    x = torch.ones(1, 3, 4, 32, 32)
    torch.testing.assert_close(TinyActionNet().motion(x), torch.zeros_like(x))
    torch.testing.assert_close(plain.motion(x), x)
    built = tiny.tiny_colour_net()
    assert isinstance(built.motion, nn.Identity) and not built.training
    assert built.fc.out_features == len(tiny.COLOUR_PRESET["categories"])
    with pytest.raises(InputError, match=r"expected num_classes"):
        tiny.tiny_colour_net(num_classes=0)


def test_colour_model_record_and_accuracy_on_fresh_clips() -> None:
    """Loaded through load_model (factory + weights file); its record says how it was
    trained, and fresh clips (a seed the training never used) are classified as well as
    the recorded validation accuracy says."""
    from _colour_model import COLOUR_WEIGHTS, colour_record, load_colour_model
    from saliency_tubes.synthetic_colours import COLOURS, make_colour_dataset

    record = colour_record()
    preset = tiny.COLOUR_PRESET
    assert record["task"] == "colour" and record["model"] == "TinyActionNet(motion=False)"
    assert record["categories"] == list(COLOURS) == list(preset["categories"])
    assert (record["frames"], tuple(record["size"])) == (preset["frames"], preset["size"])
    assert record["val_accuracy"] >= 0.95 and record["seed"] == 0
    assert COLOUR_WEIGHTS.stat().st_size < 1024 * 1024
    loaded = load_colour_model()
    assert loaded.weights_source == "file" and loaded.categories == COLOURS
    videos, _, labels = make_colour_dataset(
        FRESH_N, seed=FRESH_SEED, frames=preset["frames"], size=preset["size"]
    )
    with torch.no_grad():
        pred = loaded.model(_to_input(videos)).argmax(1)
    accuracy = float((pred.numpy() == labels).mean())
    assert accuracy >= 0.95, accuracy
