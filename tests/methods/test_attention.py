"""Attention rollout and relevancy on tiny fixed-weight VideoMAE, TimeSformer and ViViT.

The reference here is written by hand from the papers and the models' weights: each
transformer's forward is written out per sample with plain loops over blocks, attention
groups and heads (its logits must equal the model's), the attention probabilities it
computes are placed on the full token set with loops over tokens (TimeSformer's divided
attention: patch-major token ``1 + p·T + t``), and rollout (``Ã = 0.5·A + 0.5·I`` rows
renormalised, product first to last) and relevancy (``R ← R + mean_h((∇A ⊙ A)⁺)·R``)
are the full-matrix recurrences of the papers, read at the class token's row (or the mean
row of VideoMAE's mean-pooled head) and laid on the (T', H', W') grid by the index
formula. The explainers must match to 1e-6 (float64 models).
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch

pytest.importorskip(
    "transformers",
    reason="transformers is not installed (the optional extra: pip install 'saliency-tubes[transformers]')",
)

import saliency_tubes as st  # noqa: E402
from _models import hooks_left  # noqa: E402
from saliency_tubes.errors import InputError  # noqa: E402
from saliency_tubes.zoo.sources import huggingface as hf  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)  # torchvision's import workaround note
    TF = hf.import_transformers("test")

T, SIZE, PATCH, HEADS = 8, 32, 8, 2
TINY: dict[str, Any] = {
    "hidden_size": 32,
    "num_hidden_layers": 3,
    "num_attention_heads": HEADS,
    "intermediate_size": 48,
    "image_size": SIZE,
    "num_frames": T,
    "num_labels": 4,
}
PER_FAMILY: dict[str, dict[str, Any]] = {
    "videomae": {"patch_size": PATCH, "tubelet_size": 2},
    "videomae-first": {"patch_size": PATCH, "tubelet_size": 2, "use_mean_pooling": False},
    "timesformer": {"patch_size": PATCH},
    "vivit": {"tubelet_size": [2, PATCH, PATCH]},
}
ARCH = {
    "videomae": ("VideoMAEConfig", "VideoMAEForVideoClassification"),
    "timesformer": ("TimesformerConfig", "TimesformerForVideoClassification"),
    "vivit": ("VivitConfig", "VivitForVideoClassification"),
}


def tiny(kind: str, impl: str = "eager", seed: int = 0) -> Any:
    """A tiny float64 model with fixed, sharpened weights (attention far from uniform)."""
    family = kind.split("-")[0]
    config_class, model_class = ARCH[family]
    config = getattr(TF, config_class)(**TINY, **PER_FAMILY[kind])
    torch.manual_seed(seed)
    model = getattr(TF, model_class)._from_config(config, attn_implementation=impl)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.35)
            elif name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    return model.double().eval()


def clip(n: int = 2, seed: int = 3) -> torch.Tensor:
    return torch.randn(n, 3, T, SIZE, SIZE, generator=torch.Generator().manual_seed(seed)).double()


def pixel_values(c: torch.Tensor) -> torch.Tensor:
    return c.permute(0, 2, 1, 3, 4)


# ------------------------------------------------------------- the hand-written forward


def attend(x: torch.Tensor, q: Any, k: Any, v: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """One group's attention, head by head: (L, C) -> context (L, C), probs (heads, L, L)."""
    length, c = x.shape
    d = c // HEADS
    scores, values = [], []
    for h in range(HEADS):
        qh, kh, vh = (f(x)[:, h * d : (h + 1) * d] for f in (q, k, v))
        scores.append(qh @ kh.T / d**0.5)
        values.append(vh)
    probs = torch.softmax(torch.stack(scores), dim=-1)  # one tensor: its gradient is asked for
    contexts = [probs[h] @ values[h] for h in range(HEADS)]
    return torch.cat(contexts, dim=1), probs


def qkv_split(linear: Any) -> tuple[Any, Any, Any]:
    c = linear.out_features // 3
    return tuple((lambda x, i=i: linear(x)[:, i * c : (i + 1) * c]) for i in range(3))  # type: ignore[return-value]


def forward_joint(model: Any, family: str, x: torch.Tensor, record: list[Any]) -> torch.Tensor:
    """VideoMAE / ViViT, one sample's tokens (L, C) -> logits."""
    if family == "videomae":
        for layer in model.videomae.encoder.layer:
            att = layer.attention.attention
            ctx, a = attend(layer.layernorm_before(x), att.query, att.key, att.value)
            record.append(("joint", [a]))
            x = x + layer.attention.output.dense(ctx)
            x = x + layer.output.dense(layer.intermediate(layer.layernorm_after(x)))
        if model.fc_norm is not None:
            return model.classifier(model.fc_norm(x.mean(0)))
        return model.classifier(model.videomae.layernorm(x)[0])
    for layer in model.vivit.layers:
        att = layer.attention
        ctx, a = attend(layer.layernorm_before(x), att.q_proj, att.k_proj, att.v_proj)
        record.append(("joint", [a]))
        x = x + att.o_proj(ctx)
        x = x + layer.mlp(layer.layernorm_after(x))
    return model.classifier(model.vivit.layernorm(x)[0])


def forward_divided(model: Any, x: torch.Tensor, record: list[Any]) -> torch.Tensor:
    """TimeSformer's divided attention on one sample's tokens (1 + P·T, C), token
    ``1 + p·T + t`` being patch p of frame t."""
    p_count = (x.shape[0] - 1) // T
    for layer in model.timesformer.encoder.layer:
        temporal = torch.zeros_like(x[1:])
        groups = []
        for p in range(p_count):
            idx = [1 + p * T + t for t in range(T)]
            att = layer.temporal_attention
            ctx, a = attend(layer.temporal_layernorm(x[idx]), *qkv_split(att.attention.qkv))
            groups.append(a)
            temporal[[i - 1 for i in idx]] = layer.temporal_dense(att.output.dense(ctx))
        record.append(("temporal", groups))
        mixed = x[1:] + temporal
        spatial = torch.zeros_like(mixed)
        cls_out, groups = [], []
        for t in range(T):
            idx = [1 + p * T + t for p in range(p_count)]
            tokens = torch.cat([x[:1], mixed[[i - 1 for i in idx]]])
            att = layer.attention
            ctx, a = attend(layer.layernorm_before(tokens), *qkv_split(att.attention.qkv))
            groups.append(a)
            out = att.output.dense(ctx)
            cls_out.append(out[0])
            spatial[[i - 1 for i in idx]] = out[1:]
        record.append(("spatial", groups))
        h = torch.cat([x[:1] + torch.stack(cls_out).mean(0, keepdim=True), mixed + spatial])
        x = h + layer.output(layer.intermediate(layer.layernorm_after(h)))
    return model.classifier(model.timesformer.layernorm(x)[0])


def reference_forward(
    model: Any, kind: str, sample: torch.Tensor
) -> tuple[torch.Tensor, list[Any]]:
    family = kind.split("-")[0]
    emb = getattr(model, family).embeddings
    tokens = (
        emb(pixel_values(sample[None]), None)
        if family == "videomae"
        else emb(pixel_values(sample[None]))
    )
    record: list[Any] = []
    x = tokens[0]
    if family == "timesformer":
        return forward_divided(model, x, record), record
    return forward_joint(model, family, x, record), record


# ------------------------------------------------------- the operators, token by token


def operator(
    kind: str, groups: list[torch.Tensor], length: int, fuse: Any, cls_mean: bool
) -> torch.Tensor:
    """The (L, L) operator of one attention from its groups' (heads, l, l) maps, placed
    token by token. ``fuse(maps, i)`` gives row i of a group, heads fused."""
    m = torch.zeros(length, length, dtype=torch.float64)
    if kind == "joint":
        for i in range(length):
            m[i] = fuse(groups[0], i)
        return m
    if kind == "temporal":
        for p, a in enumerate(groups):
            idx = [1 + p * T + t for t in range(T)]
            for t in range(T):
                m[idx[t], idx] = fuse(a, t)
        return m
    for t, a in enumerate(groups):
        idx = [0] + [1 + p * T + t for p in range(a.shape[-1] - 1)]
        for row in range(1, len(idx)):
            m[idx[row], idx] = fuse(a, row)
        m[0, idx] += fuse(a, 0) / (T if cls_mean else 1)
    return m


def mean_heads(a: torch.Tensor, i: int) -> torch.Tensor:
    return sum(a[h, i] for h in range(a.shape[0])) / a.shape[0]


def on_grid(row: torch.Tensor, kind: str, grid: tuple[int, int, int]) -> torch.Tensor:
    """Token relevance -> (T', H', W') by each family's index formula."""
    tt, hh, ww = grid
    out = torch.zeros(grid, dtype=torch.float64)
    for t in range(tt):
        for y in range(hh):
            for x in range(ww):
                if kind.startswith("timesformer"):
                    out[t, y, x] = row[1 + (y * ww + x) * tt + t]
                elif kind.startswith("vivit"):
                    out[t, y, x] = row[1 + (t * hh + y) * ww + x]
                else:
                    out[t, y, x] = row[(t * hh + y) * ww + x]
    return out


def readout(r: torch.Tensor, kind: str) -> torch.Tensor:
    return r.mean(0) if kind == "videomae" else r[0]


def reference_rollout(model: Any, kind: str, sample: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        _, record = reference_forward(model, kind, sample)
    length = _length(record)
    r = torch.eye(length, dtype=torch.float64)
    for what, groups in record:
        identity_rows = what == "temporal"
        m = operator(what, groups, length, mean_heads, cls_mean=True)
        if identity_rows:
            m[0, 0] = 1.0
        a = 0.5 * m + 0.5 * torch.eye(length, dtype=torch.float64)
        a = a / a.sum(1, keepdim=True)
        r = a @ r
    return readout(r, kind)


def reference_relevancy(model: Any, kind: str, sample: torch.Tensor, target: int) -> torch.Tensor:
    logits, record = reference_forward(model, kind, sample)
    maps = [a for _, groups in record for a in groups]
    grads = torch.autograd.grad(logits[target], maps)
    length = _length(record)
    r = torch.eye(length, dtype=torch.float64)
    it = iter(grads)
    for what, groups in record:
        weighted = [(next(it) * a).clamp(min=0) for a in groups]
        m = operator(what, weighted, length, mean_heads, cls_mean=False)
        r = r + m @ r
    return readout(r, kind).detach()


def _length(record: list[Any]) -> int:
    what, groups = record[0]
    if what == "temporal":
        return 1 + len(groups) * groups[0].shape[-1]
    return groups[0].shape[-1]


GRIDS = {
    "videomae": (4, 4, 4),
    "videomae-first": (4, 4, 4),
    "timesformer": (8, 4, 4),
    "vivit": (4, 4, 4),
}
KINDS = tuple(GRIDS)


def _close(raw: torch.Tensor, ref: torch.Tensor) -> None:
    scale = float(ref.abs().max())
    assert scale > 0
    torch.testing.assert_close(raw.double(), ref, rtol=0, atol=1e-6 * max(scale, 1.0))


@pytest.mark.parametrize("kind", KINDS)
def test_reference_forward_is_the_model(kind: str) -> None:
    model, c = tiny(kind), clip()
    with torch.no_grad():
        logits = model(pixel_values=pixel_values(c)).logits
        for i in range(c.shape[0]):
            ref, _ = reference_forward(model, kind, c[i])
            # ViViT's eager attention takes its softmax in float32 even for a float64 model
            torch.testing.assert_close(
                ref, logits[i], rtol=0, atol=1e-6 if kind == "vivit" else 1e-9
            )


@pytest.mark.parametrize("kind", KINDS)
def test_rollout_equals_the_hand_written_reference(kind: str) -> None:
    model, c = tiny(kind), clip()
    tubes = st.AttentionRollout(model, inputs=pixel_values)(c, classes=[0, 2])
    assert tubes.class_agnostic and tubes.method == "rollout"
    assert tubes.raw.shape == (2, 2, *GRIDS[kind])
    for i in range(c.shape[0]):
        ref = on_grid(reference_rollout(model, kind, c[i]), kind, GRIDS[kind])
        assert float(ref.max() - ref.min()) > 1e-3  # not a flat map: the test can fail
        for k in range(2):
            _close(tubes.raw[i, k], ref)


@pytest.mark.parametrize("kind", KINDS)
def test_relevancy_equals_the_hand_written_reference(kind: str) -> None:
    model, c = tiny(kind), clip()
    tubes = st.AttentionRelevancy(model, inputs=pixel_values)(c, classes=[[1, 3], [0, 2]])
    assert not tubes.class_agnostic and tubes.method == "relevancy"
    for i, targets in enumerate(([1, 3], [0, 2])):
        refs = [
            on_grid(reference_relevancy(model, kind, c[i], t), kind, GRIDS[kind]) for t in targets
        ]
        assert float((refs[0] - refs[1]).abs().max()) > 1e-4  # the classes differ
        for k, ref in enumerate(refs):
            _close(tubes.raw[i, k], ref)


@pytest.mark.parametrize("kind", ["videomae", "vivit"])
def test_attention_is_captured_from_an_sdpa_model(kind: str) -> None:
    """SDPA returns no attention weights; the recorder writes the call out: the same tubes
    as the eager model's and as the reference, and the SDPA model's logits unchanged."""
    sdpa, eager, c = tiny(kind, "sdpa"), tiny(kind, "eager"), clip()
    assert sdpa.config._attn_implementation == "sdpa"
    with torch.no_grad():
        before = sdpa(pixel_values=pixel_values(c)).logits
    for method in (st.AttentionRollout, st.AttentionRelevancy):
        got = method(sdpa, inputs=pixel_values)(c, classes=[1])
        want = method(eager, inputs=pixel_values)(c, classes=[1])
        torch.testing.assert_close(got.raw, want.raw, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(got.logits, before)
    ref = on_grid(reference_relevancy(eager, kind, c[0], 1), kind, GRIDS[kind])
    _close(st.AttentionRelevancy(sdpa, inputs=pixel_values)(c, classes=[1]).raw[0, 0], ref)
    assert sdpa.config._attn_implementation == "sdpa"
    assert hooks_left(sdpa) == 0


def test_timesformer_token_order_puts_a_planted_token_in_place() -> None:
    """Relevance given to one patch-major token lands at its (t, y, x) in the tube: the
    'horizontal bars' bug class (reading the tokens frame-major) would move it."""
    model = tiny("timesformer")
    explainer = st.AttentionRollout(model, inputs=pixel_values)
    row = torch.zeros(1, 1 + 16 * T, 1, dtype=torch.float64)
    t, y, x = 5, 1, 3
    row[0, 1 + (y * 4 + x) * T + t] = 1.0
    volume = explainer.reshape(row, (T, SIZE, SIZE))  # type: ignore[misc]
    assert volume.shape == (1, 1, T, 4, 4)
    assert torch.nonzero(volume[0, 0]).tolist() == [[t, y, x]]


def test_the_model_is_left_as_it_was() -> None:
    model = tiny("timesformer").train()
    model.classifier.weight.requires_grad_(False)
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    st.AttentionRelevancy(model, inputs=pixel_values)(clip(1), classes="top2")
    st.AttentionRollout(model, inputs=pixel_values)(clip(1))
    assert model.training and all(m.training for m in model.modules())
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert all(p.grad is None for p in model.parameters())
    assert hooks_left(model) == 0


def test_a_model_without_attention_is_refused_in_one_line() -> None:
    net = torch.nn.Sequential(
        torch.nn.Conv3d(3, 4, 3), torch.nn.AdaptiveAvgPool3d(1), torch.nn.Flatten()
    )
    for method in (st.AttentionRollout, st.AttentionRelevancy):
        with pytest.raises(InputError) as err:
            method(net)
        message = str(err.value)
        assert "\n" not in message and "gradcam" in message and "Sequential" in message
        assert "rollout" not in message.split("apply:")[1]


def test_head_fusion_is_checked_and_used() -> None:
    model, c = tiny("vivit"), clip(1)
    with pytest.raises(InputError, match="head_fusion"):
        st.AttentionRollout(model, head_fusion="median")
    mean = st.AttentionRollout(model, inputs=pixel_values)(c).raw
    high = st.AttentionRollout(model, inputs=pixel_values, head_fusion="max")(c).raw
    assert float((mean - high).abs().max()) > 1e-4


# ------------------------------------------- the shipped transformer's own layout (SDPA)


def tiny_vit(seed: int = 0) -> Any:
    from saliency_tubes.zoo.nets.tiny_vit import TinyVideoViT

    torch.manual_seed(seed)
    model = TinyVideoViT(num_classes=4, dim=24, depth=2, heads=HEADS, hidden=32)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.35)
    return model.double().eval()


def forward_tiny_vit(model: Any, sample: torch.Tensor, record: list[Any]) -> torch.Tensor:
    x = model.tokens(sample[None])[0]
    for block in model.blocks:
        ctx, a = attend(block.norm1(x), *qkv_split(block.attn.qkv))
        record.append(("joint", [a]))
        x = x + block.attn.proj(ctx)
        x = x + block.mlp(block.norm2(x))
    return model.fc(model.fc_norm(x.mean(0)))


def test_the_shipped_transformer_s_own_layout_matches_the_reference() -> None:
    """TinyVideoViT declares its attention and computes it with SDPA: both methods equal the
    hand-written recurrences on its (8, 8, 8) grid, mean row (VideoMAE-style head)."""
    model = tiny_vit()
    c = torch.randn(1, 3, 16, 64, 64, generator=torch.Generator().manual_seed(5)).double()
    with torch.no_grad():
        record: list[Any] = []
        torch.testing.assert_close(
            forward_tiny_vit(model, c[0], record), model(c)[0], rtol=0, atol=1e-9
        )
    length = record[0][1][0].shape[-1]
    eye = torch.eye(length, dtype=torch.float64)
    rollout = eye
    for what, groups in record:
        a = 0.5 * operator(what, groups, length, mean_heads, cls_mean=True) + 0.5 * eye
        rollout = (a / a.sum(1, keepdim=True)) @ rollout
    logits, record = forward_tiny_vit(model, c[0], []), []
    logits = forward_tiny_vit(model, c[0], record)
    grads = torch.autograd.grad(logits[2], [g[0] for _, g in record])
    relevancy = eye
    for (what, groups), grad in zip(record, grads, strict=True):
        relevancy = (
            relevancy
            + operator(what, [(grad * groups[0]).clamp(min=0)], length, mean_heads, cls_mean=False)
            @ relevancy
        )
    got_rollout = st.AttentionRollout(model)(c).raw[0, 0]
    got_relevancy = st.AttentionRelevancy(model)(c, classes=[2]).raw[0, 0]
    _close(got_rollout, on_grid(rollout.mean(0), "videomae", (8, 8, 8)))
    _close(got_relevancy, on_grid(relevancy.mean(0).detach(), "videomae", (8, 8, 8)))


def test_what_each_costs_in_forwards_and_backwards() -> None:
    """Rollout: one forward, no backward, whatever the classes; relevancy: one forward and
    one backward per class (counted on the model and on its head's output)."""
    from _models import passes

    model = tiny_vit()
    c = torch.randn(1, 3, 16, 64, 64, generator=torch.Generator().manual_seed(5)).double()
    assert passes(st.AttentionRollout(model), c, [0, 3]) == (1, 0)
    assert passes(st.AttentionRollout(model), c, "all") == (1, 0)
    assert passes(st.AttentionRelevancy(model), c, [0, 3]) == (1, 2)
    assert passes(st.AttentionRelevancy(model), c, "all") == (1, 4)
    assert st.AttentionRelevancy(model).forwards((16, 64, 64), 4) == 1


def test_two_threads_on_one_explainer_each_get_their_own_tubes() -> None:
    from concurrent.futures import ThreadPoolExecutor

    model = tiny("vivit")
    explainer = st.AttentionRelevancy(model, inputs=pixel_values)
    clips = [clip(1, seed=s) for s in (11, 12, 13, 14)]
    alone = [explainer(c, classes=[1]).raw for c in clips]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda c: explainer(c, classes=[1]).raw, clips))
    for a, b in zip(alone, together, strict=True):
        torch.testing.assert_close(a, b)
    assert hooks_left(model) == 0
