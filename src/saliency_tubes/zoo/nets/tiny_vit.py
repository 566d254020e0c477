"""The small colour models: a CNN and a video transformer, both shipped with the package.

Both are built for the synthetic colour clips of :mod:`saliency_tubes.synthetic_colours`
(the class is the hue of the one coloured object among grey distractors), so a tube can be
checked against the object's pixels; they know only those 6 colour classes.

* :class:`TinyVideoViT`, a video transformer written in plain torch (no ``transformers``
  needed) for 16 x 64 x 64 clips: tubelets embedded by a ``Conv3d`` (VideoMAE's linear
  embedding) or by :func:`conv_stem`, tokens in (t, h, w) order, learned position
  embeddings, an optional class token, pre-norm blocks of joint space-time attention
  (PyTorch's ``scaled_dot_product_attention``) and MLP, and a head on the class token or
  on the token mean (LayerNorm, linear). It declares its attention
  (:meth:`TinyVideoViT.attention_layout`) for ``rollout`` and ``relevancy``. The registered
  ``tiny-colours-vit`` (:func:`tiny_colours_vit`) is :data:`SHIPPED`: conv stem, 4 x 8 x 8
  tubelets (a 4 x 8 x 8 grid), 3 blocks of width 48 with 3 heads, a class token.
* ``tiny-colours``: the colour CNN (``TinyActionNet(motion=False)``, :mod:`.tiny`).

Weights: ``weights/tiny_colours.safetensors`` and ``weights/tiny_colours_vit.safetensors``,
each with its training record (``.json``), written by ``scripts/train_default_model.py
--task colour`` and ``--task colour-vit``.
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
SHIPPED: dict[str, object] = {
    "dim": 48,
    "depth": 3,
    "heads": 3,
    "hidden": 96,
    "stem": True,
    "readout": "cls",
    "tubelet": [4, 8, 8],
}
"""The architecture of ``tiny-colours-vit`` (:func:`tiny_colours_vit`)."""
GRADCAM_LAYER = f"blocks.{int(SHIPPED['depth']) - 2}"  # type: ignore[call-overload]
"""``tiny-colours-vit``'s Grad-CAM layer: the tokens of the block before the last (the last
block's patch tokens do not reach the class token the head reads)."""


def conv_stem(dim: int, tubelet: tuple[int, int, int]) -> nn.Sequential:
    """A convolutional patch embedding with the tubelets' total stride (t, 8, 8): a 1 x 4 x 4
    conv of stride 4 (32 channels), a GELU, then a t x 2 x 2 conv of stride (t, 2, 2) to
    ``dim``. Each token still sees only its own t x 8 x 8 tubelet (the strides equal the
    kernels)."""
    t, h, w = tubelet
    if (h, w) != (8, 8):
        raise InputError(f"expected the conv stem's tubelet to be t x 8 x 8, but got {tubelet}")
    return nn.Sequential(
        nn.Conv3d(3, 32, kernel_size=(1, 4, 4), stride=(1, 4, 4)),
        nn.GELU(),
        nn.Conv3d(32, dim, kernel_size=(t, 2, 2), stride=(t, 2, 2)),
    )


class Embedding(nn.Module):
    """Tubelets -> tokens: a ``Conv3d`` with stride = kernel = ``tubelet`` (VideoMAE's linear
    tubelet embedding) or :func:`conv_stem`, flattened in (t, h, w) order, plus learned
    position embeddings; with ``cls``, a learned class token goes first (ViViT's)."""

    def __init__(
        self,
        dim: int,
        *,
        stem: bool = False,
        cls: bool = False,
        tubelet: tuple[int, int, int] = TUBELET,
    ) -> None:
        super().__init__()
        grid = [c // s for c, s in zip(CLIP, tubelet, strict=True)]
        self.proj = (
            conv_stem(dim, tubelet)
            if stem
            else nn.Conv3d(3, dim, kernel_size=tubelet, stride=tubelet)
        )
        self.cls = nn.Parameter(torch.zeros(1, 1, dim)) if cls else None
        length = grid[0] * grid[1] * grid[2] + (1 if cls else 0)
        self.position = nn.Parameter(torch.randn(1, length, dim) * 0.02)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        if tuple(clip.shape[2:]) != CLIP:
            raise InputError(
                f"expected clips of {CLIP[0]}x{CLIP[1]}x{CLIP[2]} (the model's position "
                f"embeddings), but got {'x'.join(map(str, clip.shape[2:]))}; use the preset's "
                "frames and size"
            )
        x = self.proj(clip).flatten(2).transpose(1, 2)
        if self.cls is not None:
            x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1)
        return x + self.position


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
    """A video transformer for 16 x 64 x 64 clips (see the module notes).

    Args:
        num_classes: outputs (the 6 colours by default).
        dim, depth, heads, hidden: width, blocks, attention heads, MLP width.
        stem: embed the tubelets with :func:`conv_stem` instead of one linear ``Conv3d``.
        readout: ``"mean"`` (token mean, LayerNorm, linear: VideoMAE's head) or ``"cls"`` (a
            class token; the head reads its LayerNormed output: ViViT's).
        norm_tokens: with ``readout="mean"``, LayerNorm each token before the mean instead
            of the mean (timm's ViT with average pooling): the class score is then exactly
            the mean over tokens of ``fc``'s weights times ``fc_norm``'s output plus the
            bias, so CAM and Grad-CAM on ``fc_norm`` are each token's share of it.
        tubelet: the (t, h, w) size of a token's tubelet (each divides 16 x 64 x 64).
    """

    def __init__(
        self,
        num_classes: int = len(COLOURS),
        dim: int = 32,
        depth: int = 3,
        heads: int = 2,
        hidden: int = 64,
        *,
        stem: bool = False,
        readout: str = "mean",
        tubelet: tuple[int, int, int] | list[int] = TUBELET,
        norm_tokens: bool = False,
    ) -> None:
        super().__init__()
        if readout not in ("mean", "cls"):
            raise InputError(f"expected readout 'mean' or 'cls', but got {readout!r}")
        if norm_tokens and readout != "mean":
            raise InputError(
                "expected norm_tokens only with readout 'mean', but got 'cls'; "
                "pass readout='mean' or norm_tokens=False"
            )
        self.norm_tokens = norm_tokens
        self.tubelet = (int(tubelet[0]), int(tubelet[1]), int(tubelet[2]))
        if any(c % s for c, s in zip(CLIP, self.tubelet, strict=True)):
            raise InputError(f"expected a tubelet dividing {CLIP}, but got {self.tubelet}")
        self.readout = readout
        self.embed = Embedding(dim, stem=stem, cls=readout == "cls", tubelet=self.tubelet)
        self.blocks = nn.ModuleList(Block(dim, heads, hidden) for _ in range(depth))
        self.fc_norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, num_classes)

    def tokens(self, clip: torch.Tensor) -> torch.Tensor:
        """(N, 3, 16, 64, 64) -> (N, [1 +] 512, dim) tokens (the class token first, then
        (t, h, w) order), positioned."""
        out: torch.Tensor = self.embed(clip)
        return out

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        x = self.tokens(clip)
        for block in self.blocks:
            x = block(x)
        if self.norm_tokens:
            return self.fc(self.fc_norm(x).mean(dim=1))
        pooled = x[:, 0] if self.readout == "cls" else x.mean(dim=1)
        return self.fc(self.fc_norm(pooled))

    def attention_layout(self) -> object:
        """What ``rollout`` and ``relevancy`` need: the attention modules (joint), the
        tokens' module and grid, and the head's readout (class token or mean)."""
        from ...methods.attention_sites import AttentionLayout, Site

        blocks = [b for b in self.blocks if isinstance(b, Block)]  # a ModuleList yields Modules
        sites = tuple(Site(f"blocks.{i}.attn", b.attn, "joint") for i, b in enumerate(blocks))
        prefix = 1 if self.readout == "cls" else 0
        return AttentionLayout(
            "tiny-vit",
            "embed",
            sites,
            "cls" if self.readout == "cls" else "mean",
            TokenGrid(self.tubelet, prefix, "thw"),
        )


def embed_grid(prefix: int = 0, tubelet: tuple[int, int, int] | list[int] = TUBELET) -> TokenGrid:
    """The reshape of the ``embed`` tokens and of the blocks' outputs (``prefix`` 1: the
    class token first, dropped)."""
    return TokenGrid((int(tubelet[0]), int(tubelet[1]), int(tubelet[2])), prefix, "thw")


def load_shipped(
    model: nn.Module, path: Path, num_classes: int | None, head: str = "fc."
) -> nn.Module:
    """``model`` with the shipped weights at ``path``; with another ``num_classes`` than the 6
    colours, the head's weights (names starting with ``head``) stay freshly initialised."""
    keep_head = num_classes in (None, len(COLOURS))
    state = read_state_dict(path)
    if not keep_head:
        state = {k: v for k, v in state.items() if not k.startswith(head)}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise ModelLoadError(
            f"expected the weights in {path} to match {type(model).__name__}, but loading "
            f"failed ({str(exc).splitlines()[0]}); reinstall saliency-tubes"
        ) from None
    missing = [k for k in missing if keep_head or not k.startswith(head)]
    if missing or unexpected:
        raise ModelLoadError(
            f"expected the weights in {path} to match {type(model).__name__}, but got missing "
            f"keys {missing[:4]} and unexpected keys {unexpected[:4]}; reinstall saliency-tubes"
        )
    return model


def class_count(num_classes: int | None) -> int:
    """The number of outputs: the 6 colours for None, else a positive int (checked)."""
    if num_classes is None:
        return len(COLOURS)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise InputError(f"expected num_classes to be None or an int >= 1, but got {num_classes!r}")
    return num_classes


def tiny_colours_vit(*, pretrained: bool = True, num_classes: int | None = None) -> TinyVideoViT:
    """:class:`TinyVideoViT`, with the shipped weights by default, in eval mode."""
    model = TinyVideoViT(num_classes=class_count(num_classes), **SHIPPED)  # type: ignore[arg-type]
    return (load_shipped(model, VIT_WEIGHTS, num_classes) if pretrained else model).eval()  # type: ignore[return-value]


def tiny_colours(*, pretrained: bool = True, num_classes: int | None = None) -> TinyActionNet:
    """The colour CNN (``TinyActionNet(motion=False)``), shipped weights by default, eval mode."""
    model = TinyActionNet(num_classes=class_count(num_classes), motion=False)
    return (load_shipped(model, CNN_WEIGHTS, num_classes) if pretrained else model).eval()  # type: ignore[return-value]
