"""`evaluate` on a Hugging Face model: every forward of the metrics goes through the
adapter's ``inputs`` (``pixel_values``), as the explainers' do. A tiny VideoMAE built from
its config with random weights (a narrow twin of ``videomae-base``) is scored end to end,
and its report and terminal say that the weights are random."""

from __future__ import annotations

import json
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

pytest.importorskip("transformers", reason="the Hugging Face models need the transformers extra")

from _clips import write_evaluation_clip  # noqa: E402
from saliency_tubes.cli import main  # noqa: E402
from saliency_tubes.methods.inputs import class_scores  # noqa: E402
from saliency_tubes.metrics import deletion  # noqa: E402
from saliency_tubes.zoo import load_model, registry  # noqa: E402
from saliency_tubes.zoo.sources import hf_adapters  # noqa: E402
from saliency_tubes.zoo.sources import huggingface as hf  # noqa: E402

TINY = {
    "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
    "intermediate_size": 64, "image_size": 32, "num_frames": 8, "patch_size": 8,
    "tubelet_size": 2,
}  # fmt: skip


@pytest.fixture
def twin(monkeypatch: pytest.MonkeyPatch) -> str:
    """A narrow VideoMAE (the videomae-base adapter code on a tiny config), random weights."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        hf.import_transformers("test")
    config = TINY | {"architectures": [hf.FAMILIES["videomae"].architecture], "num_labels": 3}
    adapter = hf_adapters.adapter_for(
        "videomae-eval-twin",
        config,
        {},
        partial(hf.build, "videomae", "videomae-eval-twin", **TINY),
        description="test twin",
        where="test",
    )
    monkeypatch.setitem(registry._REGISTRY, adapter.name, adapter)
    return adapter.name


def test_the_metrics_call_the_model_through_its_inputs(twin: str) -> None:
    """The model takes pixel_values (N, T, C, H, W): the clip (N, C, T, H, W) itself is
    refused by it, and class_scores and deletion give what the model gives on the mapped
    input."""
    torch.manual_seed(0)
    loaded = load_model(twin, num_classes=3)
    assert loaded.random_weights and loaded.inputs is not None
    clip = torch.randn(2, 3, 8, 32, 32, generator=torch.Generator().manual_seed(1))
    with pytest.raises(Exception):  # noqa: B017 - transformers' own shape error
        loaded.model(clip)
    with torch.no_grad():
        want = loaded.model(clip.permute(0, 2, 1, 3, 4)).logits
        got = class_scores(loaded.model, clip, loaded.inputs)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    tube = torch.rand(8, 32, 32, generator=torch.Generator().manual_seed(2))
    curve = deletion(loaded.model, clip[:1], tube, 1, steps=2, inputs=loaded.inputs)
    p = torch.softmax(want[:1].double(), dim=1)[0, 1]
    assert curve.scores[0] == pytest.approx(float(p), abs=1e-6)


def test_evaluate_runs_on_a_random_weight_videomae(tmp_path: Path, twin: str) -> None:
    video, mask, _ = write_evaluation_clip(tmp_path)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        [
            "evaluate", str(video), "--gt", str(mask), "--model", twin, "--num-classes", "3",
            "--methods", "relevancy,gradcam", "--baselines", "uniform", "--units", "voxel",
            "--steps", "2", "--out", str(out), "--quiet",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert f"{twin} has random weights" in result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["model"]["random_weights"] is True
    assert set(report["tubes"]) == {"relevancy/cubic", "gradcam/cubic", "baseline/uniform"}
    for row in report["tubes"].values():
        assert np.isfinite(row["deletion"]) and 0.0 <= row["pointing"] <= 1.0
