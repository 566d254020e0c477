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
from saliency_tubes.zoo.nets.tiny_vit import (
    GRADCAM_LAYER,
    SHIPPED,
    VIT_WEIGHTS,
    TinyVideoViT,
    embed_grid,
)


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
    # Grad-CAM reads the block before the last: the last one's patch tokens never reach the
    # class token.
    assert loaded.layer == GRADCAM_LAYER == "blocks.1"
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
    recurrences on the row the head reads (the class token's, or the mean of every token's
    for the mean-pooled head): (logits, rollout, relevancy) on the token grid."""
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
    cls = model.readout == "cls"
    if model.norm_tokens:
        logits = model.fc(model.fc_norm(x).mean(0))
    else:
        logits = model.fc(model.fc_norm(x[0] if cls else x.mean(0)))
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
    if cls:
        return logits, rollout[0, 1:].reshape(grid), relevancy[0, 1:].reshape(grid)
    return logits, rollout.mean(0).reshape(grid), relevancy.mean(0).reshape(grid)


def _fixed(readout: str, norm_tokens: bool = False, depth: int = 2) -> TinyVideoViT:
    """The shipped layout (conv stem, 4 x 8 x 8 tubelets), smaller, fixed random weights,
    float64, eval mode."""
    torch.manual_seed(0)
    model = TinyVideoViT(
        4, 24, depth, 2, 32, stem=True, readout=readout, tubelet=(4, 8, 8), norm_tokens=norm_tokens
    )
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.35)
    return model.double().eval()


@pytest.mark.parametrize(
    ("readout", "norm_tokens"), [("mean", True), ("mean", False), ("cls", False)]
)
def test_the_layout_matches_the_hand_written_reference(readout: str, norm_tokens: bool) -> None:
    """The shipped layout (conv stem, 4 x 8 x 8 tubelets) with its class token, with
    VideoMAE's head (the token mean LayerNormed) and with each token LayerNormed before the
    mean: rollout and relevancy equal the reference to 1e-6 of the largest value, on the
    (4, 8, 8) grid of the row the head reads."""
    model = _fixed(readout, norm_tokens)
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


def test_gradcam_under_videomae_s_head_sums_to_zero() -> None:
    """Grad-CAM under VideoMAE's head (the token mean, LayerNormed; ``readout="mean"``):
    every token gets the same gradient J / L (J: the class score's gradient at the mean), so
    the raw tube on the last block (no ReLU) is <J, x_i> / L, written out here, to 1e-6 of
    its largest value; but LayerNorm is blind to the mean's scale and offset, so
    <J, mean> = 0 and the tube sums to zero over the tokens (to LayerNorm's eps): a token
    that points the way the mean does gets no credit, whatever it adds to the class."""
    model = _fixed("mean")
    c = torch.randn(2, 3, 16, 64, 64, generator=torch.Generator().manual_seed(5)).double()
    explainer = st.GradCAM(model, layer="blocks.1", reshape=embed_grid(0, (4, 8, 8)), relu=False)
    got = explainer(c, classes=[[2], [1]]).raw
    for n, k in ((0, 2), (1, 1)):
        with torch.no_grad():
            x = model.tokens(c[n : n + 1])
            for block in model.blocks:
                x = block(x)
        x = x[0]
        mean = x.mean(0).requires_grad_(True)
        (j,) = torch.autograd.grad(model.fc(model.fc_norm(mean))[k], mean)
        want = (x @ j / x.shape[0]).reshape(4, 8, 8)
        scale = float(want.abs().max())
        assert scale > 0
        torch.testing.assert_close(got[n, 0].double(), want, rtol=0, atol=1e-6 * scale)
        assert abs(float(want.sum())) < 1e-4 * float(want.abs().sum())


def test_gradcam_on_fc_norm_is_each_token_s_exact_share_of_the_score() -> None:
    """With ``norm_tokens`` the head LayerNorms each token, then takes the mean: the score is
    exactly the mean over tokens of W_c . LN(x_i) plus the bias, so Grad-CAM on ``fc_norm``
    (every token's gradient is W_c / L) has the raw tube W_c . LN(x_i) / L, whose sum plus
    the bias is the logit (1e-9), and CAM's (the head's weights) is the same tube up to
    the 1 / L (1e-6 of the largest value)."""
    model = _fixed("mean", norm_tokens=True)
    c = torch.randn(2, 3, 16, 64, 64, generator=torch.Generator().manual_seed(5)).double()
    grid = embed_grid(0, (4, 8, 8))
    classes = [[2], [1]]
    grad = st.GradCAM(model, layer="fc_norm", reshape=grid, relu=False)(c, classes=classes)
    cam = st.SaliencyTubes(model, layer="fc_norm", classifier="fc", reshape=grid)(
        c, classes=classes
    )
    for n, k in ((0, 2), (1, 1)):
        with torch.no_grad():
            x = model.tokens(c[n : n + 1])
            for block in model.blocks:
                x = block(x)
            want = (model.fc_norm(x[0]) @ model.fc.weight[k] / x.shape[1]).reshape(4, 8, 8)
        scale = float(want.abs().max())
        torch.testing.assert_close(grad.raw[n, 0].double(), want, rtol=0, atol=1e-6 * scale)
        torch.testing.assert_close(
            cam.raw[n, 0].double() / x.shape[1], want, rtol=0, atol=1e-6 * scale
        )
        logit = float(want.sum() + model.fc.bias[k].detach())
        assert logit == pytest.approx(float(grad.logits[n, k]), abs=1e-9)


def test_norm_tokens_needs_the_mean_readout() -> None:
    with pytest.raises(st.InputError, match="norm_tokens only with readout 'mean'"):
        TinyVideoViT(readout="cls", norm_tokens=True)


def test_each_token_s_gradient_is_orthogonal_to_it_before_the_last_block() -> None:
    """Why Grad-CAM misses on the class-token model (docs/methods.md): a patch token of the
    block before the last reaches the class token only through the last block's LayerNorm
    (its own residual ends at a patch token the head never reads), and LayerNorm is blind to
    a token's scale and offset, so the class score's gradient at each token is orthogonal to
    that token: HiResCAM there (gradient x activation summed over channels, no ReLU) is 0 at
    every token, to 1e-6 of the sum of its terms' sizes (8.8e-8 here: LayerNorm's eps),
    while the same sum one block earlier is not. Grad-CAM's score of a token is then only
    what the *other* tokens' gradients see in it."""
    depth = 3  # as shipped
    model = _fixed("cls", depth=depth)
    c = torch.randn(2, 3, 16, 64, 64, generator=torch.Generator().manual_seed(5)).double()
    grid = embed_grid(1, (4, 8, 8))
    keep: dict[int, torch.Tensor] = {}
    handles = [
        model.blocks[i].register_forward_hook(lambda _m, _a, out, i=i: keep.__setitem__(i, out))
        for i in (depth - 3, depth - 2)
    ]
    try:
        logits = model(c)
    finally:
        for h in handles:
            h.remove()
    score = logits[0, 2] + logits[1, 1]
    grads = torch.autograd.grad(score, [keep[depth - 3], keep[depth - 2]])
    for (i, acts), grad, zero in zip(sorted(keep.items()), grads, (False, True), strict=True):
        terms = (grad * acts.detach())[:, 1:]  # the patch tokens
        per_token, size = terms.sum(-1), terms.abs().sum(-1)
        assert float(size.min()) > 0
        if zero:
            assert float((per_token.abs() / size).max()) < 1e-6, i  # 8.8e-8: LayerNorm's eps
        else:
            assert float((per_token.abs() / size).max()) > 1e-3, i
    # HiResCAM's raw map is that sum, token by token (the token grid's order is the tokens').
    hires = st.HiResCAM(model, layer=f"blocks.{depth - 2}", reshape=grid, relu=False)
    raw = hires(c, classes=[[2], [1]]).raw[:, 0].double().reshape(2, -1)
    size = (grads[1] * keep[depth - 2].detach())[:, 1:].abs().sum(-1)
    assert float((raw.abs() / size).max()) < 1e-6
