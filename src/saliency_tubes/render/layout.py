"""Captions, label strips, layouts (side by side, grids) and colour bars around the drawn frames.

Pure functions on numpy arrays: frames are ``(H, W, 3)`` uint8 RGB; every function returns a
new array (or PNG bytes). Text is drawn with PIL's bundled font (:func:`font`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from saliency_tubes.errors import InputError

from .frames import check_frame, check_unit, colormap_of, to_uint8

__all__ = [
    "caption",
    "colorbar",
    "font",
    "grid",
    "grid_columns",
    "label_strip",
    "png_bytes",
    "side_by_side",
]


# --------------------------------------------------------------------------------------
# Captions and layouts
# --------------------------------------------------------------------------------------


@lru_cache(maxsize=16)
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """PIL's bundled font at ``size`` px (FreeType), else its small bitmap font."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # old Pillow or no FreeType
        return ImageFont.load_default()


def _fit(
    draw: ImageDraw.ImageDraw,
    line: str,
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
    width: int,
) -> str:
    """``line``, shortened with ``...`` if needed so it is at most ``width`` pixels wide."""
    if draw.textlength(line, font=font) <= width:
        return line
    lo, hi = 0, len(line)
    while lo < hi:  # longest prefix that fits with the ellipsis
        mid = (lo + hi + 1) // 2
        if draw.textlength(line[:mid] + "...", font=font) <= width:
            lo = mid
        else:
            hi = mid - 1
    return line[:lo] + "..."


def caption(
    frame: np.ndarray,
    text: str,
    position: Literal["top", "bottom"] = "top",
    *,
    font_size: int | None = None,
    band_opacity: float = 0.6,
) -> np.ndarray:
    """Write ``text`` in white on a dark band across the top or bottom of the frame.

    The band spans the full width and is the text height plus a margin; inside it the frame
    is darkened, ``band = round((1 - band_opacity) * F)``, and the white text laid over it
    with PIL's bundled font (``ImageFont.load_default(size=...)``) by its anti-aliased
    coverage ``c``: ``round(band + (255 - band) * c)``. The text is laid out once per text and
    frame size. Lines (``\\n``) too wide for the frame end in ``...``. Pixels outside the band
    are unchanged.

    Args:
        frame: ``(H, W, 3)`` uint8 RGB.
        text: The caption (may hold several lines).
        position: ``"top"`` or ``"bottom"``.
        font_size: Text size in pixels; default ``clip(round(min(H, W) / 18), 10, 48)``.
        band_opacity: How much the band darkens the frame, in ``[0, 1]``.

    Returns:
        ``(H, W, 3)`` uint8.

    Raises:
        InputError: Wrong frame, unknown position or bad opacity.
    """
    f = check_frame(frame)
    if position not in ("top", "bottom"):
        raise InputError(
            f"expected position 'top' or 'bottom', but got {position!r}; pick one of the two"
        )
    dim = check_unit(band_opacity, "band_opacity")
    h, w = f.shape[:2]
    size = int(font_size) if font_size is not None else int(np.clip(round(min(h, w) / 18), 10, 48))
    ink = _caption_ink(str(text), h, w, max(size, 1))
    band_h = ink.shape[0]
    out = f.copy()
    rows = slice(0, band_h) if position == "top" else slice(h - band_h, h)
    band = np.rint(f[rows].astype(np.float32) * (1.0 - dim))
    out[rows] = to_uint8(band + (255.0 - band) * ink[..., None])
    return out


#: Grey level of the label strips drawn outside the pictures.
STRIP_GREY = 24


def label_strip(
    text: str, width: int, picture_height: int, font_size: int | None = None
) -> np.ndarray:
    """``text`` in white on a dark strip ``width`` pixels wide, to stand above a picture
    ``picture_height`` pixels high (the font as :func:`caption` picks it for that picture),
    so that the picture itself stays untouched. Read-only ``(h, width, 3)`` uint8, made
    once per text and size."""
    size = (
        int(font_size)
        if font_size is not None
        else int(np.clip(round(min(picture_height, width) / 18), 10, 48))
    )
    return _strip(str(text), int(width), max(size, 1))


@lru_cache(maxsize=64)
def _strip(text: str, width: int, size: int) -> np.ndarray:
    ink = _caption_ink(text, 10_000, width, size)
    band = STRIP_GREY + (255.0 - STRIP_GREY) * ink
    out = np.repeat(to_uint8(band)[..., None], 3, axis=2)
    out.setflags(write=False)
    return out


@lru_cache(maxsize=64)
def _caption_ink(text: str, h: int, w: int, size: int) -> np.ndarray:
    """The coverage of the white text of a caption band, ``(band_h, W)`` float32 in [0, 1].

    Laid out once per text and frame size (PIL's bundled font, anti-aliased): every frame of
    a video reuses it.
    """
    face = font(size)
    margin = max(2, size // 3)
    measure = ImageDraw.Draw(Image.new("L", (1, 1)))
    lines = [_fit(measure, line, face, max(w - 2 * margin, 1)) for line in text.split("\n")]
    body = "\n".join(lines)
    left, top, right, bottom = measure.multiline_textbbox((0, 0), body, font=face)
    band_h = min(h, math.ceil(bottom) + 2 * margin)
    mask = Image.new("L", (w, band_h), 0)
    ImageDraw.Draw(mask).multiline_text((margin - left, margin), body, font=face, fill=255)
    ink = np.asarray(mask, dtype=np.float32) / 255.0
    ink.setflags(write=False)
    return ink


def _fill_value(fill: int | Sequence[int]) -> np.ndarray:
    value = np.broadcast_to(np.asarray(fill, dtype=np.int64), (3,))
    if value.min() < 0 or value.max() > 255:
        raise InputError(
            f"expected fill in [0, 255] (grey or RGB), but got {fill!r}; "
            "pass e.g. 0 or (255, 255, 255)"
        )
    return value.astype(np.uint8)


def _place(frame: np.ndarray, h: int, w: int, fill: np.ndarray) -> np.ndarray:
    """``frame`` centred on an ``(h, w)`` canvas of ``fill``."""
    fh, fw = frame.shape[:2]
    if (fh, fw) == (h, w):
        return frame
    canvas = np.empty((h, w, 3), dtype=np.uint8)
    canvas[:] = fill
    y, x = (h - fh) // 2, (w - fw) // 2
    canvas[y : y + fh, x : x + fw] = frame
    return canvas


def side_by_side(
    frames: Sequence[np.ndarray], *, gap: int = 0, fill: int | Sequence[int] = 0
) -> np.ndarray:
    """Frames left to right; shorter ones are centred vertically on ``fill``.

    Args:
        frames: ``(H_i, W_i, 3)`` uint8 frames (at least one).
        gap: Pixels of ``fill`` between frames.
        fill: Padding colour, grey level or RGB.

    Returns:
        ``(max H_i, sum W_i + gap * (n - 1), 3)`` uint8.
    """
    return _layout(frames, max(len(frames), 1), gap, fill, uniform=False)


def grid(
    frames: Sequence[np.ndarray],
    cols: int,
    *,
    gap: int = 0,
    fill: int | Sequence[int] = 0,
) -> np.ndarray:
    """Frames in rows of ``cols``, each centred in a cell of the largest frame's size.

    Args:
        frames: ``(H_i, W_i, 3)`` uint8 frames (at least one), in reading order.
        cols: Cells per row; a shorter last row is centred (``fill`` on both sides).
        gap: Pixels of ``fill`` between cells.
        fill: Padding colour, grey level or RGB.

    Returns:
        ``(rows * H + gap * (rows - 1), cols * W + gap * (cols - 1), 3)`` uint8 with
        ``H, W`` the largest frame height and width and ``rows = ceil(n / cols)``.

    Raises:
        InputError: No frames, a bad frame, ``cols < 1`` or ``gap < 0``.
    """
    return _layout(frames, cols, gap, fill, uniform=True)


def _layout(
    frames: Sequence[np.ndarray],
    cols: int,
    gap: int,
    fill: int | Sequence[int],
    *,
    uniform: bool,
) -> np.ndarray:
    """Rows of ``cols`` frames; cells share the largest size (``uniform``) or fit each frame."""
    if len(frames) == 0:
        raise InputError("expected at least one frame, but got none; pass a list of frames")
    if isinstance(cols, bool) or not isinstance(cols, (int, np.integer)) or cols < 1:
        raise InputError(
            f"expected cols to be a positive integer, but got {cols!r}; pass e.g. cols=2"
        )
    if isinstance(gap, bool) or not isinstance(gap, (int, np.integer)) or gap < 0:
        raise InputError(f"expected gap to be an integer >= 0, but got {gap!r}; pass e.g. 4")
    fs = [check_frame(f, f"frames[{i}]") for i, f in enumerate(frames)]
    value = _fill_value(fill)
    cell_h = max(f.shape[0] for f in fs)
    rows = -(-len(fs) // cols)
    out_rows = []
    for r in range(rows):
        row = fs[r * cols : (r + 1) * cols]
        widths = [f.shape[1] for f in row]
        if uniform:
            cell_w = max(f.shape[1] for f in fs)
            widths = [cell_w] * cols
        tiles: list[np.ndarray] = []
        for c, width in enumerate(widths[: len(row)]):
            if c > 0 and gap:
                tiles.append(np.broadcast_to(value, (cell_h, gap, 3)))
            tiles.append(_place(row[c], cell_h, width, value))
        line = np.concatenate(tiles, axis=1)
        if uniform and len(row) < cols:  # the short last row, centred
            total = cols * widths[0] + gap * (cols - 1)
            left = (total - line.shape[1]) // 2
            right = total - line.shape[1] - left
            line = np.concatenate(
                [
                    np.broadcast_to(value, (cell_h, left, 3)),
                    line,
                    np.broadcast_to(value, (cell_h, right, 3)),
                ],
                axis=1,
            )
        out_rows.append(line)
        if r < rows - 1 and gap:
            out_rows.append(np.broadcast_to(value, (gap, out_rows[-1].shape[1], 3)))
    return np.ascontiguousarray(np.concatenate(out_rows, axis=0))


def grid_columns(n: int, most: int = 4) -> int:
    """Columns for ``n`` panels: one row up to ``most``; beyond, the count between
    ``ceil(sqrt(n))`` and ``most`` that leaves the fewest empty cells (the wider on a tie),
    so 5 panels take 3 columns (3 + 2), not 4 (4 + 1 and three holes)."""
    if n <= most:
        return max(1, n)
    low = min(most, int(np.ceil(np.sqrt(n))))
    return min(range(low, most + 1), key=lambda c: (-(-n // c) * c - n, -c))


def colorbar(
    length: int,
    thickness: int = 16,
    colormap: str = "jet",
    *,
    vertical: bool = True,
) -> np.ndarray:
    """A colour-map legend strip: saliency 1 at the top (vertical) or right (horizontal).

    Args:
        length: Pixels along the scale (e.g. the frame height, to put it
            :func:`side_by_side` with a frame).
        thickness: Pixels across.
        colormap: Matplotlib colour map name.
        vertical: ``(length, thickness, 3)`` when true, ``(thickness, length, 3)`` otherwise.

    Returns:
        uint8 RGB strip.
    """
    for name, v in (("length", length), ("thickness", thickness)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise InputError(
                f"expected {name} to be a positive integer, but got {v!r}; pass a size in pixels"
            )
    lut = colormap_of(colormap)
    levels = np.rint(np.linspace(0.0, 255.0, int(length))).astype(np.intp)
    strip = lut[levels]  # (length, 3), low to high
    if vertical:
        return np.ascontiguousarray(np.repeat(strip[::-1, None, :], thickness, axis=1))
    return np.ascontiguousarray(np.repeat(strip[None, :, :], thickness, axis=0))


def png_bytes(image: np.ndarray) -> bytes:
    """An ``(H, W, 3)`` uint8 image as the bytes of an optimised PNG file."""
    import io

    buffer = io.BytesIO()
    Image.fromarray(check_frame(image, "image")).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
