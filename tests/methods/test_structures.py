"""Explainers on models that are not a plain 3-D CNN: token outputs (video transformers),
channels-last stages (Swin3D), two pathways with a packed input (SlowFast), and heads that
project after pooling (X3D). Values are computed by hand on fixed-weight networks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import saliency_tubes as st
from _models import hooks_left
from saliency_tubes.tokens import TokenGrid, channels_last


class TokenNet(nn.Module):
    """Conv (3 -> 4 channels, stride (1, 2, 2)) -> tokens with a class token -> mean of the
    patch tokens -> linear. ``blocks`` passes tokens through unchanged (with ``thw``, as
    torchvision's MViT blocks do), so it is the layer a transformer adapter targets."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.embed = nn.Conv3d(3, 4, kernel_size=(1, 2, 2), stride=(1, 2, 2))
        self.cls = nn.Parameter(torch.randn(1, 1, 4))
        self.blocks = _PassTokens()
        self.head = nn.Linear(4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.embed(x)  # (N, 4, T, H/2, W/2)
        tokens = v.flatten(2).transpose(1, 2)  # (N, L, 4), (t, h, w) row-major
        tokens = torch.cat([self.cls.expand(x.shape[0], -1, -1), tokens], dim=1)
        tokens, _ = self.blocks(tokens, tuple(v.shape[2:]))
        return self.head(tokens[:, 1:].mean(dim=1))


class _PassTokens(nn.Module):
    def forward(
        self, x: torch.Tensor, thw: tuple[int, ...]
    ) -> tuple[torch.Tensor, tuple[int, ...]]:
        return x * 1.0, thw


class SwinLikeNet(nn.Module):
    """Conv -> channels-last stage -> layer norm -> permute -> pool -> linear, as Swin3D."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(4)
        self.embed = nn.Conv3d(3, 6, kernel_size=(2, 2, 2), stride=(2, 2, 2))
        self.norm = nn.LayerNorm(6)
        self.head = nn.Linear(6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.embed(x).permute(0, 2, 3, 4, 1))  # (N, T', H', W', C)
        return self.head(y.permute(0, 4, 1, 2, 3).mean(dim=(2, 3, 4)))


class TwoPathNet(nn.Module):
    """Slow (every 2nd frame, 3 channels) and fast (every frame, 2 channels) pathways,
    each pooled, concatenated [slow, fast] and classified: SlowFast's head in miniature."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(5)
        self.slow = nn.Conv3d(3, 3, kernel_size=1)
        self.fast = nn.Conv3d(3, 2, kernel_size=1)
        self.proj = nn.Linear(5, 4)

    def forward(self, x: list[torch.Tensor]) -> torch.Tensor:
        s, f = self.slow(x[0]), self.fast(x[1])
        x[0] = x[1] = s  # overwrites its input list, as pytorchvideo's SlowFast does
        return self.proj(torch.cat([s.mean(dim=(2, 3, 4)), f.mean(dim=(2, 3, 4))], dim=1))


def pack(clip: torch.Tensor) -> list[torch.Tensor]:
    return [clip[:, :, ::2], clip]


class ProjectedPoolNet(nn.Module):
    """Conv -> ReLU -> global pool -> 1x1x1 conv -> ReLU -> linear: X3D's head in miniature."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(6)
        self.features = nn.Sequential(nn.Conv3d(3, 4, kernel_size=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.post_conv = nn.Conv3d(4, 6, kernel_size=1)
        self.post_act = nn.ReLU()
        self.proj = nn.Linear(6, 3)

    def head(self, pooled: torch.Tensor) -> torch.Tensor:
        y = self.post_act(self.post_conv(pooled[:, :, None, None, None])).flatten(1)
        return self.proj(y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)).flatten(1))


def test_token_grid_reshape_gives_the_conv_volume() -> None:
    model = TokenNet()
    clip = torch.randn(2, 3, 4, 8, 6)
    grid = TokenGrid(stride=(1, 2, 2), prefix=1)
    tubes = st.SaliencyTubes(model, layer="blocks", classifier="head", reshape=grid)(
        clip, classes=[0, 3]
    )
    with torch.no_grad():
        volume = model.embed(clip)  # (2, 4, 4, 4, 3)
    expected = torch.einsum("kc,ncthw->nkthw", model.head.weight[[0, 3]], volume)
    torch.testing.assert_close(tubes.raw, expected)
    # CAM is exact here: score = space-time mean of the raw tube + bias.
    torch.testing.assert_close(
        tubes.raw.mean(dim=(2, 3, 4)) + model.head.bias[[0, 3]], tubes.logits[:, [0, 3]]
    )
    assert tubes.maps.shape == (2, 2, 4, 8, 6)


def test_a_token_order_not_known_is_one_error() -> None:
    with pytest.raises(st.InputError, match="expected a token order 'thw' or 'hwt', but got 'wht'"):
        TokenGrid(stride=(1, 2, 2), order="wht")  # type: ignore[arg-type]


def test_gradcam_on_tokens_equals_normalised_cam() -> None:
    model = TokenNet()
    clip = torch.randn(1, 3, 4, 8, 6)
    grid = TokenGrid(stride=(1, 2, 2))
    cam = st.SaliencyTubes(model, layer="blocks", classifier="head", reshape=grid)(
        clip, classes="top2"
    )
    grad = st.GradCAM(model, layer="blocks", reshape=grid, relu=False)(clip, classes="top2")
    # Grad-CAM's weights are W / (T'H'W'): the same tube up to a positive factor.
    torch.testing.assert_close(grad.raw * (4 * 4 * 3), cam.raw)
    torch.testing.assert_close(grad.maps, cam.maps)
    assert not hooks_left(model)


def test_token_grid_mismatch_is_a_clear_error() -> None:
    with pytest.raises(st.SaliencyTubesError, match=r"expected 1 \+ 4x2x1 = 9 tokens.*gave 49"):
        st.GradCAM(TokenNet(), layer="blocks", reshape=TokenGrid(stride=(1, 4, 4)))(
            torch.randn(1, 3, 4, 8, 6)
        )
    with pytest.raises(st.SaliencyTubesError, match="pass reshape="):
        st.GradCAM(TokenNet(), layer="blocks")(torch.randn(1, 3, 4, 8, 6))


def test_channels_last_stage() -> None:
    model = SwinLikeNet()
    clip = torch.randn(1, 3, 4, 8, 8)
    cam = st.SaliencyTubes(model, layer="norm", classifier="head", reshape=channels_last)(clip)
    with torch.no_grad():
        y = model.norm(model.embed(clip).permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)
    c = int(cam.classes[0, 0])
    torch.testing.assert_close(
        cam.raw[0, 0], torch.einsum("c,cthw->thw", model.head.weight[c], y[0])
    )
    grad = st.GradCAM(model, layer="norm", reshape=channels_last, relu=False)(clip)
    torch.testing.assert_close(grad.maps, cam.maps)


def test_two_pathways_cam_per_pathway_and_fused() -> None:
    model = TwoPathNet()
    clip = torch.randn(1, 3, 8, 4, 4)
    # No classifier given: a tracing pass finds it, then the real forward runs on a fresh input.
    explainer = st.SaliencyTubes(model, layer=["slow", "fast"], inputs=pack)
    tubes = explainer(clip, classes=[2])
    with torch.no_grad():
        a_slow, a_fast = model.slow(clip[:, :, ::2]), model.fast(clip)
    w = model.proj.weight[2]
    raw_slow = torch.einsum("c,ncthw->nthw", w[:3], a_slow)
    raw_fast = torch.einsum("c,ncthw->nthw", w[3:], a_fast)
    torch.testing.assert_close(tubes.pathways_raw["slow"][:, 0], raw_slow)
    torch.testing.assert_close(tubes.pathways_raw["fast"][:, 0], raw_fast)
    # Exact decomposition of the score into the two pathways' means.
    torch.testing.assert_close(
        raw_slow.mean() + raw_fast.mean() + model.proj.bias[2], tubes.logits[0, 2]
    )
    # Fused: the slow map upsampled in time to the fast grid, plus the fast map.
    up = st.upsample(raw_slow[:, None], (8, 4, 4))[:, 0]
    torch.testing.assert_close(tubes.raw[:, 0], up + raw_fast)
    torch.testing.assert_close(tubes.maps, st.normalize_tubes(tubes.raw))
    torch.testing.assert_close(tubes.pathways["fast"], st.normalize_tubes(raw_fast[:, None]))
    assert tubes.layer == "slow+fast"
    # Grad-CAM on both pathways gives the same normalised per-pathway tubes.
    grad = st.GradCAM(model, layer=["slow", "fast"], inputs=pack, relu=False)(clip, classes=[2])
    for name in ("slow", "fast"):
        torch.testing.assert_close(grad.pathways[name], tubes.pathways[name])
    # Each pathway counts by its share of the score in the fused tube, for Grad-CAM too.
    torch.testing.assert_close(grad.maps, tubes.maps)
    # With its ReLU (the default) Grad-CAM clamps the fused sum, not each pathway before it.
    assert (tubes.raw < 0).any() and (raw_slow < 0).any()
    relu = st.GradCAM(model, layer=["slow", "fast"], inputs=pack)(clip, classes=[2])
    torch.testing.assert_close(relu.raw, tubes.raw.clamp_min(0))
    torch.testing.assert_close(relu.maps, st.normalize_tubes(tubes.raw.clamp_min(0)))
    assert not hooks_left(model)


def test_pooled_head_gives_the_exact_local_linear_map() -> None:
    model = ProjectedPoolNet()
    clip = torch.randn(2, 3, 4, 6, 6)
    tubes = st.SaliencyTubes(model, layer="features", pooled_head=model.head)(clip, classes="top1")
    with torch.no_grad():
        a = model.features(clip)
        pooled = a.mean(dim=(2, 3, 4))
        hidden = model.post_conv(pooled[:, :, None, None, None]).flatten(1)
    w_post = model.post_conv.weight.detach().reshape(6, 4)
    for n in range(2):
        c = int(tubes.classes[n, 0])
        mask = (hidden[n] > 0).float()
        w_eff = model.proj.weight[c].detach() * mask @ w_post  # (4,)
        torch.testing.assert_close(tubes.raw[n, 0], torch.einsum("c,cthw->thw", w_eff, a[n]))
        # score = mean of the tube + the piece's offset (the head at zero features, masked).
        offset = (
            model.proj.weight[c].detach() * mask @ model.post_conv.bias.detach()
            + model.proj.bias[c]
        )
        torch.testing.assert_close(tubes.raw[n, 0].mean() + offset, tubes.logits[n, c])
    grad = st.GradCAM(model, layer="features", relu=False)(clip, classes="top1")
    torch.testing.assert_close(grad.maps, tubes.maps)


def test_model_unchanged_after_an_error_with_two_layers() -> None:
    model = TwoPathNet().train()
    flags = [p.requires_grad for p in model.parameters()]
    with pytest.raises(st.SaliencyTubesError, match="channels"):
        # The head takes 5 features; one pathway alone gives 3.
        st.SaliencyTubes(model, layer=["slow"], classifier="proj", inputs=pack)(
            torch.randn(1, 3, 4, 4, 4)
        )
    assert model.training and flags == [p.requires_grad for p in model.parameters()]
    assert not hooks_left(model)


def test_bad_layer_list_and_callables() -> None:
    with pytest.raises(TypeError, match="non-empty list"):
        st.SaliencyTubes(TwoPathNet(), layer=[])
    with pytest.raises(TypeError, match="reshape to be callable"):
        st.GradCAM(TokenNet(), reshape=3)  # type: ignore[arg-type]
