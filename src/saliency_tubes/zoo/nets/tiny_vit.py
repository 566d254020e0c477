"""The small colour models: a CNN that ships with the package and a video transformer.

Both are built for the synthetic colour clips of :mod:`saliency_tubes.synthetic_colours`
(the class is the hue of the one coloured object among grey distractors), so a tube can be
checked against the object's pixels; they know only those 6 colour classes.

* :class:`TinyVideoViT`, a VideoMAE-style transformer written in plain
  torch (no ``transformers`` needed): tubelets of 2 x 8 x 8 embedded by a ``Conv3d`` on
  16 x 64 x 64 clips (a 8 x 8 x 8 token grid, tokens in (t, h, w) order), learned position
  embeddings, pre-norm blocks of joint space-time attention (PyTorch's
  ``scaled_dot_product_attention``) and MLP, and a mean-pooled head (token mean, LayerNorm,
  linear) as VideoMAE's. It declares its attention (:meth:`TinyVideoViT.attention_layout`)
  for ``rollout`` and ``relevancy``. **Not trained, not registered**: three seeded CPU runs of
  ``scripts/train_default_model.py --task colour-vit`` (batch 16 / lr 3e-3, batch 8 / 1e-3,
  batch 8 / 2e-3 with a GELU and a linear map after the patch embedding) stayed at chance (train accuracy
  0.15-0.20) after one to two epochs of 600 clips on this shared machine; the tests use
  it with fixed random weights (exactness through its SDPA attention).
* ``tiny-colours``: the colour CNN (``TinyActionNet(motion=False)``, :mod:`.tiny`).

Weights: ``weights/tiny_colours.safetensors`` with its training record (``.json``), written
by ``scripts/train_default_model.py --task colour``; ``--task colour-vit`` would write
``weights/tiny_colours_vit.safetensors`` for :func:`tiny_colours_vit`.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import InputError, ModelLoadError
from ...synthetic_colours import COLOURS
from ...tokens import TokenGrid
from ..checkpoints import read_state_dict
from .tiny import TinyActionNet

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
VIT_WEIGHTS = WEIGHTS / "tiny_colours_vit.safetensors"
CNN_WEIGHTS = WEIGHTS / "tiny_colours.safetensors"
TUBELET = (2, 8, 8)
CLIP = (16, 64, 64)


class Embedding(nn.Module):
    """Tubelets -> tokens: a ``Conv3d`` with stride = kernel (2, 8, 8), flattened in
    (t, h, w) order, plus learned position embeddings (VideoMAE's linear tubelet embedding)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        grid = [c // s for c, s in zip(CLIP, TUBELET, strict=True)]
        self.proj = nn.Conv3d(3, dim, kernel_size=TUBELET, stride=TUBELET)
        self.position = nn.Parameter(torch.randn(1, grid[0] * grid[1] * grid[2], dim) * 0.02)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        if tuple(clip.shape[2:]) != CLIP:
            raise InputError(
                f"expected clips of {CLIP[0]}x{CLIP[1]}x{CLIP[2]} (the model's position "
                f"embeddings), but got {'x'.join(map(str, clip.shape[2:]))}; use the preset's "
                "frames and size"
            )
        return self.proj(clip).flatten(2).transpose(1, 2) + self.position


class Attention(nn.Module):
    """Multi-head self-attention over all tokens (one ``qkv`` projection, SDPA)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, dim = x.shape
        q, k, v = (
            self.qkv(x).reshape(n, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        )
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(n, length, dim))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm(x))``, then ``x + mlp(norm(x))``."""

    def __init__(self, dim: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyVideoViT(nn.Module):
    """A VideoMAE-style video transformer for 16 x 64 x 64 clips (see the module notes).

    Args:
        num_classes: outputs (the 6 colours by default).
        dim, depth, heads, hidden: width, blocks, attention heads, MLP width.
    """

    def __init__(
        self,
        num_classes: int = len(COLOURS),
        dim: int = 32,
        depth: int = 3,
        heads: int = 2,
        hidden: int = 64,
    ) -> None:
        super().__init__()
        self.embed = Embedding(dim)
        self.blocks = nn.ModuleList(Block(dim, heads, hidden) for _ in range(depth))
        self.fc_norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, num_classes)

    def tokens(self, clip: torch.Tensor) -> torch.Tensor:
        """(N, 3, 16, 64, 64) -> (N, 512, dim) tokens in (t, h, w) order, positioned."""
        out: torch.Tensor = self.embed(clip)
        return out

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        x = self.tokens(clip)
        for block in self.blocks:
            x = block(x)
        return self.fc(self.fc_norm(x.mean(dim=1)))

    def attention_layout(self) -> object:
        """What ``rollout`` and ``relevancy`` need: the attention modules (joint), the
        tokens' module and grid, and the mean readout of the pooled head."""
        from ...methods.attention_sites import AttentionLayout, Site

        blocks = [b for b in self.blocks if isinstance(b, Block)]  # a ModuleList yields Modules
        sites = tuple(Site(f"blocks.{i}.attn", b.attn, "joint") for i, b in enumerate(blocks))
        return AttentionLayout("tiny-vit", "embed", sites, "mean", TokenGrid(TUBELET, 0, "thw"))


def embed_grid() -> TokenGrid:
    """The reshape of the ``embed`` Conv3d's tokens and of the blocks' outputs."""
    return TokenGrid(TUBELET, 0, "thw")


def _shipped(model: nn.Module, path: Path, num_classes: int | None) -> nn.Module:
    state = read_state_dict(path)
    if num_classes not in (None, len(COLOURS)):
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise ModelLoadError(
            f"expected the weights in {path} to match {type(model).__name__}, but loading "
            f"failed ({str(exc).splitlines()[0]}); reinstall saliency-tubes"
        ) from None
    missing = [k for k in missing if num_classes in (None, len(COLOURS)) or not k.startswith("fc.")]
    if missing or unexpected:
        raise ModelLoadError(
            f"expected the weights in {path} to match {type(model).__name__}, but got missing "
            f"keys {missing[:4]} and unexpected keys {unexpected[:4]}; reinstall saliency-tubes"
        )
    return model


def _classes(num_classes: int | None) -> int:
    if num_classes is None:
        return len(COLOURS)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise InputError(f"expected num_classes to be None or an int >= 1, but got {num_classes!r}")
    return num_classes


def tiny_colours_vit(*, pretrained: bool = True, num_classes: int | None = None) -> TinyVideoViT:
    """:class:`TinyVideoViT`, with the shipped weights by default, in eval mode."""
    model = TinyVideoViT(num_classes=_classes(num_classes))
    return (_shipped(model, VIT_WEIGHTS, num_classes) if pretrained else model).eval()  # type: ignore[return-value]


def tiny_colours(*, pretrained: bool = True, num_classes: int | None = None) -> TinyActionNet:
    """The colour CNN (``TinyActionNet(motion=False)``), shipped weights by default, eval mode."""
    model = TinyActionNet(num_classes=_classes(num_classes), motion=False)
    return (_shipped(model, CNN_WEIGHTS, num_classes) if pretrained else model).eval()  # type: ignore[return-value]
