"""Drawing saliency over frames: heat tubes, focus tubes, captions and layouts.

Everything here is a pure function on numpy arrays, vectorised over pixels: frames are
``(H, W, 3)`` uint8 RGB, saliency maps are ``(H, W)`` floats in ``[0, 1]`` with NaN where the
model never saw the pixel (outside its crop; see :meth:`saliency_tubes.video.TubeMapper.frame`).
Inputs are never modified; every function returns a new uint8 array.

* :func:`heat`: the Saliency Tubes *heat tube* frame, a colour map blended over the frame.
* :func:`focus`: the *focus tube* frame, the frame kept where salient and faded into a
  background elsewhere.
* captions, layouts and colour bars are in :mod:`.layout`.

**Unseen pixels** (NaN saliency) are marked the same way by :func:`heat` and :func:`focus`
(:mod:`.unseen`): the base image (the greyscale frame for heat, the background for focus)
at half brightness under soft light-grey diagonal stripes, so a cropped-away border reads
as "no data" rather than as "not salient".
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import numpy as np

from saliency_tubes.errors import InputError
from saliency_tubes.vocabulary import BACKGROUNDS

from .unseen import mark_of

__all__ = [
    "colormap",
    "focus",
    "gaussian_blur",
    "heat",
    "luma",
]

#: Authors' focus-tube minimum opacity (Saliency Tubes, Stergiou et al. 2019).
DEFAULT_FLOOR = 20 / 255


Background = Literal["black", "dark", "blur", "gray"]


# --------------------------------------------------------------------------------------
# Checks and small helpers
# --------------------------------------------------------------------------------------


def check_frame(frame: np.ndarray, name: str = "frame") -> np.ndarray:
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


def check_unit(value: float, name: str) -> float:
    v = float(value)
    if not 0.0 <= v <= 1.0:
        raise InputError(f"expected {name} in [0, 1], but got {value!r}; pass a fraction")
    return v


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Round half to even and clip to ``[0, 255]``."""
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def luma(frame: np.ndarray) -> np.ndarray:
    """Greyscale of an RGB frame, ``Y = 0.299 R + 0.587 G + 0.114 B`` (BT.601), float32 ``(H, W)``."""
    return _weighted_luma(check_frame(frame).astype(np.float32))


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
    lut = to_uint8(rgba[:, :3] * 255.0)
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
    f = check_frame(frame)
    sal = _check_saliency(saliency, f.shape[:2])
    alpha = check_unit(opacity, "opacity")
    frame_part, colour_part = _heat_tables(colormap, alpha)
    out = np.take(frame_part, f)  # (1 - alpha) F, float32
    out += np.take(colour_part, _levels(sal), axis=0)  # + alpha C[level]
    mark = mark_of(np.isnan(sal))
    if mark is not None:
        mark.put(out, mark.values(_weighted_luma(mark.at(f).astype(np.float32)))[:, None])
    return to_uint8(out)


def colormap_of(name: str) -> np.ndarray:
    """:func:`colormap` where a parameter of that name hides it."""
    return colormap(name)


@lru_cache(maxsize=32)
def _heat_tables(name: str, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """``(1 - alpha) * level`` for the 256 frame levels and ``alpha * C`` for the colour map's
    256 colours, float32: :func:`heat`'s two terms as lookups, computed once."""
    frame_part = np.arange(256, dtype=np.float32) * (1.0 - alpha)
    colour_part = colormap_of(name).astype(np.float32) * alpha
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
    f = check_frame(frame)
    sal = _check_saliency(saliency, f.shape[:2])
    fl = check_unit(floor, "floor")
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
        return to_uint8(out)
    bg = _background(f, background, blur_sigma)
    out += bg * (1.0 - a)
    if mark is not None:
        mark.put(out, mark.values(mark.at(bg)))
    return to_uint8(out)
