"""Temporal importance: per-frame curves, key frames, the timeline bar, plots, and the
curves the commands write (checked against the tube mapped back to every source frame)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import saliency_tubes as st
from _clips import mapped
from saliency_tubes import render, temporal
from saliency_tubes.cli import main
from saliency_tubes.errors import InputError
from saliency_tubes.video import iter_frames, probe
from saliency_tubes.zoo import load_model

# A curve with three clear peaks (1, 4 and the plateau 8-9), one bump too small to count
# (6) and a rise at the end that is not a peak (10 < 11 is the last sample, lower than 9).
CURVE = np.array([0.1, 0.5, 0.2, 0.2, 0.9, 0.3, 0.32, 0.3, 0.6, 0.6, 0.4, 0.45])


def test_key_frames_follow_the_documented_rule() -> None:
    idx, prom = st.key_frames(CURVE)
    # range 0.8, threshold 0.2 * 0.8 = 0.16:
    #   1: higher ground on the right (0.9 at 4), col min(0.2, 0.2) = 0.2; left reaches the
    #      start without higher ground -> prominence 0.5 - 0.2 = 0.3
    #   4: the highest peak -> 0.9 - min = 0.8
    #   6: left col 0.3 (towards 4), right col 0.3 (towards 8) -> 0.02, dropped
    #   8-9 plateau -> index (8 + 9) // 2 = 8; left col 0.3 (towards 4) -> 0.3
    #  11: last sample above its neighbour, left col 0.4 (towards 8-9) -> 0.05, dropped
    assert idx.tolist() == [1, 4, 8]
    np.testing.assert_allclose(prom, [0.3, 0.8, 0.3], atol=1e-12)
    # lower threshold: the small bump and the end point count too
    idx, prom = st.key_frames(CURVE, min_prominence=0.0, min_absolute=0.0)
    assert idx.tolist() == [1, 4, 6, 8, 11]
    np.testing.assert_allclose(prom, [0.3, 0.8, 0.02, 0.3, 0.05], atol=1e-12)
    # the most prominent ones only
    assert st.key_frames(CURVE, max_peaks=1)[0].tolist() == [4]


def test_key_frames_edges_plateaus_and_flat_curves() -> None:
    assert st.key_frames([0.0, 0.2, 0.4, 1.0])[0].tolist() == [3]  # rising: the last frame
    assert st.key_frames([1.0, 1.0, 1.0, 0.0])[0].tolist() == [1]  # plateau 0-2: middle
    # a global maximum beside a slightly lower end: measured from the curve's minimum
    idx, prom = st.key_frames([0.0, 1.0, 0.95])
    assert idx.tolist() == [1] and prom.tolist() == [1.0]
    assert st.key_frames([0.3] * 5)[0].size == 0  # flat: no key frame
    # almost flat: range 0.01, below the absolute floor of 0.02
    assert st.key_frames([0.5, 0.51, 0.5, 0.505, 0.5])[0].size == 0
    assert st.key_frames([0.5, 0.51, 0.5, 0.505, 0.5], min_absolute=0)[0].tolist() == [1, 3]
    assert st.key_frames([0.3])[0].size == 0
    with pytest.raises(InputError, match="finite 1-D curve"):
        st.key_frames([0.0, np.nan])
    with pytest.raises(InputError, match="min_prominence"):
        st.key_frames(CURVE, min_prominence=2)


def test_temporal_curve_of_a_hand_built_tube() -> None:
    """Frame t is constant CURVE[t] except one pixel; one frame has unseen (NaN) pixels."""
    T, H, W = len(CURVE), 4, 5
    tube = np.repeat(CURVE[:, None, None], H * W, axis=1).reshape(T, H, W)
    tube[2, 1, 1] = 1.0  # frame 2: mean (19 * 0.2 + 1) / 20 = 0.24, max 1
    tube[5, :, 0] = np.nan  # frame 5: 15 seen pixels of 0.3
    times = np.arange(T) / 10.0
    curve = st.temporal_curve(torch.from_numpy(tube), times)
    expected_mean = CURVE.copy()
    expected_mean[2] = (19 * 0.2 + 1.0) / 20
    expected_max = CURVE.copy()
    expected_max[2] = 1.0
    np.testing.assert_allclose(curve.mean, expected_mean, atol=1e-12)
    np.testing.assert_allclose(curve.max, expected_max, atol=1e-12)
    assert curve.key_frames.tolist() == [1, 4, 8]  # the 0.24 at frame 2 is no peak
    as_dict = curve.to_dict()
    assert as_dict["key_frames"] == [1, 4, 8] and as_dict["key_times"] == [0.1, 0.4, 0.8]
    assert temporal.frame_saliency(np.full((2, 2), np.nan)) == (0.0, 0.0)  # nothing seen
    with pytest.raises(InputError, match="timestamps"):
        st.temporal_curve(tube, times[:3])
    with pytest.raises(InputError, match=r"\(T, H, W\)"):
        st.temporal_curve(tube[0])


def test_timeline_bar_draws_the_curve_key_frames_and_cursor() -> None:
    curve = st.temporal_curve(np.array([0.0, 0.25, 1.0, 0.5]).reshape(4, 1, 1))
    bar = render.timeline_bar(curve, width=8, height=11, current=1, colormap="gray")
    assert bar.shape == (11, 8, 3) and bar.dtype == np.uint8
    # two columns per frame; bar heights round(v * (11 - 3)) = 0, 2, 8, 4 from the bottom
    for x, (frame, height, level) in enumerate(
        [(0, 0, 0), (0, 0, 0), (1, 2, 64), (1, 2, 64), (2, 8, 255), (2, 8, 255), (3, 4, 128)]
    ):
        column = bar[:, x, 0].astype(int)
        if frame == 1:  # the cursor: light grey over the full height
            assert (column == 200).all()
            continue
        filled = column[11 - height :] if height else column[:0]
        assert (filled == level).all(), (x, column)
        rest = column[3 : 11 - height]
        assert (rest == 32).all(), (x, column)
    assert (bar[:3, 4:6] == 255).all()  # key frame 2: white tick at the top
    shared = render.timeline_bar(curve, 8, 11, scale=2.0, colormap="gray")
    assert (shared[11 - 4 :, 4, 0] == 128).all()  # 1.0 / 2.0 -> half height, mid grey
    with pytest.raises(InputError, match="current"):
        render.timeline_bar(curve, 8, 11, current=4)


def test_curves_png_draws_a_png() -> None:
    times = np.arange(len(CURVE)) / 25.0
    curve = st.temporal_curve(CURVE.reshape(-1, 1, 1), times)
    png = render.curves_png(
        [("take", curve), ("wash", st.temporal_curve(CURVE[::-1].reshape(-1, 1, 1), times))],
        title="take vs wash",
        sampled=[0, 4, 8],
    )
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG" and image.size == (800, 450)
    with pytest.raises(InputError, match="same frames"):
        render.curves_png([("a", curve), ("b", st.temporal_curve(np.zeros((3, 1, 1))))])


# -- the curves the commands write ---------------------------------------------------


def test_explain_writes_curves_of_the_mapped_tube_and_a_timeline(
    demo_clip: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        [
            "explain",
            str(demo_clip),
            "--out",
            str(out),
            *"--classes top2 --quiet --format png,npy,plot --layouts heat --timeline".split(),
        ],
    )
    assert result.exit_code == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["outputs"]["plot"] == ["temporal_1_shrink.png", "temporal_2_grow.png"]
    tubes = np.load(out / "tube.npy")
    indices = manifest["clips"][0]["frame_indices"]
    preset = load_model("tiny-actions").preset
    for k, entry in enumerate(manifest["tubes"]):
        stack = mapped(tubes[k], indices, preset, demo_clip)
        curve = st.temporal_curve(stack, probe(demo_clip).timestamps)
        written = entry["temporal"]
        assert len(written["mean"]) == 24
        np.testing.assert_allclose(written["mean"], curve.mean, atol=6e-5)
        np.testing.assert_allclose(written["max"], curve.max, atol=6e-5)
        assert written["key_frames"] == curve.key_frames.tolist()
        stats = st.tube_stats(stack)
        assert entry["stats"]["fraction_above"] == pytest.approx(stats.fraction_above, abs=6e-5)
        assert entry["stats"]["spread"] == pytest.approx(stats.spread, abs=6e-5)
        assert (out / manifest["outputs"]["plot"][k]).is_file()
    # the timeline bar under each heat frame: the curve of tube 0 with the cursor on the frame
    stack = mapped(tubes[0], indices, preset, demo_clip)
    curve = st.temporal_curve(stack)
    frames = list(iter_frames(out / manifest["outputs"]["png"][0]))
    assert frames[0].image.shape == (96 + 12, 128, 3)
    for frame in frames[::7]:
        expected = render.timeline_bar(curve, 128, 12, frame.index)
        np.testing.assert_array_equal(frame.image[96:], expected)
