"""``--max-side``: outputs within N pixels, the tube mapped at the smaller size."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from saliency_tubes.commands import CompareOptions, ExplainOptions, compare_classes, explain_video
from saliency_tubes.commands.pipeline.sizing import fit
from saliency_tubes.commands.pipeline.track import TubeTrack, Window
from saliency_tubes.errors import InputError
from saliency_tubes.video import Preprocess, probe


def _video_facts(path: Path) -> tuple[int, int, int]:
    """``(H, W, frames)`` of a written video, frames counted by decoding."""
    with av.open(str(path)) as container:
        frames = [f for f in container.decode(video=0)]
    return frames[0].height, frames[0].width, len(frames)


def test_fit_by_hand() -> None:
    plain = lambda hw: hw  # noqa: E731 - a panel alone
    assert fit((1080, 1920), 1280, plain) == (720, 1280)
    assert fit((1080, 1920), None, plain) == (1080, 1920)
    assert fit((100, 120), 1280, plain) == (100, 120)  # never larger than the source
    # three panels side by side with 4-pixel gaps: 3 w + 8 <= 1280
    three = lambda hw: (hw[0], 3 * hw[1] + 8)  # noqa: E731
    h, w = fit((1080, 1920), 1280, three)
    assert 3 * w + 8 <= 1280 and 3 * (w + 4) + 8 > 1280 and abs(h / w - 1080 / 1920) < 0.01
    # an odd side counts one more (the mp4 repeats a column): 1281 wide does not fit 1281
    assert fit((1081, 1281), 1281, plain) == (1080, 1280)
    with pytest.raises(InputError, match="--max-side"):
        fit((1080, 1920), 16, lambda hw: (hw[0] + 40, hw[1]))  # a 40-pixel caption


def test_tube_mapped_at_a_smaller_size_is_the_bilinear_map_there() -> None:
    """A ramp over the grid's columns, mapped onto the source resized to 45x60: every seen
    pixel's value is the grid column its centre falls on, computed here directly."""
    gh, gw = 8, 8
    ramp = torch.arange(gw, dtype=torch.float32).repeat(gh, 1)  # m[y, x] = x
    raw = torch.stack([ramp, ramp])[None]  # (K=1, T=2, 8, 8)
    geometry = Preprocess(size=(gh, gw), resize="short_side").geometry((90, 120))
    indices = np.array([0, 1])
    track = TubeTrack(
        [Window(indices, indices / 10.0, raw)], (2, gh, gw), "linear", "corners", geometry
    )
    small = track.frame(0, 0.05, (45, 60))
    assert small.shape == (45, 60)
    # the centre crop's columns on the source, halved with the frame
    assert geometry.src_hw == (90, 120) and 10 < geometry.left < 20 and geometry.height == 90
    left, width = geometry.left * 0.5, geometry.width * 0.5
    X = np.arange(60)
    g = np.clip((X + 0.5 - left) * gw / width - 0.5, 0, gw - 1)
    seen = (X + 0.5 >= left - 1e-6) & (X + 0.5 <= left + width + 1e-6)
    expected = g / (gw - 1)  # min-max normalised ramp
    for row in small:
        np.testing.assert_allclose(row[seen], expected[seen], atol=1e-6)
        assert np.isnan(row[~seen]).all()
    # the same tube on the source frame: the pixels scale with the frame
    full = track.frame(0, 0.05)
    first = int(np.ceil(geometry.left - 0.5))
    assert full.shape == (90, 120) and np.isnan(full[:, :first]).all()
    assert not np.isnan(full[:, first]).any()


def test_explain_max_side(clip_path: Path, tmp_path: Path, tiny) -> None:
    """96x128 source, --max-side 64: heat and focus 48x64, the side-by-side within 64
    wide with its captions, every frame, the manifest says so."""
    info = probe(clip_path)
    options = ExplainOptions(formats=("mp4",), max_side=64, progress=False)
    result = explain_video(clip_path, tmp_path / "out", tiny, options)
    files = {p.name.split("_")[0]: p for p in result.files["mp4"]}
    assert _video_facts(files["heat"]) == (48, 64, info.num_frames)
    assert _video_facts(files["focus"]) == (48, 64, info.num_frames)
    h, w, n = _video_facts(files["side"])
    assert max(h, w) <= 64 and w > 56 and n == info.num_frames
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["options"]["max_side"] == 64
    assert manifest["tubes"][0]["measured_on"] == "output frames (48x64)"
    assert result.tubes[0].stats.voxels == info.num_frames * 48 * 64


def test_compare_classes_grid_within_max_side(clip_path: Path, tmp_path: Path, tiny) -> None:
    options = CompareOptions(
        classes="top3", formats=("mp4",), max_side=100, timeline=True, progress=False
    )
    result = compare_classes(clip_path, tmp_path / "cmp", tiny, options)
    for path in result.files["mp4"]:
        h, w, n = _video_facts(path)
        assert max(h, w) <= 100 and n == probe(clip_path).num_frames


def test_max_side_is_checked() -> None:
    with pytest.raises(InputError, match="--max-side"):
        ExplainOptions(max_side=8).check()


def test_explain_a_segment_with_windows(clip_path: Path, tmp_path: Path, tiny) -> None:
    """24 frames at 12 fps; --start 0.5 --end 1.5 holds frames 6..17 (12 frames): the videos
    have 12 frames, the windows lie inside it, the manifest records the segment."""
    info = probe(clip_path)
    options = ExplainOptions(
        formats=("mp4", "npy"),
        layouts=("heat",),
        windows=(8, 4),
        start=0.5,
        end=1.5,
        progress=False,
    )
    result = explain_video(clip_path, tmp_path / "seg", tiny, options)
    (heat,) = result.files["mp4"]
    assert _video_facts(heat) == (96, 128, 12)
    manifest = json.loads((tmp_path / "seg" / "manifest.json").read_text())
    assert manifest["source"]["num_frames"] == info.num_frames == 24
    assert manifest["source"]["segment"] == {
        "first_frame": 6,
        "num_frames": 12,
        "first_time": pytest.approx(info.timestamps[6]),
        "last_time": pytest.approx(info.timestamps[17]),
        "duration": pytest.approx(1.0),
    }
    assert (manifest["options"]["start"], manifest["options"]["end"]) == (0.5, 1.5)
    clips = manifest["clips"]
    assert [c["frame_indices"][0] for c in clips] == [0, 4]  # 8-frame windows, stride 4
    assert all(0.5 <= t < 1.5 for c in clips for t in c["timestamps"])
    assert len(manifest["tubes"][0]["temporal"]["mean"]) == 12
    assert np.load(tmp_path / "seg" / "tube.npy").shape[0] == 2


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--max-side", "8"], "expected --max-side a number of pixels >= 16"),
        (["--start", "2", "--end", "1"], "expected --end after --start"),
        (["--start", "60"], "expected --start/--end to hold frames"),
    ],
)
def test_cli_refuses_bad_sizes_and_segments(
    clip_path: Path, tmp_path: Path, flags: list[str], said: str
) -> None:
    from click.testing import CliRunner

    from saliency_tubes.cli import main

    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["explain", str(clip_path), "--out", str(out), "--quiet", *flags]
    )
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and said in lines[0]
    assert not out.exists()  # nothing written


def test_the_report_of_a_segment_plays_the_segment(clip_path: Path, tmp_path: Path, tiny) -> None:
    """The page maps the player's time 0 to the segment's first frame (its first
    timestamp), so it must play the segment's frames from time 0 (a copy), not the whole
    file from its first frame: that put frame 0's picture under frame 6's tube."""
    import re

    options = ExplainOptions(formats=("html",), start=0.5, end=1.5, progress=False)
    explain_video(clip_path, tmp_path / "seg", tiny, options)
    page = (tmp_path / "seg" / "report.html").read_text(encoding="utf-8")
    data = json.loads(re.search(r'id="report-data">(.*?)</script>', page, re.S).group(1))
    src = re.search(r'<video[^>]* src="([^"]*)"', page)
    assert src is not None and src.group(1) == "source.mp4"
    copy = probe(tmp_path / "seg" / "source.mp4")
    assert copy.num_frames == len(data["video"]["timestamps"]) == 12
    assert data["video"]["timestamps"][0] == pytest.approx(0.5)
    with av.open(str(tmp_path / "seg" / "source.mp4")) as container:
        first = next(container.decode(video=0)).to_ndarray(format="rgb24").astype(float)
    with av.open(str(clip_path)) as container:
        frames = [f.to_ndarray(format="rgb24").astype(float) for f in container.decode(video=0)]
    errors = [np.abs(first - f).mean() for f in frames]
    assert int(np.argmin(errors)) == 6  # the copy starts at the segment's first frame


def test_batch_of_a_segment_scores_the_segments_frames(tmp_path: Path) -> None:
    """batch --start/--end: the row counts the segment's frames, and the localisation is
    scored against the ground truth of the segment's frames (the file's first + i): equal
    to scoring the explained windows against the mask's frames shifted by hand."""
    import pyarrow.parquet as pq

    from saliency_tubes.commands import BatchOptions, BatchSettings, ModelOptions, batch_videos
    from saliency_tubes.commands.demo import write_demo_dataset
    from saliency_tubes.metrics.groundtruth import load_ground_truth
    from saliency_tubes.metrics.protocol import Protocol

    table = write_demo_dataset(tmp_path / "data", videos=1)
    options = ExplainOptions(formats=("npy",), start=0.5, end=1.5, progress=False)
    out = tmp_path / "batch"
    settings = BatchSettings(ModelOptions(), options, out / "videos")
    result = batch_videos(table, out, settings, BatchOptions(workers=1, progress=False))
    assert (result.ran, result.failed) == (1, 0)
    (row,) = pq.read_table(out / "index.parquet").to_pylist()
    manifest = json.loads((out / row["output"] / "manifest.json").read_text())
    part = manifest["source"]["segment"]
    assert row["frames"] == part["num_frames"] < manifest["source"]["num_frames"]
    assert part["first_frame"] > 0
    gt = table.parent / next(p.name for p in table.parent.glob("*_mask.npy"))
    info = probe(row["path"])
    truth = load_ground_truth(gt, info.num_frames, info.size)
    tube = np.load(out / row["output"] / "tube.npy")[0]  # (T, h, w) of the top class
    indices = np.array(manifest["clips"][0]["frame_indices"]) + part["first_frame"]
    from saliency_tubes import load_model

    prep = load_model("tiny-actions").preset.preprocess()
    expected = Protocol().localisation(tube, truth.on_clip(indices, prep))
    for key in ("pointing", "mass", "iou"):
        assert row[key] == pytest.approx(expected[key], abs=1e-6)
