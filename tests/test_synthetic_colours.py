"""Tests of the synthetic colour-clip generator: one coloured target among grey look-alikes."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
from scipy.ndimage import binary_dilation, binary_erosion

from saliency_tubes.errors import InputError
from saliency_tubes.synthetic import SyntheticClip
from saliency_tubes.synthetic_colours import (
    COLOURS,
    MAX_BACKGROUND_CHROMA,
    MOTIONS,
    make_colour_clip,
    make_colour_dataset,
)

SIZE = (64, 80)  # non-square on purpose: catches swapped axes
SEEDS = range(8)
# Saturated: the target's chroma is at least 0.75 x 0.6 x 255 = 115; the background's at
# most 30 and a grey's 0, plus the pixel noise (sigma <= 4 per channel).
SATURATED = 70


def _chroma(video: np.ndarray) -> np.ndarray:
    """Max minus min channel per pixel (0 for a grey)."""
    return video.max(axis=-1).astype(np.int16) - video.min(axis=-1)


def _rim(mask: np.ndarray) -> np.ndarray:
    """The mask grown by one pixel in space (its anti-aliased edge)."""
    return binary_dilation(mask, np.ones((1, 3, 3), dtype=bool))


def test_colours_and_motions() -> None:
    assert COLOURS == ("red", "yellow", "green", "cyan", "blue", "magenta")
    assert MOTIONS[:2] == ("static", "shake") and len(MOTIONS) == 10


def test_same_seed_same_clip_and_different_seed_different_clip() -> None:
    a = make_colour_clip(seed=7, size=SIZE)
    b = make_colour_clip(seed=7, size=SIZE)
    c = make_colour_clip(seed=8, size=SIZE)
    np.testing.assert_array_equal(a.video, b.video)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert a.label == b.label
    assert not np.array_equal(a.video, c.video)
    d = make_colour_clip(a.label, seed=7, size=SIZE)  # the label the seed draws anyway
    np.testing.assert_array_equal(a.video, d.video)


def test_labels_drawn_from_seeds_cover_all_colours() -> None:
    labels = [make_colour_clip(seed=s, frames=4, size=(32, 32)).label for s in range(60)]
    assert set(labels) == set(range(len(COLOURS)))


def test_shapes_dtypes_and_name() -> None:
    clip = make_colour_clip(4, seed=1, frames=9, size=SIZE)
    assert isinstance(clip, SyntheticClip)
    assert clip.video.shape == (9, 64, 80, 3) and clip.video.dtype == np.uint8
    assert clip.mask.shape == (9, 64, 80) and clip.mask.dtype == np.bool_
    assert clip.label == 4 and isinstance(clip.label, int)
    assert clip.name == "blue" and clip.classes == COLOURS
    assert make_colour_clip(seed=0).video.shape == (16, 112, 112, 3)


@pytest.mark.parametrize("seed", SEEDS)
def test_only_the_target_is_coloured_and_its_hue_is_the_class(seed: int) -> None:
    clip = make_colour_clip(seed=seed, size=SIZE)
    chroma = _chroma(clip.video)
    assert clip.mask.any(axis=(1, 2)).all()  # the target is in every frame
    # Outside the target (and its one-pixel anti-aliased edge): background and greys only.
    assert chroma[~_rim(clip.mask)].max() < SATURATED
    # Inside it (one pixel in from the edge): saturated, of the class's hue (+-10 degrees).
    inner = binary_erosion(clip.mask, np.ones((1, 3, 3), dtype=bool))
    assert inner.any() and chroma[inner].min() >= SATURATED
    r, g, b = clip.video[inner].astype(float).mean(axis=0) / 255
    hue = colorsys.rgb_to_hsv(r, g, b)[0] * 360
    assert abs((hue - 60 * clip.label + 180) % 360 - 180) <= 12, (clip.name, hue)


@pytest.mark.parametrize("seed", SEEDS)
def test_the_class_changes_nothing_but_the_targets_colour(seed: int) -> None:
    """Every colour of the same seed: the same clip (objects, motions, noise) but for the
    target's pixels, whose mask is the same: nothing but the colour tells the class."""
    clips = [make_colour_clip(k, seed=seed, frames=6, size=SIZE) for k in range(len(COLOURS))]
    rim = _rim(clips[0].mask)
    for clip in clips[1:]:
        np.testing.assert_array_equal(clip.mask, clips[0].mask)
        np.testing.assert_array_equal(clip.video[~rim], clips[0].video[~rim])
        assert not np.array_equal(clip.video[clip.mask], clips[0].video[clip.mask])


def test_distractors_are_there_and_some_move() -> None:
    """Outside the target the clips are more than a flat background: grey objects of their
    own brightness, and in some clips they move (frame 0 and the last differ)."""
    moved = 0
    for seed in SEEDS:
        clip = make_colour_clip(seed=seed, size=SIZE)
        outside = ~_rim(clip.mask)
        # the greys stand out from the background: a wide range of brightness
        levels = clip.video.mean(axis=-1)[outside]
        assert np.percentile(levels, 99) - np.percentile(levels, 1) > 40, seed
        still = ~(_rim(clip.mask[:1]) | _rim(clip.mask[-1:]))[0]
        change = np.abs(clip.video[0].astype(int) - clip.video[-1]).max(axis=-1)[still]
        moved += int((change > 40).sum() > 20)
    assert moved >= len(SEEDS) // 2, moved  # measured: in all 8 something grey moves
    assert MAX_BACKGROUND_CHROMA < SATURATED


def test_dataset_is_balanced_seeded_and_consistent() -> None:
    videos, masks, labels = make_colour_dataset(13, seed=3, frames=4, size=(32, 32))
    assert videos.shape == (13, 4, 32, 32, 3) and masks.shape == (13, 4, 32, 32)
    counts = np.bincount(labels, minlength=len(COLOURS))
    assert counts.min() >= 2 and counts.max() <= 3
    again = make_colour_dataset(13, seed=3, frames=4, size=(32, 32))
    np.testing.assert_array_equal(videos, again[0])
    np.testing.assert_array_equal(labels, again[2])
    assert not np.array_equal(videos, make_colour_dataset(13, seed=4, frames=4, size=(32, 32))[0])
    assert masks.any(axis=(2, 3)).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"label": 6, "seed": 0}, "expected label to be None or an int in [0, 5] (one of red,"),
        ({"label": "red", "seed": 0}, "expected label to be None or an int in [0, 5]"),
        ({"seed": -1}, "expected seed to be an int >= 0"),
        ({"seed": 0, "frames": 2}, "expected frames to be an int >= 4"),
        ({"seed": 0, "size": (16, 64)}, "expected size to be at least (32, 32)"),
    ],
)
def test_bad_arguments_are_one_line(kwargs: dict, message: str) -> None:
    with pytest.raises(InputError) as info:
        make_colour_clip(**kwargs)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)
