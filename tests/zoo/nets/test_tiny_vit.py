"""The shipped transformer ``tiny-colours-vit``: registered, loaded with its own weights,
classifying its validation clips as its training record says."""

from __future__ import annotations

import json

import pytest
import torch

import saliency_tubes as st
from _planted import validation_accuracy
from saliency_tubes.synthetic_colours import COLOURS
from saliency_tubes.zoo import get_adapter
from saliency_tubes.zoo.nets.tiny_vit import SHIPPED, VIT_WEIGHTS, TinyVideoViT


def record() -> dict:
    return json.loads(VIT_WEIGHTS.with_suffix(".json").read_text())


def test_the_preset_is_the_shipped_trained_transformer() -> None:
    adapter = get_adapter("tiny-colours-vit")
    assert adapter.default_method == "relevancy" and not adapter.cam_exact
    assert "6 synthetic colour classes" in (adapter.caveat or "")
    loaded = st.load_model("tiny-colours-vit")
    assert loaded.weights_source == "shipped" and not loaded.random_weights
    assert loaded.categories == COLOURS and loaded.default_method == "relevancy"
    assert isinstance(loaded.model, TinyVideoViT) and not loaded.model.training
    rec = record()
    assert rec["task"] == "colour-vit" and rec["config"] == SHIPPED
    assert rec["parameters"] == sum(p.numel() for p in loaded.model.parameters())
    assert VIT_WEIGHTS.stat().st_size < 1024 * 1024
    with pytest.raises(st.ModelLoadError, match="CAM does not apply to tiny-colours-vit"):
        loaded.explainer("cam")  # the head reads the class token, not pooled features


def test_it_reaches_its_recorded_validation_accuracy() -> None:
    """The record's validation clips, regenerated from its seed, through the preset's own
    preprocessing: the accuracy is the recorded one (to 2 clips of 384: a clip at a
    near-tie may flip with the thread count)."""
    rec = record()
    accuracy = validation_accuracy("tiny-colours-vit", rec)
    assert accuracy == pytest.approx(rec["val_accuracy"], abs=2 / rec["val_size"] + 1e-9)
    assert rec["val_accuracy"] >= 0.8  # far above chance (1/6)


def test_the_demo_shows_the_transformer_with_relevancy(tmp_path) -> None:
    """`saliency-tubes demo --model tiny-colours-vit`: method auto is relevancy, the
    weights are the shipped trained ones (said in the manifest), and the clip's true
    colour is the top class."""
    from click.testing import CliRunner

    from saliency_tubes.cli import main

    out = tmp_path / "demo"
    result = CliRunner().invoke(
        main, ["demo", "--out", str(out), "--model", "tiny-colours-vit", "--quiet"]
    )
    assert result.exit_code == 0, result.stderr
    assert "random weights" not in result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    model = manifest["model"]
    assert model["name"] == "tiny-colours-vit" and model["method"] == "relevancy"
    assert model["weights_source"] == "shipped" and model["random_weights"] is False
    assert model["caveat"].startswith("knows only the 6 synthetic colour classes")
    assert manifest["classes"][0]["name"] == manifest["demo"]["true_class"] in COLOURS


def _reference(model: TinyVideoViT, sample: torch.Tensor, target: int) -> tuple:
    """The forward written out (heads by hand, float64) and the papers' full-matrix
    recurrences on the class-token row: (logits, rollout, relevancy) on the token grid."""
    x = model.tokens(sample[None])[0]
    probs = []
    for block in model.blocks:
        h = block.norm1(x)
        length, dim = h.shape
        heads = block.attn.heads
        q, k, v = block.attn.qkv(h).reshape(length, 3, heads, dim // heads).permute(1, 2, 0, 3)
        a = torch.softmax(q @ k.transpose(1, 2) / (dim // heads) ** 0.5, dim=-1)
        probs.append(a)
        x = x + block.attn.proj((a @ v).transpose(0, 1).reshape(length, dim))
        x = x + block.mlp(block.norm2(x))
    logits = model.fc(model.fc_norm(x[0]))
    eye = torch.eye(x.shape[0], dtype=x.dtype)
    rollout = eye
    for a in probs:
        step = 0.5 * a.mean(0).detach() + 0.5 * eye
        rollout = (step / step.sum(1, keepdim=True)) @ rollout
    grads = torch.autograd.grad(logits[target], probs)
    relevancy = eye
    for a, g in zip(probs, grads, strict=True):
        relevancy = relevancy + (g * a).clamp(min=0).mean(0).detach() @ relevancy
    grid = [c // s for c, s in zip((16, 64, 64), model.tubelet, strict=True)]
    return logits, rollout[0, 1:].reshape(grid), relevancy[0, 1:].reshape(grid)


def test_the_class_token_layout_matches_the_hand_written_reference() -> None:
    """The shipped architecture (conv stem, class token, 4 x 8 x 8 tubelets) with fixed
    random weights in float64: rollout and relevancy equal the reference to 1e-6 of the
    largest value, on the (4, 8, 8) grid of the class token's row."""
    torch.manual_seed(0)
    model = TinyVideoViT(4, 24, 2, 2, 32, stem=True, readout="cls", tubelet=(4, 8, 8))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.35)
    model = model.double().eval()
    c = torch.randn(1, 3, 16, 64, 64, generator=torch.Generator().manual_seed(5)).double()
    logits, rollout, relevancy = _reference(model, c[0], 2)
    with torch.no_grad():
        torch.testing.assert_close(logits, model(c)[0], rtol=0, atol=1e-9)
    got_rollout = st.AttentionRollout(model)(c).raw[0, 0]
    got_relevancy = st.AttentionRelevancy(model)(c, classes=[2]).raw[0, 0]
    for got, want in ((got_rollout, rollout), (got_relevancy, relevancy)):
        scale = float(want.abs().max())
        assert scale > 0 and got.shape == (4, 8, 8)
        torch.testing.assert_close(got.double(), want, rtol=0, atol=1e-6 * scale)
