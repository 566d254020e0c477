"""``explain_video`` called directly: its files, its numbers against a hand-run explainer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import saliency_tubes as st
from _clips import mapped
from saliency_tubes.commands import ExplainOptions, explain_video
from saliency_tubes.video import probe, read_frames, sample_uniform

from .conftest import assert_close, model_input, state


def test_explain_video_returns_what_it_wrote(clip_path: Path, tmp_path: Path, tiny) -> None:
    options = ExplainOptions(classes="top2", formats=("mp4", "npy", "plot"), progress=False)
    result = explain_video(clip_path, tmp_path / "out", tiny, options)

    # The same tubes as the explainer run by hand on the clip the command samples.
    expected = tiny.explainer("cam")(model_input(clip_path, tiny), classes="top2")
    assert [t.index for t in result.tubes] == expected.classes[0].tolist()
    assert_close([t.score for t in result.tubes], expected.scores[0].numpy(), atol=1e-6)
    assert [t.name for t in result.tubes] == expected.names()[0]
    tube = np.load(tmp_path / "out" / "tube.npy")
    assert tube.shape == (2, tiny.preset.frames, *tiny.preset.size)
    assert_close(tube, expected.maps[0].numpy(), atol=1e-5)

    # Curves and statistics are those of the tube mapped onto every source frame.
    info = probe(clip_path)
    indices = sample_uniform(info.num_frames, tiny.preset.frames).tolist()
    on_source = mapped(tube[0], indices, tiny.preset, clip_path)
    assert_close(result.tubes[0].curve.mean, np.nanmean(on_source, axis=(1, 2)), atol=1e-5)
    stats = st.tube_stats(on_source)
    assert result.tubes[0].stats.fraction_above == pytest.approx(stats.fraction_above, abs=1e-6)
    assert result.tubes[0].stats.spread == pytest.approx(stats.spread, abs=1e-6)

    # Files: the manifest's list, as paths, all there; the manifest written last.
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest == json.loads(json.dumps(result.manifest))
    assert result.count == sum(len(v) for v in manifest["outputs"].values()) == 9
    assert all(p.is_file() for paths in result.files.values() for p in paths)
    assert {p.name for p in result.files["mp4"]} == {
        f"{layout}_{k}_{name}.mp4"
        for layout in ("heat", "focus", "side_by_side")
        for k, name in ((1, result.tubes[0].name), (2, result.tubes[1].name))
    }
    # The numbers came from the frames as they were drawn: no pass of their own.
    assert set(result.timings) == {"explain", "write", "total"}
    assert result.timings["total"] >= result.timings["explain"] + result.timings["write"]
    assert result.seconds == manifest["seconds"]


def test_numbers_are_the_same_drawn_or_summarised_first(
    clip_path: Path, tmp_path: Path, tiny
) -> None:
    """With videos the curves and statistics are taken from the frames as they are drawn;
    with the timeline (which needs them first) in a pass of their own: the same numbers
    either way. Without videos they are measured on the clip's grid instead (96x96 cells
    for tiny-actions, whose clip is the whole frame resized): one value per source frame
    still, and close to those on the source pixels."""
    from saliency_tubes.commands.pipeline import track

    runs = {}
    for name, formats, timeline in (
        ("drawn", ("mp4",), False),
        ("timeline", ("mp4",), True),
        ("none", ("npy",), False),
    ):
        options = ExplainOptions(
            classes="top2", windows=(16, 8), formats=formats, timeline=timeline, progress=False
        )
        with pytest.MonkeyPatch.context() as patch:
            if name == "drawn":  # the Summariser's fallback pass must not be needed
                patch.setattr(track, "summarise", None)
            runs[name] = explain_video(clip_path, tmp_path / name, tiny, options)
    assert "summarise" not in runs["drawn"].timings
    assert "summarise" in runs["timeline"].timings and "summarise" in runs["none"].timings
    for a, b in zip(runs["drawn"].tubes, runs["timeline"].tubes, strict=True):
        assert_close(a.curve.mean, b.curve.mean, atol=0)
        assert_close(a.curve.max, b.curve.max, atol=0)
        assert a.stats == b.stats
        assert a.curve.key_frames.tolist() == b.curve.key_frames.tolist()
        assert a.measured_on == b.measured_on == track.ON_SOURCE
    frames = probe(clip_path).num_frames
    for a, b in zip(runs["drawn"].tubes, runs["none"].tubes, strict=True):
        assert b.measured_on == track.ON_GRID and b.stats.voxels == frames * 96 * 96
        assert a.stats.voxels == frames * 96 * 128  # the source pixels
        assert len(b.curve.mean) == len(a.curve.mean) == frames
        assert_close(a.curve.mean, b.curve.mean, atol=0.02)
        assert abs(a.stats.fraction_above - b.stats.fraction_above) < 0.02


def test_windows_are_normalised_on_one_scale(clip_path: Path, tmp_path: Path, tiny) -> None:
    options = ExplainOptions(windows=(16, 4), formats=("npy",), progress=False)
    result = explain_video(clip_path, tmp_path / "out", tiny, options)
    tube = np.load(tmp_path / "out" / "tube.npy")
    windows = result.manifest["clips"]
    assert tube.shape[:2] == (len(windows), 1) and len(windows) == 3  # starts 0, 4, 8 of 24
    # One scale for the whole video: its min is 0 and its max 1 over all windows, not each.
    assert tube.min() == 0.0 and tube.max() == 1.0
    assert not all(w.min() == 0.0 and w.max() == 1.0 for w in tube[:, 0])
    # The score is the mean softmax over the windows, each explained by hand.
    explainer = tiny.explainer("cam")
    info = probe(clip_path)
    prep = tiny.preset.preprocess()
    clips = [prep(read_frames(clip_path, w["frame_indices"], info=info))[None] for w in windows]
    probs = [torch.softmax(explainer.logits(c), 1)[0] for c in clips]
    mean = torch.stack(probs).mean(0)
    assert result.tubes[0].index == int(mean.argmax())
    assert result.tubes[0].score == pytest.approx(float(mean.max()), abs=1e-6)


def test_the_model_comes_back_unchanged(clip_path: Path, tmp_path: Path, tiny) -> None:
    tiny.model.train()
    first = next(tiny.model.parameters())
    first.requires_grad_(False)
    before = state(tiny.model)
    explain_video(clip_path, tmp_path / "a", tiny, ExplainOptions(formats=("npy",), progress=False))
    assert state(tiny.model) == before
    with pytest.raises(st.ClassSelectionError):
        explain_video(
            clip_path, tmp_path / "b", tiny, ExplainOptions(classes=["shrimp"], progress=False)
        )
    assert state(tiny.model) == before and not (tmp_path / "b").exists()


def test_bad_options_are_one_line_and_write_nothing(clip_path: Path, tmp_path: Path, tiny) -> None:
    for changes, fragment in (
        ({"formats": ("mp4", "avi")}, "expected formats among"),
        ({"interpolation": "bogus"}, "expected interpolation one of"),
        ({"method": "bogus"}, "expected method one of"),
        ({"windows": (1, 1)}, "LEN>=2"),
    ):
        with pytest.raises(st.InputError, match=fragment) as caught:  # refused where made
            explain_video(clip_path, tmp_path / "out", tiny, ExplainOptions(**changes))
        assert len(str(caught.value).splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_clip_too_big_for_memory_is_refused_before_allocating(
    clip_path: Path, tmp_path: Path, tiny, monkeypatch: pytest.MonkeyPatch
) -> None:
    from saliency_tubes import resources

    need = resources.clip_bytes(64, tiny.preset.size) * resources.ACTIVATION_FACTOR
    monkeypatch.setattr(resources, "available_memory", lambda: need - 1)
    with pytest.raises(st.InputError, match="explaining a clip of 64 frames at 96x96") as caught:
        explain_video(clip_path, tmp_path / "out", tiny, ExplainOptions(frames=64, progress=False))
    assert "use fewer --frames (the preset's is 16)" in str(caught.value)
    assert not (tmp_path / "out").exists()
    monkeypatch.setattr(resources, "available_memory", lambda: need)  # exactly enough: runs
    explain_video(
        clip_path,
        tmp_path / "ok",
        tiny,
        ExplainOptions(frames=64, formats=("npy",), progress=False),
    )
    assert np.load(tmp_path / "ok" / "tube.npy").shape[1] == 64


def test_an_impossible_frame_count_is_one_line_on_any_machine(
    clip_path: Path, tmp_path: Path, tiny
) -> None:
    with pytest.raises(st.InputError, match="fits in memory"):
        explain_video(
            clip_path, tmp_path / "out", tiny, ExplainOptions(frames=10**7, progress=False)
        )


def test_random_weights_and_caveats_are_said(clip_path: Path, tmp_path: Path, tiny) -> None:
    from saliency_tubes.commands.pipeline.drawing import caption_of
    from saliency_tubes.zoo import load_model

    torch.manual_seed(0)
    untrained = load_model("resnet3d-18", num_classes=8)
    assert untrained.random_weights and not tiny.random_weights
    assert caption_of(untrained, "3  p=0.20") == "3  p=0.20\nrandom weights (untrained)"
    assert (
        caption_of(tiny, "shrink  p=0.96")
        == "shrink  p=0.96\nknows only 8 synthetic motion classes"
    )
    options = ExplainOptions(formats=("npy",), progress=False)
    shipped = explain_video(clip_path, tmp_path / "tiny", tiny, options).manifest["model"]
    random = explain_video(clip_path, tmp_path / "r18", untrained, options).manifest["model"]
    assert (shipped["weights_source"], shipped["random_weights"]) == ("shipped", False)
    assert shipped["caveat"] == "knows only 8 synthetic motion classes"
    assert (random["weights_source"], random["random_weights"], random["caveat"]) == (
        "random",
        True,
        None,
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_explain_on_cuda_equals_explain_on_cpu(clip_path: Path, tmp_path: Path) -> None:
    options = ExplainOptions(windows=(16, 4), classes="top2", formats=("npy",), progress=False)
    cpu = explain_video(clip_path, tmp_path / "cpu", st.load_model("tiny-actions"), options)
    cuda = explain_video(
        clip_path, tmp_path / "cuda", st.load_model("tiny-actions", device="cuda"), options
    )
    assert [t.index for t in cuda.tubes] == [t.index for t in cpu.tubes]
    assert_close([t.score for t in cuda.tubes], [t.score for t in cpu.tubes], atol=1e-4)
    # Convolutions may run in TF32 on CUDA: a float tolerance, not bit equality.
    assert_close(
        np.load(tmp_path / "cuda" / "tube.npy"), np.load(tmp_path / "cpu" / "tube.npy"), atol=5e-3
    )
    for a, b in zip(cuda.tubes, cpu.tubes, strict=True):
        assert_close(a.curve.mean, b.curve.mean, atol=5e-3)
