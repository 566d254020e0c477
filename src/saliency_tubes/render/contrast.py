r"""Drawing contrastive tubes (:func:`saliency_tubes.contrastive_tube`): a diverging colour
map over the frame, and its labelled colour bar."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from ..errors import InputError
from .frames import colormap as colormap_lut
from .frames import luma
from .layout import colorbar, font
from .unseen import mark_unseen

__all__ = ["DIVERGING", "contrast_frame", "contrast_legend"]

#: Diverging colour map of contrastive tubes: blue (B) - white (0) - red (A).
DIVERGING = "RdBu_r"


def contrast_frame(
    frame: np.ndarray,
    contrast: np.ndarray,
    *,
    colormap: str = DIVERGING,
    opacity: float = 0.7,
) -> np.ndarray:
    """Draw a signed contrast map over a frame with a diverging colour map.

    .. math:: a = \\alpha\\,|c|, \\qquad \\text{out} = \\operatorname{round}\\big((1 - a)\\,F
              + a\\, C[\\operatorname{round}(255 (c + 1) / 2)]\\big)

    so "no preference" (``c = 0``) leaves the frame as it is and the colour grows with the
    preference (red for A, blue for B with the default ``RdBu_r``). Unseen pixels (NaN) are
    marked as in :func:`saliency_tubes.render.mark_unseen` over the greyscale frame.

    Args:
        frame: ``(H, W, 3)`` uint8 RGB.
        contrast: ``(H, W)`` in ``[-1, 1]``, NaN where unseen.
        colormap: A diverging matplotlib colour map.
        opacity: ``alpha``, the colour's weight at ``|c| = 1``.

    Returns:
        ``(H, W, 3)`` uint8.
    """
    f = np.asarray(frame)
    c = np.asarray(contrast, dtype=np.float32)
    if f.ndim != 3 or f.shape[2] != 3 or f.dtype != np.uint8 or c.shape != f.shape[:2]:
        raise InputError(
            f"expected an (H, W, 3) uint8 frame and an (H, W) contrast, but got "
            f"{f.shape} {f.dtype} and {c.shape}; map the tube onto the frame first"
        )
    if not 0.0 <= opacity <= 1.0:
        raise InputError(f"expected opacity in [0, 1], but got {opacity!r}")
    unseen = np.isnan(c)
    c = np.clip(np.nan_to_num(c, nan=0.0), -1.0, 1.0)
    lut = colormap_lut(colormap)
    colour = lut[np.rint((c + 1.0) * 127.5).astype(np.intp)].astype(np.float32)
    a = (opacity * np.abs(c))[..., None]
    out = f.astype(np.float32) * (1.0 - a) + colour * a
    if unseen.any():
        grey = np.repeat(luma(f)[..., None], 3, axis=2)
        out[unseen] = mark_unseen(grey, unseen)[unseen]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def contrast_legend(
    width: int, names: Sequence[str], *, colormap: str = DIVERGING, height: int | None = None
) -> np.ndarray:
    """The colour bar of a contrastive tube with its labels, to put under the frame.

    A horizontal bar from -1 (left, class B) through 0 (white) to +1 (right, class A),
    above a text row ``"-1  B"``, ``"0"``, ``"A  +1"``.

    Args:
        width: Pixels (the frame's width).
        names: ``(A, B)``.
        colormap: The map used by :func:`contrast_frame`.
        height: Total pixels; default ``clip(width / 12, 24, 48)``.

    Returns:
        ``(height, width, 3)`` uint8.
    """
    a, b = names
    total = int(height) if height is not None else int(np.clip(width // 12, 24, 48))
    bar_h = max(4, total // 3)
    bar = colorbar(width, bar_h, colormap, vertical=False)
    text_h = total - bar_h
    size = max(8, int(text_h * 0.7))
    face = font(size)
    label = Image.new("RGB", (width, max(text_h, 1)), (0, 0, 0))
    draw = ImageDraw.Draw(label)
    y = max(0, (text_h - size) // 2 - 1)
    right = f"{a}  +1"
    draw.text((2, y), f"-1  {b}", font=face, fill=(255, 255, 255))
    draw.text(
        ((width - draw.textlength("0", font=face)) / 2, y), "0", font=face, fill=(255, 255, 255)
    )
    draw.text(
        (width - 2 - draw.textlength(right, font=face), y), right, font=face, fill=(255, 255, 255)
    )
    return np.concatenate([bar, np.asarray(label, dtype=np.uint8)], axis=0)
