"""What the conv pools' mean-|w| surrogate costs on the trained ``tiny-colours-mvit``.

Rollout and relevancy carry relevance through MViT's learned depthwise conv pools
(``pool_q``, ``pool_v``) by one nonnegative kernel: each offset weighted by the mean over
channels of |w|, rows normalised to 1 (:class:`saliency_tubes.methods.attention_pooled.ConvPool`).
This script compares that carry with two others, swapped in for the pools of every block
(the skip's max pool and the attention stay as they are):

* **uniform**: the same window with equal weights (an average pool of the same kernel size,
  stride and padding): what the tube would be if the learned kernel were ignored;
* **contribution** (per channel, per clip): pooled token m's pre-norm value is
  ``y[m, c] = sum_j w_c[m - j] x[j, c]`` for every channel c of every head; the share of
  token j in it is ``sum_{c, heads} |w_c[m - j] x[j, c]|``, normalised over j. That is the
  pool's own decomposition of its output into its inputs' terms (LRP's |z| rule on a
  linear map), read from the pool's actual input in that clip; mean |w| is this carry
  with every |x[j, c]| replaced by 1.

On colour clips of seeds 0..23 (as ``vit_planted.py``: not in the training or validation
data, not chosen), for each carry: the planted score (fraction of frames whose tube maximum
lies on the coloured target dilated by 0 / 4 / 8 px; 8 px = one token cell) of
``relevancy`` and ``rollout`` explaining the true class, the tube's mass on the target, and
the median over clips of the Spearman correlation with the mean-|w| tube.

Writes ``benchmarks/RESULTS_mvit_pool_carry.md`` (with the load average) and prints it.

Usage (from the repository root):
    .venv/bin/python benchmarks/mvit_pool_carry.py
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F
from _machine import planted_arguments, write_results  # benchmarks/_machine.py
from torch import nn
from vit_planted import peaks_on, planted_clips

from saliency_tubes.methods import attention_pooled
from saliency_tubes.methods.attention_pooled import ConvPool
from saliency_tubes.metrics import energy_inside, spearman
from saliency_tubes.zoo import load_model

HERE = Path(__file__).resolve().parent
OUT = HERE / "RESULTS_mvit_pool_carry.md"
CARRIES = ("mean-abs-w", "uniform", "contribution")


@dataclass(frozen=True)
class ContributionPool:
    """A conv pool's per-clip token operator ``P[m, j] = sum_c |w_c[m - j]| a[j, c] / z_m``
    with ``a[j, c] = sum_heads |x[j, c]|`` the pool's input magnitudes (read when the pool
    runs, into ``seen``) and z_m the row sum; the class token maps to itself."""

    pool: nn.Module  # torchvision's Pool (whose .pool is the depthwise Conv3d)
    seen: dict[int, torch.Tensor]
    surrogate: ConvPool  # its geometry: stride, padding, grids

    def adjoint(self, row: torch.Tensor) -> torch.Tensor:
        """(N, 1 + L_out) -> (N, 1 + L_in): r·P."""
        conv: Any = self.pool.pool  # type: ignore[union-attr]
        a = self.seen[id(self.pool)].to(row)  # (N, C, T, H, W)
        n, c = a.shape[:2]
        if row.shape[0] != n:
            raise ValueError(f"expected {n} rows (the clips the pool saw), got {row.shape[0]}")
        w = conv.weight.detach().abs().to(row)  # (C, 1, kt, kh, kw)
        geo = self.surrogate
        z = F.conv3d(a, w, stride=geo.stride, padding=geo.padding, groups=c).sum(1)
        scaled = torch.where(z > 0, row[:, 1:].reshape(z.shape) / z.clamp_min(1e-30), 0.0)
        extra = tuple(
            n_in - ((n_out - 1) * s - 2 * p + k)
            for n_in, n_out, s, p, k in zip(
                geo.thw_in, geo.thw_out, geo.stride, geo.padding, w.shape[2:], strict=True
            )
        )
        back = F.conv_transpose3d(
            scaled[:, None].expand(n, c, *z.shape[1:]),
            w,
            stride=geo.stride,
            padding=geo.padding,
            output_padding=extra,
            groups=c,
        )
        return torch.cat([row[:, :1], (back * a).sum(1).reshape(n, -1)], dim=1)


@contextmanager
def carrying(model: nn.Module, carry: str) -> Iterator[None]:
    """Within the block, the explainers carry relevance through the conv pools by ``carry``."""
    if carry == "mean-abs-w":
        yield
        return
    original = attention_pooled.pooled_block
    seen: dict[int, torch.Tensor] = {}

    def record(pool: nn.Module, args: Any) -> None:
        x, thw = args  # (N, heads, 1 + L, C), the grid
        a = x[:, :, 1:].detach().abs().sum(1)  # (N, L, C)
        seen[id(pool)] = a.transpose(1, 2).reshape(a.shape[0], a.shape[2], *thw)

    def swap(pool_module: nn.Module | None, surrogate: ConvPool | None) -> Any:
        if surrogate is None or pool_module is None:
            return surrogate
        if carry == "uniform":
            return replace(surrogate, kernel=torch.ones_like(surrogate.kernel))
        return ContributionPool(pool_module, seen, surrogate)

    def patched(block: nn.Module, thw: Any, skip: Any) -> Any:
        op = original(block, thw, skip)
        attn: Any = block.attn
        return replace(op, p_v=swap(attn.pool_v, op.p_v), p_q=swap(attn.pool_q, op.p_q))

    with ExitStack() as stack:
        for block in model.blocks:  # type: ignore[union-attr]
            for pool in (block.attn.pool_v, block.attn.pool_q):
                if pool is not None:
                    stack.callback(pool.register_forward_pre_hook(record).remove)
        stack.enter_context(mock.patch.object(attention_pooled, "pooled_block", patched))
        yield


def check_contribution(model: nn.Module) -> None:
    """:class:`ContributionPool` against its definition, on block 1's strided ``pool_q`` with
    random magnitudes: ``P`` built window by window in loops (rows normalised), ``r·P``
    compared to 1e-12; and with every magnitude 1 it is the mean-|w| surrogate (to 1e-6)."""
    pool: Any = model.blocks[1].attn.pool_q  # type: ignore[index]
    thw = (4, 8, 8)
    geo = ConvPool.of(pool.pool, thw)
    w = pool.pool.weight.detach().double().abs()[:, 0]  # (C, kt, kh, kw)
    a = torch.rand(
        2, w.shape[0], *thw, dtype=torch.float64, generator=torch.Generator().manual_seed(0)
    )
    row = torch.rand(2, 1 + int(np.prod(geo.thw_out)), dtype=torch.float64)
    got = ContributionPool(pool, {id(pool): a}, geo).adjoint(row)
    dense = torch.zeros(2, row.shape[1] - 1, int(np.prod(thw)), dtype=torch.float64)
    for m, (t, h, v) in enumerate(np.ndindex(*geo.thw_out)):
        for dt, dh, dw in np.ndindex(*w.shape[1:]):
            j = [
                o * s - p + d
                for o, s, p, d in zip((t, h, v), geo.stride, geo.padding, (dt, dh, dw), strict=True)
            ]
            if all(0 <= i < n for i, n in zip(j, thw, strict=True)):
                dense[:, m, np.ravel_multi_index(j, thw)] += (
                    w[:, dt, dh, dw] * a[:, :, j[0], j[1], j[2]]
                ).sum(1)
    want = torch.einsum("nm,nmj->nj", row[:, 1:], dense / dense.sum(-1, keepdim=True))
    assert float((got[:, 1:] - want).abs().max()) < 1e-12 and torch.equal(got[:, 0], row[:, 0])
    ones = ContributionPool(pool, {id(pool): torch.ones_like(a)}, geo).adjoint(row)
    # (the surrogate's kernel is the float32 mean of the weights: 1e-6)
    assert float((ones - geo.adjoint(row)).abs().max()) < 1e-6 * float(ones.abs().max())


def measure(seeds: list[int], weights: str | None = None) -> list[str]:
    loaded = load_model("tiny-colours-mvit", weights=weights)
    check_contribution(loaded.model)
    x, labels, masks, near = planted_clips(loaded, seeds)
    mask_t = torch.from_numpy(masks)
    lines = [
        "| method | carry | peak on target, 0 / 4 / 8 px | worst clip (8 px) | mass on target "
        "| rho with the mean-abs-w tube (median; min) | rho on the token grid (median; min) |",
        "|---|---|---|---|---|---|---|",
    ]
    for method in ("relevancy", "rollout"):
        reference = None
        for carry in CARRIES:
            with carrying(loaded.model, carry):
                tubes = loaded.explainer(method)(x, classes=labels[:, None])
            maps, raw = tubes.maps[:, 0], tubes.raw[:, 0]
            reference = (maps, raw) if reference is None else reference
            hits = {px: peaks_on(maps.numpy(), near[px]) for px in near}
            mass = np.mean([float(energy_inside(maps[i], mask_t[i])) for i in range(len(x))])
            rho = [spearman(maps[i], reference[0][i]) for i in range(len(x))]
            rho_raw = [spearman(raw[i], reference[1][i]) for i in range(len(x))]
            lines.append(
                f"| {method} | {carry} | {hits[0].mean():.3f} / {hits[4].mean():.3f} / "
                f"{hits[8].mean():.3f} | {hits[8].mean(1).min():.3f} | {mass:.3f} | "
                f"{np.median(rho):.3f}; {np.min(rho):.3f} | "
                f"{np.median(rho_raw):.3f}; {np.min(rho_raw):.3f} |"
            )
            print(lines[-1], flush=True)
    return lines


def main() -> None:
    args = planted_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    args = args.parse_args()
    torch.set_num_threads(args.threads)
    seeds = list(range(*args.seeds))
    load = os.getloadavg()[0]
    lines = measure(seeds, args.weights)
    write_results(
        None if args.no_write else OUT,
        "The conv pools' carry on tiny-colours-mvit: mean |w| against uniform and contribution",
        "mvit_pool_carry.py",
        f"seeds {seeds[0]}..{seeds[-1]}",
        load,
        lines,
    )


if __name__ == "__main__":
    sys.exit(main())
