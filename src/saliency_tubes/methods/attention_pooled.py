"""Pooling attention (MViT): each block as an operator on tokens.

torchvision's MViT v1/v2 and pytorchvideo's MViT (class token; conv or average pooling).
An MViT block (``torchvision.models.video.mvit.MultiscaleBlock``,
``pytorchvideo.layers.attention.MultiScaleBlock``) maps its L_in input
tokens (a class token, then a T×H×W grid in thw order) to L_out tokens:

    out = P_skip(x) + proj(A · pool_v(v) [+ pool_q(q)])   then a token-wise MLP

where ``A`` (L_out × L_kv) are the recorded attention probabilities (heads fused), the
values are pooled by ``pool_v`` (L_kv × L_in), the queries by ``pool_q`` (L_out × L_in;
MViTv2 adds them back, ``residual_pool``), and the skip is a max pool (L_out × L_in) when
the block strides its queries. The keys' pool only shapes A, which is recorded as it is.
Everything else (the LayerNorms, the linear maps, the MLP and its residual) acts on one
token at a time and moves no relevance between tokens. So a block's token operator is

    M = P_skip + A · P_v [+ P_q]

and the methods carry the head's row r (the class token's) through it from the last block
to the first, never forming a pooling matrix (the first stage of MViT at 16×224×224 has
25 089 tokens):

* rollout:   ``r ← ½·r·P_skip + ½·(s·A·P_v + s·P_q)`` with ``s = r / d`` and d the row
  sums of ``A·P_v + P_q`` (2, or 1 on the class token where MViTv2 leaves it out of the
  pooled-query residual): every operator is row-stochastic, as Abnar's ``½A + ½I`` is;
* relevancy: ``r ← r·P_skip + (r·Ā)·P_v + r·P_q`` with ``Ā = mean_heads((∇A ⊙ A)⁺)``:
  Chefer's ``R ← R + Ā·R`` with the two residual paths (skip, pooled query) in place of I.

The poolings as linear maps on tokens (the class token always maps to itself):

* ``pool_q``, ``pool_k``, ``pool_v`` are learned depthwise 3-D convolutions followed by a
  LayerNorm over the head's channels (pytorchvideo's ``pool_mode="avg"``: an average
  pool, for which the surrogate below is its own window). The LayerNorm mixes channels within a token, never
  tokens, so tokens mix through the convolution alone; its weights differ per channel and
  may be negative. The surrogate takes each kernel offset's weight as the mean over the
  channels of ``|w|`` and normalises every pooled token's row to sum to 1 over the
  positions inside the clip (zero padding adds nothing). It is exact for a pool whose
  channels share one nonnegative kernel (an average pool); for a learned kernel it is an
  approximation: where channels' weights differ in sign it counts their magnitudes.
  Applied as ``conv_transpose3d`` of that kernel (:class:`ConvPool`).
* the skip's max pool is piecewise linear: for each channel it copies the window's largest
  input. Its token operator is the mean over channels of its Jacobian, ``P[m, j]`` = the
  fraction of channels whose maximum in window m came from token j, read from the pool's
  own indices on the block's input (exact: it is the average of the pool's local linear
  map over channels). Applied as a scatter of those indices (:class:`ArgmaxPool`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ConvPool:
    """A conv pool's token surrogate: kernel K ≥ 0, rows normalised over the clip; the
    class token maps to itself."""

    kernel: torch.Tensor  # (kt, kh, kw), nonnegative
    stride: tuple[int, int, int]
    padding: tuple[int, int, int]
    thw_in: tuple[int, int, int]

    @staticmethod
    def of(pool: nn.Module, thw_in: tuple[int, int, int]) -> ConvPool:
        """From a depthwise ``Conv3d`` (the channels' mean |w|) or an ``AvgPool3d``."""
        if isinstance(pool, nn.Conv3d):
            kernel = pool.weight.detach().abs().mean(dim=(0, 1))  # (C, 1, kt, kh, kw)
        elif isinstance(pool, nn.AvgPool3d):
            kernel = torch.ones(_triple(pool.kernel_size))
        else:
            raise TypeError(f"expected a Conv3d or AvgPool3d pool, but got {type(pool).__name__}")
        return ConvPool(kernel, _triple(pool.stride), _triple(pool.padding), thw_in)

    @property
    def thw_out(self) -> tuple[int, int, int]:
        t, h, w = (
            (n + 2 * p - k) // s + 1
            for n, p, k, s in zip(
                self.thw_in, self.padding, self.kernel.shape, self.stride, strict=True
            )
        )
        return t, h, w

    def _inverse_norm(self, like: torch.Tensor) -> torch.Tensor:
        """1 / each pooled token's row sum (0 for a row with no weight: an all-zero kernel)."""
        ones = like.new_ones(1, 1, *self.thw_in)
        k = self.kernel.to(like)[None, None]
        z = F.conv3d(ones, k, stride=self.stride, padding=self.padding)[0, 0].reshape(-1)
        return torch.where(z > 0, 1.0 / z.clamp_min(torch.finfo(z.dtype).tiny), 0.0)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1 + L_in) -> (N, 1 + L_out): P·x (used by the tests)."""
        n = x.shape[0]
        k = self.kernel.to(x)[None, None]
        grid = x[:, 1:].reshape(n, 1, *self.thw_in)
        out = F.conv3d(grid, k, stride=self.stride, padding=self.padding).reshape(n, -1)
        return torch.cat([x[:, :1], out * self._inverse_norm(x)], dim=1)

    def adjoint(self, row: torch.Tensor) -> torch.Tensor:
        """(N, 1 + L_out) -> (N, 1 + L_in): r·P, a transposed convolution."""
        n = row.shape[0]
        k = self.kernel.to(row)[None, None]
        scaled = (row[:, 1:] * self._inverse_norm(row)).reshape(n, 1, *self.thw_out)
        extra = tuple(
            n_in - ((n_out - 1) * s - 2 * p + kk)
            for n_in, n_out, s, p, kk in zip(
                self.thw_in, self.thw_out, self.stride, self.padding, self.kernel.shape, strict=True
            )
        )
        out = F.conv_transpose3d(
            scaled, k, stride=self.stride, padding=self.padding, output_padding=extra
        ).reshape(n, -1)
        return torch.cat([row[:, :1], out], dim=1)


@dataclass(frozen=True)
class ArgmaxPool:
    """The skip's max pool: the channel mean of its Jacobian, as the pool's indices."""

    index: torch.Tensor  # (N, C, L_out): flat input position of each channel's maximum
    length_in: int  # spatial tokens in

    def adjoint(self, row: torch.Tensor) -> torch.Tensor:
        n, c, _ = self.index.shape
        share = (row[:, None, 1:] / c).expand(n, c, -1).reshape(n, -1)
        out = row.new_zeros(n, self.length_in)
        out.scatter_add_(1, self.index.reshape(n, -1), share)
        return torch.cat([row[:, :1], out], dim=1)


def _triple(value: Any) -> tuple[int, int, int]:
    if isinstance(value, int):
        return value, value, value
    a, b, c = value
    return int(a), int(b), int(c)


def _unwrap(pool: nn.Module | None) -> nn.Module | None:
    """The pooling operation itself: torchvision wraps it (``Pool.pool``), pytorchvideo not."""
    return getattr(pool, "pool", pool) if pool is not None else None


def mvit_parts(model: nn.Module) -> tuple[str, tuple[int, int, int]] | None:
    """For an MViT whose pooling these methods follow, (the embeddings' module name, the
    patch stride); None for anything else.

    torchvision's ``MViT`` (v1 and v2), and pytorchvideo's ``MultiscaleVisionTransformers``
    with a class token and conv or average pooling (``mvit_base_16x4``)."""
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, nn.ModuleList) or len(blocks) == 0:
        return None
    arch, kinds = type(model).__name__, {type(b).__name__ for b in blocks}
    if arch == "MViT" and kinds == {"MultiscaleBlock"} and hasattr(model, "pos_encoding"):
        conv: Any = model.conv_proj
        return "pos_encoding", _triple(conv.stride)
    if arch == "MultiscaleVisionTransformers" and kinds == {"MultiScaleBlock"}:
        attns: list[Any] = [b.attn for b in blocks]
        pools = [_unwrap(p) for a in attns for p in (a.pool_q, a.pool_k, a.pool_v)]
        if not all(a.has_cls_embed for a in attns) or any(
            isinstance(p, nn.MaxPool3d) for p in pools
        ):
            return None
        patch: Any = getattr(model, "patch_embed", None)
        if patch is None or not hasattr(model, "cls_positional_encoding"):
            return None
        return "cls_positional_encoding", _triple(patch.patch_model.stride)
    return None


def block_thws(model: nn.Module) -> list[tuple[int, int, int]]:
    """The (T, H, W) token grid at each block's input, as the forward computes it."""
    if hasattr(model, "pos_encoding"):  # torchvision
        enc: Any = model.pos_encoding
        thw = _triple((enc.temporal_size, *enc.spatial_size))
    else:  # pytorchvideo
        thw = _triple(model.cls_positional_encoding.patch_embed_shape)  # type: ignore[union-attr]
    sizes: list[tuple[int, int, int]] = []
    for block in model.blocks:  # type: ignore[union-attr]
        sizes.append(thw)
        pool_q = _unwrap(block.attn.pool_q)
        if pool_q is not None:
            thw = ConvPool.of(pool_q, thw).thw_out
    return sizes


@dataclass(frozen=True)
class PooledBlock:
    """One MViT block's token operator for one call (see the module notes)."""

    p_v: ConvPool | None  # None: identity (no value pooling)
    p_q: ConvPool | None  # None: identity (no query pooling)
    residual_q: bool  # MViTv2's pooled-query residual
    cls_in_q: bool  # whether that residual reaches the class token
    skip: ArgmaxPool | None  # None: identity (no query stride)

    @staticmethod
    def _through(pool: ConvPool | ArgmaxPool | None, row: torch.Tensor) -> torch.Tensor:
        return row if pool is None else pool.adjoint(row)

    def _q_path(self, row: torch.Tensor) -> torch.Tensor:
        if not self.cls_in_q:
            row = torch.cat([torch.zeros_like(row[:, :1]), row[:, 1:]], dim=1)
        return self._through(self.p_q, row)

    def rollout(self, row: torch.Tensor, fused: torch.Tensor) -> torch.Tensor:
        """½·r·P_skip + ½·(s·A·P_v + s·P_q), s = r / the branch's row sums."""
        s = row
        if self.residual_q:
            s = row / 2.0
            if not self.cls_in_q:
                s = torch.cat([row[:, :1], s[:, 1:]], dim=1)
        branch = self._through(self.p_v, (s[:, None, :] @ fused)[:, 0])
        if self.residual_q:
            branch = branch + self._q_path(s)
        return 0.5 * self._through(self.skip, row) + 0.5 * branch

    def relevancy(self, row: torch.Tensor, weighted: torch.Tensor) -> torch.Tensor:
        """r·P_skip + (r·Ā)·P_v + r·P_q."""
        out = self._through(self.skip, row)
        out = out + self._through(self.p_v, (row[:, None, :] @ weighted)[:, 0])
        return out + self._q_path(row) if self.residual_q else out


def pooled_block(
    block: nn.Module, thw: tuple[int, int, int], skip: ArgmaxPool | None
) -> PooledBlock:
    """The token operator of one MViT block whose input grid is ``thw``."""
    attn: Any = block.attn
    pool_v, pool_q = _unwrap(attn.pool_v), _unwrap(attn.pool_q)
    p_v = ConvPool.of(pool_v, thw) if pool_v is not None else None
    p_q = ConvPool.of(pool_q, thw) if pool_q is not None else None
    residual = bool(getattr(attn, "residual_pool", False))  # torchvision's MViTv2 only
    return PooledBlock(
        p_v, p_q, residual, bool(getattr(attn, "residual_with_cls_embed", True)), skip
    )


def skip_index(block: nn.Module, x: torch.Tensor, thw: tuple[int, int, int]) -> ArgmaxPool | None:
    """The skip max pool's indices on the block's input ``x`` (N, L, C), as it pools."""
    owner: Any = block
    mp: Any = _unwrap(owner.pool_skip)
    if mp is None:
        return None
    with torch.no_grad():
        # torchvision's MViTv2 pools the projection of the normed input (proj_after_attn)
        if getattr(block, "proj_after_attn", False) and block.project is not None:  # type: ignore[union-attr]
            x = block.project(block.norm1(x))  # type: ignore[operator]
        n, _, c = x.shape
        grid = x[:, 1:].transpose(1, 2).reshape(n, c, *thw)
        _, index = F.max_pool3d(
            grid,
            mp.kernel_size,
            mp.stride,
            mp.padding,
            mp.dilation,
            ceil_mode=mp.ceil_mode,
            return_indices=True,
        )
    return ArgmaxPool(index.reshape(n, c, -1), thw[0] * thw[1] * thw[2])


@contextmanager
def watching_blocks(
    blocks: dict[str, tuple[nn.Module, tuple[int, int, int]]], into: dict[str, PooledBlock]
) -> Iterator[None]:
    """During the block, each MViT block's call (in this thread) puts its token operator
    into ``into[attention site name]``; the hooks are removed after."""
    owner = threading.get_ident()

    def make(name: str, block: nn.Module, thw: tuple[int, int, int]) -> Any:
        def hook(_module: nn.Module, args: Any) -> None:
            if threading.get_ident() == owner:
                into[name] = pooled_block(block, thw, skip_index(block, args[0], thw))

        return hook

    with ExitStack() as stack:
        for name, (block, thw) in blocks.items():
            stack.callback(block.register_forward_pre_hook(make(name, block, thw)).remove)
        yield
