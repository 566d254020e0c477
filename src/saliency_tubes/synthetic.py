"""Synthetic action clips: the class is how the target object moves.

Every clip shows one *target* object on a textured background together with static and
jittering distractor objects. The target's shape, colour, size, start position and speed
are random and independent of the class; only its motion defines the label:

``left``, ``right``, ``up``, ``down``
    straight-line translation (within +-15 degrees of the axis);
``clockwise``, ``counterclockwise``
    travel along a circular arc (as seen on screen, image ``y`` pointing down);
``grow``, ``shrink``
    the object scales up or down by a factor 1.8-2.5 while staying roughly in place.

Distractors use the same shapes and colour distribution as the target. Static ones never
move; jittering ones shake randomly around a fixed point (independent per-frame offsets or
a small back-and-forth wobble, plus a small size flicker), so the only consistent motion
in the clip is the target's. The target is drawn last, so its ground-truth mask
(:attr:`SyntheticClip.mask`) is exactly the set of pixels it covers in each frame.

Rendering is vectorised with numpy (signed-distance shapes, anti-aliased edges); a
16x112x112 clip renders in a few milliseconds. The same ``seed`` always gives the same
clip.

The renderer's parts (:func:`textured_background`, :func:`motion_track`,
:func:`distractor_track`, :func:`paint`, :func:`finish`, :func:`start_clip`,
:func:`render_dataset`) are public for the other synthetic task,
:mod:`saliency_tubes.synthetic_colours` (the class is the colour of the one coloured object).

Example:
    >>> from saliency_tubes.synthetic import make_clip
    >>> clip = make_clip(seed=0)
    >>> clip.video.shape, clip.mask.shape, clip.name  # doctest: +SKIP
    ((16, 112, 112, 3), (16, 112, 112), 'grow')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from saliency_tubes.errors import InputError
from saliency_tubes.synthetic_shapes import (
    FloatArray,
    Track,
    coverage,
    pick_colour,
    textured_background,
)

__all__ = ["CLASSES", "SHAPES", "SyntheticClip", "make_clip", "make_dataset"]

CLASSES: tuple[str, ...] = (
    "left",
    "right",
    "up",
    "down",
    "clockwise",
    "counterclockwise",
    "grow",
    "shrink",
)
"""Class names, indexed by label."""

SHAPES: tuple[str, ...] = ("disc", "square", "triangle", "ring", "cross", "diamond")
"""Shapes used for the target and the distractors."""

_MIN_SIDE = 32
_MIN_FRAMES = 4
_MIN_RADIUS_PX = 2.5

# Direction of travel (radians, image coordinates: x right, y down) of the linear classes.
_LINEAR_ANGLE = {"left": np.pi, "right": 0.0, "up": -np.pi / 2, "down": np.pi / 2}


@dataclass(frozen=True, eq=False)
class SyntheticClip:
    """One rendered clip with the ground truth of its target object.

    Attributes:
        video: ``(T, H, W, 3)`` ``uint8`` RGB frames.
        mask: ``(T, H, W)`` ``bool``, the pixels covered by the target object per frame.
        label: Index into :attr:`classes`.
        classes: The class names of the task that made the clip: :data:`CLASSES` (motion)
            or :data:`saliency_tubes.synthetic_colours.COLOURS` (colour).
    """

    video: np.ndarray
    mask: np.ndarray
    label: int
    classes: tuple[str, ...] = CLASSES

    @property
    def name(self) -> str:
        """The class name of :attr:`label`, e.g. ``"clockwise"``."""
        return self.classes[self.label]


# --------------------------------------------------------------------------- validation


def _check_int(value: Any, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(f"expected {what} to be an int >= {minimum}, but got {value!r}")
    if int(value) < minimum:
        raise InputError(f"expected {what} to be an int >= {minimum}, but got {int(value)}")
    return int(value)


def _check_size(size: Any) -> tuple[int, int]:
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) for s in size)
    ):
        raise InputError(f"expected size to be a (height, width) pair of ints, but got {size!r}")
    height, width = int(size[0]), int(size[1])
    if height < _MIN_SIDE or width < _MIN_SIDE:
        raise InputError(
            f"expected size to be at least ({_MIN_SIDE}, {_MIN_SIDE}) pixels, "
            f"but got ({height}, {width})"
        )
    return height, width


def _check_label(label: Any, classes: tuple[str, ...]) -> int:
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)):
        raise InputError(
            f"expected label to be None or an int in [0, {len(classes) - 1}], but got {label!r}"
        )
    if not 0 <= int(label) < len(classes):
        raise InputError(
            f"expected label to be None or an int in [0, {len(classes) - 1}] "
            f"(one of {', '.join(classes)}), but got {int(label)}"
        )
    return int(label)


def motion_track(cls: str, rng: np.random.Generator, frames: int, height: int, width: int) -> Track:
    """Sample the target's trajectory for class ``cls``; it stays inside the frame."""
    side = float(min(height, width))
    t = np.linspace(0.0, 1.0, frames)
    jitter = 0.004 * side

    def inside(lo_margin: float, extent: float, n: int) -> float:
        return float(rng.uniform(lo_margin, n - 1 - lo_margin - extent))

    if cls in _LINEAR_ANGLE:
        r = max(_MIN_RADIUS_PX, float(rng.uniform(0.06, 0.11)) * side)
        angle = _LINEAR_ANGLE[cls] + float(rng.uniform(-np.pi / 12, np.pi / 12))
        dist = float(rng.uniform(0.3, 0.5)) * side
        dx, dy = dist * np.cos(angle), dist * np.sin(angle)
        m = r + 1.0
        x0 = inside(m, abs(dx), width) + max(0.0, -dx)
        y0 = inside(m, abs(dy), height) + max(0.0, -dy)
        cx, cy = x0 + dx * t, y0 + dy * t
        radius = np.full(frames, r)
    elif cls in ("clockwise", "counterclockwise"):
        r = max(_MIN_RADIUS_PX, float(rng.uniform(0.06, 0.1)) * side)
        orbit = float(rng.uniform(0.14, 0.22)) * side
        span = float(rng.uniform(0.9, 1.5)) * np.pi
        start = float(rng.uniform(0.0, 2 * np.pi))
        m = r + 1.0 + orbit
        ox, oy = inside(m, 0.0, width), inside(m, 0.0, height)
        # y points down, so increasing the angle turns clockwise on screen.
        theta = start + (span if cls == "clockwise" else -span) * t
        cx, cy = ox + orbit * np.cos(theta), oy + orbit * np.sin(theta)
        radius = np.full(frames, r)
    else:  # grow / shrink
        small = max(_MIN_RADIUS_PX, float(rng.uniform(0.045, 0.06)) * side)
        big = small * float(rng.uniform(1.8, 2.5))
        radius = small + (big - small) * t
        if cls == "shrink":
            radius = radius[::-1].copy()
        drift = float(rng.uniform(0.0, 0.05)) * side
        d_angle = float(rng.uniform(0.0, 2 * np.pi))
        dx, dy = drift * np.cos(d_angle), drift * np.sin(d_angle)
        m = big + 1.0
        x0 = inside(m, abs(dx), width) + max(0.0, -dx)
        y0 = inside(m, abs(dy), height) + max(0.0, -dy)
        cx, cy = x0 + dx * t, y0 + dy * t
    cx = cx + rng.normal(0.0, jitter, frames)
    cy = cy + rng.normal(0.0, jitter, frames)
    return Track(cx=cx, cy=cy, r=radius)


def distractor_track(
    moving: bool, rng: np.random.Generator, frames: int, height: int, width: int
) -> Track:
    """A static distractor, or one that shakes around a fixed point (no net motion)."""
    side = float(min(height, width))
    r = max(_MIN_RADIUS_PX, float(rng.uniform(0.05, 0.11)) * side)
    cx0 = float(rng.uniform(r, width - 1 - r))
    cy0 = float(rng.uniform(r, height - 1 - r))
    cx, cy, radius = np.full(frames, cx0), np.full(frames, cy0), np.full(frames, r)
    if moving:
        if rng.random() < 0.5:  # independent per-frame shake
            amp = float(rng.uniform(0.012, 0.03)) * side
            cx = cx + np.clip(rng.normal(0.0, amp, frames), -2 * amp, 2 * amp)
            cy = cy + np.clip(rng.normal(0.0, amp, frames), -2 * amp, 2 * amp)
        else:  # back-and-forth wobble along a random axis
            amp = float(rng.uniform(0.02, 0.05)) * side
            period = float(rng.uniform(3.0, 8.0))
            phase = float(rng.uniform(0.0, 2 * np.pi))
            axis = float(rng.uniform(0.0, np.pi))
            wobble = amp * np.sin(2 * np.pi * np.arange(frames) / period + phase)
            cx = cx + wobble * np.cos(axis) + rng.normal(0.0, 0.004 * side, frames)
            cy = cy + wobble * np.sin(axis) + rng.normal(0.0, 0.004 * side, frames)
        radius = radius * (1.0 + np.clip(rng.normal(0.0, 0.06, frames), -0.15, 0.15))
    return Track(cx=cx, cy=cy, r=radius)


def make_clip(
    label: int | None = None,
    *,
    seed: int,
    frames: int = 16,
    size: tuple[int, int] = (112, 112),
) -> SyntheticClip:
    """Render one synthetic action clip.

    Args:
        label: Class index into :data:`CLASSES`, or ``None`` to draw it from ``seed``.
            The class draw always consumes the same random numbers, so
            ``make_clip(seed=s)`` equals ``make_clip(make_clip(seed=s).label, seed=s)``.
        seed: Non-negative integer seed; the same arguments always give the same clip.
        frames: Number of frames ``T`` (at least 4).
        size: Frame ``(height, width)`` in pixels (each at least 32).

    Returns:
        The clip: ``video`` ``(T, H, W, 3)`` uint8, ``mask`` ``(T, H, W)`` bool, ``label``.

    Raises:
        InputError: If an argument has the wrong type or is out of range.
    """
    label, frames, height, width, rng = start_clip(label, seed, frames, size, CLASSES)
    cls = CLASSES[label]

    background = textured_background(rng, height, width)
    bg_colours = [background.reshape(-1, 3).min(0), background.reshape(-1, 3).max(0)]
    bg_colours.append(background.reshape(-1, 3).mean(0))
    video = np.broadcast_to(background, (frames, height, width, 3)).copy()

    n_static = int(rng.integers(1, 4))
    n_moving = int(rng.integers(1, 4))
    objects: list[tuple[str, float, np.ndarray, Track]] = []
    for moving in [False] * n_static + [True] * n_moving:
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        track = distractor_track(moving, rng, frames, height, width)
        objects.append(
            (shape, float(rng.uniform(0, 2 * np.pi)), pick_colour(rng, bg_colours), track)
        )
    order = rng.permutation(len(objects))

    target_shape = SHAPES[int(rng.integers(len(SHAPES)))]
    target_angle = float(rng.uniform(0, 2 * np.pi))
    target_colour = pick_colour(rng, bg_colours)
    target_track = motion_track(cls, rng, frames, height, width)

    for i in order:
        paint(video, *objects[int(i)])
    mask = paint(video, target_shape, target_angle, target_colour, target_track)
    return SyntheticClip(video=finish(video, rng), mask=mask, label=label)


def start_clip(
    label: int | None, seed: int, frames: int, size: tuple[int, int], classes: tuple[str, ...]
) -> tuple[int, int, int, int, np.random.Generator]:
    """Check a clip maker's arguments and start its random generator.

    The label is drawn first (always, so forcing the drawn label gives the same clip),
    then replaced by ``label`` when that is given.

    Returns:
        ``(label, frames, height, width, rng)``.

    Raises:
        InputError: If an argument has the wrong type or is out of range (one line).
    """
    seed = _check_int(seed, "seed", 0)
    frames = _check_int(frames, "frames", _MIN_FRAMES)
    height, width = _check_size(size)
    rng = np.random.default_rng(seed)
    drawn = int(rng.integers(len(classes)))
    label = drawn if label is None else _check_label(label, classes)
    return label, frames, height, width, rng


def paint(
    video: FloatArray, shape: str, angle: float, colour: np.ndarray, track: Track
) -> np.ndarray:
    """Draw one object over the float ``(T, H, W, 3)`` ``video`` in place (anti-aliased).

    Returns:
        ``(T, H, W)`` bool: the pixels the object covers (coverage >= 0.5).
    """
    frames, height, width = video.shape[:3]
    alpha, box = coverage(shape, angle, track, height, width)
    region = video[:, box[0], box[1]]
    region += alpha[..., None] * (colour - region)
    mask = np.zeros((frames, height, width), dtype=bool)
    mask[:, box[0], box[1]] = alpha >= 0.5
    return mask


def finish(video: FloatArray, rng: np.random.Generator) -> np.ndarray:
    """Add a random amount of pixel noise (sigma 0-4, none below 0.5) and round to uint8."""
    noise = float(rng.uniform(0.0, 4.0))
    if noise > 0.5:
        video += rng.standard_normal(video.shape, dtype=np.float32) * np.float32(noise)
    return np.clip(video + 0.5, 0, 255).astype(np.uint8)


def make_dataset(
    n: int,
    *,
    seed: int,
    frames: int = 16,
    size: tuple[int, int] = (112, 112),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render ``n`` clips with balanced, shuffled labels.

    Each class appears ``n // len(CLASSES)`` or one more times. The clip seeds are
    derived from ``seed`` with :class:`numpy.random.SeedSequence`, so data sets made with
    different seeds do not share clips.

    Args:
        n: Number of clips (at least 1).
        seed: Non-negative integer seed; the same arguments always give the same data.
        frames: Number of frames per clip (at least 4).
        size: Frame ``(height, width)`` in pixels (each at least 32).

    Returns:
        ``(videos, masks, labels)``: ``(n, T, H, W, 3)`` uint8, ``(n, T, H, W)`` bool and
        ``(n,)`` int64.

    Raises:
        InputError: If an argument has the wrong type or is out of range.
    """
    return render_dataset(make_clip, len(CLASSES), n, seed=seed, frames=frames, size=size)


def render_dataset(
    make: Callable[..., SyntheticClip],
    n_classes: int,
    n: int,
    *,
    seed: int,
    frames: int,
    size: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`make_dataset` for any clip maker ``make(label, seed=, frames=, size=)`` of
    ``n_classes`` classes (the motion clips here, the colour clips of
    :mod:`saliency_tubes.synthetic_colours`)."""
    n = _check_int(n, "n", 1)
    seed = _check_int(seed, "seed", 0)
    frames = _check_int(frames, "frames", _MIN_FRAMES)
    height, width = _check_size(size)
    seq = np.random.SeedSequence(seed)
    rng = np.random.default_rng(seq)
    labels = rng.permutation(np.arange(n, dtype=np.int64) % n_classes)
    clip_seeds = seq.spawn(1)[0].generate_state(n, dtype=np.uint64)
    videos = np.empty((n, frames, height, width, 3), dtype=np.uint8)
    masks = np.empty((n, frames, height, width), dtype=bool)
    for i in range(n):
        clip = make(int(labels[i]), seed=int(clip_seeds[i]), frames=frames, size=(height, width))
        videos[i] = clip.video
        masks[i] = clip.mask
    return videos, masks, labels
