"""``batch`` and ``compare-models`` with a model given as a plain callable
(``--model module:factory`` returning a function, issue 23's black-box case): each video's
tube is the black-box method's own call on the function, the evidence is where the function
reads it, ``auto`` picks RISE, and the layer methods are one error line with nothing
written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import saliency_tubes as st
from saliency_tubes.cli import main
from saliency_tubes.commands import (
    BatchOptions,
    BatchSettings,
    CompareOptions,
    ExplainOptions,
    InputError,
    ModelOptions,
    batch_videos,
    compare_models,
    write_demo_dataset,
)
from saliency_tubes.commands.pipeline.drawing import slug

from .conftest import assert_close, model_input

ROOT = Path(__file__).resolve().parents[2]
QUADRANTS = "_callables:quadrants"
# The tubes come from a worker process (one torch thread) and are compared with a direct
# call here: float32 sums in another order differ in the last bits (see test_batch).
TOLERANCE = 1e-5
EXPLAINERS = {"rise": st.RISE, "lime": st.Lime, "kernelshap": st.KernelShap}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 labelled synthetic clips, listed in labels.csv."""
    return write_demo_dataset(tmp_path_factory.mktemp("dataset"), videos=2)


FRAMES = 4
"""Clips of 4 frames: RISE's 1000 masks (the defaults, which a worker process uses) cost
seconds, not a minute, on a busy machine."""


@pytest.fixture()
def factories(monkeypatch: pytest.MonkeyPatch) -> None:
    """tests/_callables.py importable here and in the batch's worker processes."""
    monkeypatch.syspath_prepend(str(ROOT / "tests"))


def _quadrant_means(tube: np.ndarray) -> list[float]:
    """Mean of a (T, H, W) tube over each spatial quadrant, in the factory's order."""
    h, w = tube.shape[-2] // 2, tube.shape[-1] // 2
    parts = [tube[..., :h, :w], tube[..., :h, w:], tube[..., h:, :w], tube[..., h:, w:]]
    return [float(p.mean()) for p in parts]


@pytest.mark.parametrize(
    "method",
    [
        "auto",
        # captum's LIME and Kernel SHAP at their 1000 samples (a worker takes the defaults)
        # took 568 s and 367 s on 2 cores at load 15: behind `slow`.
        pytest.param("lime", marks=pytest.mark.slow),
        pytest.param("kernelshap", marks=pytest.mark.slow),
    ],
)
def test_batch_on_a_plain_callable_is_each_videos_black_box_tube(
    dataset: Path, tmp_path: Path, factories, method: str
) -> None:
    out = tmp_path / "batch"
    explain = ExplainOptions(
        method=method, classes=(0,), frames=FRAMES, formats=("npy",), progress=False
    )
    settings = BatchSettings(ModelOptions(name=QUADRANTS, num_classes=4), explain, out / "videos")
    result = batch_videos(dataset, out, settings, BatchOptions(limit=1, progress=False))
    assert [r["status"] for r in result.rows] == ["ok"]
    name = "rise" if method == "auto" else method  # auto: RISE for a plain callable
    loaded = st.load_model(QUADRANTS, num_classes=4)
    assert loaded.plain_callable
    for folder in sorted((out / "videos").iterdir()):
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["method"] == name and manifest["model"]["weights_source"] == "factory"
        assert manifest["tubes"][0]["class"]["index"] == 0
        video = dataset.parent / Path(manifest["source"]["path"]).name
        clip = model_input(video, loaded, frames=FRAMES)
        expected = EXPLAINERS[name](loaded.model.fn, classes=4)(clip, classes=[[0]])
        tube = np.load(folder / "tube.npy")
        assert tube.shape == (1, FRAMES, 112, 112)
        assert_close(tube, expected.maps[0].numpy(), atol=TOLERANCE)
        assert manifest["tubes"][0]["class"]["score"] == pytest.approx(
            float(expected.scores[0, 0]), abs=1e-5
        )
        # Class 0 reads the top-left quadrant only: the tube is highest there, clearly
        # (measured: RISE 0.73 against at most 0.41; LIME 0.12 against 0, its Lasso keeps
        # only supervoxels of that quadrant).
        means = _quadrant_means(tube[0])
        assert means[0] > 0 and means[0] > 1.5 * max(means[1:]), means


def test_batch_refuses_a_layer_method_on_a_plain_callable(
    dataset: Path, tmp_path: Path, factories
) -> None:
    out = tmp_path / "batch"
    explain = ExplainOptions(method="gradcam", formats=("npy",), progress=False)
    settings = BatchSettings(ModelOptions(name=QUADRANTS, num_classes=4), explain, out / "videos")
    with pytest.raises(InputError) as raised:
        batch_videos(dataset, out, settings, BatchOptions(progress=False))
    assert str(raised.value) == (
        "expected --method occlusion | integrated-gradients | rise | lime | kernelshap for "
        f"{QUADRANTS} (a plain callable: no layers to read), but got --method gradcam; use "
        "--method rise; nothing was written"
    )
    assert not out.exists()


FEW = {"rise": {"masks": 20}, "lime": {"samples": 30}, "kernelshap": {"samples": 30}}
"""compare-models runs in this process: cheap settings, the same in the direct call."""


@pytest.mark.parametrize("method", ["rise", "lime", "kernelshap"])
def test_compare_models_with_plain_callables(
    clip_path: Path, tmp_path: Path, factories, method: str
) -> None:
    models = [
        st.load_model(QUADRANTS, num_classes=4),
        st.load_model("_callables:tiny_function", num_classes=8),
    ]
    for m in models:  # the commands build their explainer here; give it the cheap settings
        m.explainer = lambda name="cam", _o=m.explainer, **kw: _o(name, **FEW[method], **kw)
    options = CompareOptions(method=method, formats=("npy",), progress=False)
    result = compare_models(clip_path, tmp_path / "grid", models, options)
    assert [t.model for t in result.tubes] == [QUADRANTS, "_callables:tiny_function"]
    for loaded, tube, classes in zip(models, result.tubes, (4, 8), strict=True):
        clip = model_input(clip_path, loaded)
        expected = EXPLAINERS[method](loaded.model.fn, classes=classes, **FEW[method])(clip)
        assert tube.index == int(expected.classes[0, 0])
        assert tube.score == pytest.approx(float(expected.scores[0, 0]), abs=1e-5)
        saved = np.load(tmp_path / "grid" / f"tube_{slug(loaded.name)}.npy")
        assert_close(saved, expected.maps[0].numpy(), atol=TOLERANCE)
    if method == "rise":
        first = np.load(tmp_path / "grid" / f"tube_{slug(QUADRANTS)}.npy")[0]
        means = _quadrant_means(first)
        top = result.tubes[0].index  # the quadrant with most |value|: the tube's highest
        assert means[top] == max(means), means


def test_compare_models_refuses_a_layer_method_on_a_plain_callable(
    clip_path: Path, tmp_path: Path, factories
) -> None:
    out = tmp_path / "grid"
    result = CliRunner().invoke(
        main,
        ["compare-models", str(clip_path), "--models", f"{QUADRANTS},tiny-actions",
         "--num-classes", f"{QUADRANTS}=4", "--method", "gradcam", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: expected --method occlusion | integrated-gradients | rise | lime | kernelshap "
        f"for {QUADRANTS} (a plain callable: no layers to read), but got --method gradcam; "
        "use --method rise"
    )
    assert not out.exists()


def test_integrated_gradients_on_a_function_without_gradients_is_one_line(
    clip_path: Path, tmp_path: Path, factories
) -> None:
    """tiny_function runs its network under torch.no_grad: no gradient to integrate (it was
    a RuntimeError's traceback from captum's backward)."""
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        ["explain", str(clip_path), "--out", str(out), "--model", "_callables:tiny_function",
         "--num-classes", "8", "--method", "integrated-gradients", "--quiet"],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == [
        "error: expected the model's scores to carry gradients for integrated gradients, but "
        "got scores with none (a function under torch.no_grad, or a model outside torch); use "
        "--method rise, lime, kernelshap or occlusion"
    ]
    assert not out.exists()


NO_GRADIENTS = (
    "expected the model's scores to carry gradients for integrated gradients, but got scores "
    "with none (a function under torch.no_grad, or a model outside torch); use --method rise, "
    "lime, kernelshap or occlusion; nothing was written"
)


def test_batch_refuses_integrated_gradients_on_a_function_without_gradients_up_front(
    dataset: Path, tmp_path: Path, factories
) -> None:
    """One forward of a blank clip before the first video finds that tiny_function's scores
    carry no gradient: one line, exit 2, nothing written (it was an error row per video)."""
    out = tmp_path / "batch"
    result = CliRunner().invoke(
        main,
        ["batch", str(dataset), "--out", str(out), "--model", "_callables:tiny_function",
         "--num-classes", "8", "--method", "integrated-gradients", "--workers", "1",
         "--quiet"],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == [f"error: {NO_GRADIENTS}"]
    assert not out.exists()
    # in this process (the API): the same line, before any video
    explain = ExplainOptions(method="integrated-gradients", formats=("npy",), progress=False)
    model = ModelOptions(name="_callables:tiny_function", num_classes=8)
    settings = BatchSettings(model, explain, out / "videos")
    with pytest.raises(InputError) as raised:
        batch_videos(dataset, out, settings, BatchOptions(progress=False))
    assert str(raised.value) == NO_GRADIENTS
    assert not out.exists()


def test_the_gradient_check_leaves_a_network_as_it_was(tiny) -> None:
    """The up-front check on a network with gradients passes (under torch.no_grad too) and
    changes nothing: mode, requires_grad, weights and statistics, no .grad left."""
    import torch

    from saliency_tubes.commands.batch.worker import check_against

    tiny.model.train()
    tiny.model.stem[0].weight.requires_grad_(False)
    before = {n: p.requires_grad for n, p in tiny.model.named_parameters()}
    state = {k: v.clone() for k, v in tiny.model.state_dict().items()}
    with torch.no_grad():
        check_against(tiny, ExplainOptions(method="integrated-gradients"))
        assert not torch.is_grad_enabled()
    assert tiny.model.training
    assert {n: p.requires_grad for n, p in tiny.model.named_parameters()} == before
    assert all(p.grad is None for p in tiny.model.parameters())
    after = tiny.model.state_dict()  # BatchNorm's running statistics included
    assert all(torch.equal(v, after[k]) for k, v in state.items())


def test_compare_models_auto_is_rise_for_the_callable_and_cam_for_the_module(
    clip_path: Path, tmp_path: Path, factories
) -> None:
    function, module = st.load_model(QUADRANTS, num_classes=4), st.load_model("tiny-actions")
    original = function.explainer
    function.explainer = lambda name="cam", **kw: original(name, masks=20, **kw)
    options = CompareOptions(method="auto", formats=("npy",), progress=False)
    result = compare_models(clip_path, tmp_path / "grid", [function, module], options)
    assert [m["model"]["method"] for m in result.manifest["models"]] == ["rise", "cam"]
    clip = model_input(clip_path, function)
    expected = st.RISE(function.model.fn, classes=4, masks=20)(clip)
    saved = np.load(tmp_path / "grid" / f"tube_{slug(QUADRANTS)}.npy")
    assert_close(saved, expected.maps[0].numpy(), atol=TOLERANCE)
    by_hand = module.explainer("cam")(model_input(clip_path, module))
    assert_close(np.load(tmp_path / "grid" / "tube_tiny-actions.npy"), by_hand.maps[0].numpy())
