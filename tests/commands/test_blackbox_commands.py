"""RISE, LIME and Kernel SHAP through the commands (issue 23): explain on a model given as
a plain callable (``--model module:factory`` returning a function), the cost said before
the run and counted on the model, and one error line for what cannot work: a layer method
on a plain callable, a factory returning neither a module nor a callable, weights for a
callable, scikit-image missing (``evaluate`` on a plain callable:
test_evaluate_callable.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import saliency_tubes as st
from saliency_tubes.cli import main
from saliency_tubes.commands import ExplainOptions, explain_video
from saliency_tubes.zoo import LoadedModel

from .conftest import assert_close, model_input, state
from .test_forwards import counted

FAST = {"rise": {"masks": 12}, "lime": {"samples": 10}, "kernelshap": {"samples": 10}}
"""Cheap settings for the command tests (the defaults are tested in tests/methods/)."""

FACTORY = "_callables:tiny_function"


@pytest.fixture()
def cheap(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every ``LoadedModel.explainer(name)`` use :data:`FAST` (what the commands call)."""
    original = LoadedModel.explainer

    def explainer(self, method: str = "cam", **options):
        return original(self, method, **{**FAST.get(method, {}), **options})

    monkeypatch.setattr(LoadedModel, "explainer", explainer)


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stderr


def test_explain_runs_rise_on_a_plain_callable(clip_path: Path, tmp_path: Path, cheap) -> None:
    out = tmp_path / "out"
    code, err = _cli(
        "explain", str(clip_path), "--out", str(out), "--model", FACTORY, "--num-classes", "8",
        "--format", "npy", "--quiet",
    )  # fmt: skip
    assert code == 0, err
    loaded = st.load_model(FACTORY, num_classes=8)
    assert loaded.plain_callable and loaded.default_method == "rise"
    expected = st.RISE(loaded.model.fn, classes=8, masks=12)(model_input(clip_path, loaded))
    tube = np.load(out / "tube.npy")
    assert tube.shape == (1, 16, 112, 112)
    assert_close(tube, expected.maps[0].numpy(), atol=1e-5)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["method"] == "rise" and manifest["model"]["layer"] == "input"


@pytest.mark.parametrize("method", ["rise", "lime", "kernelshap"])
def test_the_cost_said_up_front_is_the_cost_run(
    clip_path: Path, tmp_path: Path, tiny, method: str, cheap
) -> None:
    if method != "rise":
        pytest.importorskip("captum.attr")
        pytest.importorskip("sklearn")
        pytest.importorskip("skimage")
    before = state(tiny.model)
    lines: list[str] = []
    options = ExplainOptions(method=method, classes="top2", formats=("npy",), progress=False)
    with counted(tiny.model) as calls:
        result = explain_video(clip_path, tmp_path / "out", tiny, options, on_stage=lines.append)
    forwards = tiny.explainer(method).forwards((16, 96, 96), 2)
    assert forwards == (1 + 12 if method == "rise" else 1 + 2 * 10)
    assert any(f"({method}, {forwards} forwards per clip)" in line for line in lines), lines
    assert sum(calls) == forwards
    expected = tiny.explainer(method)(model_input(clip_path, tiny), classes="top2")
    assert_close(np.load(tmp_path / "out" / "tube.npy"), expected.maps[0].numpy(), atol=1e-5)
    assert [t.index for t in result.tubes] == expected.classes[0].tolist()
    assert state(tiny.model) == before


class CheapRISE(st.RISE):
    """RISE with 12 masks: what ``evaluate`` builds from :data:`saliency_tubes.METHODS`."""

    def __init__(self, *args, **options) -> None:
        super().__init__(*args, **{"masks": 12, **options})


def test_evaluate_scores_rise_with_the_confidence_change(
    tmp_path: Path, tiny, monkeypatch: pytest.MonkeyPatch
) -> None:
    """evaluate VIDEO on RISE: every forward planned is run (counted on the model), and the
    report has the average drop and the increase in confidence (Chattopadhay et al. 2018)."""
    monkeypatch.setitem(st.METHODS, "rise", CheapRISE)
    from _clips import write_evaluation_clip
    from saliency_tubes.commands import EvaluateOptions, evaluate_video
    from saliency_tubes.metrics.benchmark import Protocol

    video, _, clip = write_evaluation_clip(tmp_path)
    options = EvaluateOptions(
        methods=("rise",),
        baselines=(),
        units=("voxel",),
        protocol=Protocol(steps=2, resamples=100),
        progress=False,
    )
    with counted(tiny.model) as calls:
        result = evaluate_video(video, tmp_path / "mask.npy", tmp_path / "out", tiny, options)
    forwards = result.manifest["evaluation"]["forwards"]
    assert forwards["parts"]["explain"] == 1 + 12
    assert forwards["parts"]["RISE: confidence"] == 1
    assert sum(calls) == forwards["total"] == forwards["run"]
    row = result.manifest["tubes"]["rise/cubic"]
    assert 0.0 <= row["average_drop"] <= 1.0 and row["increase"] in (0.0, 1.0)


def test_what_a_plain_callable_cannot_do_is_one_line(clip_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, err = _cli(
        "explain", str(clip_path), "--out", str(out), "--model", FACTORY, "--method", "cam",
        "--quiet",
    )  # fmt: skip
    assert code == 2 and err.strip() == (
        "error: expected --method occlusion | integrated-gradients | rise | lime | kernelshap "
        f"for {FACTORY} (a plain callable: no layers to read), but got --method cam; use "
        "--method rise"
    ), err
    code, err = _cli(
        "explain", str(clip_path), "--out", str(out), "--model", "_callables:not_a_model",
        "--quiet",
    )  # fmt: skip
    assert code == 2 and err.strip() == (
        "error: expected factory '_callables:not_a_model' to return an nn.Module or a "
        "callable clip -> scores, but got int; return the model from the factory"
    ), err
    weights = tmp_path / "w.pth"
    torch.save({}, weights)
    code, err = _cli(
        "explain", str(clip_path), "--out", str(out), "--model", FACTORY, "--weights",
        str(weights), "--quiet",
    )  # fmt: skip
    assert code == 2 and err.strip() == (
        f"error: expected no weights for {FACTORY} (a plain callable has no parameters to "
        f"load), but got {weights}; load them inside the factory"
    ), err
    assert not out.exists()


def test_without_scikit_image_the_cli_says_how_to_install(
    clip_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("captum.attr")
    pytest.importorskip("sklearn")
    monkeypatch.setitem(sys.modules, "skimage", None)
    monkeypatch.setitem(sys.modules, "skimage.segmentation", None)
    out = tmp_path / "out"
    for method in ("lime", "kernelshap"):
        code, err = _cli(
            "explain", str(clip_path), "--out", str(out), "--method", method, "--quiet"
        )
        assert code == 2 and err.strip() == (
            f"error: --method {method} with segments='slic' needs scikit-image, which is not "
            "installed; install it with pip install 'saliency-tubes[blackbox]' (or use "
            "segments='grid')"
        ), err
        assert not out.exists()
