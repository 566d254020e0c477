"""``tiny-colours-mvit``: a small MViT (pooling attention) trained on the colour clips.

Built with torchvision's own ``MViT`` class (the class of the ``mvit_v1_b`` / ``mvit_v2_s``
presets) in MViTv2's form (relative positions, pooled-query residual, projection after
attention, learned depthwise conv pools with a LayerNorm) and a small
:data:`BLOCKS` setting for 16 x 64 x 64 clips: a 4 x 8 x 8 patch embedding (a 4 x 8 x 8
token grid plus the class token), a first block whose keys and values are pooled to
4 x 4 x 4, a second block that strides its queries (and its pooled residual) to 4 x 4 x 4
and doubles the width, and a third at that grid. It knows only the 6 synthetic colour
classes of :mod:`saliency_tubes.synthetic_colours`.

Weights: ``weights/tiny_colours_mvit.safetensors`` with its training record (``.json``),
written by ``scripts/train_default_model.py --task colour-mvit``. torchvision is needed to
build it (its class), as for the torchvision presets.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from ...synthetic_colours import COLOURS
from ...tokens import TokenGrid
from ..sources._torchvision import import_torchvision
from .tiny_vit import WEIGHTS, class_count, load_shipped

MVIT_WEIGHTS: Path = WEIGHTS / "tiny_colours_mvit.safetensors"
PATCH = (4, 8, 8)
"""The patch embedding's kernel and stride: a token is a 4 x 8 x 8 tubelet."""
BLOCKS: tuple[tuple[int, int, int, tuple[int, int, int], tuple[int, int, int]], ...] = (
    # (heads, input channels, output channels, query stride, key/value stride); every
    # pool's kernel is 3 x 3 x 3 (torchvision's MSBlockConfig)
    (1, 32, 32, (1, 1, 1), (1, 2, 2)),
    (2, 32, 64, (1, 2, 2), (1, 1, 1)),
    (2, 64, 64, (1, 1, 1), (1, 1, 1)),
)
"""``tiny-colours-mvit``'s blocks."""
GRADCAM_LAYER = "blocks.0.norm1"
"""The Grad-CAM layer: the normalised patch tokens that the first block's attention reads
(4 x 8 x 8). Chosen by ``benchmarks/vit_planted.py`` on clips 100..123 (not the checks'):
the tube's maximum within one patch of the coloured object in 0.654 of the frames there,
against 0.487 for ``blocks.1.norm1`` and 0.115 for ``blocks.2.norm1`` (the last
attention's tokens, the torchvision presets' choice, on the pooled 4 x 4 x 4 grid)."""
GRADCAM_TOKENS = TokenGrid(stride=PATCH, prefix=1)
"""The Grad-CAM layer's tokens: the class token, then the 4 x 8 x 8 patch grid."""


def tiny_mvit(num_classes: int = len(COLOURS)) -> nn.Module:
    """The untrained network (torchvision ``MViT``, :data:`BLOCKS`, 16 x 64 x 64 clips)."""
    import_torchvision()
    from torchvision.models.video.mvit import MSBlockConfig, MViT

    kernel = [3, 3, 3]
    setting = [
        MSBlockConfig(h, c_in, c_out, kernel, kernel, list(sq), list(skv))
        for h, c_in, c_out, sq, skv in BLOCKS
    ]
    return MViT(
        spatial_size=(64, 64),
        temporal_size=16,
        block_setting=setting,
        residual_pool=True,
        residual_with_cls_embed=False,
        rel_pos_embed=True,
        proj_after_attn=True,
        dropout=0.1,
        num_classes=num_classes,
        patch_embed_kernel=PATCH,
        patch_embed_stride=PATCH,
        patch_embed_padding=(0, 0, 0),
    )


def tiny_colours_mvit(*, pretrained: bool = True, num_classes: int | None = None) -> nn.Module:
    """:func:`tiny_mvit` with the shipped weights by default, in eval mode."""
    model = tiny_mvit(class_count(num_classes))
    head = "head.1."
    return (load_shipped(model, MVIT_WEIGHTS, num_classes, head) if pretrained else model).eval()
