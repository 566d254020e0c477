"""Where a video transformer attends, and how its attention maps act on the full token set.

The attention methods (:mod:`saliency_tubes.methods.attention`) need, for every attention
call of one forward, the attention probabilities ``A`` of shape (B, heads, Lq, Lk) and the
place of those B x Lq x Lk entries among the model's tokens. This module finds the
attention modules of the supported architectures (:func:`find_layout`), records their
probabilities whatever the attention implementation (:class:`AttentionRecorder`), and
places a (B, Lq, Lk) map on the (N, L, L) token set (:func:`place`).

Token structures (``kind`` of a :class:`Site`):

* ``"joint"``: one attention over every token of a sample (VideoMAE, ViViT, TimeSformer
  with ``joint_space_time``): B = N and the map is the operator itself.
* ``"temporal"`` (TimeSformer, divided attention): each spatial position p attends across
  the T frames: B = N·P, batch ``n·P + p``; its T tokens are the full tokens
  ``1 + p·T + t`` (TimeSformer's patch-major order). The class token takes no part: its
  row is the identity in rollout and zero in relevancy.
* ``"pooled"`` (MViT: torchvision's, pytorchvideo's): one attention over the block's pooled tokens; the
  block's token operator (skip, value and query pools) is described in
  :mod:`saliency_tubes.methods.attention_pooled`.
* ``"spatial"`` (TimeSformer): each frame t attends over the class token and its P
  patches: B = N·T, batch ``n·T + t``; token 0 is the class token, token ``1 + p`` the full
  token ``1 + p·T + t``. Every frame has its own copy of the class token and the block
  averages their outputs, so the class token's row of the operator is the **mean** over
  frames of the frames' class rows (rollout, which composes the mixing the forward does);
  relevancy, whose entries are each entry's gradient times its value (its first-order
  contribution to the score: the 1/T of the average is in the gradient), **sums** them.

Recording: the probabilities are read where they are computed. While a site's ``forward``
runs, a :class:`torch.overrides.TorchFunctionMode` sees the call of ``softmax`` on the
(B, heads, Lq, Lk) scores (eager implementations) and replaces a call of
``torch.nn.functional.scaled_dot_product_attention`` (SDPA implementations, which return no
weights) by the same computation written out (``softmax(q kᵀ · scale + mask) v``), whose
probabilities it records; the result equals SDPA's to float rounding. Nothing on the model
or its config changes; the hooks and the mode are gone when the call ends.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from ..errors import InputError
from ..tokens import TokenGrid
from .attention_pooled import block_thws, mvit_parts

Kind = Literal["joint", "temporal", "spatial", "pooled"]
Readout = Literal["cls", "first", "mean"]


@dataclass(frozen=True)
class Site:
    """One attention module: its qualified name, the module and its token structure."""

    name: str
    module: nn.Module
    kind: Kind


@dataclass(frozen=True)
class AttentionLayout:
    """What the attention methods know about a transformer.

    Attributes:
        family: "videomae", "timesformer", "vivit" (or a model's own name for itself).
        tokens: qualified name of the module whose output is the first block's input
            (the embeddings): relevance is reported on its token grid.
        sites: the attention modules in the order the forward calls them.
        readout: which row of the relevance operator the head reads: ``"cls"`` (the class
            token, first), ``"first"`` (the first token, VideoMAE without mean pooling),
            ``"mean"`` (the mean over tokens: VideoMAE's mean-pooled head).
        grid: the embeddings' token grid (:class:`~saliency_tubes.tokens.TokenGrid`).
        blocks: pooling-attention models only (MViT): for each site, its name, the block
            that holds it and the block's input (T, H, W) token grid.
    """

    family: str
    tokens: str
    sites: tuple[Site, ...]
    readout: Readout
    grid: TokenGrid
    blocks: tuple[tuple[str, nn.Module, tuple[int, int, int]], ...] = ()


_JOINT_SITES = {
    "VideoMAEForVideoClassification": ("videomae", "VideoMAESelfAttention", "videomae.embeddings"),
    "VivitForVideoClassification": ("vivit", "VivitAttention", "vivit.embeddings"),
}


def find_layout(model: nn.Module) -> AttentionLayout | None:
    """The :class:`AttentionLayout` of a supported transformer, or None (no attention
    this module can follow: a convolutional network, or an unknown transformer).

    A model of one's own declares its layout with a method ``attention_layout()`` returning
    an :class:`AttentionLayout` (as :class:`saliency_tubes.zoo.nets.tiny_vit.TinyVideoViT` does)."""
    declared = getattr(model, "attention_layout", None)
    if callable(declared):  # a model that says where it attends (the shipped tiny ViT)
        layout = declared()
        return layout if isinstance(layout, AttentionLayout) else None
    arch = type(model).__name__
    parts = mvit_parts(model)
    if parts is not None:
        return _mvit_layout(model, *parts)
    modules = list(model.named_modules())
    if arch in _JOINT_SITES:
        family, site_class, tokens = _JOINT_SITES[arch]
        sites = tuple(
            Site(name, m, "joint") for name, m in modules if type(m).__name__ == site_class
        )
        readout: Readout = "cls"
        if family == "videomae":
            readout = "mean" if getattr(model, "fc_norm", None) is not None else "first"
    elif arch == "TimesformerForVideoClassification":
        family, tokens, readout = "timesformer", "timesformer.embeddings", "cls"
        config: Any = model.config
        divided = config.attention_type == "divided_space_time"
        site_list = []
        for name, m in modules:
            if type(m).__name__ != "TimesformerSelfAttention":
                continue
            kind: Kind = "joint"
            if divided:
                kind = "temporal" if name.endswith("temporal_attention.attention") else "spatial"
            site_list.append(Site(name, m, kind))
        # the forward calls a block's temporal attention before its spatial one
        sites = tuple(sorted(site_list, key=lambda s: (_block_index(s.name), s.kind != "temporal")))
    else:
        return None
    if not sites:
        return None
    from ..zoo.sources.huggingface import layout as hf_layout

    model_config: Any = model.config
    lay = hf_layout(model_config.to_dict(), f"the {arch}'s config")
    return AttentionLayout(
        family, tokens, sites, readout, TokenGrid(lay.stride, lay.prefix, lay.order)
    )


def _mvit_layout(model: nn.Module, tokens: str, stride: tuple[int, int, int]) -> AttentionLayout:
    """An MViT: one pooled attention per block, the class token read."""
    blocks: Any = model.blocks
    sites = tuple(Site(f"blocks.{i}.attn", b.attn, "pooled") for i, b in enumerate(blocks))
    pooled = tuple(
        (site.name, block, thw)
        for site, block, thw in zip(sites, blocks, block_thws(model), strict=True)
    )
    return AttentionLayout("mvit", tokens, sites, "cls", TokenGrid(stride, 1, "thw"), pooled)


def _block_index(name: str) -> int:
    digits = [int(part) for part in name.split(".") if part.isdigit()]
    return digits[0] if digits else 0


def fuse_heads(maps: torch.Tensor, how: str) -> torch.Tensor:
    """(B, heads, Lq, Lk) -> (B, Lq, Lk): the mean, max or min over heads."""
    if how == "mean":
        return maps.mean(dim=1)
    if how == "max":
        return maps.amax(dim=1)
    return maps.amin(dim=1)


def place(
    maps: torch.Tensor, kind: Kind, n: int, *, cls_rows: Literal["mean", "sum"], fill_identity: bool
) -> torch.Tensor:
    """Place a site's (B, Lq, Lk) maps on the (N, L, L) token set of its N samples.

    Args:
        maps: one map per attention batch entry (heads already fused).
        kind: the site's token structure (see the module notes).
        n: the number of samples N.
        cls_rows: how TimeSformer's per-frame class rows combine (``"mean"`` or ``"sum"``).
        fill_identity: rows no attention writes (the class token in a temporal attention)
            get the identity (rollout) instead of zeros (relevancy).
    """
    if kind == "joint":
        return maps
    b, lq, lk = maps.shape
    if kind == "temporal":
        p, t = b // n, lq
        size = 1 + p * t
        out = maps.new_zeros(n, size, size)
        index = (
            1
            + torch.arange(p, device=maps.device)[:, None] * t
            + torch.arange(t, device=maps.device)
        )
        out[:, index[:, :, None], index[:, None, :]] = maps.reshape(n, p, t, t)
        if fill_identity:
            out[:, 0, 0] = 1.0
        return out
    t, p = b // n, lq - 1
    size = 1 + p * t
    per_frame = maps.reshape(n, t, lq, lk)
    full = torch.zeros(t, lq, dtype=torch.long, device=maps.device)  # frame t's token -> full token
    full[:, 1:] = (
        1 + torch.arange(p, device=maps.device) * t + torch.arange(t, device=maps.device)[:, None]
    )
    out = maps.new_zeros(n, size, size)
    out[:, full[:, 1:, None], full[:, None, :]] = per_frame[:, :, 1:, :]
    weight = 1.0 / t if cls_rows == "mean" else 1.0
    cls_row = maps.new_zeros(n, size)
    cls_row.index_add_(1, full.reshape(-1), (per_frame[:, :, 0, :] * weight).reshape(n, -1))
    out[:, 0] = cls_row
    return out


def real(tensor: torch.Tensor) -> torch.Tensor:
    """Half-precision maps in float32 (the row products need it); float32/64 as they are."""
    return tensor.float() if tensor.dtype in (torch.float16, torch.bfloat16) else tensor


def readout_row(layout: AttentionLayout, n: int, size: int, like: torch.Tensor) -> torch.Tensor:
    """The (N, L) row the head reads: a one-hot class (or first) token, or the mean."""
    if layout.readout == "mean":
        return like.new_full((n, size), 1.0 / size)
    row = like.new_zeros(n, size)
    row[:, 0] = 1.0
    return row


def explicit_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``scaled_dot_product_attention`` written out: (output, probabilities)."""
    if enable_gqa and key.shape[-3] != query.shape[-3]:
        groups = query.shape[-3] // key.shape[-3]
        key = key.repeat_interleave(groups, dim=-3)
        value = value.repeat_interleave(groups, dim=-3)
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    # one (L, L) map, not two: the scale on q where autograd records (a scaled map would
    # cost its own gradient in the backward), in place on the scores where it does not
    if torch.is_grad_enabled() and query.requires_grad:
        scores = (query * scale) @ key.transpose(-2, -1)
    else:
        scores = (query @ key.transpose(-2, -1)).mul_(scale)
    if is_causal:
        lq, lk = scores.shape[-2:]
        keep = torch.ones(lq, lk, dtype=torch.bool, device=scores.device).tril()
        scores = scores.masked_fill(~keep, float("-inf"))
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask
    probs = scores.softmax(dim=-1)
    used = F.dropout(probs, p=dropout_p) if dropout_p > 0 else probs
    return used @ value, probs


_SOFTMAX = (F.softmax, torch.softmax, torch.Tensor.softmax)


class AttentionRecorder(TorchFunctionMode):
    """Records each site call's attention probabilities (see the module notes).

    ``on_attention(site, probs)`` is called once per site call, in forward order, with the
    (B, heads, Lq, Lk) probabilities (connected to autograd when the forward records it).
    """

    def __init__(self, on_attention: Callable[[Site, torch.Tensor], None]) -> None:
        super().__init__()
        self.on_attention = on_attention
        self.active: list[tuple[Site, int]] = []
        self.seen = 0

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if not self.active:
            return func(*args, **kwargs)
        if func is F.scaled_dot_product_attention:
            out, probs = explicit_attention(*args, **kwargs)
            self._record(probs)
            return out
        result = func(*args, **kwargs)
        if func in _SOFTMAX and isinstance(result, torch.Tensor) and result.dim() == 4:
            self._record(result)
        return result

    def _record(self, probs: torch.Tensor) -> None:
        site, before = self.active[-1]
        if self.seen != before:
            raise InputError(
                f"expected one attention softmax per call of {site.name}, but saw more; "
                "this attention module is not one the attention methods can follow"
            )
        self.seen += 1
        self.on_attention(site, probs)

    @contextmanager
    def watching(self, sites: tuple[Site, ...]) -> Iterator[AttentionRecorder]:
        """Hooks on the sites and the mode on, for the block; everything removed after."""

        def enter(site: Site) -> Callable[..., None]:
            def hook(_module: nn.Module, _args: Any) -> None:
                self.active.append((site, self.seen))

            return hook

        def leave(_module: nn.Module, _args: Any, _output: Any) -> None:
            site, before = self.active.pop()
            if self.seen == before:
                impl = getattr(getattr(site.module, "config", None), "_attn_implementation", None)
                raise InputError(
                    f"expected to see the attention probabilities of {site.name}, but its "
                    f"attention implementation ({impl or type(site.module).__name__}) computes "
                    "them where they cannot be read; build the model with "
                    "attn_implementation='eager' or 'sdpa'"
                )

        with ExitStack() as stack:
            for site in sites:
                stack.callback(site.module.register_forward_pre_hook(enter(site)).remove)
                stack.callback(site.module.register_forward_hook(leave).remove)
            stack.enter_context(self)
            try:
                yield self
            finally:
                self.active.clear()
