"""Relevancy with each block recomputed in the backward (``attention_recompute``).

The structures (joint with a mean head, class token, TimeSformer's divided attention, MViT's
pooling attention) are checked against hand-written references in ``test_attention.py``
and ``test_attention_mvit.py`` (two samples, two classes each), which now run through the
recomputation. Here: the shipped ``tiny-colours-vit`` and a model in training mode with
dropout against the implementation it replaced (one forward recorded by autograd, every
attention's gradient from one backward, kept below as the reference); that autograd's
saved tensors no longer grow with the number of blocks' attention maps (counted with
``saved_tensors_hooks``, not timed); and that the model is left as it was, also when the
forward or the recomputation raises, and while another thread runs a block.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import torch
from torch import nn

import saliency_tubes as st
from _models import hooks_left
from saliency_tubes.methods.attention_sites import AttentionRecorder, find_layout
from saliency_tubes.zoo.nets.tiny_vit import TinyVideoViT, tiny_colours_vit


def full_graph_relevancy(
    model: nn.Module, x: Any, classes: list[list[int]], mean_head: bool
) -> torch.Tensor:
    """The implementation the recomputation replaced, for joint attention: one forward
    recorded by autograd, the probabilities of every block kept, one backward per class;
    ``r ← r + r·mean_h((∇A ⊙ A)⁺)`` from the last block to the first. (N, K, L)."""
    layout = find_layout(model)
    assert layout is not None and {s.kind for s in layout.sites} == {"joint"}
    maps: list[torch.Tensor] = []
    with (
        torch.enable_grad(),
        AttentionRecorder(lambda _s, p: maps.append(p)).watching(layout.sites),
    ):
        out = model(x) if isinstance(x, torch.Tensor) else model(**x)
    logits = out if isinstance(out, torch.Tensor) else out.logits
    n, length = logits.shape[0], maps[-1].shape[-1]
    rows = []
    for k in range(len(classes[0])):
        target = torch.tensor([c[k] for c in classes])
        score = logits.gather(1, target[:, None]).sum()
        grads = torch.autograd.grad(score, maps, retain_graph=True)
        row = torch.zeros(n, length, dtype=logits.dtype)
        if mean_head:
            row += 1.0 / length
        else:
            row[:, 0] = 1.0
        for a, g in zip(reversed(maps), reversed(grads), strict=True):
            weighted = (g * a).clamp(min=0).mean(1).to(row.dtype)
            row = row + (row[:, None, :] @ weighted)[:, 0]
        rows.append(row.detach())
    return torch.stack(rows, dim=1)


def _close(got: torch.Tensor, want: torch.Tensor) -> None:
    scale = float(want.abs().max())
    assert scale > 0
    torch.testing.assert_close(got.double(), want.double(), rtol=0, atol=1e-6 * max(scale, 1.0))


def test_tiny_colours_vit_equals_the_full_graph_implementation() -> None:
    """The shipped weights (class token, conv stem) in float64, two clips, two classes each."""
    model = tiny_colours_vit().double()
    x = torch.randn(2, 3, 16, 64, 64, generator=torch.Generator().manual_seed(4)).double()
    classes = [[0, 3], [5, 1]]
    tubes = st.AttentionRelevancy(model)(x, classes=classes)
    want = full_graph_relevancy(model, x, classes, mean_head=False)
    assert float((want[:, 0] - want[:, 1]).abs().max()) > 1e-4  # the classes differ
    _close(tubes.raw, want[:, :, 1:].reshape(2, 2, 4, 8, 8))


def _dropout_vivit() -> Any:
    pytest.importorskip(
        "transformers",
        reason="transformers is not installed (the optional extra: pip install 'saliency-tubes[transformers]')",
    )
    import warnings

    from saliency_tubes.zoo.sources import huggingface as hf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # torchvision's import workaround note
        transformers = hf.import_transformers("test")
    config = transformers.VivitConfig(
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=48,
        image_size=32,
        num_frames=8,
        num_labels=4,
        tubelet_size=[2, 8, 8],
        hidden_dropout_prob=0.2,
        attention_probs_dropout_prob=0.2,
    )
    torch.manual_seed(0)
    model = transformers.VivitForVideoClassification._from_config(
        config, attn_implementation="eager"
    )
    return model.double().train()


def test_dropout_in_training_mode_draws_the_forward_s_masks_again() -> None:
    """eval_mode=False on a model with dropout: the recomputed blocks must draw the masks
    the forward drew (the random generators restored as torch.utils.checkpoint does), or
    the gradients, and the tubes, would differ from the full-graph ones."""
    model = _dropout_vivit()
    x = torch.randn(2, 3, 8, 32, 32, generator=torch.Generator().manual_seed(1)).double()
    pixels = {"pixel_values": x.permute(0, 2, 1, 3, 4)}
    with torch.no_grad():
        torch.manual_seed(5)
        first = model(**pixels).logits
        torch.manual_seed(6)
        assert float((model(**pixels).logits - first).abs().max()) > 1e-3  # dropout is on
    explainer = st.AttentionRelevancy(
        model, inputs=lambda c: c.permute(0, 2, 1, 3, 4), eval_mode=False
    )
    classes = [[1, 2], [0, 3]]
    torch.manual_seed(5)
    tubes = explainer(x, classes=classes)
    torch.manual_seed(5)
    want = full_graph_relevancy(model, pixels, classes, mean_head=False)
    torch.testing.assert_close(tubes.logits, first)
    _close(tubes.raw, want[:, :, 1:].reshape(2, 2, 4, 4, 4))
    assert model.training


# ------------------------------------------------- what autograd keeps: counted, not timed


class SavedBytes:
    """Bytes of the tensors autograd keeps for a backward while they are kept: each
    distinct storage once, parameters not counted. ``peak`` is the most at once."""

    def __init__(self, model: nn.Module) -> None:
        self.params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        self.live: dict[int, list[int]] = {}  # storage -> [references, bytes]
        self.now = self.peak = self.packed = 0

    def pack(self, t: torch.Tensor) -> Any:
        self.packed += 1
        ptr = t.untyped_storage().data_ptr()
        if ptr in self.params or t.untyped_storage().nbytes() == 0:
            return t
        entry = self.live.setdefault(ptr, [0, t.untyped_storage().nbytes()])
        if entry[0] == 0:
            self.now += entry[1]
            self.peak = max(self.peak, self.now)
        entry[0] += 1
        return _Held(t, self, ptr)

    def release(self, ptr: int) -> None:
        entry = self.live[ptr]
        entry[0] -= 1
        if entry[0] == 0:
            self.now -= entry[1]

    def hooks(self) -> Any:
        return torch.autograd.graph.saved_tensors_hooks(self.pack, _unpack)


class _Held:
    def __init__(self, t: torch.Tensor, meter: SavedBytes, ptr: int) -> None:
        self.t, self.meter, self.ptr = t, meter, ptr

    def __del__(self) -> None:
        self.meter.release(self.ptr)


def _unpack(held: Any) -> torch.Tensor:
    return held.t if isinstance(held, _Held) else held


def _vit(depth: int) -> TinyVideoViT:
    torch.manual_seed(0)
    return TinyVideoViT(num_classes=4, dim=16, depth=depth, heads=2, hidden=32).double().eval()


X = torch.randn(1, 3, 16, 64, 64, generator=torch.Generator().manual_seed(2)).double()
TOKENS, DIM, HEADS = 512, 16, 2
HIDDEN_BYTES = TOKENS * DIM * 8  # one block's input hidden state (float64)
MAP_BYTES = HEADS * TOKENS * TOKENS * 8  # one block's attention probabilities


def _peak_relevancy(depth: int) -> SavedBytes:
    model = _vit(depth)
    meter = SavedBytes(model)
    with meter.hooks():
        st.AttentionRelevancy(model)(X, classes=[1])
    return meter


def _peak_full_graph(depth: int) -> SavedBytes:
    model = _vit(depth)
    meter = SavedBytes(model)
    with meter.hooks():
        full_graph_relevancy(model, X, [[1]], mean_head=True)
    return meter


def test_what_autograd_keeps_no_longer_grows_with_the_blocks_attention() -> None:
    """2 and 6 blocks of 512 tokens (each block's attention: 2 x 512 x 512 float64, 4 MiB;
    its input: 512 x 16, 64 KiB). Recomputed, 4 more blocks keep 4 more inputs and
    nothing else; the full graph keeps at least 4 more attention maps (the measure sees
    them: the test can fail)."""
    small, large = _peak_relevancy(2), _peak_relevancy(6)
    assert small.now == 0 and large.now == 0  # everything released after the call
    grown = large.peak - small.peak
    assert 0 < grown <= 4 * HIDDEN_BYTES
    assert large.peak < 3 * MAP_BYTES  # at most one block's graph (scores, probs, ...) at once
    full_small, full_large = _peak_full_graph(2), _peak_full_graph(6)
    assert full_large.peak - full_small.peak >= 4 * MAP_BYTES
    assert full_large.peak > 3 * large.peak


def test_each_block_s_probabilities_are_freed_before_the_next_block_runs(monkeypatch) -> None:
    """Not only autograd's references: when a block is recomputed, no earlier block's
    probabilities are alive any more (counted with weak references, the garbage
    collector off, so that a reference cycle cannot hide behind a collection)."""
    import gc
    import weakref

    from saliency_tubes.methods import attention_recompute

    alive: list[int] = []
    live = {"n": 0}

    class Counting(AttentionRecorder):
        def _record(self, probs: torch.Tensor) -> None:
            alive.append(live["n"])  # probabilities of earlier blocks alive now
            live["n"] += 1
            weakref.finalize(probs, lambda: live.__setitem__("n", live["n"] - 1))
            super()._record(probs)

    monkeypatch.setattr(attention_recompute, "AttentionRecorder", Counting)
    model = _vit(4)
    gc.collect()
    gc.disable()
    try:
        st.AttentionRelevancy(model)(X, classes=[0, 1])
    finally:
        gc.enable()
    assert alive == [0] * 8  # 4 blocks, 2 classes: each recomputed block alone
    assert live["n"] == 0


def test_rollout_records_nothing_for_autograd() -> None:
    """Rollout's forward runs under no_grad: autograd saves no tensor at all."""
    model = _vit(3)
    meter = SavedBytes(model)
    with meter.hooks():
        tubes = st.AttentionRollout(model)(X)
    assert meter.packed == 0 and float(tubes.raw.max()) > 0


# ------------------------------------------------------------ the model is left as it was


class Boom(nn.Module):
    """An MLP that raises in the forward (``when="forward"``) or only when recomputed with
    gradients (``when="recompute"``: the first, unrecorded run passes)."""

    def __init__(self, inner: nn.Module, when: str) -> None:
        super().__init__()
        self.inner, self.when = inner, when

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.when == "forward" or torch.is_grad_enabled():
            raise RuntimeError("boom")
        out: torch.Tensor = self.inner(x)
        return out


def _unchanged(model: nn.Module, flags: dict[str, bool]) -> None:
    assert all("forward" not in vars(m) for m in model.modules())
    assert hooks_left(model) == 0
    assert model.training and all(m.training for m in model.modules())
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("when", ["forward", "recompute"])
def test_the_model_is_left_as_it_was_when_a_block_raises(when: str) -> None:
    model = _vit(3).train()
    model.fc.weight.requires_grad_(False)
    block: Any = model.blocks[1]
    inner = block.mlp
    block.mlp = Boom(inner, when)
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    with pytest.raises((RuntimeError, st.InputError), match="boom"):
        st.AttentionRelevancy(model)(X, classes=[0, 2])
    _unchanged(model, flags)
    block.mlp = inner  # and the model still explains as before
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    got = st.AttentionRelevancy(model)(X, classes=[2]).raw
    torch.testing.assert_close(got, st.AttentionRelevancy(_vit(3))(X, classes=[2]).raw)
    _unchanged(model, flags)


def test_another_thread_runs_the_block_as_it_is_during_the_call() -> None:
    """While the call's forward has the blocks replaced, a block called from another
    thread runs its own forward (recorded by autograd as usual), not the recomputation."""
    model = _vit(2)
    seen: dict[str, Any] = {}

    def other_thread() -> None:
        x = torch.randn(1, 4, DIM, dtype=torch.float64, requires_grad=True)
        seen["grad_fn"] = type(model.blocks[1](x).grad_fn).__name__

    def during(_m: nn.Module, _args: Any, _out: Any) -> None:
        if "patched" not in seen:
            seen["patched"] = "forward" in vars(model.blocks[1])
            worker = threading.Thread(target=other_thread)
            worker.start()
            worker.join()

    handle = model.blocks[0].norm1.register_forward_hook(during)
    try:
        st.AttentionRelevancy(model)(X, classes=[1])
    finally:
        handle.remove()
    assert seen["patched"] is True  # the other thread ran while the block was replaced
    assert seen["grad_fn"] == "AddBackward0"  # x + mlp(norm2(x)): the block's own forward
    assert all("forward" not in vars(m) for m in model.modules())


def test_an_attention_that_is_its_own_block_is_recorded_when_recomputed() -> None:
    """A site named without a block index ("block.attn") makes the attention module its own
    block: its recomputation must still pass through the recorder's hooks on it."""
    from saliency_tubes.methods.attention_sites import AttentionLayout, Site
    from saliency_tubes.zoo.nets.tiny_vit import Block, Embedding, embed_grid

    class OneBlock(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = Embedding(24, cls=True)
            self.block = Block(24, 3, 32)
            self.norm = nn.LayerNorm(24)
            self.fc = nn.Linear(24, 5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.norm(self.block(self.embed(x))[:, 0]))

        def attention_layout(self) -> AttentionLayout:
            site = Site("block.attn", self.block.attn, "joint")
            return AttentionLayout("tiny-vit", "embed", (site,), "cls", embed_grid(1))

    torch.manual_seed(0)
    model = OneBlock().double().eval()
    x = torch.randn(2, 3, 16, 64, 64, generator=torch.Generator().manual_seed(1)).double()
    classes = [[1, 3], [4, 0]]
    tubes = st.AttentionRelevancy(model)(x, classes=classes)
    want = full_graph_relevancy(model, x, classes, mean_head=False)
    _close(tubes.raw.reshape(2, 2, -1), want[:, :, 1:])
    assert "forward" not in vars(model.block.attn) and not hooks_left(model)
