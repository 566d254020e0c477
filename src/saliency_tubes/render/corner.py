"""A small label in a picture's corner: what made a standalone heat or focus video.

A heat video shared alone has no strip above it to say which model drew it (and that an
untrained network or the synthetic-only embedded model did): :func:`corner_label` writes
a few short lines in white on a dark box in the bottom-left corner, over as few of the
picture's pixels as the text needs. The ink is laid out once per text and frame size.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from ..errors import InputError
from .layout import font

__all__ = ["CORNER_DIM", "corner_label", "corner_size"]

#: How much the box behind the label darkens the picture (its pixels times 1 - this).
CORNER_DIM = 0.65


def corner_size(h: int, w: int) -> int:
    """The label's font size on an ``h`` x ``w`` picture: ``clip(min(h, w) / 28, 8, 18)``."""
    return int(np.clip(round(min(h, w) / 28), 8, 18))


@lru_cache(maxsize=32)
def _ink(text: str, h: int, w: int, size: int) -> np.ndarray:
    """Coverage of the label's text in its box, ``(bh, bw)`` float32 in [0, 1], with the box
    at most the picture's width and half its height (longer lines are cut with ``...``)."""
    face = font(size)
    pad = max(2, size // 4)
    measure = ImageDraw.Draw(Image.new("L", (1, 1)))
    room = max(w - 2 * pad, 1)
    lines = []
    for line in text.split("\n"):
        cut = line
        while cut and measure.textlength(cut if cut == line else cut + "...", font=face) > room:
            cut = cut[:-1]
        lines.append(cut if cut == line else cut + "...")
    body = "\n".join(lines)
    left, top, right, bottom = measure.multiline_textbbox((0, 0), body, font=face, spacing=1)
    bw = min(w, math.ceil(right - left) + 2 * pad)
    bh = min(max(h // 2, 1), math.ceil(bottom - top) + 2 * pad)
    mask = Image.new("L", (bw, bh), 0)
    ImageDraw.Draw(mask).multiline_text(
        (pad - left, pad - top), body, font=face, fill=255, spacing=1
    )
    ink = np.asarray(mask, dtype=np.float32) / 255.0
    ink.setflags(write=False)
    return ink


def corner_label(frame: np.ndarray, text: str, font_size: int | None = None) -> np.ndarray:
    """``frame`` with ``text`` (lines split at ``\\n``) in its bottom-left corner.

    Inside the label's box each pixel ``F`` becomes ``B + (255 - B) c`` with
    ``B = round((1 - CORNER_DIM) F)`` and ``c`` the text's anti-aliased coverage; every pixel
    outside the box is unchanged. An empty ``text`` returns the frame as it is.

    Args:
        frame: ``(H, W, 3)`` uint8 RGB.
        text: The label.
        font_size: Text size in pixels; default :func:`corner_size`.

    Returns:
        ``(H, W, 3)`` uint8, a new array (``frame`` itself without text).
    """
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise InputError(
            f"expected an (H, W, 3) uint8 frame, but got {frame.dtype} {tuple(frame.shape)}; "
            "pass an RGB picture"
        )
    if not text:
        return frame
    h, w = frame.shape[:2]
    size = int(font_size) if font_size is not None else corner_size(h, w)
    ink = _ink(str(text), h, w, max(size, 1))
    bh, bw = ink.shape
    out = frame.copy()
    box = out[h - bh :, :bw].astype(np.float32)
    base = np.rint(box * (1.0 - CORNER_DIM))
    out[h - bh :, :bw] = np.clip(np.rint(base + (255.0 - base) * ink[..., None]), 0, 255).astype(
        np.uint8
    )
    return out
