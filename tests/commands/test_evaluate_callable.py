"""``evaluate VIDEO`` on a model given as a plain callable (``--model module:factory``
returning a function, issue 23): the black-box methods are scored as on any model (the
numbers are the metrics functions' own on the method's tube), the sanity check says n/a
(a function has no parameters to randomise) in the table and ``report.json``, and a layer
method is one error line with nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import saliency_tubes as st
from saliency_tubes.cli import main
from saliency_tubes.metrics import deletion, energy_inside, insertion, iou_top, pointing_game
from saliency_tubes.metrics.benchmark import Protocol
from saliency_tubes.metrics.faithfulness import make_substrate

from .conftest import model_input
from .test_forwards import counted

ROOT = Path(__file__).resolve().parents[2]
QUADRANTS = "_callables:quadrants"
NA = "n/a: a plain callable has no parameters to randomise"
MASKS = 64
"""RISE's masks here: at 64 every class's tube of the quadrants model peaks in its own
quadrant on this clip (measured for the 4 classes; at 16 three of them peaked elsewhere)."""
STEPS = 4


class FewMasksRISE(st.RISE):
    """RISE with :data:`MASKS` masks: what ``evaluate`` builds from :data:`saliency_tubes.METHODS`."""

    def __init__(self, *args, **options) -> None:
        super().__init__(*args, **{"masks": MASKS, **options})


@pytest.fixture()
def factories(monkeypatch: pytest.MonkeyPatch) -> None:
    """tests/_callables.py importable (the factory), RISE cheap."""
    monkeypatch.syspath_prepend(str(ROOT / "tests"))
    monkeypatch.setitem(st.METHODS, "rise", FewMasksRISE)


@pytest.fixture()
def scene(tmp_path: Path) -> tuple[Path, Path]:
    """The 16-frame 96 x 96 evaluation clip and, as its ground truth, its top-left quadrant
    (the evidence of class 0): on the 112 x 112 clip grid, the 56 x 56 top-left quadrant."""
    from _clips import write_evaluation_clip

    video, _, _ = write_evaluation_clip(tmp_path)
    truth = np.zeros((16, 96, 96), dtype=bool)
    truth[:, :48, :48] = True
    np.save(tmp_path / "quadrant.npy", truth)
    return video, tmp_path / "quadrant.npy"


def _evaluate(video: Path, truth: Path, out: Path, method: str | None) -> tuple[int, str, str]:
    """``evaluate`` on the quadrants function, class 0 (``method`` None: the default)."""
    chosen = ["--method", method] if method else []
    result = CliRunner().invoke(
        main,
        ["evaluate", str(video), "--gt", str(truth), "--out", str(out), "--model", QUADRANTS,
         "--num-classes", "4", "--class", "0", *chosen, "--baselines", "centre",
         "--units", "voxel", "--steps", str(STEPS), "--quiet"],
    )  # fmt: skip
    return result.exit_code, result.stdout, result.stderr


def test_evaluate_scores_rise_on_a_plain_callable(
    scene: tuple[Path, Path], tmp_path: Path, factories
) -> None:
    video, truth = scene
    out = tmp_path / "out"
    loaded = st.load_model(QUADRANTS, num_classes=4)
    code, stdout, stderr = _evaluate(video, truth, out, "rise")
    assert code == 0, stderr
    report = json.loads((out / "report.json").read_text())
    assert report["class"]["index"] == 0
    assert report["ground_truth"]["clip_voxels"] == 16 * 56 * 56
    row = report["tubes"]["rise/cubic"]

    # The same numbers from the metrics functions on RISE's own tube of the function.
    clip = model_input(video, loaded)
    protocol = Protocol(steps=STEPS)
    tube = st.RISE(loaded.model.fn, classes=4, masks=MASKS, align=protocol.align)(
        clip, classes=[[0]]
    ).maps[0, 0]
    mask = torch.zeros(tube.shape, dtype=torch.bool)
    mask[:, :56, :56] = True
    # By hand: the tube of class 0 peaks in the top-left quadrant (class 0 reads only it),
    # and its mass there is its sum there over its sum.
    assert pointing_game(tube, mask, tolerance_frames=1, tolerance_px=6) == 1.0
    assert row["pointing"] == 1.0
    by_hand = float(tube[:, :56, :56].double().sum() / tube.double().sum())
    assert row["mass"] == pytest.approx(by_hand, abs=1e-6)
    assert energy_inside(tube, mask) == pytest.approx(by_hand, abs=1e-12)
    assert row["iou"] == pytest.approx(iou_top(tube, mask), abs=1e-6)
    options = {
        "unit": "voxel", "steps": STEPS, "grid": protocol.grid(tube.shape),
        "substrate": make_substrate(clip, protocol.substrate),
    }  # fmt: skip
    model = loaded.model  # the function as a parameterless nn.Module
    for name, curve in (("deletion", deletion), ("insertion", insertion)):
        direct = curve(model, clip, tube, 0, **options)
        assert row[name] == pytest.approx(direct.auc, abs=1e-6), name
        np.testing.assert_allclose(row["curves"][name]["scores"], direct.scores.numpy(), atol=1e-6)

    # The sanity check: n/a in report.json, the table and the plots (no sanity.png).
    assert row["sanity"] == NA and report["tubes"]["baseline/centre"]["sanity"] == NA
    assert report["sanity_layers"] == [] and report["evaluation"]["sanity_steps"] == []
    assert "sanity layers" not in report["evaluation"]["forwards"]["parts"]
    assert f"sanity: {NA}" in stdout.splitlines()
    table = [line.split() for line in stdout.splitlines() if line.startswith(("rise/", "base"))]
    assert [cells[-1] for cells in table] == ["n/a", "n/a"], stdout
    assert "sanity ρ" in stdout and not (out / "sanity.png").exists()
    assert (out / "deletion_insertion.png").is_file()


def test_every_forward_planned_on_a_plain_callable_is_run(
    scene: tuple[Path, Path], tmp_path: Path, factories
) -> None:
    from saliency_tubes.commands import EvaluateOptions, evaluate_video

    video, truth = scene
    loaded = st.load_model(QUADRANTS, num_classes=4)
    options = EvaluateOptions(
        methods=("rise",),
        classes=0,
        baselines=(),
        units=("voxel",),
        protocol=Protocol(steps=STEPS, resamples=100),
        progress=False,
    )
    with counted(loaded.model) as calls:
        result = evaluate_video(video, truth, tmp_path / "out", loaded, options)
    forwards = result.manifest["evaluation"]["forwards"]
    # 2 (class), 1 + 64 (RISE), STEPS - 1 per curve (its ends known), 1 (confidence)
    assert forwards["parts"] == {
        "select the class": 2,
        "explain": 1 + MASKS,
        "RISE: voxel": 2 * (STEPS - 1),
        "RISE: confidence": 1,
    }
    assert sum(calls) == forwards["total"] == forwards["run"] == 2 + 1 + MASKS + 2 * 3 + 1


def test_evaluate_refuses_a_layer_method_on_a_plain_callable(
    scene: tuple[Path, Path], tmp_path: Path, factories
) -> None:
    video, truth = scene
    out = tmp_path / "out"
    code, stdout, stderr = _evaluate(video, truth, out, "gradcam")
    assert code == 2, stdout
    assert stderr.strip() == (
        "error: expected --method occlusion | integrated-gradients | rise | lime | kernelshap "
        f"for {QUADRANTS} (a plain callable: no layers to read), but got --method gradcam; "
        "use --method rise"
    )
    assert not out.exists()


def test_evaluate_without_method_scores_rise_on_a_plain_callable(
    scene: tuple[Path, Path], tmp_path: Path, factories
) -> None:
    """The default methods (cam, gradcam, gradcam++) read layers: on a function, evaluate
    without --method scores its ``auto``, RISE, as explain does; the same tube as asked."""
    video, truth = scene
    code, _, stderr = _evaluate(video, truth, tmp_path / "default", None)
    assert code == 0, stderr
    default = json.loads((tmp_path / "default" / "report.json").read_text())
    assert default["evaluation"]["methods"] == ["rise"]
    code, _, stderr = _evaluate(video, truth, tmp_path / "asked", "rise")
    assert code == 0, stderr
    asked = json.loads((tmp_path / "asked" / "report.json").read_text())
    assert default["tubes"] == asked["tubes"]


def test_evaluate_video_with_default_options_scores_rise_on_a_plain_callable(
    scene: tuple[Path, Path], tmp_path: Path, factories, tiny
) -> None:
    """The Python API: ``EvaluateOptions()`` leaves the methods to the model (one rule for
    the API and the CLI, ``EvaluateOptions.for_model``): the callable's ``auto``, RISE, on a
    function (the same report as ``methods=("rise",)``), the three CAMs on a network."""
    from saliency_tubes.commands import EvaluateOptions, evaluate_video

    video, truth = scene
    loaded = st.load_model(QUADRANTS, num_classes=4)
    chosen = {"classes": 0, "baselines": (), "units": ("voxel",), "progress": False}
    protocol = Protocol(steps=STEPS, resamples=100)
    assert EvaluateOptions().methods is None
    default = evaluate_video(
        video, truth, tmp_path / "default", loaded, EvaluateOptions(**chosen, protocol=protocol)
    ).manifest
    asked = evaluate_video(
        video, truth, tmp_path / "asked", loaded,
        EvaluateOptions(**chosen, methods=("rise",), protocol=protocol),
    ).manifest  # fmt: skip
    assert default["evaluation"]["methods"] == ["rise"]
    assert default["tubes"] == asked["tubes"] and list(default["tubes"]) == ["rise/cubic"]
    assert EvaluateOptions().for_model(loaded).methods == ("rise",)
    assert EvaluateOptions().for_model(tiny).methods == ("cam", "gradcam", "gradcam++")
    assert EvaluateOptions(methods=("gradcam",)).for_model(tiny).methods == ("gradcam",)


@pytest.mark.parametrize("method", ["lime", "kernelshap"])
def test_evaluate_scores_captums_methods_on_a_plain_callable(
    scene: tuple[Path, Path], tmp_path: Path, factories, monkeypatch, method: str
) -> None:
    """LIME and Kernel SHAP (20 samples) through evaluate on the function: deletion and
    insertion are the metrics functions' own on the method's direct tube; sanity n/a."""
    pytest.importorskip("captum.attr")
    pytest.importorskip("sklearn")
    pytest.importorskip("skimage")
    from saliency_tubes.commands import EvaluateOptions, evaluate_video

    explainer = st.METHODS[method]
    cheap = type("Cheap", (explainer,), {"__init__": _cheap(explainer)})
    monkeypatch.setitem(st.METHODS, method, cheap)
    video, truth = scene
    loaded = st.load_model(QUADRANTS, num_classes=4)
    protocol = Protocol(steps=STEPS, resamples=100)
    options = EvaluateOptions(
        methods=(method,), classes=0, baselines=(), units=("voxel",), protocol=protocol,
        progress=False,
    )  # fmt: skip
    result = evaluate_video(video, truth, tmp_path / "out", loaded, options)
    row = result.manifest["tubes"][f"{method}/cubic"]
    assert row["sanity"] == NA
    clip = model_input(video, loaded)
    tube = explainer(loaded.model.fn, classes=4, samples=20, align=protocol.align)(
        clip, classes=[[0]]
    ).maps[0, 0]
    substrate = make_substrate(clip, protocol.substrate)
    for name, curve in (("deletion", deletion), ("insertion", insertion)):
        direct = curve(
            loaded.model, clip, tube, 0, unit="voxel", steps=STEPS, substrate=substrate,
            grid=protocol.grid(tube.shape),
        )  # fmt: skip
        assert row[name] == pytest.approx(direct.auc, abs=1e-6), name


def _cheap(explainer: type) -> object:
    def __init__(self, *args, **options) -> None:
        explainer.__init__(self, *args, **{"samples": 20, **options})

    return __init__
