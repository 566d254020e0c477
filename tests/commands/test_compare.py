"""``compare_classes`` and ``compare_models`` called directly, against the single-model run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import saliency_tubes as st
from saliency_tubes.commands import (
    CompareOptions,
    ExplainOptions,
    compare_classes,
    compare_models,
    explain_video,
)
from saliency_tubes.zoo import load_model

from .conftest import assert_close, model_input


def test_compare_classes_panels_and_contrast(clip_path: Path, tmp_path: Path, tiny) -> None:
    options = CompareOptions(
        classes="top3", contrast=("shrink", "grow"), formats=("npy",), progress=False
    )
    result = compare_classes(clip_path, tmp_path / "out", tiny, options)
    clip = model_input(clip_path, tiny)
    by_hand = tiny.explainer("cam")(clip, classes="top3")
    assert [t.index for t in result.tubes] == by_hand.classes[0].tolist()
    tube = np.load(tmp_path / "out" / "tube.npy")
    assert_close(tube, by_hand.maps[0].numpy())

    # The contrast is the raw difference A - B upsampled and divided by its largest |value|.
    names = [t.name for t in result.tubes]
    with_pair = tiny.explainer("cam")(clip, classes=[[*by_hand.classes[0].tolist()]])
    contrast = st.contrastive_tube(with_pair, "shrink", "grow")
    saved = np.load(tmp_path / "out" / "contrast_shrink_vs_grow.npy")
    assert_close(saved, contrast.maps[0].numpy(), atol=1e-5)
    assert result.manifest["contrast"]["scale"] == pytest.approx(float(contrast.scale[0]), rel=1e-5)
    assert {"shrink", "grow"} <= set(names)
    assert saved.min() >= -1 and saved.max() <= 1 and np.abs(saved).max() == pytest.approx(1.0)


def test_compare_classes_adds_the_contrast_classes(clip_path: Path, tmp_path: Path, tiny) -> None:
    options = CompareOptions(
        classes="top1", contrast=("up", "down"), formats=("npy",), progress=False
    )
    result = compare_classes(clip_path, tmp_path / "out", tiny, options)
    assert [t.name for t in result.tubes][1:] == ["up", "down"]
    assert np.load(tmp_path / "out" / "tube.npy").shape[0] == 3


def test_compare_models_panel_is_the_single_model_tube(clip_path: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    other = load_model("resnet3d-18", num_classes=8)
    models = [load_model("tiny-actions"), other]
    options = CompareOptions(method="auto", formats=("npy",), progress=False)
    result = compare_models(clip_path, tmp_path / "grid", models, options)
    assert [t.model for t in result.tubes] == ["tiny-actions", "resnet3d-18"]
    assert [row["model"] for row in result.manifest["summary"]] == ["tiny-actions", "resnet3d-18"]
    for loaded, tube in zip(models, result.tubes, strict=True):
        single = explain_video(
            clip_path,
            tmp_path / loaded.name,
            loaded,
            ExplainOptions(method="auto", formats=("npy",), progress=False),
        )
        assert single.tubes[0].index == tube.index and single.tubes[0].score == tube.score
        assert single.tubes[0].stats == tube.stats
        np.testing.assert_array_equal(
            np.load(tmp_path / "grid" / f"tube_{loaded.name}.npy"),
            np.load(tmp_path / loaded.name / "tube.npy"),
        )


def test_compare_models_refuses_twice_the_same_model(clip_path: Path, tmp_path: Path, tiny) -> None:
    with pytest.raises(st.InputError, match="distinct model names"):
        compare_models(clip_path, tmp_path / "out", [tiny, tiny])
    assert not (tmp_path / "out").exists()


def test_compare_models_against_each_explainer_by_hand(clip_path: Path, tmp_path: Path) -> None:
    torch.manual_seed(1)
    models = [load_model("tiny-actions"), load_model("resnet3d-18", num_classes=8)]
    options = CompareOptions(method="auto", classes="top2", formats=("npy",), progress=False)
    result = compare_models(clip_path, tmp_path / "grid", models, options)
    for k, loaded in enumerate(models):
        by_hand = loaded.explainer("cam")(model_input(clip_path, loaded), classes="top2")
        mine = [t for t in result.tubes if t.model == loaded.name]
        assert [t.index for t in mine] == by_hand.classes[0].tolist()
        assert_close([t.score for t in mine], by_hand.scores[0].numpy(), atol=1e-6)
        assert_close(np.load(tmp_path / "grid" / f"tube_{loaded.name}.npy"), by_hand.maps[0])
        preset = result.manifest["models"][k]["model"]["preset"]
        assert list(preset["size"]) == list(loaded.preset.size)


def test_contrast_over_windows_is_one_array_per_window(
    clip_path: Path, tmp_path: Path, tiny
) -> None:
    options = CompareOptions(
        classes="top1",
        contrast=("shrink", "grow"),
        windows=(16, 8),
        formats=("npy",),
        progress=False,
    )
    result = compare_classes(clip_path, tmp_path / "out", tiny, options)
    assert [t.name for t in result.tubes] == ["shrink", "grow"]
    saved = np.load(tmp_path / "out" / "contrast_shrink_vs_grow.npy")
    tubes = np.load(tmp_path / "out" / "tube.npy")
    assert saved.shape == (2, *tubes.shape[2:]) and tubes.shape[:2] == (2, 2)
    assert np.abs(saved).max() == pytest.approx(1.0)  # one scale over both windows


def test_a_result_pickles_for_worker_processes(clip_path: Path, tmp_path: Path, tiny) -> None:
    import pickle

    result = compare_classes(
        clip_path, tmp_path / "out", tiny, CompareOptions(formats=("npy",), progress=False)
    )
    again = pickle.loads(pickle.dumps(result))
    assert again.manifest == result.manifest and again.files == result.files
    assert [(t.name, t.score, t.stats) for t in again.tubes] == [
        (t.name, t.score, t.stats) for t in result.tubes
    ]
    np.testing.assert_array_equal(again.tubes[0].curve.mean, result.tubes[0].curve.mean)
