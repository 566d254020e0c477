"""Seeking reads (saliency_tubes.video.decoding): the frames equal a sequential decode's.

Every real clip and generated H.264 videos (long and short GOPs, B-frames, an open GOP,
variable frame rate, Matroska) are read sparsely with seeks forced on every gap and
compared frame for frame with a decode of every frame; the plan of runs is checked by hand.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from _clips import CLIPS, real_clip
from saliency_tubes.video import decoding, iter_frames, probe, read_frames
from saliency_tubes.video.decoding import plan_runs


def test_plan_runs_by_hand() -> None:
    keys = np.array([0, 10, 20, 30])
    # frame 3: decode from the start; 25 is 22 frames past 3 with keyframe 20 (16 skipped)
    assert plan_runs(keys, [3, 25], min_skip=12) == [(None, [3]), (20, [25])]
    # 5 -> 12: keyframe 10 skips 4 frames only, decode on
    assert plan_runs(keys, [5, 12], min_skip=12) == [(None, [5, 12])]
    assert plan_runs(keys, [5, 12], min_skip=1) == [(None, [5]), (10, [12])]
    # a first frame past a keyframe seeks straight there
    assert plan_runs(keys, [31, 32, 33], min_skip=12) == [(30, [31, 32, 33])]
    # dense sampling never seeks; no keyframes known never seeks
    assert plan_runs(keys, list(range(0, 40, 2)), min_skip=12) == [(None, list(range(0, 40, 2)))]
    assert plan_runs(None, [3, 39], min_skip=1) == [(None, [3, 39])]
    assert plan_runs(np.array([0]), [3, 39], min_skip=1) == [(None, [3, 39])]


def _content(i: int, h: int, w: int) -> np.ndarray:
    """A frame that differs from every other: a moving square over seeded noise."""
    rng = np.random.default_rng(i)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8) // 4 + 90
    y, x = (3 * i) % (h - 16), (5 * i) % (w - 16)
    img[y : y + 16, x : x + 16] = (255, 40 * (i % 6), 0)
    return img


def _write(
    path: Path, n: int, *, gop: int, bframes: int, vfr: bool = False, x264: str = ""
) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        options = {"g": str(gop), "bf": str(bframes), "preset": "veryfast", "crf": "20"}
        if x264:
            options["x264-params"] = x264
        stream.options = options
        if vfr:
            stream.codec_context.time_base = Fraction(1, 1000)
        pts = 0
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(_content(i, 64, 96), format="rgb24")
            if vfr:
                frame.pts, frame.time_base = pts, Fraction(1, 1000)
                pts += (20, 40, 33, 71, 25)[i % 5]
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


GENERATED = {
    "long_gop.mp4": {"n": 150, "gop": 100, "bframes": 3},
    "short_gop.mp4": {"n": 120, "gop": 8, "bframes": 0},
    "bframes.mp4": {"n": 120, "gop": 24, "bframes": 3},
    "open_gop.mp4": {"n": 120, "gop": 24, "bframes": 3, "x264": "open-gop=1"},
    "vfr.mp4": {"n": 120, "gop": 16, "bframes": 2, "vfr": True},
    "bframes.mkv": {"n": 120, "gop": 20, "bframes": 3},
}


class _Opens:
    """Counts the files the decoder opens (a read that lost its seek opens a second)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = decoding.open_input

        def counted(path: Path) -> av.container.InputContainer:
            self.count += 1
            return real(path)

        monkeypatch.setattr(decoding, "open_input", counted)


def _compare_sparse_reads(
    path: Path, monkeypatch: pytest.MonkeyPatch, *, must_seek: bool, fallback_ok: bool = False
) -> None:
    info = probe(path)
    every = np.stack([f.image for f in iter_frames(path, info=info)])
    assert len(every) == info.num_frames
    monkeypatch.setattr(decoding, "SEEK_MIN_SKIP", 1)  # seek on every gap past a keyframe
    opens = _Opens(monkeypatch)
    plans: list[list[tuple[int | None, list[int]]]] = []
    real_plan = decoding.plan_runs
    monkeypatch.setattr(decoding, "plan_runs", lambda *a: plans.append(real_plan(*a)) or plans[-1])
    rng = np.random.default_rng(7)
    n = info.num_frames
    picks = [
        np.linspace(0, n - 1, min(16, n)).round().astype(int),  # a uniform clip
        np.sort(rng.choice(n, size=min(9, n), replace=False)),
        np.array([n - 1, 0, n // 2, n // 2]),  # any order, repeats
    ]
    keys = info.keyframes[info.keyframes > 0] if info.keyframes is not None else []
    if len(keys):  # around every keyframe
        picks.append(np.unique(np.concatenate([keys, keys - 1, np.minimum(keys + 1, n - 1)])))
    for idx in picks:
        got = read_frames(path, idx, info=info)
        np.testing.assert_array_equal(got, every[idx])
        streamed = list(iter_frames(path, info=info, wanted=set(idx.tolist())))
        assert [f.index for f in streamed] == sorted(set(idx.tolist()))
        for f in streamed:
            np.testing.assert_array_equal(f.image, every[f.index])
            assert f.timestamp == info.timestamps[f.index]
    seeks = sum(start is not None for runs in plans for start, _ in runs)
    if must_seek:
        assert seeks >= len(picks), plans
    if not fallback_ok:
        assert opens.count == 2 * len(picks)  # one open per read: no seek was lost


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_sparse_reads_equal_sequential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    spec = dict(GENERATED[name])
    path = _write(tmp_path / name, **spec)  # type: ignore[arg-type]
    info = probe(path)
    assert info.num_frames == spec["n"]
    expected_keys = -(-spec["n"] // spec["gop"])  # x264 may add scene-cut keyframes
    assert info.keyframes is not None and len(info.keyframes) >= expected_keys
    if spec.get("vfr"):
        assert len(np.unique(np.round(np.diff(info.timestamps), 3))) == 5
    _compare_sparse_reads(path, monkeypatch, must_seek=True)


@pytest.mark.parametrize("name", ["arm_wrestling.mp4", "eye_makeup.avi", "pool_cleaning_32f.mp4"])
def test_real_clips_sparse_reads_equal_sequential(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    path = real_clip(name)
    info = probe(path)
    many_keys = info.keyframes is not None and len(info.keyframes) > 1
    _compare_sparse_reads(path, monkeypatch, must_seek=many_keys)


def test_every_shared_clip_is_covered() -> None:
    if not CLIPS.is_dir():
        pytest.skip(f"no shared clips in {CLIPS}: set SALIENCY_TUBES_CLIPS")
    present = {p.name for p in CLIPS.iterdir() if p.suffix.lower() in {".mp4", ".avi"}}
    assert present <= {"arm_wrestling.mp4", "eye_makeup.avi", "pool_cleaning_32f.mp4"}


def test_a_lost_seek_starts_again_from_the_beginning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Frames whose times are not the probed ones after a seek (here: probed times that
    lie) are caught, and the read starts again from the beginning, counting frames."""
    path = _write(tmp_path / "v.mp4", n=60, gop=30, bframes=2)
    info = probe(path)
    every = np.stack([f.image for f in iter_frames(path, info=info)])
    import dataclasses

    lying = dataclasses.replace(info, timestamps=info.timestamps + 0.0005)
    monkeypatch.setattr(decoding, "SEEK_MIN_SKIP", 1)
    opens = _Opens(monkeypatch)
    idx = np.array([2, 20, 50])
    np.testing.assert_array_equal(read_frames(path, idx, info=lying), every[idx])
    assert opens.count == 2  # the seeking read and the sequential one


def test_a_segment_is_the_files_frames_from_start_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """25 fps, 150 frames: [2.0, 3.5) s is frames 50..87, numbered from 0, read by seeking
    (keyframes every 20) and equal to the file's frames; the times are the file's."""
    from saliency_tubes.errors import InputError
    from saliency_tubes.video import segment

    path = _write(tmp_path / "v.mp4", n=150, gop=20, bframes=2)
    info = probe(path)
    every = np.stack([f.image for f in iter_frames(path, info=info)])
    part = segment(info, 2.0, 3.5)
    assert (part.first, part.num_frames) == (50, 38)
    np.testing.assert_array_equal(part.timestamps, info.timestamps[50:88])
    assert part.duration == pytest.approx(38 / 25)
    plans: list[list[tuple[int | None, list[int]]]] = []
    real_plan = decoding.plan_runs
    monkeypatch.setattr(decoding, "plan_runs", lambda *a: plans.append(real_plan(*a)) or plans[-1])
    frames = list(iter_frames(path, info=part))
    assert [f.index for f in frames] == list(range(38))
    assert [f.timestamp for f in frames] == info.timestamps[50:88].tolist()
    np.testing.assert_array_equal(np.stack([f.image for f in frames]), every[50:88])
    assert info.keyframes is not None
    assert plans[-1][0][0] == max(k for k in info.keyframes if k <= 50) > 0  # seeks there
    np.testing.assert_array_equal(read_frames(path, [37, 0], info=part), every[[87, 50]])
    # a segment of a segment counts from the file; open ends; nothing inside is an error
    inner = segment(part, 3.0, None)
    assert (inner.first, inner.num_frames, inner.whole) == (75, 13, info)
    assert segment(info, None, 0.2).num_frames == 5
    with pytest.raises(InputError, match="no frame"):
        segment(info, 10.0, 11.0)
