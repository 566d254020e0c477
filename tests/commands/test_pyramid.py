"""``pyramid_video`` called directly: the graph and tubes it writes are the API's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import saliency_tubes as st
from saliency_tubes.commands import PyramidOptions, pyramid_video
from saliency_tubes.pyramid import ROOT

from .conftest import assert_close, model_input, state


def test_pyramid_video_writes_the_api_pyramid(clip_path: Path, tmp_path: Path, tiny) -> None:
    options = PyramidOptions(target="shrink", depth=2, per_level=3, gif=False)
    before = state(tiny.model)
    result = pyramid_video(clip_path, tmp_path / "out", tiny, options)
    assert state(tiny.model) == before
    by_hand = st.class_feature_pyramid(
        tiny.model,
        model_input(clip_path, tiny),
        "shrink",
        depth=2,
        threshold=0.6,
        layer=tiny.layer,
        classifier=tiny.classifier,
        categories=tiny.categories,
    )
    graph = json.loads((tmp_path / "out" / "pyramid.json").read_text())
    assert graph == json.loads(json.dumps(by_hand.to_dict()))
    assert result.manifest["class"]["name"] == "shrink"
    assert result.manifest["pyramid"]["nodes_per_level"] == [len(lv) for lv in by_hand.levels()]
    assert_close(np.load(tmp_path / "out" / "tubes" / "class.npy"), by_hand.tube(ROOT).numpy())
    drawn = [n for row in result.manifest["pyramid"]["drawn"] for n in row]
    assert set(result.manifest["tubes"]) == set(drawn) and len(result.files["npy"]) == len(drawn)
    assert [p.name for p in result.files["png"]] == ["pyramid.png"] and "gif" not in result.files


def test_pyramid_options_are_checked_first(clip_path: Path, tmp_path: Path, tiny) -> None:
    with pytest.raises(st.InputError, match="threshold"):
        pyramid_video(clip_path, tmp_path / "out", tiny, PyramidOptions(threshold=1.5))
    assert not (tmp_path / "out").exists()
