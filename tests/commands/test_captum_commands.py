"""The input-space methods (occlusion, integrated gradients) through the commands: explain
writes its usual outputs with tubes at the clip's size, top-K over windows picks the
classes from plain forwards first, batch and evaluate run them, the command line refuses
--layer with them and says in one line when captum is missing."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from saliency_tubes.cli import main
from saliency_tubes.commands import (
    BatchOptions,
    BatchSettings,
    ExplainOptions,
    ModelOptions,
    batch_videos,
    explain_video,
    write_demo_dataset,
)
from saliency_tubes.commands.pipeline.explaining import plan
from saliency_tubes.video import probe

from .conftest import assert_close, model_input, state
from .test_forwards import counted

pytest.importorskip("captum", reason="the captum methods need the extra saliency-tubes[captum]")

FAST = {"occlusion": {"window": (8, 48, 48)}, "integrated-gradients": {"n_steps": 4}}
"""Cheap settings for the command tests (the defaults are tested in tests/methods/)."""


def _cheap(monkeypatch: pytest.MonkeyPatch, tiny) -> None:
    """Make ``tiny.explainer(name)`` use :data:`FAST` (what the commands call)."""
    original = type(tiny).explainer

    def explainer(self, method: str = "cam", **options):
        return original(self, method, **{**FAST.get(method, {}), **options})

    monkeypatch.setattr(type(tiny), "explainer", explainer)


@pytest.mark.parametrize("method", ["occlusion", "integrated-gradients"])
def test_explain_writes_the_usual_outputs(
    clip_path: Path, tmp_path: Path, tiny, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _cheap(monkeypatch, tiny)
    before = state(tiny.model)
    lines: list[str] = []
    options = ExplainOptions(
        method=method, classes="top2", formats=("mp4", "npy", "plot", "html"), progress=False
    )
    result = explain_video(clip_path, tmp_path / "out", tiny, options, on_stage=lines.append)
    expected = tiny.explainer(method)(model_input(clip_path, tiny), classes="top2")
    tube = np.load(tmp_path / "out" / "tube.npy")
    assert tube.shape == (2, tiny.preset.frames, *tiny.preset.size)
    assert_close(tube, expected.maps[0].numpy(), atol=1e-5)  # the clip's grid: no spline
    assert [t.index for t in result.tubes] == expected.classes[0].tolist()
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["method"] == method and manifest["model"]["layer"] == "input"
    assert {p.name for p in result.files["mp4"]} >= {f"heat_1_{result.tubes[0].name}.mp4"}
    assert (tmp_path / "out" / "report.html").is_file()
    forwards = tiny.explainer(method).forwards((16, 96, 96), 2)
    assert any(f"({method}, {forwards} forwards per clip)" in line for line in lines), lines
    assert state(tiny.model) == before


def test_top_k_over_windows_picks_the_classes_from_plain_forwards_first(
    clip_path: Path, tmp_path: Path, tiny, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One plain forward per window, then integrated gradients of the video's top-2 only."""
    _cheap(monkeypatch, tiny)
    options = ExplainOptions(
        windows=(16, 4),
        classes="top2",
        method="integrated-gradients",
        formats=("npy",),
        progress=False,
    )
    with counted(tiny.model) as calls:
        result = explain_video(clip_path, tmp_path / "out", tiny, options)
    windows = result.manifest["clips"]
    assert len(windows) == 3
    # 3 plain forwards, then per window: its forward and 2 classes x 4 steps.
    assert sum(calls) == 3 + 3 * (1 + 2 * 4)
    # The same classes as CAM's every-class pass picks: the top-2 mean probabilities.
    cam = explain_video(
        clip_path,
        tmp_path / "cam",
        tiny,
        ExplainOptions(windows=(16, 4), classes="top2", formats=("npy",), progress=False),
    )
    assert [t.index for t in result.tubes] == [t.index for t in cam.tubes]
    assert [t.score for t in result.tubes] == pytest.approx([t.score for t in cam.tubes], abs=1e-6)
    tube = np.load(tmp_path / "out" / "tube.npy")
    assert tube.shape == (3, 2, 16, 96, 96) and tube.min() == 0.0 and tube.max() == 1.0


def test_the_plan_is_what_the_explainer_sees(clip_path: Path, tiny) -> None:
    todo = plan(probe(clip_path), tiny, ExplainOptions(method="occlusion", progress=False))
    assert todo.clip_size == (16, 96, 96) and todo.method == "occlusion"


def test_batch_runs_an_input_space_method(tmp_path: Path) -> None:
    dataset = write_demo_dataset(tmp_path / "dataset", videos=2)
    out = tmp_path / "batch"
    explain = ExplainOptions(method="occlusion", formats=("npy",), progress=False)
    settings = BatchSettings(ModelOptions(), explain, out / "videos")
    result = batch_videos(dataset, out, settings, BatchOptions(progress=False))
    assert (result.ran, result.failed) == (2, 0)
    table = pq.read_table(out / "index.parquet").to_pylist()
    for row in table:
        assert row["status"] == "ok" and 0.0 <= row["pointing"] <= 1.0
        manifest = json.loads((out / row["output"] / "manifest.json").read_text())
        assert manifest["method"] == "occlusion" and manifest["model"]["layer"] == "input"
        assert np.load(out / row["output"] / "tube.npy").shape == (1, 16, 96, 96)


def test_evaluate_counts_an_explanation_s_real_forwards(tmp_path: Path, tiny) -> None:
    from _clips import write_evaluation_clip
    from saliency_tubes.commands import EvaluateOptions, evaluate_video
    from saliency_tubes.metrics.benchmark import Protocol

    video, _, clip = write_evaluation_clip(tmp_path)
    options = EvaluateOptions(
        methods=("integrated-gradients",),
        baselines=(),
        units=("voxel",),
        protocol=Protocol(steps=2, resamples=100),
        progress=False,
    )
    with counted(tiny.model) as calls:
        result = evaluate_video(video, tmp_path / "mask.npy", tmp_path / "out", tiny, options)
    forwards = result.manifest["evaluation"]["forwards"]
    assert forwards["parts"]["explain"] == 1 + 50  # its forward and 50 steps
    assert forwards["parts"]["Integrated gradients: sanity"] == 2 * 51
    assert sum(calls) == forwards["total"] == forwards["run"]
    row = result.manifest["tubes"]["integrated-gradients/cubic"]
    assert 0.0 <= row["pointing"] <= 1.0 and len(row["sanity"]) == 3


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stderr


def test_the_cli_refuses_layer_and_says_when_captum_is_missing(
    clip_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    code, err = _cli(
        "explain",
        str(clip_path),
        "--out",
        str(out),
        "--method",
        "occlusion",
        "--layer",
        "features",
        "--quiet",
    )
    assert code == 2 and err.strip() == (
        "error: expected no --layer with --method occlusion (it attributes the clip's own "
        "pixels: there is no target layer nor head), but got --layer features; drop --layer"
    )
    assert not out.exists()
    monkeypatch.setitem(sys.modules, "captum", None)
    monkeypatch.setitem(sys.modules, "captum.attr", None)
    for method in ("occlusion", "integrated-gradients"):
        code, err = _cli(
            "explain", str(clip_path), "--out", str(out), "--method", method, "--quiet"
        )
        assert code == 2 and err.strip() == (
            f"error: --method {method} needs captum, which is not installed; install it with "
            "pip install 'saliency-tubes[captum]'"
        ), err
        assert not out.exists()


def test_the_progress_bar_follows_each_clip_s_forwards() -> None:
    from tqdm import tqdm

    from saliency_tubes.commands.pipeline.explaining import _bar_callback

    sink = open(os.devnull, "w")  # noqa: SIM115
    bar = tqdm(total=0, disable=False, file=sink)
    tell = _bar_callback(bar)
    for done in (3, 6, 7):
        tell(done, 7)
    assert (bar.n, bar.total) == (7, 7)
    tell(2, 7)  # the next clip starts again
    assert (bar.n, bar.total) == (2, 7)
    tell(5, 9)
    assert (bar.n, bar.total) == (5, 9)
    bar.close()
    sink.close()


def test_compare_classes_contrasts_input_space_tubes(
    clip_path: Path, tmp_path: Path, tiny, monkeypatch: pytest.MonkeyPatch
) -> None:
    from saliency_tubes.commands import CompareOptions, compare_classes

    _cheap(monkeypatch, tiny)
    options = CompareOptions(
        method="integrated-gradients",
        classes=["shrink", "grow"],
        contrast=("shrink", "grow"),
        formats=("npy", "mp4"),
        progress=False,
    )
    result = compare_classes(clip_path, tmp_path / "out", tiny, options)
    names = {p.name for ps in result.files.values() for p in ps}
    assert any(n.startswith("contrast_") for n in names), names
    assert result.manifest["method"] == "integrated-gradients"


def test_the_cost_said_up_front_counts_every_class_of_all(clip_path: Path, tiny) -> None:
    """--classes all on integrated gradients costs 1 + C x n_steps forwards (C = 8 classes
    of tiny-actions), not the 1 + n_steps of one class; unnamed classes say no number."""
    from saliency_tubes.commands.pipeline import explaining

    info = probe(clip_path)
    explainer = tiny.explainer("integrated-gradients")
    todo = plan(info, tiny, ExplainOptions(method="integrated-gradients", classes="all"))
    assert explaining._cost(explainer, todo) == f", {1 + 8 * 50} forwards per clip"
    unnamed = dataclasses.replace(todo, loaded=dataclasses.replace(tiny, categories=None))
    assert explaining._cost(explainer, unnamed) == ""
