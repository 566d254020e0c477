"""Synthetic colour clips: the class is the colour of the one coloured object.

Every clip shows exactly one *coloured* target object, whose hue decides the class
(:data:`COLOURS`: six hues 60 degrees apart, each drawn within +-10 degrees, saturation
0.75-1 and value 0.6-1), among 2-5 *achromatic* distractors (greys of random brightness,
picked to stand out from the background), on the textured background of
:mod:`saliency_tubes.synthetic` with its colours pulled toward grey (its chroma, the
largest minus the smallest channel, at most :data:`MAX_BACKGROUND_CHROMA` of 255; the
target's is at least 0.45 x 255). Target and distractors draw their shape, size,
orientation and motion from the same distributions: each object is static, shakes in
place, or moves as one of the eight motion classes of :mod:`saliency_tubes.synthetic`
(travels, turns, grows or shrinks; :data:`MOTIONS`), chosen at random and independently of
the colour. So nothing but the target's colour tells the class, and nothing but colour
tells the target from the distractors.

The target is drawn last, so :attr:`~saliency_tubes.synthetic.SyntheticClip.mask` is
exactly its pixels. The same ``seed`` always gives the same clip.

Example:
    >>> from saliency_tubes.synthetic_colours import make_colour_clip
    >>> clip = make_colour_clip(seed=0, size=(64, 64))
    >>> clip.video.shape, clip.name  # doctest: +SKIP
    ((16, 64, 64, 3), 'cyan')
"""

from __future__ import annotations

import colorsys

import numpy as np

from saliency_tubes.synthetic import (
    CLASSES,
    SHAPES,
    SyntheticClip,
    distractor_track,
    finish,
    motion_track,
    paint,
    render_dataset,
    start_clip,
)
from saliency_tubes.synthetic_shapes import Track, textured_background

__all__ = ["COLOURS", "MOTIONS", "make_colour_clip", "make_colour_dataset"]

COLOURS: tuple[str, ...] = ("red", "yellow", "green", "cyan", "blue", "magenta")
"""Class names, indexed by label; class ``k`` has hue ``60 k`` degrees."""

MOTIONS: tuple[str, ...] = ("static", "shake", *CLASSES)
"""How an object (target or distractor) moves, drawn uniformly: ``static``, ``shake`` (the
motion task's jittering distractors) or one of its eight motion classes."""

MAX_BACKGROUND_CHROMA = 30.0
"""The background's largest chroma (max minus min channel, 0..255) after desaturation."""

_HUE_JITTER = 10.0  # degrees
_SATURATION = (0.75, 1.0)
_VALUE = (0.6, 1.0)
_GREY = (15.0, 240.0)


def _target_colour(rng: np.random.Generator, label: int) -> np.ndarray:
    """An RGB colour (0..255) of class ``label``'s hue."""
    hue = (60.0 * label + float(rng.uniform(-_HUE_JITTER, _HUE_JITTER))) % 360.0
    sat, val = float(rng.uniform(*_SATURATION)), float(rng.uniform(*_VALUE))
    return np.array(colorsys.hsv_to_rgb(hue / 360.0, sat, val), dtype=np.float32) * 255.0


def _grey_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """The motion task's textured background, its chroma scaled to a random level in
    ``[0, MAX_BACKGROUND_CHROMA]``."""
    bg = textured_background(rng, height, width)
    grey = bg.mean(axis=-1, keepdims=True)
    chroma = float((bg.max(axis=-1) - bg.min(axis=-1)).max())
    limit = float(rng.uniform(0.0, MAX_BACKGROUND_CHROMA))
    scale = min(1.0, limit / chroma) if chroma > 0 else 1.0
    return (grey + (bg - grey) * np.float32(scale)).astype(np.float32)


def _pick_grey(rng: np.random.Generator, avoid: list[float]) -> np.ndarray:
    """A grey (equal channels) whose level is far from every level in ``avoid``."""
    best, best_dist = float(rng.uniform(*_GREY)), -1.0
    for _ in range(16):
        cand = float(rng.uniform(*_GREY))
        dist = min(abs(cand - level) for level in avoid)
        if dist > best_dist:
            best, best_dist = cand, dist
        if dist >= 50.0:
            break
    return np.full(3, best, dtype=np.float32)


def _object(
    rng: np.random.Generator, frames: int, height: int, width: int
) -> tuple[str, float, Track]:
    """Shape, orientation and track of one object, target or distractor alike."""
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    angle = float(rng.uniform(0, 2 * np.pi))
    motion = MOTIONS[int(rng.integers(len(MOTIONS)))]
    if motion in ("static", "shake"):
        track = distractor_track(motion == "shake", rng, frames, height, width)
    else:
        track = motion_track(motion, rng, frames, height, width)
    return shape, angle, track


def make_colour_clip(
    label: int | None = None,
    *,
    seed: int,
    frames: int = 16,
    size: tuple[int, int] = (112, 112),
) -> SyntheticClip:
    """Render one synthetic colour clip.

    Args:
        label: Class index into :data:`COLOURS`, or ``None`` to draw it from ``seed``.
            The class draw always consumes the same random numbers, so
            ``make_colour_clip(seed=s)`` equals ``make_colour_clip(its label, seed=s)``.
        seed: Non-negative integer seed; the same arguments always give the same clip.
        frames: Number of frames ``T`` (at least 4).
        size: Frame ``(height, width)`` in pixels (each at least 32).

    Returns:
        The clip: ``video`` ``(T, H, W, 3)`` uint8, ``mask`` ``(T, H, W)`` bool (the
        target's pixels), ``label``; its ``name`` is the colour.

    Raises:
        InputError: If an argument has the wrong type or is out of range.
    """
    label, frames, height, width, rng = start_clip(label, seed, frames, size, COLOURS)

    background = _grey_background(rng, height, width)
    levels = background.mean(axis=-1)
    avoid = [float(levels.min()), float(levels.max()), float(levels.mean())]
    video = np.broadcast_to(background, (frames, height, width, 3)).copy()
    distractors = [
        (*_object(rng, frames, height, width), _pick_grey(rng, avoid))
        for _ in range(int(rng.integers(2, 6)))
    ]
    shape, angle, track = _object(rng, frames, height, width)
    colour = _target_colour(rng, label)

    for d_shape, d_angle, d_track, grey in distractors:
        paint(video, d_shape, d_angle, grey, d_track)
    mask = paint(video, shape, angle, colour, track)
    return SyntheticClip(video=finish(video, rng), mask=mask, label=label, classes=COLOURS)


def make_colour_dataset(
    n: int,
    *,
    seed: int,
    frames: int = 16,
    size: tuple[int, int] = (112, 112),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render ``n`` colour clips with balanced, shuffled labels (as
    :func:`saliency_tubes.synthetic.make_dataset` does for the motion clips).

    Returns:
        ``(videos, masks, labels)``: ``(n, T, H, W, 3)`` uint8, ``(n, T, H, W)`` bool and
        ``(n,)`` int64.

    Raises:
        InputError: If an argument has the wrong type or is out of range.
    """
    return render_dataset(make_colour_clip, len(COLOURS), n, seed=seed, frames=frames, size=size)
