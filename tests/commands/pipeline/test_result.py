"""What a command returns, as plain data and back; the explanation returned, not sent aside."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from saliency_tubes.commands import CompareOptions, ExplainOptions, compare_classes
from saliency_tubes.commands.explain import explained_video
from saliency_tubes.commands.pipeline.result import CommandResult
from saliency_tubes.temporal import TemporalCurve
from saliency_tubes.video import probe
from saliency_tubes.zoo import LoadedModel


def test_an_explain_result_round_trips_through_json(
    clip_path: Path, tiny: LoadedModel, tmp_path: Path
) -> None:
    options = ExplainOptions(classes="top2", formats=("npy", "plot"), progress=False)
    result, e = explained_video(clip_path, tmp_path / "o", tiny, options, probe(clip_path))
    # the explanation comes back with the result: the same classes, in the same order
    assert [t.index for t in result.tubes] == list(e.classes) and len(result.tubes) == 2
    plain = json.loads(json.dumps(result.to_dict()))
    again = CommandResult.from_dict(plain)
    assert again == result
    assert again.tubes[0].curve.key_frames.dtype == np.int64
    assert again.files["npy"] == [tmp_path / "o" / "tube.npy"]
    # the numbers are the ones computed, not the manifest's rounded ones
    assert again.tubes[1].stats.spread == result.tubes[1].stats.spread
    assert plain["manifest"] == json.loads((tmp_path / "o" / "manifest.json").read_text())


def test_a_compare_result_round_trips_and_curves_compare_by_value(
    clip_path: Path, tiny: LoadedModel, tmp_path: Path
) -> None:
    options = CompareOptions(classes="top2", formats=("png",), progress=False)
    result = compare_classes(clip_path, tmp_path / "c", tiny, options)
    assert CommandResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result
    a = result.tubes[0].curve
    shifted = TemporalCurve(a.mean + 1e-3, a.max, a.times, a.key_frames, a.prominence)
    assert a == TemporalCurve(a.mean.copy(), a.max, a.times, a.key_frames, a.prominence)
    assert a != shifted and a != TemporalCurve(a.mean, a.max, None, a.key_frames, a.prominence)
