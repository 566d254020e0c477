"""Turn a target layer's output into the (N, C, T', H', W') volume the explainers use.

Convolutional layers already give that volume. Video transformers do not: MViT's blocks
output tokens ``(N, 1 + T'H'W', C)`` with a class token first, and Swin3D's stages output
channels-last ``(N, T', H', W', C)``. A *reshape* is any callable
``reshape(output, clip_size) -> volume`` that only rearranges or drops entries (a view,
a permute, a slice): it is applied to the activation and, for the gradient methods, to
the gradient with respect to it, so that both land on the same space-time grid.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from .errors import InputError

Reshape = Callable[[torch.Tensor, tuple[int, int, int]], torch.Tensor]
"""``reshape(layer_output, (T, H, W) of the clip) -> (N, C, T', H', W')``."""


@dataclass(frozen=True)
class TokenGrid:
    """Reshape ``(N, prefix + T'H'W', C)`` tokens into ``(N, C, T', H', W')``.

    The grid is the clip's size divided by the layer's total stride:
    ``T' = T // stride[0]``, ``H' = H // stride[1]``, ``W' = W // stride[2]`` (MViT-B at
    its last stage: stride (2, 32, 32)). The first ``prefix`` tokens (the class token) are
    dropped: they have no place in space-time.

    Attributes:
        stride: the (t, h, w) stride of the layer's token grid with respect to the clip.
        prefix: number of leading non-spatial tokens (1 for a class token, 0 for none).
        order: how the space-time tokens follow each other, slowest-varying axis first:
            ``"thw"`` (time, then rows, then columns: MViT, ViViT, VideoMAE, a flattened
            ``Conv3d`` output) or ``"hwt"`` (rows, columns, then time: TimeSformer's
            divided space-time layout, where the frames of one patch are neighbours).
    """

    stride: tuple[int, int, int]
    prefix: int = 1
    order: Literal["thw", "hwt"] = "thw"

    def __post_init__(self) -> None:
        if self.order not in ("thw", "hwt"):
            raise InputError(
                f"expected a token order 'thw' or 'hwt', but got {self.order!r}; pick the "
                "model's layout"
            )

    def grid(self, clip_size: tuple[int, int, int]) -> tuple[int, int, int]:
        """The (T', H', W') token grid for a clip of size (T, H, W)."""
        t, h, w = (max(1, n // s) for n, s in zip(clip_size, self.stride, strict=True))
        return t, h, w

    def __call__(self, tokens: torch.Tensor, clip_size: tuple[int, int, int]) -> torch.Tensor:
        if tokens.dim() != 3:
            raise InputError(
                f"expected tokens of shape (N, L, C) from the target layer, but got shape "
                f"{tuple(tokens.shape)}; pick a layer that outputs tokens or give another reshape"
            )
        t, h, w = self.grid(clip_size)
        n, length, c = tokens.shape
        if length - self.prefix != t * h * w:
            raise InputError(
                f"expected {self.prefix} + {t}x{h}x{w} = {self.prefix + t * h * w} tokens for a clip of "
                f"{clip_size[0]}x{clip_size[1]}x{clip_size[2]} at stride {self.stride}, but the layer gave "
                f"{length}; give the layer's real stride or a reshape of your own"
            )
        if self.order == "hwt":
            return tokens[:, self.prefix :].reshape(n, h, w, t, c).permute(0, 4, 3, 1, 2)
        grid = tokens[:, self.prefix :].reshape(n, t, h, w, c)
        return grid.permute(0, 4, 1, 2, 3)


def channels_last(output: torch.Tensor, clip_size: tuple[int, int, int]) -> torch.Tensor:
    """Permute a channels-last ``(N, T', H', W', C)`` output (Swin3D) to ``(N, C, T', H', W')``."""
    del clip_size
    if output.dim() != 5:
        raise InputError(
            f"expected a channels-last (N, T', H', W', C) output, but got shape {tuple(output.shape)}"
        )
    return output.permute(0, 4, 1, 2, 3)
