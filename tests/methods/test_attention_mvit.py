"""Attention rollout and relevancy through torchvision's MViT (pooling attention).

Tiny MViT v1- and v2-style models are built with torchvision's own ``MViT`` constructor
(small dims, random float64 weights, a query-strided block so that the grid shrinks, a
key/value stride, MViTv2's relative positions and pooled-query residual). The reference
is brute force: the forward written out block by block (its logits must equal the
model's), the poolings as dense matrices built from loops over windows (the conv pools'
channel mean of |w|, rows normalised over the clip) and from the autograd Jacobian of the
skip's max pool (its channel mean), and the full-matrix recurrences of the methods'
notes (:mod:`saliency_tubes.methods.attention_pooled`), read at the class token. The
explainers, which never form a pooling matrix, must match to 1e-6.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import torch

import saliency_tubes as st
from _models import hooks_left, torchvision_or_skip
from saliency_tubes.methods.attention_pooled import ConvPool, skip_index

torchvision_or_skip()
from torchvision.models.video import mvit as tv_mvit  # noqa: E402

T, SIZE = 4, 16  # patch stride (2, 4, 4): a 2x4x4 token grid, then 2x2x2 after block 1
GRID = (2, 4, 4)
try:
    from pytorchvideo.layers.attention import _attention_pool as ptv_pool
    from pytorchvideo.models.vision_transformers import create_multiscale_vision_transformers
except ImportError:  # pragma: no cover - the pytorchvideo extra
    create_multiscale_vision_transformers = None
VERSIONS = (
    "v1",
    "v2",
    pytest.param(
        "ptv",
        marks=pytest.mark.skipif(
            create_multiscale_vision_transformers is None, reason="pytorchvideo is not installed"
        ),
    ),
)


def tiny(version: str, seed: int = 0) -> Any:
    """A tiny float64 MViT with sharpened random weights (attention far from uniform)."""
    cfg = tv_mvit.MSBlockConfig
    blocks = [
        cfg(2, 8, 8, [3, 3, 3], [3, 3, 3], [1, 1, 1], [1, 2, 2]),
        cfg(2, 8, 16, [3, 3, 3], [3, 3, 3], [1, 2, 2], [1, 1, 1]),
        cfg(2, 16, 16, [3, 3, 3], [3, 3, 3], [1, 1, 1], [1, 1, 1]),
    ]
    v2 = version == "v2"
    torch.manual_seed(seed)
    if version == "ptv":  # pytorchvideo's MViT (as mvit_base_16x4: conv pools, no residual pool)
        model = create_multiscale_vision_transformers(
            spatial_size=SIZE,
            temporal_size=T,
            depth=3,
            patch_embed_dim=8,
            num_heads=2,
            embed_dim_mul=[[1, 2.0]],
            atten_head_mul=[[1, 2.0]],
            pool_q_stride_size=[[1, 1, 2, 2]],
            pool_kv_stride_adaptive=[1, 2, 2],
            pool_kvq_kernel=[3, 3, 3],
            head_num_classes=3,
        )
    else:
        model = tv_mvit.MViT(
            spatial_size=(SIZE, SIZE),
            temporal_size=T,
            block_setting=blocks,
            residual_pool=v2,
            residual_with_cls_embed=not v2,
            rel_pos_embed=v2,
            proj_after_attn=v2,
            num_classes=3,
        )
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2 and "rel_pos" not in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
            elif p.dim() == 5 and "pool" in name:  # conv pools: signed, per-channel weights
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
            elif name.endswith("bias") or "pos" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    return model.double().eval()


def clip(n: int = 2, seed: int = 3) -> torch.Tensor:
    return torch.randn(n, 3, T, SIZE, SIZE, generator=torch.Generator().manual_seed(seed)).double()


def reference_forward(model: Any, x: torch.Tensor, record: list[dict[str, Any]]) -> torch.Tensor:
    """One sample's logits, written out block by block; ``record`` gets each block's
    probabilities, skip input and input grid."""
    if not hasattr(model, "pos_encoding"):
        return reference_forward_ptv(model, x, record)
    t = model.pos_encoding(model.conv_proj(x[None]).flatten(2).transpose(1, 2))
    thw = (model.pos_encoding.temporal_size, *model.pos_encoding.spatial_size)
    for blk in model.blocks:
        a, block_in = blk.attn, t.detach()
        xn = blk.norm1(t)
        length = xn.shape[1]
        q, k, v = a.qkv(xn).reshape(1, length, 3, a.num_heads, a.head_dim).permute(2, 0, 3, 1, 4)
        k_thw = q_thw = thw
        if a.pool_k is not None:
            k, k_thw = a.pool_k(k, thw)
        if a.pool_v is not None:
            v = a.pool_v(v, thw)[0]
        if a.pool_q is not None:
            q, q_thw = a.pool_q(q, thw)
        scores = (a.scaler * q) @ k.transpose(2, 3)
        if a.rel_pos_h is not None:
            scores = tv_mvit._add_rel_pos(
                scores, q, q_thw, k_thw, a.rel_pos_h, a.rel_pos_w, a.rel_pos_t
            )
        probs = scores.softmax(dim=-1)
        out = probs @ v
        if a.residual_pool:
            keep = torch.ones(out.shape[2], 1, dtype=out.dtype)
            keep[0] = 1.0 if a.residual_with_cls_embed else 0.0
            out = out + q * keep
        out = a.project(out.transpose(1, 2).reshape(1, -1, a.output_dim))
        skip_in = blk.project(xn) if blk.proj_after_attn and blk.project is not None else t
        skip = skip_in if blk.pool_skip is None else blk.pool_skip(skip_in, thw)[0]
        t = skip + out
        xn2 = blk.norm2(t)
        t = (t if blk.project is None or blk.proj_after_attn else blk.project(xn2)) + blk.mlp(xn2)
        record.append({"probs": probs, "x": block_in, "skip_in": skip_in.detach(), "thw": thw})
        thw = q_thw
    return model.head(model.norm(t)[:, 0])[0]


def reference_forward_ptv(
    model: Any, x: torch.Tensor, record: list[dict[str, Any]]
) -> torch.Tensor:
    """pytorchvideo's MViT, written out block by block (as :func:`reference_forward`)."""
    t = model.cls_positional_encoding(model.patch_embed(x[None]))
    thw = list(model.cls_positional_encoding.patch_embed_shape)
    for blk in model.blocks:
        a, block_in = blk.attn, t.detach()
        xn = blk.norm1(t)
        length, c, h = xn.shape[1], xn.shape[2], a.num_heads
        q, k, v = (
            lin(xn).reshape(1, length, h, c // h).permute(0, 2, 1, 3) for lin in (a.q, a.k, a.v)
        )
        q, q_thw = ptv_pool(q, a.pool_q, thw, True, getattr(a, "norm_q", None))
        k, _ = ptv_pool(k, a.pool_k, thw, True, getattr(a, "norm_k", None))
        v, _ = ptv_pool(v, a.pool_v, thw, True, getattr(a, "norm_v", None))
        probs = ((q @ k.transpose(-2, -1)) * a.scale).softmax(dim=-1)
        out = a.proj((probs @ v).transpose(1, 2).reshape(1, q.shape[2], c))
        t = ptv_pool(t, blk.pool_skip, thw, True)[0] + out
        xn2 = blk.norm2(t)
        t = (t if blk.dim == blk.dim_out else blk.proj(xn2)) + blk.mlp(xn2)
        record.append({"probs": probs, "x": block_in, "skip_in": block_in, "thw": tuple(thw)})
        thw = q_thw
    return model.head(model.norm_embed(t))[0]


def dense_conv_pool(conv: Any, thw: tuple[int, int, int]) -> torch.Tensor:
    """The conv pool's surrogate as a dense (1 + L_out, 1 + L_in) matrix, window by window."""
    conv = getattr(conv, "pool", conv)
    kernel = conv.weight.detach().abs().mean(dim=(0, 1))
    stride, pad = conv.stride, conv.padding
    out = [
        (n + 2 * p - kk) // s + 1
        for n, p, kk, s in zip(thw, pad, kernel.shape, stride, strict=True)
    ]
    p = torch.zeros(1 + out[0] * out[1] * out[2], 1 + thw[0] * thw[1] * thw[2], dtype=torch.float64)
    p[0, 0] = 1.0
    for m, (ot, oh, ow) in enumerate(itertools.product(*map(range, out))):
        for a, b, c in itertools.product(*map(range, kernel.shape)):
            it, ih, iw = (
                ot * stride[0] - pad[0] + a,
                oh * stride[1] - pad[1] + b,
                ow * stride[2] - pad[2] + c,
            )
            if 0 <= it < thw[0] and 0 <= ih < thw[1] and 0 <= iw < thw[2]:
                p[1 + m, 1 + (it * thw[1] + ih) * thw[2] + iw] += kernel[a, b, c]
        p[1 + m] /= p[1 + m].sum()
    return p


def dense_skip(blk: Any, skip_in: torch.Tensor, thw: tuple[int, int, int]) -> torch.Tensor:
    """The channel mean of the skip max pool's Jacobian (autograd), (1 + L_out, 1 + L_in)."""
    if hasattr(blk, "pool_skip") and not isinstance(blk.pool_skip, torch.nn.MaxPool3d):
        jac = torch.autograd.functional.jacobian(lambda z: blk.pool_skip(z, thw)[0], skip_in)
    else:  # pytorchvideo: the max pool itself, through its token reshaping
        jac = torch.autograd.functional.jacobian(
            lambda z: ptv_pool(z, blk.pool_skip, list(thw), True)[0], skip_in
        )
    c = skip_in.shape[-1]
    return torch.einsum("icjc->ij", jac[0, :, :, 0]) / c


def operators(model: Any, rec: dict[str, Any], blk: Any) -> tuple[torch.Tensor, ...]:
    """(P_skip, P_v, P_q) as dense matrices for one block (P_q zero without residual_pool)."""
    a, thw = blk.attn, rec["thw"]
    n_in = rec["skip_in"].shape[1]
    eye = torch.eye(n_in, dtype=torch.float64)
    p_skip = eye if blk.pool_skip is None else dense_skip(blk, rec["skip_in"], thw)
    p_v = eye if a.pool_v is None else dense_conv_pool(a.pool_v, thw)
    p_q = eye if a.pool_q is None else dense_conv_pool(a.pool_q, thw)
    if not getattr(a, "residual_pool", False):
        p_q = torch.zeros_like(p_q)
    elif not a.residual_with_cls_embed:
        p_q = p_q.clone()
        p_q[0] = 0.0
    return p_skip, p_v, p_q


def on_grid(row: torch.Tensor) -> torch.Tensor:
    return row[1:].reshape(GRID)


def reference_rollout(model: Any, x: torch.Tensor) -> torch.Tensor:
    record: list[dict[str, Any]] = []
    with torch.no_grad():
        reference_forward(model, x, record)
    r = torch.eye(record[0]["skip_in"].shape[1], dtype=torch.float64)
    for blk, rec in zip(model.blocks, record, strict=True):
        p_skip, p_v, p_q = operators(model, rec, blk)
        branch = rec["probs"][0].mean(dim=0) @ p_v + p_q
        branch = branch / branch.sum(dim=1, keepdim=True)
        r = (0.5 * p_skip + 0.5 * branch) @ r
    return on_grid(r[0])


def reference_relevancy(model: Any, x: torch.Tensor, target: int) -> torch.Tensor:
    record: list[dict[str, Any]] = []
    logits = reference_forward(model, x, record)
    grads = torch.autograd.grad(logits[target], [rec["probs"] for rec in record])
    r = torch.eye(record[0]["skip_in"].shape[1], dtype=torch.float64)
    for blk, rec, g in zip(model.blocks, record, grads, strict=True):
        p_skip, p_v, p_q = operators(model, rec, blk)
        a_bar = (g[0] * rec["probs"][0].detach()).clamp_min(0).mean(dim=0)
        r = p_skip @ r + a_bar @ p_v @ r + p_q @ r
    return on_grid(r[0])


def _close(raw: torch.Tensor, ref: torch.Tensor) -> None:
    scale = float(ref.abs().max())
    assert scale > 0 and float(ref.max() - ref.min()) > 1e-3 * scale  # not flat: can fail
    torch.testing.assert_close(raw.double(), ref, rtol=0, atol=1e-6 * scale)


@pytest.mark.parametrize("version", VERSIONS)
def test_reference_forward_is_the_model(version: str) -> None:
    model, c = tiny(version), clip()
    with torch.no_grad():
        logits = model(c)
        for i in range(c.shape[0]):
            torch.testing.assert_close(
                reference_forward(model, c[i], []), logits[i], rtol=0, atol=1e-9
            )


@pytest.mark.parametrize("version", VERSIONS)
def test_rollout_equals_the_brute_force_reference(version: str) -> None:
    model, c = tiny(version), clip()
    tubes = st.AttentionRollout(model)(c, classes=[0, 2])
    assert tubes.class_agnostic and tubes.raw.shape == (2, 2, *GRID)
    for i in range(c.shape[0]):
        ref = reference_rollout(model, c[i])
        for k in range(2):
            _close(tubes.raw[i, k], ref)


@pytest.mark.parametrize("version", VERSIONS)
def test_relevancy_equals_the_brute_force_reference(version: str) -> None:
    model, c = tiny(version), clip()
    tubes = st.AttentionRelevancy(model)(c, classes=[0, 2])
    for i in range(c.shape[0]):
        for k, target in enumerate((0, 2)):
            _close(tubes.raw[i, k], reference_relevancy(model, c[i], target))
    assert float((tubes.raw[:, 0] - tubes.raw[:, 1]).abs().max()) > 1e-4  # class-specific


def test_conv_pool_is_exact_for_a_shared_nonnegative_kernel_and_its_adjoint_is_exact() -> None:
    gen = torch.Generator().manual_seed(5)
    thw = (4, 6, 5)
    conv = torch.nn.Conv3d(3, 3, (3, 3, 3), stride=(1, 2, 2), padding=1, groups=3, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.rand(1, 1, 3, 3, 3, generator=gen).expand(3, 1, 3, 3, 3))
    conv = conv.double()
    pool = ConvPool.of(conv, thw)
    x = torch.randn(3, *thw, generator=gen, dtype=torch.float64)  # 3 channels, one sample
    tokens = torch.cat([torch.ones(3, 1, dtype=torch.float64), x.reshape(3, -1)], dim=1)
    pooled = pool.apply(tokens)  # the surrogate, row-normalised
    with torch.no_grad():
        conv_out = conv(x[None])[0].reshape(3, -1)
        ones = conv(torch.ones(1, 3, *thw, dtype=torch.float64))[0, 0].reshape(-1)
    torch.testing.assert_close(pooled[:, 1:], conv_out / ones, rtol=0, atol=1e-12)
    dense = dense_conv_pool(conv, thw)
    torch.testing.assert_close(pooled, tokens @ dense.T, rtol=0, atol=1e-12)
    r = torch.randn(2, dense.shape[0], generator=gen, dtype=torch.float64)
    torch.testing.assert_close(pool.adjoint(r), r @ dense, rtol=0, atol=1e-12)  # r·P


def test_the_skip_pool_is_its_channel_averaged_jacobian() -> None:
    model = tiny("v2")
    record: list[dict[str, Any]] = []
    with torch.no_grad():
        reference_forward(model, clip(1)[0], record)
    blk, rec = model.blocks[1], record[1]
    dense = dense_skip(blk, rec["skip_in"], rec["thw"])
    assert torch.allclose(dense.sum(dim=1), torch.ones(dense.shape[0], dtype=torch.float64))
    skip = skip_index(blk, rec["x"], rec["thw"])  # what the explainers read in the call
    assert skip is not None
    r = torch.randn(3, dense.shape[0], dtype=torch.float64)
    got = torch.cat([skip.adjoint(r[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(got, r @ dense, rtol=0, atol=1e-12)


def test_the_model_is_left_as_it_was() -> None:
    model = tiny("v2").train()
    model.head[1].weight.requires_grad_(False)
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    st.AttentionRelevancy(model)(clip(1), classes="top2")
    st.AttentionRollout(model)(clip(1))
    assert model.training and all(m.training for m in model.modules())
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert all(p.grad is None for p in model.parameters())
    assert hooks_left(model) == 0


def test_two_threads_on_one_mvit_explainer_each_get_their_own_tubes() -> None:
    from concurrent.futures import ThreadPoolExecutor

    model = tiny("v2")
    explainer = st.AttentionRelevancy(model)
    clips = [clip(1, seed=s) for s in (11, 12, 13)]
    alone = [explainer(c, classes=[1]).raw for c in clips]
    with ThreadPoolExecutor(3) as pool:
        together = list(pool.map(lambda c: explainer(c, classes=[1]).raw, clips))
    for a, b in zip(alone, together, strict=True):
        torch.testing.assert_close(a, b)
    assert hooks_left(model) == 0


@pytest.mark.skipif(create_multiscale_vision_transformers is None, reason="no pytorchvideo")
def test_a_max_pooling_mvit_is_refused_in_one_line() -> None:
    """pytorchvideo's pool_mode="max" pools q/k/v by a max the methods do not follow."""
    model = create_multiscale_vision_transformers(
        spatial_size=SIZE,
        temporal_size=T,
        depth=2,
        patch_embed_dim=8,
        pooling_mode="max",
        pool_q_stride_size=[[1, 1, 2, 2]],
        pool_kvq_kernel=[3, 3, 3],
        head_num_classes=3,
    )
    with pytest.raises(st.SaliencyTubesError) as err:
        st.AttentionRelevancy(model)
    assert "\n" not in str(err.value) and "MultiscaleVisionTransformers" in str(err.value)


def test_the_zoo_mvit_explains_on_the_first_stage_grid_not_the_layer_s() -> None:
    """``LoadedModel.explainer`` gives the attention methods their own token grid: the
    adapter's reshape (the last stage, stride 2x32x32) belongs to Grad-CAM's layer."""
    from saliency_tubes.tokens import TokenGrid

    loaded = st.load_model("mvit_v2_s")  # random weights: nothing is downloaded or run
    assert loaded.explainer("gradcam").reshape == TokenGrid((2, 32, 32), 1)
    for method in ("rollout", "relevancy"):
        explainer = loaded.explainer(method)
        assert explainer.reshape == TokenGrid((2, 4, 4), 1, "thw")
        assert explainer.reshape.grid((16, 224, 224)) == (8, 56, 56)


def test_an_all_zero_conv_pool_passes_nothing_and_no_nan() -> None:
    conv = torch.nn.Conv3d(2, 2, 3, stride=(1, 2, 2), padding=1, groups=2, bias=False)
    torch.nn.init.zeros_(conv.weight)
    pool = ConvPool.of(conv, (2, 4, 4))
    out = pool.adjoint(torch.ones(1, 1 + 2 * 2 * 2))
    assert torch.isfinite(out).all() and float(out[0, 1:].abs().sum()) == 0.0
    assert float(out[0, 0]) == 1.0  # the class token maps to itself
