"""The shipped MViT ``tiny-colours-mvit``: torchvision's MViT class, registered, loaded with
its own weights, classifying its validation clips as its training record says."""

from __future__ import annotations

import json

import pytest
import torch

import saliency_tubes as st
from _models import torchvision_or_skip
from _planted import validation_accuracy
from saliency_tubes.synthetic_colours import COLOURS
from saliency_tubes.zoo import get_adapter

torchvision_or_skip()
from torchvision.models.video.mvit import MViT  # noqa: E402

from saliency_tubes.zoo.nets.tiny_mvit import BLOCKS, MVIT_WEIGHTS, PATCH  # noqa: E402


def record() -> dict:
    return json.loads(MVIT_WEIGHTS.with_suffix(".json").read_text())


def test_the_preset_is_the_shipped_trained_mvit() -> None:
    adapter = get_adapter("tiny-colours-mvit")
    assert not adapter.cam_exact
    assert "6 synthetic colour classes" in (adapter.caveat or "")
    loaded = st.load_model("tiny-colours-mvit")
    assert loaded.weights_source == "shipped" and not loaded.random_weights
    assert loaded.categories == COLOURS
    assert type(loaded.model) is MViT and not loaded.model.training
    rec = record()
    assert rec["task"] == "colour-mvit"
    assert rec["config"] == {
        "blocks": [[h, c_in, c_out, list(sq), list(skv)] for h, c_in, c_out, sq, skv in BLOCKS],
        "patch": list(PATCH),
        "version": "v2",
    }
    assert rec["parameters"] == sum(p.numel() for p in loaded.model.parameters())
    assert MVIT_WEIGHTS.stat().st_size < 1024 * 1024
    # pooling attention: the query-strided block shrinks the grid 4x8x8 -> 4x4x4, and
    # its skip is pooled; every q/k/v pool is a learned depthwise conv (MViTv2's)
    assert [len(b.attn.qkv.weight) for b in loaded.model.blocks] == [96, 192, 192]
    assert loaded.model.blocks[1].pool_skip is not None
    assert all(
        isinstance(p.pool, torch.nn.Conv3d) and p.pool.groups == p.pool.in_channels
        for b in loaded.model.blocks
        for p in (b.attn.pool_q, b.attn.pool_k, b.attn.pool_v)
    )
    with pytest.raises(st.ModelLoadError, match="CAM does not apply to tiny-colours-mvit"):
        loaded.explainer("cam")  # the head reads the class token, not pooled features


def test_it_reaches_its_recorded_validation_accuracy() -> None:
    """The record's validation clips, regenerated from its seed, through the preset's own
    preprocessing: the accuracy is the recorded one (to 2 clips of 384: a clip at a
    near-tie may flip with the thread count)."""
    rec = record()
    accuracy = validation_accuracy("tiny-colours-mvit", rec)
    assert accuracy == pytest.approx(rec["val_accuracy"], abs=2 / rec["val_size"] + 1e-9)
    assert rec["val_accuracy"] >= 0.8  # far above chance (1/6)


def test_other_class_counts_keep_the_trunk_and_a_fresh_head() -> None:
    shipped = st.load_model("tiny-colours-mvit").model
    from saliency_tubes.zoo.nets.tiny_mvit import tiny_colours_mvit

    three = tiny_colours_mvit(num_classes=3)
    assert three.head[1].out_features == 3
    torch.testing.assert_close(three.conv_proj.weight, shipped.conv_proj.weight, rtol=0, atol=0)
    with pytest.raises(st.InputError, match="num_classes"):
        tiny_colours_mvit(num_classes=0)


def test_the_demo_shows_the_mvit_with_gradcam(tmp_path) -> None:
    """`saliency-tubes demo --model tiny-colours-mvit`: method auto is Grad-CAM (relevancy
    did not pass the planted bar on it), the weights are the shipped trained ones (said in
    the manifest), and the clip's true colour is the top class."""
    from click.testing import CliRunner

    from saliency_tubes.cli import main

    out = tmp_path / "demo"
    result = CliRunner().invoke(
        main, ["demo", "--out", str(out), "--model", "tiny-colours-mvit", "--quiet"]
    )
    assert result.exit_code == 0, result.stderr
    assert "random weights" not in result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    model = manifest["model"]
    assert model["name"] == "tiny-colours-mvit" and model["method"] == "gradcam"
    assert model["weights_source"] == "shipped" and model["random_weights"] is False
    assert model["caveat"].startswith("knows only the 6 synthetic colour classes")
    assert manifest["classes"][0]["name"] == manifest["demo"]["true_class"] in COLOURS
