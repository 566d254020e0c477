"""The painting parts both synthetic data sets share: a textured background, shapes as signed
distance functions (disc, square, triangle, ring, cross, diamond), an object's track and
its anti-aliased coverage of the frame."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from saliency_tubes.normalise import minmax

FloatArray = np.ndarray


# --------------------------------------------------------------------------- rendering


def _smooth_noise(rng: np.random.Generator, height: int, width: int) -> FloatArray:
    """Value noise in [0, 1]: a coarse random grid, upsampled with smoothstep weights."""
    cells = int(rng.integers(3, 10))
    grid_h = cells + 1
    grid_w = max(2, round(cells * width / height)) + 1
    grid = rng.random((grid_h, grid_w), dtype=np.float32)

    def axis(n: int, g: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = np.linspace(0.0, g - 1, n, dtype=np.float32)
        i0 = np.minimum(pos.astype(np.int64), g - 2)
        frac = pos - i0
        return i0, i0 + 1, frac * frac * (3.0 - 2.0 * frac)

    y0, y1, fy = axis(height, grid_h)
    x0, x1, fx = axis(width, grid_w)
    top = grid[y0][:, x0] * (1 - fx) + grid[y0][:, x1] * fx
    bottom = grid[y1][:, x0] * (1 - fx) + grid[y1][:, x1] * fx
    out = top * (1 - fy[:, None]) + bottom * fy[:, None]
    return minmax(torch.from_numpy(out)).numpy()


def textured_background(rng: np.random.Generator, height: int, width: int) -> FloatArray:
    """A static ``(H, W, 3)`` float32 background in 0..255 with a random texture."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    kind = int(rng.integers(4))
    side = float(min(height, width))
    angle = float(rng.uniform(0.0, np.pi))
    u = xx * np.cos(angle) + yy * np.sin(angle)
    v = -xx * np.sin(angle) + yy * np.cos(angle)
    if kind == 0:  # smooth noise
        pattern = _smooth_noise(rng, height, width)
    elif kind == 1:  # stripes, soft or hard
        period = float(rng.uniform(0.06, 0.25)) * side
        wave = np.sin(2 * np.pi * u / period + float(rng.uniform(0, 2 * np.pi)))
        sharp = float(rng.uniform(1.0, 6.0))
        pattern = 0.5 + 0.5 * np.tanh(sharp * wave) / np.tanh(sharp)
    elif kind == 2:  # checkerboard
        period = float(rng.uniform(0.08, 0.3)) * side
        wave = np.sin(np.pi * u / period) * np.sin(np.pi * v / period)
        pattern = 0.5 + 0.5 * np.tanh(4.0 * wave) / np.tanh(4.0)
    else:  # noise modulated by stripes
        period = float(rng.uniform(0.1, 0.3)) * side
        wave = 0.5 + 0.5 * np.sin(2 * np.pi * u / period)
        pattern = 0.5 * _smooth_noise(rng, height, width) + 0.5 * wave
    pattern = pattern.astype(np.float32)
    base = rng.uniform(0, 255, 3).astype(np.float32)
    other = rng.uniform(0, 255, 3).astype(np.float32)
    contrast = float(rng.uniform(0.25, 0.75))
    other = base + (other - base) * contrast
    return base + pattern[..., None] * (other - base)


def pick_colour(rng: np.random.Generator, avoid: list[np.ndarray]) -> np.ndarray:
    """A random RGB colour far (in RGB distance) from every colour in ``avoid``."""
    best, best_dist = rng.uniform(0, 255, 3), -1.0
    for _ in range(16):
        cand = rng.uniform(0, 255, 3)
        dist = min(float(np.linalg.norm(cand - c)) for c in avoid)
        if dist > best_dist:
            best, best_dist = cand, dist
        if dist >= 110.0:
            break
    return best.astype(np.float32)


def _sdf_disc(x: FloatArray, y: FloatArray, r: FloatArray) -> FloatArray:
    return np.sqrt(x * x + y * y) - r


def _sdf_square(x: FloatArray, y: FloatArray, r: FloatArray) -> FloatArray:
    return np.maximum(np.abs(x), np.abs(y)) - 0.78 * r


def _sdf_triangle(x: FloatArray, y: FloatArray, r: FloatArray) -> FloatArray:
    # Equilateral triangle with circumradius r: the inradius is r / 2.
    d = None
    for k in range(3):
        a = -np.pi / 2 + k * 2 * np.pi / 3 + np.pi  # outward normals
        proj = x * np.float32(np.cos(a)) + y * np.float32(np.sin(a))
        d = proj if d is None else np.maximum(d, proj)
    assert d is not None
    return d - 0.5 * r


def _sdf_ring(x: FloatArray, y: FloatArray, r: FloatArray) -> FloatArray:
    return np.abs(np.sqrt(x * x + y * y) - 0.7 * r) - 0.3 * r


def _sdf_cross(x: FloatArray, y: FloatArray, r: FloatArray) -> FloatArray:
    ax, ay, w = np.abs(x), np.abs(y), 0.32 * r
    return np.minimum(np.maximum(ax - r, ay - w), np.maximum(ax - w, ay - r))


def _sdf_diamond(x: FloatArray, y: FloatArray, r: FloatArray) -> FloatArray:
    return (np.abs(x) + np.abs(y) - r) * np.float32(1 / np.sqrt(2))


_SDF: dict[str, Callable[[FloatArray, FloatArray, FloatArray], FloatArray]] = {
    "disc": _sdf_disc,
    "square": _sdf_square,
    "triangle": _sdf_triangle,
    "ring": _sdf_ring,
    "cross": _sdf_cross,
    "diamond": _sdf_diamond,
}


@dataclass(frozen=True, eq=False)
class Track:
    """Per-frame centre ``(cx, cy)`` and size ``r`` of one object, each shape ``(T,)``."""

    cx: np.ndarray
    cy: np.ndarray
    r: np.ndarray


def coverage(
    shape: str, angle: float, track: Track, height: int, width: int
) -> tuple[FloatArray, tuple[slice, slice]]:
    """Anti-aliased coverage (T, h, w) in [0, 1] of an object within its bounding box."""
    reach = float(np.max(track.r)) * 1.05 + 2.0
    y_lo = max(0, int(np.floor(float(track.cy.min()) - reach)))
    y_hi = min(height, int(np.ceil(float(track.cy.max()) + reach)) + 1)
    x_lo = max(0, int(np.floor(float(track.cx.min()) - reach)))
    x_hi = min(width, int(np.ceil(float(track.cx.max()) + reach)) + 1)
    box = (slice(y_lo, y_hi), slice(x_lo, x_hi))
    ys = np.arange(y_lo, y_hi, dtype=np.float32)[None, :, None]
    xs = np.arange(x_lo, x_hi, dtype=np.float32)[None, None, :]
    dx = xs - track.cx.astype(np.float32)[:, None, None]
    dy = ys - track.cy.astype(np.float32)[:, None, None]
    c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    lx = dx * c + dy * s
    ly = -dx * s + dy * c
    r = track.r.astype(np.float32)[:, None, None]
    sdf = _SDF[shape](lx, ly, r)
    return np.clip(0.5 - sdf, 0.0, 1.0), box
