"""Every page and terminal says what model made the tubes, with its caveats (issue 27 item 1):
the line of the pages, summary.md, the report's data, the stderr lines, the corner label of
standalone heat and focus videos (and none with --no-caption)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from _clips import write_demo_clip
from saliency_tubes import render
from saliency_tubes.cli import main
from saliency_tubes.commands import ExplainOptions, explain_video, load_model
from saliency_tubes.commands.batch.records import summary_markdown
from saliency_tubes.commands.pipeline.model_line import ModelFacts, corner_text, model_line
from saliency_tubes.render.corner import CORNER_DIM, corner_label
from saliency_tubes.video import iter_frames

TINY = "knows only 8 synthetic motion classes"


def test_the_line_names_model_weights_method_and_caveats() -> None:
    tiny = load_model("tiny-actions")
    assert model_line(ModelFacts.of(tiny, "cam")) == (
        "model tiny-actions, trained weights shipped with the package, method cam; caveat: "
        f"tiny-actions {TINY}: its classes and tubes mean nothing on other videos"
    )
    untrained = load_model("resnet3d-18", num_classes=8)
    assert model_line(ModelFacts.of(untrained, "gradcam")) == (
        "model resnet3d-18, random weights (untrained), method gradcam; caveat: random "
        "weights (untrained): the tubes explain an untrained network"
    )
    facts = {
        "name": "r3d_18",
        "weights": "kinetics400",
        "weights_source": "download",
        "random_weights": False,
        "caveat": None,
        "method": "cam",
    }
    assert ModelFacts.from_dict(facts).to_dict() == facts  # a manifest's model keys
    manifest_entry = {**facts, "layer": "layer4", "preset": {"frames": 16}}  # and more
    assert model_line(ModelFacts.from_dict(manifest_entry)) == (
        "model r3d_18, named pretrained weights (kinetics400), method cam"
    )
    assert model_line(ModelFacts()) == "model unknown (no explained video)"
    assert ModelFacts.from_dict(None) == ModelFacts() == ModelFacts.from_dict({"name": None})
    assert (
        corner_text(ModelFacts.of(untrained, "cam"))
        == "resnet3d-18 (cam)\nrandom weights (untrained)"
    )
    assert corner_text(ModelFacts.of(tiny, "cam")) == f"tiny-actions (cam)\n{TINY}"


def test_summary_md_starts_with_the_model_and_its_caveat() -> None:
    summary = {
        "videos": 1,
        "ok": 1,
        "failed": 0,
        "accuracy": None,
        "labelled": 0,
        "random_weights": False,
        "confusions": [],
        "per_class": {},
        "failures": [],
        "throughput": {"videos_per_second": 1.0, "frames_per_second": 2.0, "wall_seconds": 1.0},
        "model": ModelFacts.of(load_model("tiny-actions"), "cam").to_dict(),
    }
    lines = summary_markdown(summary).splitlines()
    assert lines[2].startswith("model tiny-actions, trained weights shipped with the package")
    assert f"**Tiny-actions {TINY}: its classes and tubes mean nothing on other videos.**" in lines


def test_the_corner_label_covers_only_its_box() -> None:
    frame = np.full((120, 160, 3), 200, np.uint8)
    out = corner_label(frame, "model\ncaveat")
    changed = np.argwhere((out != frame).any(axis=2))
    top, right = changed[:, 0].min(), changed[:, 1].max()
    assert changed[:, 0].max() == 119 and changed[:, 1].min() == 0  # the bottom-left corner
    assert top > 120 // 2 and right < 160 // 2  # small: under half the height and the width
    box = out[top:, : right + 1].reshape(-1, 3)
    # Inside the box: the darkened picture (1 - CORNER_DIM) * 200 = 70, or white ink over it (8 px: anti-aliased, never quite 255).
    assert box.min() == round((1 - CORNER_DIM) * 200) and box.max() > 200
    assert (out[:top] == 200).all() and (out[:, right + 1 :] == 200).all()
    assert corner_label(frame, "") is frame


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_clip(tmp_path_factory.mktemp("clip"))


def test_standalone_heat_and_focus_frames_carry_the_label_unless_no_caption(
    clip: Path, tmp_path: Path
) -> None:
    tiny = load_model("tiny-actions")
    shown = {}
    for caption in (True, False):
        options = ExplainOptions(
            formats=("png",), layouts=("heat", "focus"), caption=caption, progress=False
        )
        result = explain_video(clip, tmp_path / str(caption), tiny, options)
        shown[caption] = {
            Path(rel).name.split("_")[0]: next(iter_frames(Path(rel))).image
            for rel in result.files["png"]
        }
    for layout in ("heat", "focus"):
        plain, labelled = shown[False][layout], shown[True][layout]
        text = corner_text(ModelFacts.of(tiny, "cam"))
        assert np.array_equal(labelled, corner_label(plain, text))  # exactly the label
        assert not np.array_equal(labelled, plain)


def test_the_terminal_says_the_embedded_models_caveat(clip: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["explain", str(clip), "--out", str(tmp_path / "o"), "--format", "npy", "--quiet"]
    )
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines() == [
        f"warning: tiny-actions {TINY}: on any other video its classes and tubes mean "
        "nothing; pass --model (e.g. r3d_18 --weights kinetics400) for a real one"
    ]
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["model"]["caveat"] == TINY


def test_the_report_data_names_the_model(clip: Path, tmp_path: Path) -> None:
    from saliency_tubes.commands.report.video import report_data  # noqa: F401  (the page's builder)

    result = explain_video(
        clip,
        tmp_path,
        load_model("tiny-actions"),
        ExplainOptions(formats=("html",), progress=False),
    )
    page = result.files["html"][0].read_text(encoding="utf-8")
    assert 'data-role="model"' in page
    assert (
        '"model":"model tiny-actions, trained weights shipped with the package, method cam"' in page
    )
    assert f"tiny-actions {TINY}: its classes and tubes mean nothing on other videos" in page
    assert render.corner_label is corner_label
