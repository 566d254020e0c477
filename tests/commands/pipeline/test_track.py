"""The tube track: one window maps like a TubeMapper; windows blend on one scale."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from saliency_tubes.commands.pipeline.track import TubeTrack, Window
from saliency_tubes.video import Preprocess, TubeMapper, stitch_windows


def _window(indices: list[int], raw: torch.Tensor) -> Window:
    ix = np.array(indices)
    return Window(ix, ix / 10.0, raw)


def test_one_window_is_the_mapped_normalised_tube() -> None:
    torch.manual_seed(0)
    raw = torch.rand(2, 4, 6, 6)  # (K, T, h, w): already on the clip grid, no upsampling
    geometry = Preprocess(size=(6, 6), resize="short_side").geometry((12, 18))
    track = TubeTrack([_window([0, 3, 6, 9], raw)], (4, 6, 6), "cubic", "corners", geometry)
    for k in range(2):
        tube = (raw[k] - raw[k].min()) / (raw[k].max() - raw[k].min())
        mapper = TubeMapper(tube.numpy(), np.array([0, 3, 6, 9]) / 10.0, geometry)
        for t in (0.0, 0.15, 0.45, 0.9, 1.2):
            np.testing.assert_allclose(
                track.frame(k, t), mapper.frame(t), atol=1e-6, equal_nan=True
            )
    assert np.isnan(track.frame(0, 0.0)).any()  # the short-side crop hides the borders


def test_windows_share_one_scale_and_blend_like_stitch_windows() -> None:
    raws = [torch.full((1, 2, 2, 2), 1.0), torch.full((1, 2, 2, 2), 3.0)]
    raws[1][0, 1] = 5.0
    windows = [_window([0, 2], raws[0]), _window([1, 3], raws[1])]
    geometry = Preprocess(size=(2, 2), resize="full").geometry((2, 2))
    track = TubeTrack(windows, (2, 2, 2), "linear", "corners", geometry)
    # One scale: low 1 and high 5 over both windows.
    np.testing.assert_allclose(track.normalised(0), 0.0)
    np.testing.assert_allclose(track.normalised(1)[0, :, 0, 0], [0.5, 1.0])
    stitched = stitch_windows(
        [track.normalised(w)[0] for w in range(2)], [w.times for w in windows], geometry
    )
    for t in (0.0, 0.1, 0.15, 0.2, 0.3):
        np.testing.assert_allclose(track.frame(0, t), stitched.frame(t), atol=1e-7)
    shape, blocks = track.blocks()
    assert shape == (2, 1, 2, 2, 2) and np.concatenate(list(blocks)).shape == shape


def test_difference_is_signed_on_one_scale() -> None:
    raw = torch.stack([torch.full((2, 2, 2), 2.0), torch.full((2, 2, 2), 1.0)])
    raw[0, 1] = 0.0  # A - B: +1 at t = 0, -1 at t = 1
    geometry = Preprocess(size=(2, 2), resize="full").geometry((2, 2))
    track = TubeTrack([_window([0, 1], raw)], (2, 2, 2), "linear", "corners", geometry)
    diff = track.difference(0, 1)
    assert float(diff.bound[0]) == pytest.approx(1.0)
    np.testing.assert_allclose(diff.normalised(0)[0, :, 0, 0], [1.0, -1.0])


def test_a_summariser_missing_frames_summarises_every_frame_itself(clip_path, tiny) -> None:
    """Frames skipped by the drawing (a video ending early): build() falls back to the
    full pass, so the numbers are always those of every source frame."""
    from saliency_tubes.commands.options import ExplainOptions
    from saliency_tubes.commands.pipeline import explaining
    from saliency_tubes.commands.pipeline.track import Summariser, summarise
    from saliency_tubes.video import Frame, probe

    info = probe(clip_path)
    plan = explaining.plan(info, tiny, ExplainOptions(classes="top2", progress=False))
    (e,) = explaining.explain(clip_path, info, [plan], False, lambda _: None)
    full = summarise(info, [e.track])
    image = np.zeros((*info.size, 3), np.uint8)
    for n in (info.num_frames, info.num_frames - 1):  # every frame, then one short
        s = Summariser(info, [e.track])
        for i in range(n):
            frame = Frame(i, float(info.timestamps[i]), image)
            for k in range(2):
                s.look(e.track, k, frame)
                s.look(e.track, k, frame)  # a second look at a frame is not counted twice
        assert s.complete == (n == info.num_frames)
        for a, b in zip(s.build()[0], full[0], strict=True):
            assert a.stats == b.stats
            np.testing.assert_array_equal(a.curve.mean, b.curve.mean)


def test_summaries_on_the_grid_equal_those_on_source_pixels_of_the_grid_size() -> None:
    """A clip that covers its source at the same size maps each cell onto one pixel: the
    grid summary (blocks of frames at once) equals the per-frame summary on the pixels
    up to its float32 time weights."""
    from saliency_tubes.commands.pipeline.track import (
        ON_GRID,
        ON_SOURCE,
        summarise,
        summarise_on_grid,
    )
    from saliency_tubes.video import VideoInfo

    torch.manual_seed(3)
    raw = torch.rand(2, 4, 6, 8)
    geometry = Preprocess(size=(6, 8), resize="full").geometry((6, 8))
    track = TubeTrack([_window([0, 100, 200, 299], raw)], (4, 6, 8), "linear", "corners", geometry)
    times = np.arange(300) / 10.0  # 300 frames: two blocks of the grid summary
    info = VideoInfo("v.mp4", 8, 6, 300, 10.0, 30.0, times, "h264", 10)  # type: ignore[arg-type]
    (grid,), (source,) = summarise_on_grid(info, [track]), summarise(info, [track])
    for g, s in zip(grid, source, strict=True):
        assert (g.measured_on, s.measured_on) == (ON_GRID, ON_SOURCE)
        # the grid summary weighs the time steps in float32: within 1e-6
        np.testing.assert_allclose(g.curve.mean, s.curve.mean, atol=1e-6)
        np.testing.assert_allclose(g.curve.max, s.curve.max, atol=1e-6)
        np.testing.assert_array_equal(g.curve.key_frames, s.curve.key_frames)
        assert g.stats.voxels == s.stats.voxels == 300 * 6 * 8
        assert g.stats.fraction_above == pytest.approx(s.stats.fraction_above, abs=2 / 14400)
        assert g.stats.spread == pytest.approx(s.stats.spread, rel=1e-5)


def test_block_builders_equal_frame_by_frame_ones() -> None:
    from saliency_tubes.metrics.concentration import StatsBuilder
    from saliency_tubes.temporal import CurveBuilder

    rng = np.random.default_rng(0)
    maps = rng.random((7, 5, 9)).astype(np.float32)
    maps[2, :, :4] = np.nan  # unseen pixels
    maps[4] = np.nan  # a frame with none seen
    maps[5] = 0.2  # a frame with nothing above the threshold
    one, block = StatsBuilder(), StatsBuilder()
    curve_one, curve_block = CurveBuilder(), CurveBuilder()
    for m in maps:
        one.add(m)
        curve_one.add(m)
    block.add_frames(maps)
    curve_block.add_frames(maps)
    a, b = one.build(), block.build()
    assert (a.voxels, a.fraction_above) == (b.voxels, b.fraction_above)
    assert a.voxels == 7 * 45 - 5 * 4 - 45
    assert a.spread == pytest.approx(b.spread, rel=1e-12)
    ca, cb = curve_one.build(), curve_block.build()
    np.testing.assert_allclose(ca.mean, cb.mean, rtol=1e-12)
    np.testing.assert_array_equal(ca.max, cb.max)
    assert ca.mean[4] == cb.mean[4] == 0.0 and cb.max[5] == pytest.approx(0.2)


def test_timed_tube_at_many_times_is_the_linear_interpolation_by_hand() -> None:
    from saliency_tubes.video import TimedTube

    rng = np.random.default_rng(0)
    maps = rng.random((5, 4, 6)).astype(np.float32)
    kept = maps.copy()
    times = np.array([0.0, 0.1, 0.25, 0.4, 0.5])
    tube = TimedTube(maps, times)
    ts = np.linspace(-0.1, 0.6, 57)
    many = tube.at_times(ts)
    for t, got in zip(ts, many, strict=True):
        i = min(max(int(np.searchsorted(times, t, side="right")) - 1, 0), 3)
        a = min(max((t - times[i]) / (times[i + 1] - times[i]), 0.0), 1.0)
        np.testing.assert_array_equal(got, (1.0 - a) * maps[i] + a * maps[i + 1])
        np.testing.assert_array_equal(np.asarray(tube.at(float(t)), np.float64), got)
    # float32: the weights rounded to float32, the same products and sum (in place there)
    few = tube.at_times(ts, np.float32)
    assert few.dtype == np.float32
    for t, got in zip(ts, few, strict=True):
        i = min(max(int(np.searchsorted(times, t, side="right")) - 1, 0), 3)
        a = min(max((t - times[i]) / (times[i + 1] - times[i]), 0.0), 1.0)
        w0, w1 = np.float32(1.0 - a), np.float32(a)
        np.testing.assert_array_equal(got, w0 * maps[i] + w1 * maps[i + 1])
    np.testing.assert_array_equal(tube.maps, kept)  # the scaling in place left the maps
