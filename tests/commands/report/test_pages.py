"""The report's side panel in words, ``--normalise video|frame``, evaluate's worded table
(issue 27 items 3 and 4)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from _clips import mapped, write_demo_clip
from saliency_tubes import InputError, render
from saliency_tubes.cli import main
from saliency_tubes.cli.evaluate_table import protocol_lines, sanity_step, video_table
from saliency_tubes.commands import ExplainOptions, explain_video, load_model
from saliency_tubes.commands.pipeline.model_line import ModelFacts, corner_text
from saliency_tubes.commands.report.facts import report_facts
from saliency_tubes.render.corner import corner_label
from saliency_tubes.video import iter_frames


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_clip(tmp_path_factory.mktemp("clip"))


def test_the_side_panel_reads_as_words_with_units(clip: Path, tmp_path: Path) -> None:
    result = explain_video(
        clip, tmp_path, load_model("tiny-actions"), ExplainOptions(formats=("npy",), progress=False)
    )
    sections = report_facts(result.manifest)
    assert [s["section"] for s in sections] == ["model", "method", "video", "options"]
    facts = {s["section"]: dict(s["facts"]) for s in sections}
    assert facts["model"]["weights"] == "trained weights shipped with the package"
    assert facts["model"]["caveat"] == "knows only 8 synthetic motion classes"
    assert facts["model"]["input"] == "16 frames of 96 x 96 px (full resize)"
    assert facts["method"]["upsampling"] == "cubic spline, corners aligned"
    assert facts["method"]["tube grid"] == "8 x 12 x 12 (T x H x W) on the layer"
    assert facts["method"]["colour scale"].startswith("one scale for the whole video")
    # The demo clip: 24 frames of 128 x 96 at 12 fps, 2 s.
    assert facts["video"] == {
        "file": "shrink.mp4",
        "folder": str(clip.parent),
        "size": "128 x 96 px",
        "frames": "24 at 12 fps",
        "duration": "2.00 s",
        "codec": "h264",
    }
    assert facts["options"]["encoder"] == "libx264 superfast crf 18"
    assert facts["options"]["focus floor"] == "0.078 (20/255)"
    assert facts["options"]["opacity"] == "0.50"
    assert facts["options"]["layouts"] == "heat, focus, side by side"
    every = [v for s in sections for _, v in s["facts"]]
    assert all(isinstance(v, str) and "{" not in v and "0784313" not in v for v in every)


def test_stretch_maps_each_frame_to_its_own_range() -> None:
    s = np.array([[0.2, 0.3], [np.nan, 0.6]], np.float32)
    np.testing.assert_allclose(render.stretch(s), [[0.0, 0.25], [np.nan, 1.0]], atol=1e-6)
    flat = np.array([[0.4, np.nan]], np.float32)
    np.testing.assert_array_equal(render.stretch(flat), [[0.0, np.nan]])
    t = torch.tensor([[0.2, 0.3], [float("nan"), 0.6]])
    np.testing.assert_allclose(render.stretch(t).numpy(), [[0.0, 0.25], [np.nan, 1.0]], atol=1e-6)


def test_normalise_frame_draws_each_frame_on_its_own_scale(clip: Path, tmp_path: Path) -> None:
    tiny = load_model("tiny-actions")
    with pytest.raises(InputError, match="normalise"):
        ExplainOptions(normalise="clip").check()
    drawn, numbers, heights = {}, {}, {}
    for scale in ("video", "frame"):
        options = ExplainOptions(
            formats=("png", "npy"),
            layouts=("heat", "side_by_side"),
            normalise=scale,
            progress=False,
        )
        result = explain_video(clip, tmp_path / scale, tiny, options)
        assert result.manifest["options"]["normalise"] == scale
        heat, side = sorted(result.files["png"], key=lambda p: not Path(p).name.startswith("heat"))
        drawn[scale] = [f.image for f in iter_frames(heat)]
        heights[scale] = next(iter_frames(side)).image.shape[0]
        numbers[scale] = (
            np.load(result.files["npy"][0]),
            result.manifest["tubes"][0]["temporal"]["mean"],
            result.manifest["clips"][0]["frame_indices"],
        )
    # The numbers do not change: the tube and its curve are on the video's scale either way.
    np.testing.assert_array_equal(numbers["video"][0], numbers["frame"][0])
    assert numbers["video"][1] == numbers["frame"][1]
    # The pictures do: each frame is the heat of its own tube stretched to [0, 1], under
    # the corner label (which says the per-frame scale on a line of its own).
    tube = mapped(numbers["frame"][0][0], numbers["frame"][2], tiny.preset, clip)
    label = corner_text(ModelFacts.of(tiny, "cam"))
    for k, frame in enumerate(iter_frames(clip)):
        for scale, s, note in (
            ("video", tube[k], ""),
            ("frame", render.stretch(tube[k]), "\nper-frame scale"),
        ):
            expected = corner_label(render.heat(frame.image, s), label + note)
            assert np.abs(expected.astype(int) - drawn[scale][k].astype(int)).max() <= 1
    assert any(
        not np.array_equal(a, b) for a, b in zip(drawn["video"], drawn["frame"], strict=True)
    )
    # The side-by-side captions carry one more line: the per-frame scale.
    assert heights["frame"] > heights["video"]


def test_the_frame_scale_is_said_in_the_report(clip: Path, tmp_path: Path) -> None:
    options = ExplainOptions(formats=("html",), normalise="frame", progress=False)
    result = explain_video(clip, tmp_path, load_model("tiny-actions"), options)
    page = result.files["html"][0].read_text(encoding="utf-8")
    assert f'"scale":"{render.FRAME_NOTE}"' in page
    assert '["colour scale","per-frame scale: each frame stretched to its own peak"]' in page


def test_every_drawing_command_takes_normalise(clip: Path, tmp_path: Path) -> None:
    for command in (["explain"], ["compare-classes"]):
        out = tmp_path / command[0]
        result = CliRunner().invoke(
            main,
            [
                *command,
                str(clip),
                "--out",
                str(out),
                "--format",
                "npy",
                "--normalise",
                "frame",
                "--quiet",
            ],
        )
        assert result.exit_code == 0, result.output
        assert json.loads((out / "manifest.json").read_text())["options"]["normalise"] == "frame"
    result = CliRunner().invoke(
        main, ["explain", str(clip), "--out", str(tmp_path / "x"), "--normalise", "clip"]
    )
    assert result.exit_code == 2 and "'clip' is not one of 'video', 'frame'" in result.output


def test_evaluates_table_names_units_steps_substrate_and_sanity_step() -> None:
    report = {
        "protocol": {
            "steps": 16,
            "cell": [1, 4, 4],
            "substrate": "blur",
            "tolerance_frames": 1,
            "tolerance_px": 6.0,
        },
        "sanity_layers": ["fc", "features", "layer2"],
        "evaluation": {"units": ["voxel", "frame"], "sanity_steps": [0, 1, 3]},
        "tubes": {
            "cam/cubic": {
                "pointing": 1.0,
                "mass": 0.0714,
                "iou": 0.19,
                "deletion": 0.824,
                "insertion": 0.831,
                "deletion_frame": 0.832,
                "insertion_frame": 0.5,
                "sanity": [1.0, 0.12, 0.127],
            },
            "baseline/uniform": {
                "pointing": 0.06,
                "mass": 0.015,
                "iou": None,
                "deletion": 0.826,
                "insertion": 0.831,
                "deletion_frame": 0.811,
                "insertion_frame": 0.775,
                "sanity": [None, None, None],
            },
        },
    }
    lines = video_table(report).splitlines()
    assert lines[0] == (
        "deletion / insertion: area under the class probability curve, 16 steps, blur "
        "substrate, units voxel (cells of 1 frame x 4 x 4 px), frame (whole frames)"
    )
    assert lines[1].startswith("pointing game: 1 frame / 6 px tolerance")
    assert "step 1: top 1 (fc) random; step 3: all 3 layers random" in lines[2]
    assert (
        lines[4].split()
        == (
            "tube pointing ↑ mass ↑ IoU ↑ deletion voxel ↓ insertion voxel ↑ deletion frame ↓ "
            "insertion frame ↑ sanity ρ step 1 ↓ sanity ρ step 3 ↓"
        ).split()
    )
    assert (
        lines[5].split() == "cam/cubic 1.00 0.071 0.190 0.824 0.831 0.832 0.500 0.12 0.13".split()
    )
    assert (
        lines[6].split()
        == "baseline/uniform 0.06 0.015 n/a 0.826 0.831 0.811 0.775 n/a n/a".split()
    )
    assert len({len(line) for line in lines[4:]}) == 1  # columns aligned
    assert sanity_step(0, ["fc"]) == "trained"
    assert protocol_lines(
        {"steps": 2, "substrate": "zeros", "tolerance_frames": 0, "tolerance_px": 3.5}, ["tube"]
    )[0].endswith("2 steps, zeros substrate, units tube (the tube's own voxels)")
    old = {"steps": 2, "substrate": "zeros", "tolerance_frames": 0, "tolerance_px": 3.5}
    assert len(protocol_lines(old, ["tube"])) == 2  # a report from before the tolerance
    assert protocol_lines(old | {"increase_tolerance": 1e-5}, ["tube"])[2].startswith(
        "confidence, the clip kept where the tube is high: average drop max(0, Y - O) / Y; "
        "increase O > Y + 1e-05 (Y, O:"
    )


def test_fill_escapes_what_is_not_trusted_in_one_pass() -> None:
    from saliency_tubes.commands.report.templating import Trusted, fill, template

    page = "<title>{{TITLE}}</title><script>{{DATA}}</script>"
    hostile = '<img src=x onerror="1"> {{DATA}}'
    out = fill(page, {"TITLE": hostile, "DATA": Trusted('{"a":1}')})
    assert out == (
        '<title>&lt;img src=x onerror=&quot;1&quot;&gt; {{DATA}}</title><script>{"a":1}</script>'
    )  # the title's own {{DATA}} is not filled again
    with pytest.raises(KeyError, match="slots"):
        fill(page, {"TITLE": "x"})
    with pytest.raises(KeyError, match="slots"):
        fill(page, {"TITLE": "x", "DATA": Trusted(""), "MORE": "y"})
    index = template("head.html") + template("index.html")  # the head every page shares
    assert set(re.findall(r"\{\{([A-Z_]+)\}\}", index)) == {
        "TITLE", "POLICY", "STYLE", "SCRIPT", "DATA"
    }  # fmt: skip
    assert 'data-role="export-csv"' in index and 'data-role="rows"' in index
