"""Tests of the synthetic action-clip generator."""

from __future__ import annotations

import numpy as np
import pytest

from saliency_tubes.errors import InputError
from saliency_tubes.synthetic import CLASSES, SyntheticClip, make_clip, make_dataset

SIZE = (64, 80)  # non-square on purpose: catches swapped axes
SIDE = min(SIZE)
SEEDS = range(6)


def _centroids(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame centroid x, y and area of a (T, H, W) mask."""
    t, h, w = mask.shape
    area = mask.sum(axis=(1, 2)).astype(float)
    ys = np.arange(h)[None, :, None]
    xs = np.arange(w)[None, None, :]
    cy = (mask * ys).sum(axis=(1, 2)) / area
    cx = (mask * xs).sum(axis=(1, 2)) / area
    return cx, cy, area


def test_classes() -> None:
    assert CLASSES == (
        "left",
        "right",
        "up",
        "down",
        "clockwise",
        "counterclockwise",
        "grow",
        "shrink",
    )


def test_same_seed_same_clip_and_different_seed_different_clip() -> None:
    a = make_clip(seed=7, size=SIZE)
    b = make_clip(seed=7, size=SIZE)
    c = make_clip(seed=8, size=SIZE)
    np.testing.assert_array_equal(a.video, b.video)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert a.label == b.label
    assert not np.array_equal(a.video, c.video)
    # Forcing the label that the seed draws anyway gives the very same clip.
    d = make_clip(a.label, seed=7, size=SIZE)
    np.testing.assert_array_equal(a.video, d.video)
    # Forcing another label changes the clip.
    e = make_clip((a.label + 1) % len(CLASSES), seed=7, size=SIZE)
    assert not np.array_equal(a.video, e.video)


def test_label_drawn_from_seed_covers_all_classes() -> None:
    labels = {make_clip(seed=s, frames=4, size=(32, 32)).label for s in range(80)}
    assert labels == set(range(len(CLASSES)))


def test_shapes_dtypes_and_name() -> None:
    clip = make_clip(3, seed=1, frames=9, size=SIZE)
    assert isinstance(clip, SyntheticClip)
    assert clip.video.shape == (9, 64, 80, 3) and clip.video.dtype == np.uint8
    assert clip.mask.shape == (9, 64, 80) and clip.mask.dtype == np.bool_
    assert clip.label == 3 and isinstance(clip.label, int)
    assert clip.name == "down"
    # Default size and length.
    default = make_clip(seed=0)
    assert default.video.shape == (16, 112, 112, 3)
    # Frames differ over time (something moves) and the picture is not flat.
    assert not np.array_equal(clip.video[0], clip.video[-1])
    assert clip.video.std() > 10


@pytest.mark.parametrize("label", range(len(CLASSES)))
def test_mask_is_target_and_moves_as_the_class_says(label: int) -> None:
    name = CLASSES[label]
    for seed in SEEDS:
        clip = make_clip(label, seed=seed, size=SIZE)
        assert clip.name == name
        cx, cy, area = _centroids(clip.mask)
        assert (area > 0).all(), f"{name}, seed {seed}: empty mask in some frame"
        # The mask covers the target's pixels: inside it (away from the anti-aliased
        # edge) the colour is uniform up to the sensor noise.
        big = int(np.argmax(area))
        m = clip.mask[big]
        core = m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
        last = clip.video[big, 1:-1, 1:-1][core].astype(float)
        assert len(last) > 0
        spread = np.median(np.abs(last - np.median(last, axis=0)), axis=0)
        assert (spread < 8).all(), f"{name}, seed {seed}: mask is not on a uniform object"
        dx, dy = cx[-1] - cx[0], cy[-1] - cy[0]
        steps_x, steps_y = np.diff(cx), np.diff(cy)
        if name in ("left", "right", "up", "down"):
            along, across, steps = {
                "left": (-dx, dy, -steps_x),
                "right": (dx, dy, steps_x),
                "up": (-dy, dx, -steps_y),
                "down": (dy, dx, steps_y),
            }[name]
            # Travels >= 0.3 side lengths within 15 degrees of the axis.
            assert along > 0.25 * SIDE, f"{name}, seed {seed}: moved only {along:.1f}px"
            assert abs(across) < 0.4 * along, f"{name}, seed {seed}: off-axis {across:.1f}px"
            assert (steps > 0).mean() >= 0.8
            assert area.max() / area.min() < 1.5
        elif name in ("clockwise", "counterclockwise"):
            # Signed area of the path closed by its chord (shoelace): > 0 is clockwise on
            # screen, as image y points down.
            turn = float(np.sum(cx * np.roll(cy, -1) - np.roll(cx, -1) * cy))
            sign = 1.0 if name == "clockwise" else -1.0
            assert sign * turn > 0, f"{name}, seed {seed}: turns the wrong way"
            # Every 4-frame displacement turns the same way as the next one.
            vx, vy = cx[4:] - cx[:-4], cy[4:] - cy[:-4]
            cross = vx[:-4] * vy[4:] - vy[:-4] * vx[4:]
            assert (sign * cross > 0).all(), f"{name}, seed {seed}: turns back"
            path = np.hypot(steps_x, steps_y).sum()
            assert path > 0.3 * SIDE
        else:
            ratio = area[-1] / area[0]
            if name == "grow":
                assert ratio > 2.5, f"grow, seed {seed}: area ratio {ratio:.2f}"
                assert (np.diff(area) > 0).mean() >= 0.8
            else:
                assert ratio < 1 / 2.5, f"shrink, seed {seed}: area ratio {ratio:.2f}"
                assert (np.diff(area) < 0).mean() >= 0.8
            assert np.hypot(dx, dy) < 0.1 * SIDE


def test_distractors_present_and_target_drawn_on_top() -> None:
    clip = make_clip(0, seed=11, size=SIZE)
    # Pixels outside the mask change over time (jittering distractors), not only noise.
    outside = ~(clip.mask[0] | clip.mask[-1])
    diff = np.abs(clip.video[0].astype(int) - clip.video[-1].astype(int)).max(axis=-1)
    assert (diff[outside] > 40).sum() > 10
    # The target covers only a small part of the frame.
    assert clip.mask.mean() < 0.1


def test_make_dataset_balanced_deterministic_and_shaped() -> None:
    videos, masks, labels = make_dataset(20, seed=3, frames=5, size=(32, 40))
    assert videos.shape == (20, 5, 32, 40, 3) and videos.dtype == np.uint8
    assert masks.shape == (20, 5, 32, 40) and masks.dtype == np.bool_
    assert labels.shape == (20,) and labels.dtype == np.int64
    counts = np.bincount(labels, minlength=len(CLASSES))
    assert counts.min() >= 2 and counts.max() <= 3 and counts.sum() == 20
    assert (masks.sum(axis=(2, 3)) > 0).all()
    again = make_dataset(20, seed=3, frames=5, size=(32, 40))
    np.testing.assert_array_equal(videos, again[0])
    np.testing.assert_array_equal(masks, again[1])
    np.testing.assert_array_equal(labels, again[2])
    other = make_dataset(20, seed=4, frames=5, size=(32, 40))
    assert not np.array_equal(videos, other[0])
    # Exactly balanced when n is a multiple of the number of classes, and shuffled.
    _, _, labels16 = make_dataset(16, seed=5, frames=4, size=(32, 32))
    assert np.bincount(labels16).tolist() == [2] * len(CLASSES)
    assert labels16.tolist() != sorted(labels16.tolist())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"seed": -1}, r"expected seed to be an int >= 0, but got -1"),
        ({"seed": 1.5}, r"expected seed to be an int >= 0, but got 1.5"),
        ({"seed": True}, r"expected seed .* but got True"),
        ({"seed": 0, "frames": 2}, r"expected frames to be an int >= 4, but got 2"),
        ({"seed": 0, "size": (16, 64)}, r"expected size to be at least \(32, 32\).*\(16, 64\)"),
        ({"seed": 0, "size": (64,)}, r"expected size to be a \(height, width\) pair"),
        ({"seed": 0, "size": "64"}, r"expected size to be a \(height, width\) pair"),
        ({"seed": 0, "label": 8}, r"expected label .* \[0, 7\] .*left.* but got 8"),
        ({"seed": 0, "label": -1}, r"expected label .* but got -1"),
        ({"seed": 0, "label": "left"}, r"expected label .* but got 'left'"),
    ],
)
def test_make_clip_rejects_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InputError, match=match):
        make_clip(**kwargs)  # type: ignore[arg-type]


def test_make_dataset_rejects_bad_arguments() -> None:
    with pytest.raises(InputError, match=r"expected n to be an int >= 1, but got 0"):
        make_dataset(0, seed=0)
    with pytest.raises(ValueError, match=r"expected seed"):  # InputError is a ValueError
        make_dataset(4, seed=-5)
    with pytest.raises(InputError, match=r"expected frames"):
        make_dataset(4, seed=0, frames=1)
