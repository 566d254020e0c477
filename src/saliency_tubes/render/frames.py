"""Drawing saliency over frames: heat tubes, focus tubes, captions and layouts.

Everything here is a pure function on numpy arrays, vectorised over pixels: frames are
``(H, W, 3)`` uint8 RGB, saliency maps are ``(H, W)`` floats in ``[0, 1]`` with NaN where the
model never saw the pixel (outside its crop; see :meth:`saliency_tubes.video.TubeMapper.frame`).
Inputs are never modified; every function returns a new uint8 array.

* :func:`heat`: the Saliency Tubes *heat tube* frame, a colour map blended over the frame.
* :func:`focus`: the *focus tube* frame, the frame kept where salient and faded into a
  background elsewhere.
* :func:`caption`, :func:`side_by_side`, :func:`grid`, :func:`colorbar`: annotation and layout.

**Unseen pixels** (NaN saliency) are marked the same way by :func:`heat` and :func:`focus`
(:mod:`.unseen`): the base image (the greyscale frame for heat, the background for focus)
at half brightness under soft light-grey diagonal stripes, so a cropped-away border reads
as "no data" rather than as "not salient".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from saliency_tubes.errors import InputError
from saliency_tubes.vocabulary import BACKGROUNDS

from .unseen import mark_of

__all__ = [
    "caption",
    "colorbar",
    "colormap",
    "focus",
    "font",
    "gaussian_blur",
    "grid",
    "grid_columns",
    "heat",
    "label_strip",
    "luma",
    "png_bytes",
    "side_by_side",
]

#: Authors' focus-tube minimum opacity (Saliency Tubes, Stergiou et al. 2019).
DEFAULT_FLOOR = 20 / 255


Background = Literal["black", "dark", "blur", "gray"]


# --------------------------------------------------------------------------------------
# Checks and small helpers
# --------------------------------------------------------------------------------------


def _check_frame(frame: np.ndarray, name: str = "frame") -> np.ndarray:
    arr = np.asarray(frame)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8 or min(arr.shape[:2]) < 1:
        raise InputError(
            f"expected {name} of shape (H, W, 3) and dtype uint8, but got shape {arr.shape} "
            f"dtype {arr.dtype}; pass an RGB frame as read by saliency_tubes.video"
        )
    return arr


def _check_saliency(saliency: np.ndarray, hw: tuple[int, ...]) -> np.ndarray:
    sal = np.asarray(saliency, dtype=np.float32)
    if sal.shape != tuple(hw):
        raise InputError(
            f"expected saliency of shape {tuple(hw)} (the frame's H, W), but got {sal.shape}; "
            "map the tube onto the frame with TubeMapper.frame"
        )
    return sal


def _check_unit(value: float, name: str) -> float:
    v = float(value)
    if not 0.0 <= v <= 1.0:
        raise InputError(f"expected {name} in [0, 1], but got {value!r}; pass a fraction")
    return v


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """Round half to even and clip to ``[0, 255]``."""
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def luma(frame: np.ndarray) -> np.ndarray:
    """Greyscale of an RGB frame, ``Y = 0.299 R + 0.587 G + 0.114 B`` (BT.601), float32 ``(H, W)``."""
    return _weighted_luma(_check_frame(frame).astype(np.float32))


def _weighted_luma(px: np.ndarray) -> np.ndarray:
    """BT.601 luma of float32 RGB values ``(..., 3)``: the one formula of :func:`luma`."""
    return px[..., 0] * 0.299 + px[..., 1] * 0.587 + px[..., 2] * 0.114


# --------------------------------------------------------------------------------------
# Colour maps
# --------------------------------------------------------------------------------------


@lru_cache(maxsize=64)
def colormap(name: str = "jet") -> np.ndarray:
    """A matplotlib colour map sampled at 256 levels, ``(256, 3)`` uint8 RGB (read-only).

    Level ``k`` is the colour of saliency ``k / 255``. The default ``"jet"`` is the Saliency
    Tubes paper's map (dark blue ``(0, 0, 128)`` at 0, dark red ``(128, 0, 0)`` at 1).

    Args:
        name: Any matplotlib colour map name (``"jet"``, ``"viridis"``, ``"inferno"``,
            ``"turbo"``, ... and their ``"_r"`` reverses).

    Returns:
        The read-only lookup table (cached: do not modify; copy it to change it).

    Raises:
        InputError: ``name`` is not a matplotlib colour map.
    """
    import matplotlib

    try:
        cmap = matplotlib.colormaps[name]
    except (KeyError, ValueError, TypeError) as exc:
        examples = ", ".join(
            n
            for n in ("jet", "turbo", "viridis", "inferno", "magma", "hot")
            if n in matplotlib.colormaps
        )
        raise InputError(
            f"expected a matplotlib colour map name, but got {name!r}; "
            f"use e.g. {examples} (see matplotlib.colormaps)"
        ) from exc
    rgba = np.asarray(cmap(np.linspace(0.0, 1.0, 256)), dtype=np.float64)
    lut = _to_uint8(rgba[:, :3] * 255.0)
    lut.setflags(write=False)
    return lut


def _levels(sal: np.ndarray) -> np.ndarray:
    """Colour-map index ``round(255 * clip(s, 0, 1))`` (NaN -> 0), uint8."""
    s = np.nan_to_num(sal, nan=0.0, posinf=1.0, neginf=0.0)
    return np.rint(np.clip(s, 0.0, 1.0) * 255.0).astype(np.uint8)


# --------------------------------------------------------------------------------------
# Heat and focus tubes
# --------------------------------------------------------------------------------------


def heat(
    frame: np.ndarray,
    saliency: np.ndarray,
    colormap: str = "jet",
    opacity: float = 0.5,
) -> np.ndarray:
    """Heat-tube frame: the colour map of the saliency blended over the frame.

    .. math:: \\text{out} = \\operatorname{round}\\big((1 - \\alpha)\\, F + \\alpha\\,
              C[\\operatorname{round}(255\\, s)]\\big)

    with ``F`` the frame, ``C`` the colour map (:func:`colormap`), ``s`` the saliency clipped
    to ``[0, 1]`` and ``alpha = opacity`` (0.5 as in the paper). Unseen pixels (NaN) show the
    greyscale frame, marked as described in :func:`~saliency_tubes.render.unseen.mark_unseen`.

    Args:
        frame: ``(H, W, 3)`` uint8 RGB.
        saliency: ``(H, W)`` float, ``[0, 1]``, NaN where unseen.
        colormap: Matplotlib colour map name.
        opacity: Weight ``alpha`` of the colour map, in ``[0, 1]``.

    Returns:
        ``(H, W, 3)`` uint8.

    Raises:
        InputError: Wrong shapes/dtype, ``opacity`` outside ``[0, 1]``, unknown colour map.
    """
    f = _check_frame(frame)
    sal = _check_saliency(saliency, f.shape[:2])
    alpha = _check_unit(opacity, "opacity")
    frame_part, colour_part = _heat_tables(colormap, alpha)
    out = np.take(frame_part, f)  # (1 - alpha) F, float32
    out += np.take(colour_part, _levels(sal), axis=0)  # + alpha C[level]
    mark = mark_of(np.isnan(sal))
    if mark is not None:
        mark.put(out, mark.values(_weighted_luma(mark.at(f).astype(np.float32)))[:, None])
    return _to_uint8(out)


def _colormap_of(name: str) -> np.ndarray:
    """:func:`colormap` where a parameter of that name hides it."""
    return colormap(name)


@lru_cache(maxsize=32)
def _heat_tables(name: str, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """``(1 - alpha) * level`` for the 256 frame levels and ``alpha * C`` for the colour map's
    256 colours, float32: :func:`heat`'s two terms as lookups, computed once."""
    frame_part = np.arange(256, dtype=np.float32) * (1.0 - alpha)
    colour_part = _colormap_of(name).astype(np.float32) * alpha
    return frame_part, colour_part


def _box_blur(x: np.ndarray, radius: int, axis: int) -> np.ndarray:
    """Mean over ``2 r + 1`` neighbours along ``axis`` (edge replicated), via cumulative sums.

    ``out[j] = (c[j + w] - c[j]) / w`` with ``c`` the cumulative sum of the padded signal and
    ``w = 2 r + 1``: O(1) per pixel whatever the radius.
    """
    if radius <= 0:
        return x
    w = 2 * radius + 1
    pad = [(0, 0)] * x.ndim
    pad[axis] = (radius + 1, radius)
    c = np.cumsum(np.pad(x, pad, mode="edge"), axis=axis, dtype=np.float64)
    n = x.shape[axis]
    hi = np.take(c, np.arange(w, w + n), axis=axis)
    lo = np.take(c, np.arange(0, n), axis=axis)
    return ((hi - lo) / w).astype(np.float32)


def gaussian_blur(frame: np.ndarray, sigma: float) -> np.ndarray:
    """Approximate Gaussian blur: three box blurs per axis (separable).

    Three passes of a box of width ``w = 2 r + 1`` have variance ``3 (w^2 - 1) / 12``, so
    ``r = round((sqrt(4 sigma^2 + 1) - 1) / 2)`` approximates ``sigma`` (central limit
    theorem); the cost per pixel does not depend on ``sigma``.

    Args:
        frame: ``(H, W, 3)`` image (uint8 or float).
        sigma: Standard deviation in pixels (``<= 0``: no blur).

    Returns:
        ``(H, W, 3)`` float32.
    """
    out = np.asarray(frame, dtype=np.float32)
    radius = int(round((np.sqrt(4.0 * max(sigma, 0.0) ** 2 + 1.0) - 1.0) / 2.0))
    for _ in range(3):
        out = _box_blur(out, radius, axis=0)
        out = _box_blur(out, radius, axis=1)
    return out


def _background(f: np.ndarray, kind: str, blur_sigma: float | None) -> np.ndarray:
    if kind == "black":
        return np.zeros(f.shape, dtype=np.float32)
    if kind == "dark":
        return f.astype(np.float32) * 0.25
    if kind == "gray":
        return np.repeat(luma(f)[..., None], 3, axis=2)
    sigma = blur_sigma if blur_sigma is not None else max(2.0, min(f.shape[:2]) / 40.0)
    return gaussian_blur(f, sigma)


def focus(
    frame: np.ndarray,
    saliency: np.ndarray,
    floor: float = DEFAULT_FLOOR,
    background: Background = "black",
    *,
    blur_sigma: float | None = None,
) -> np.ndarray:
    """Focus-tube frame: the frame where salient, faded into a background elsewhere.

    .. math:: a = f + (1 - f)\\, s, \\qquad \\text{out} = \\operatorname{round}\\big(a\\,F +
              (1 - a)\\, B\\big)

    with ``s`` the saliency clipped to ``[0, 1]``, ``f = floor`` the minimum opacity (the
    authors used 20/255 over black) and background ``B``:

    * ``"black"``: 0 (the paper's focus tubes),
    * ``"dark"``: ``0.25 F``,
    * ``"blur"``: ``F`` Gaussian-blurred (:func:`gaussian_blur`, ``sigma = blur_sigma`` or
      ``max(2, min(H, W) / 40)``),
    * ``"gray"``: the greyscale frame (:func:`luma`).

    So ``s = 1`` returns the frame exactly and ``s = 0`` over black gives
    ``round(floor * F)``. Unseen pixels (NaN) show the background, marked as in
    :func:`~saliency_tubes.render.unseen.mark_unseen`.

    Args:
        frame: ``(H, W, 3)`` uint8 RGB.
        saliency: ``(H, W)`` float, ``[0, 1]``, NaN where unseen.
        floor: Minimum opacity ``f`` of the frame, in ``[0, 1]``.
        background: ``"black"``, ``"dark"``, ``"blur"`` or ``"gray"``.
        blur_sigma: Blur strength in pixels for ``"blur"``.

    Returns:
        ``(H, W, 3)`` uint8.

    Raises:
        InputError: Wrong shapes/dtype, ``floor`` outside ``[0, 1]``, unknown background.
    """
    f = _check_frame(frame)
    sal = _check_saliency(saliency, f.shape[:2])
    fl = _check_unit(floor, "floor")
    if background not in BACKGROUNDS:
        raise InputError(
            f"expected background in {', '.join(BACKGROUNDS)}, but got {background!r}; "
            "pick one of them"
        )
    s = np.clip(np.nan_to_num(sal, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    a = (fl + (1.0 - fl) * s)[..., None]
    out = np.multiply(f, a.astype(np.float32, copy=False), order="C")  # whatever f's layout
    mark = mark_of(np.isnan(sal))
    if background == "black":  # B = 0: nothing to add
        if mark is not None:
            mark.put(out, mark.values(None))
        return _to_uint8(out)
    bg = _background(f, background, blur_sigma)
    out += bg * (1.0 - a)
    if mark is not None:
        mark.put(out, mark.values(mark.at(bg)))
    return _to_uint8(out)


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
    f = _check_frame(frame)
    if position not in ("top", "bottom"):
        raise InputError(
            f"expected position 'top' or 'bottom', but got {position!r}; pick one of the two"
        )
    dim = _check_unit(band_opacity, "band_opacity")
    h, w = f.shape[:2]
    size = int(font_size) if font_size is not None else int(np.clip(round(min(h, w) / 18), 10, 48))
    ink = _caption_ink(str(text), h, w, max(size, 1))
    band_h = ink.shape[0]
    out = f.copy()
    rows = slice(0, band_h) if position == "top" else slice(h - band_h, h)
    band = np.rint(f[rows].astype(np.float32) * (1.0 - dim))
    out[rows] = _to_uint8(band + (255.0 - band) * ink[..., None])
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
    out = np.repeat(_to_uint8(band)[..., None], 3, axis=2)
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
    fs = [_check_frame(f, f"frames[{i}]") for i, f in enumerate(frames)]
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
    lut = _colormap_of(colormap)
    levels = np.rint(np.linspace(0.0, 255.0, int(length))).astype(np.intp)
    strip = lut[levels]  # (length, 3), low to high
    if vertical:
        return np.ascontiguousarray(np.repeat(strip[::-1, None, :], thickness, axis=1))
    return np.ascontiguousarray(np.repeat(strip[None, :, :], thickness, axis=0))


def png_bytes(image: np.ndarray) -> bytes:
    """An ``(H, W, 3)`` uint8 image as the bytes of an optimised PNG file."""
    import io

    buffer = io.BytesIO()
    Image.fromarray(_check_frame(image, "image")).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
