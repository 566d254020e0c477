"""Tests of saliency_tubes.video: reading, sampling, preprocessing, mapping back, writing."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from _clips import CLIPS, real_clip
from saliency_tubes.errors import InputError, VideoError
from saliency_tubes.video import (
    Preprocess,
    TimedTube,
    TubeMapper,
    VideoWriter,
    atomic_save_npy,
    atomic_write_bytes,
    atomic_write_json,
    check_min_frames,
    iter_frames,
    probe,
    read_frames,
    resample_times,
    sample_uniform,
    sliding_windows,
    stitch_windows,
)

SHARED_VIDEOS = CLIPS


def _pattern(n: int, h: int, w: int) -> np.ndarray:
    """Smooth moving colour pattern, ``(n, h, w, 3)`` uint8."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    frames = []
    for k in range(n):
        r = 128 + 100 * np.sin(2 * np.pi * (xx / w + k / n))
        g = 128 + 100 * np.cos(2 * np.pi * (0.7 * yy / h + k / (2 * n)))
        b = np.full_like(xx, 40 + 8 * k)
        frames.append(np.stack([r, g, b], -1).clip(0, 255).astype(np.uint8))
    return np.stack(frames)


# ------------------------------------------------------------------------------------
# Geometry: preprocessing and mapping back
# ------------------------------------------------------------------------------------

SRC_HW = (90, 160)
NUM_SRC = 40
SRC_TIMES = np.arange(NUM_SRC) / 25.0


def _one_voxel_tube(t: int, y: int, x: int) -> np.ndarray:
    tube = np.zeros((8, 32, 32), dtype=np.float32)
    tube[t, y, x] = 1.0
    return tube


def test_short_side_geometry_by_hand() -> None:
    # 90x160 -> scale 32/90 -> resized 32x57 (round(160*32/90) = 57) -> crop cols 12..44.
    geo = Preprocess(size=(32, 32)).geometry(SRC_HW)
    assert geo.top == pytest.approx(0.0)
    assert geo.height == pytest.approx(90.0)
    assert geo.left == pytest.approx(12 * 160 / 57)
    assert geo.width == pytest.approx(32 * 160 / 57)
    # clip pixel (10, 20) -> resized (10, 32) -> source centre ((10.5)*90/32-.5, 32.5*160/57-.5)
    ys, xs = geo.to_source(10, 20)
    assert ys == pytest.approx(10.5 * 90 / 32 - 0.5)
    assert xs == pytest.approx(32.5 * 160 / 57 - 0.5)


@pytest.mark.parametrize("resize", ["short_side", "full"])
def test_preprocess_agrees_with_geometry(resize: str) -> None:
    """A bright dot at the source pixel Geometry predicts lands on the right clip pixel."""
    pre = Preprocess(size=(32, 32), resize=resize)  # type: ignore[arg-type]
    geo = pre.geometry(SRC_HW)
    ys, xs = geo.to_source(10, 20)
    frames = np.zeros((2,) + SRC_HW + (3,), dtype=np.uint8)
    frames[:, int(round(ys)) - 1 : int(round(ys)) + 2, int(round(xs)) - 1 : int(round(xs)) + 2] = (
        255
    )
    clip = pre(frames)
    assert clip.shape == (3, 2, 32, 32) and clip.dtype == torch.float32
    peak = np.unravel_index(int(clip[0, 0].argmax()), (32, 32))
    assert abs(peak[0] - 10) <= 1 and abs(peak[1] - 20) <= 1


def test_preprocess_normalises() -> None:
    pre = Preprocess(size=(16, 24), resize="full", mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0))
    frames = np.zeros((3, 40, 50, 3), dtype=np.uint8)
    frames[..., 0] = 255
    clip = pre(frames)
    assert clip.shape == (3, 3, 16, 24)
    assert torch.allclose(clip[0], torch.ones(3, 16, 24))  # (1 - .5) / .5
    assert torch.allclose(clip[1], -torch.ones(3, 16, 24))  # (0 - .25) / .25
    assert torch.allclose(clip[2], torch.zeros(3, 16, 24))
    with pytest.raises(InputError, match="expected frames of shape"):
        pre(np.zeros((3, 40, 50), dtype=np.uint8))
    with pytest.raises(InputError, match="expected resize"):
        Preprocess(size=(8, 8), resize="crop")  # type: ignore[arg-type]


def test_resize_to_short_side() -> None:
    geo = Preprocess(size=(224, 224), resize_to=256).geometry((256, 340))
    # short side 256 stays, width 340, crop 224x224 centred: rows 16..240, cols 58..282
    assert (geo.top, geo.left, geo.height, geo.width) == pytest.approx((16, 58, 224, 224))


@pytest.mark.parametrize(
    ("resize", "expected_col", "nan_cols"),
    [
        ("short_side", 32.5 * 160 / 57 - 0.5, True),
        ("full", 20.5 * 160 / 32 - 0.5, False),
    ],
)
def test_voxel_lands_on_right_source_pixel_and_frame(
    resize: str, expected_col: float, nan_cols: bool
) -> None:
    pre = Preprocess(size=(32, 32), resize=resize)  # type: ignore[arg-type]
    geo = pre.geometry(SRC_HW)
    idx = sample_uniform(NUM_SRC, 8)
    times = SRC_TIMES[idx]
    mapper = TubeMapper(_one_voxel_tube(5, 10, 20), times, geo, SRC_HW)

    m = mapper.frame(times[5])
    assert m.shape == SRC_HW and m.dtype == np.float32
    expected_row = 10.5 * 90 / 32 - 0.5
    peak = np.unravel_index(int(np.nanargmax(m)), SRC_HW)
    assert abs(peak[0] - expected_row) <= 1 and abs(peak[1] - expected_col) <= 1
    assert np.nanmax(m) == pytest.approx(1.0, abs=0.35)  # bilinear peak between pixel centres

    # right frame: nothing on the neighbouring sampled frames, half-way in between, held
    # constant before the first and after the last sampled time
    assert np.nanmax(mapper.frame(times[4])) == 0.0
    assert np.nanmax(mapper.frame(times[6])) == 0.0
    half = mapper.frame(0.5 * (times[4] + times[5]))
    assert np.nanmax(half) == pytest.approx(0.5 * np.nanmax(m), rel=1e-5)
    first = TubeMapper(_one_voxel_tube(0, 10, 20), times, geo)
    assert np.array_equal(first.frame(-3.0), first.frame(times[0]), equal_nan=True)
    last = TubeMapper(_one_voxel_tube(7, 10, 20), times, geo)
    assert np.array_equal(last.frame(99.0), last.frame(times[7]), equal_nan=True)

    nan = np.isnan(m)
    if nan_cols:
        # the crop covers source columns with centres in [33.68, 123.51]: 34..123
        assert nan[:, :34].all() and nan[:, 124:].all()
        assert not nan[:, 34:124].any()
    else:
        assert not nan.any()


def test_mapper_accepts_torch_and_coarse_grid() -> None:
    geo = Preprocess(size=(32, 32), resize="full").geometry(SRC_HW)
    tube = torch.zeros(4, 4, 4)
    tube[2, 1, 3] = 1.0
    times = resample_times(SRC_TIMES[sample_uniform(NUM_SRC, 8)], 4)
    assert times.shape == (4,)
    mapper = TubeMapper(tube, times, geo)
    peak = np.unravel_index(int(np.nanargmax(mapper.frame(times[2]))), SRC_HW)
    ys, xs = geo.to_source(1, 3, grid_hw=(4, 4))
    assert abs(peak[0] - ys) <= 1 and abs(peak[1] - xs) <= 1
    with pytest.raises(InputError, match="expected 4 times"):
        TubeMapper(tube, times[:3], geo)


def test_repeated_times_are_averaged() -> None:
    geo = Preprocess(size=(8, 8), resize="full").geometry((8, 8))
    tube = np.stack([np.full((8, 8), v, np.float32) for v in (0.0, 1.0, 0.5)])
    mapper = TubeMapper(tube, [0.0, 0.0, 1.0], geo)
    assert np.allclose(mapper.frame(0.0), 0.5)
    assert np.allclose(mapper.frame(1.0), 0.5)


def test_stitch_windows_blends_overlaps() -> None:
    geo = Preprocess(size=(8, 8), resize="full").geometry((16, 16))
    fps = 10.0
    windows = sliding_windows(24, 8, 4)
    tubes = [np.full((8, 8, 8), 0.1 * (k + 1), np.float32) for k in range(len(windows))]
    mapper = stitch_windows(tubes, [w / fps for w in windows], geo)
    values = np.array([float(mapper.frame(i / fps)[0, 0]) for i in range(24)])
    assert values[0] == pytest.approx(0.1) and values[-1] == pytest.approx(0.1 * len(windows))
    assert values[2] == pytest.approx(0.1)  # only window 0 covers frame 2
    assert np.all(np.diff(values) >= -1e-6)  # smooth, monotone hand-over
    assert 0.1 < values[5] < 0.2  # frames 4..7 are shared by windows 0 and 1
    assert mapper.time_range == (0.0, 2.3)
    uniform = stitch_windows(tubes, [w / fps for w in windows], geo, weights="uniform")
    assert float(uniform.frame(0.5)[0, 0]) == pytest.approx(0.15)


def test_an_on_demand_mapper_maps_as_stitch_windows_and_makes_only_the_windows_it_needs() -> None:
    geo = Preprocess(size=(8, 8), resize="full").geometry((12, 20))
    fps = 10.0
    windows = sliding_windows(24, 8, 4)
    gen = np.random.default_rng(5)
    tubes = [gen.random((8, 4, 4), dtype=np.float32) for _ in windows]
    times = [w / fps for w in windows]
    whole = stitch_windows(tubes, times, geo)
    made: list[int] = []

    def window(i: int) -> TimedTube:
        made.append(i)
        return TimedTube(tubes[i], times[i])

    spans = [(float(t.min()), float(t.max())) for t in times]
    lazy = TubeMapper.on_demand(spans, window, geo, (4, 4))
    assert made == []
    assert np.array_equal(lazy.frame(0.2), whole.frame(0.2), equal_nan=True)
    assert made == [0]  # frame 2: window 0 alone
    for i in range(24):
        assert np.array_equal(lazy.frame(i / fps), whole.frame(i / fps), equal_nan=True)
    assert np.array_equal(lazy.frame_tensor(0.55).numpy(), whole.frame(0.55), equal_nan=True)
    assert np.isnan(lazy.frame(0.5)).sum() == 0 and lazy.time_range == whole.time_range


# ------------------------------------------------------------------------------------
# Sampling
# ------------------------------------------------------------------------------------


def test_sample_uniform() -> None:
    assert sample_uniform(280, 8).tolist() == [0, 39, 79, 119, 159, 199, 239, 279]
    assert sample_uniform(16, 16).tolist() == list(range(16))
    assert sample_uniform(10, 1).tolist() == [0]
    rep = sample_uniform(3, 8)
    assert rep.tolist() == [0, 0, 0, 0, 1, 1, 1, 2]
    with pytest.raises(InputError, match="positive integer"):
        sample_uniform(0, 8)


@pytest.mark.parametrize(
    ("n", "length", "stride", "step"),
    [(100, 16, 8, 1), (37, 8, 8, 1), (50, 8, 5, 2), (16, 16, 4, 1)],
)
def test_sliding_windows_cover_every_frame(n: int, length: int, stride: int, step: int) -> None:
    windows = sliding_windows(n, length, stride, step)
    covered = np.zeros(n, dtype=bool)
    for w in windows:
        assert w.shape == (length,) and w.min() >= 0 and w.max() < n
        assert np.all(np.diff(w) == step)
        covered[w[0] : w[-1] + 1] = True
    assert covered.all()
    assert windows[0][0] == 0 and windows[-1][-1] == n - 1


def test_sliding_windows_short_video_and_errors() -> None:
    (only,) = sliding_windows(5, 8, 4)
    assert only.tolist() == sample_uniform(5, 8).tolist()
    with pytest.raises(InputError, match="stride <= window span"):
        sliding_windows(100, 8, 9)


# ------------------------------------------------------------------------------------
# Writing and reading back
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize("hw", [(65, 87), (64, 88)])
def test_mp4_round_trip(tmp_path: Path, hw: tuple[int, int]) -> None:
    h, w = hw
    frames = _pattern(20, h, w)
    out = tmp_path / "clip.mp4"
    with VideoWriter(out, fps=24, crf=10, preset="ultrafast") as writer:
        writer.write_frames(frames)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]

    info = probe(out)
    assert info.num_frames == 20
    assert info.fps == 24.0 and info.rate == Fraction(24)
    assert info.codec == "h264"
    assert np.allclose(info.timestamps - info.timestamps[0], np.arange(20) / 24)
    # yuv420p needs even sizes: an odd height/width is padded by one row/column repeating
    # the last one, so 65x87 comes back as 66x88 with the written frame at the top left.
    assert info.size == (h + h % 2, w + w % 2)
    back = read_frames(out, np.arange(20), info=info)
    err = np.abs(back[:, :h, :w].astype(np.int16) - frames)
    # Measured with this smooth pattern: mean abs error ~1.2 grey levels (crf 10; ~1.5 at the
    # default crf 18), no bias; the 4:2:0 chroma subsampling dominates.
    assert err.mean() < 2.0
    assert abs((back[:, :h, :w].astype(np.float64) - frames).mean()) < 0.3
    if h % 2:
        assert np.abs(back[:, h, :w].astype(np.int16) - frames[:, h - 1]).mean() < 3.0
    if w % 2:
        assert np.abs(back[:, :h, w].astype(np.int16) - frames[:, :, w - 1]).mean() < 3.0


def test_mp4_odd_crop(tmp_path: Path) -> None:
    out = tmp_path / "crop.mp4"
    with VideoWriter(out, fps=Fraction(30000, 1001), odd="crop", preset="ultrafast") as writer:
        writer.write_frames(_pattern(4, 65, 87))
    info = probe(out)
    assert info.size == (64, 86) and info.num_frames == 4
    assert info.rate == Fraction(30000, 1001)


def test_gif_round_trip(tmp_path: Path) -> None:
    frames = _pattern(10, 65, 87)
    out = tmp_path / "clip.gif"
    with VideoWriter(out, fps=25) as writer:  # GIF delays are centiseconds: 25 fps = 4 cs
        writer.write_frames(frames)
    info = probe(out)
    assert (info.num_frames, info.size, info.fps, info.codec) == (10, (65, 87), 25.0, "gif")
    back = read_frames(out, np.arange(10), info=info)
    # 256-colour palette per frame: measured mean abs error ~2.3 grey levels on this pattern
    assert np.abs(back.astype(np.int16) - frames).mean() < 3.5


def test_png_folder_round_trip(tmp_path: Path) -> None:
    frames = _pattern(5, 33, 47)
    out = tmp_path / "frames"
    with VideoWriter(out) as writer:
        writer.write_frames(frames)
    info = probe(out, folder_fps=12)
    assert (info.num_frames, info.size, info.fps, info.codec) == (5, (33, 47), 12.0, "png")
    assert np.array_equal(read_frames(out, [4, 0, 4], info=info), frames[[4, 0, 4]])
    streamed = list(iter_frames(out, folder_fps=12))
    assert [f.timestamp for f in streamed] == pytest.approx(np.arange(5) / 12)
    assert np.array_equal(np.stack([f.image for f in streamed]), frames)


def test_folder_sorted_naturally(tmp_path: Path) -> None:
    from PIL import Image

    for i in (10, 2, 1):
        Image.fromarray(np.full((4, 6, 3), i, np.uint8)).save(tmp_path / f"f{i}.png")
    frames = read_frames(tmp_path, [0, 1, 2])
    assert frames[:, 0, 0, 0].tolist() == [1, 2, 10]


def test_exception_inside_writer_leaves_nothing(tmp_path: Path) -> None:
    for name in ("broken.mp4", "broken.gif", "broken"):
        with pytest.raises(RuntimeError, match="boom"):
            with VideoWriter(tmp_path / name, fps=24, preset="ultrafast") as writer:
                writer.write_frames(_pattern(3, 16, 16))
                raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_existing_output(tmp_path: Path) -> None:
    out = tmp_path / "keep.mp4"
    out.write_bytes(b"old")
    with pytest.raises(InputError, match="expected every frame to be 16x16"):
        with VideoWriter(out, fps=24, preset="ultrafast") as writer:
            writer.write(np.zeros((16, 16, 3), np.uint8))
            writer.write(np.zeros((8, 8, 3), np.uint8))
    assert out.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.mp4"]


def test_writer_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="expected an output ending in"):
        VideoWriter(tmp_path / "x.avi")
    with pytest.raises(InputError, match="positive frame rate"):
        VideoWriter(tmp_path / "x.mp4", fps=0)
    writer = VideoWriter(tmp_path / "x.mp4")
    with pytest.raises(InputError, match=r"shape \(H, W, 3\) and dtype uint8"):
        writer.write(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(VideoError, match="at least 1 frame written"):
        writer.close()
    assert list(tmp_path.iterdir()) == []


def test_variable_frame_rate_timestamps(tmp_path: Path) -> None:
    times_ms = [0, 40, 50, 150, 160, 400]
    out = tmp_path / "vfr.mp4"
    with av.open(str(out), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        for k, t in enumerate(times_ms):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 30 * k, np.uint8), "rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    info = probe(out)
    assert info.num_frames == len(times_ms)
    assert info.timestamps - info.timestamps[0] == pytest.approx(np.array(times_ms) / 1000)
    got = [f.timestamp for f in iter_frames(out, info=info)]
    assert got == pytest.approx(info.timestamps.tolist())


def test_atomic_helpers(tmp_path: Path) -> None:
    atomic_write_bytes(tmp_path / "a.bin", b"xyz")
    atomic_save_npy(tmp_path / "tube", torch.arange(6.0).reshape(2, 3))
    atomic_write_json(tmp_path / "meta.json", {"fps": Fraction(30000, 1001), "n": np.int64(3)})
    assert (tmp_path / "a.bin").read_bytes() == b"xyz"
    assert np.load(tmp_path / "tube").tolist() == [[0, 1, 2], [3, 4, 5]]
    assert json.loads((tmp_path / "meta.json").read_text()) == {"fps": "30000/1001", "n": 3}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "meta.json", "tube"]


# ------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="expected an existing video file or frame folder"):
        probe(tmp_path / "nope.mp4")


@pytest.mark.parametrize("content", [b"", b"this is not a video\n" * 20])
def test_not_a_video(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    with pytest.raises(VideoError) as info:
        probe(bad)
    message = str(info.value)
    if content:
        assert message.startswith(f"could not read video '{bad}': ")
    else:
        assert message.startswith(f"video file '{bad}' is empty (0 bytes)")
    assert message.endswith("; expected a video file FFmpeg can decode")
    assert "\n" not in message


def test_audio_only_file(tmp_path: Path) -> None:
    audio = tmp_path / "sound.m4a"
    with av.open(str(audio), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        samples = av.AudioFrame.from_ndarray(
            np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
        )
        samples.sample_rate, samples.pts = 16000, 0
        container.mux(stream.encode(samples))
        container.mux(stream.encode(None))
    with pytest.raises(VideoError, match="expected a video stream in .*, but got audio"):
        probe(audio)


def test_single_frame_video(tmp_path: Path) -> None:
    one = tmp_path / "one.mp4"
    with VideoWriter(one, fps=24, preset="ultrafast") as writer:
        writer.write(np.zeros((16, 16, 3), np.uint8))
    info = probe(one)
    assert info.num_frames == 1
    with pytest.raises(VideoError, match="expected a video with at least 2 frames, but got 1"):
        check_min_frames(info)
    with pytest.raises(VideoError, match="at least 2 frames"):
        probe(one, min_frames=2)


def test_read_frames_bad_index(tmp_path: Path) -> None:
    out = tmp_path / "f"
    with VideoWriter(out) as writer:
        writer.write_frames(_pattern(3, 8, 8))
    with pytest.raises(InputError, match=r"expected frame indices in \[0, 3\), but got 3"):
        read_frames(out, [0, 3])


# ------------------------------------------------------------------------------------
# Real clips
# ------------------------------------------------------------------------------------

REAL = [
    ("arm_wrestling.mp4", "h264", 280, 28.0, (256, 340)),
    ("eye_makeup.avi", "mpeg4", 164, 25.0, (240, 320)),
    ("pool_cleaning_32f.mp4", "h264", 32, 30.0, (256, 340)),
]


def _real(name: str) -> Path:
    return real_clip(name)


@pytest.mark.parametrize(("name", "codec", "frames", "fps", "size"), REAL)
def test_real_clip_facts(
    name: str, codec: str, frames: int, fps: float, size: tuple[int, int]
) -> None:
    info = probe(_real(name))
    assert (info.codec, info.num_frames, info.fps, info.size) == (codec, frames, fps, size)
    assert info.timestamps.shape == (frames,)
    assert np.all(np.diff(info.timestamps) > 0)


def test_real_avi_packed_bframes_timestamps() -> None:
    # The AVI stores packed B-frames: decoded frames carry shuffled pts (1, 2, 4, 3, ...);
    # probe sorts packet pts so frame i gets the i-th presentation time.
    info = probe(_real("eye_makeup.avi"))
    assert np.allclose(np.diff(info.timestamps), 0.04)


def test_real_read_frames_match_stream() -> None:
    path = _real("pool_cleaning_32f.mp4")
    info = probe(path)
    streamed = [f for f in iter_frames(path, info=info)]
    assert [f.index for f in streamed] == list(range(32))
    idx = sample_uniform(info.num_frames, 8)
    picked = read_frames(path, idx, info=info)
    assert picked.shape == (8, 256, 340, 3)
    assert np.array_equal(picked, np.stack([streamed[i].image for i in idx]))


@pytest.mark.parametrize("degrees", [90, -90, 180])
def test_rotated_videos_are_decoded_upright(tmp_path: Path, degrees: int) -> None:
    """A phone video's display matrix is honoured: frames come back turned upright."""
    import av

    path = tmp_path / "rotated.mp4"
    h, w = 48, 64
    image = np.zeros((h, w, 3), np.uint8)
    image[:16, :16] = (255, 0, 0)  # a red block in the stored frame's top-left corner
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10, options={"crf": "0"})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv444p"
        stream.set_display_rotation(degrees)
        for _ in range(4):
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    info = probe(path)
    k = (degrees // 90) % 4
    expected = np.rot90(image, k=k)  # counter-clockwise, as the display matrix says
    assert info.rotation == (degrees % 360) and info.size == expected.shape[:2]
    frames = read_frames(path, [0, 3], info=info)
    streamed = [f.image for f in iter_frames(path, info=info)]
    assert frames.shape == (2, *expected.shape) and len(streamed) == 4
    red = expected[..., 0] > 128
    for got in (frames[0], streamed[3]):
        assert ((got[..., 0] > 128) == red).mean() > 0.99


def test_writer_refuses_unknown_presets_and_crf_out_of_range(tmp_path: Path) -> None:
    for kwargs, fragment in (
        ({"preset": "quick"}, "expected preset one of ultrafast, superfast"),
        ({"crf": 52}, "expected crf an integer from 0 to 51"),
        ({"crf": 18.5}, "expected crf an integer from 0 to 51"),
        ({"crf": True}, "expected crf an integer from 0 to 51"),
    ):
        with pytest.raises(InputError, match=fragment):
            VideoWriter(tmp_path / "x.mp4", 10, **kwargs)
    assert list(tmp_path.iterdir()) == []  # nothing claimed
    assert VideoWriter(tmp_path / "y.mp4", 10, crf=np.int64(20)).crf == 20
