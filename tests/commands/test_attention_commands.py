"""Rollout and relevancy through the commands: `explain --method relevancy|rollout` on a
Hugging Face folder writes the tube the API computes for the same clip (class-specific for
relevancy, one map for every class for rollout), `batch` runs them, and a convolutional
model is refused in one `error:` line naming the methods that apply."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from click.testing import CliRunner

pytest.importorskip(
    "transformers", reason="the attention methods' models need the transformers extra"
)

from saliency_tubes.cli import main  # noqa: E402
from saliency_tubes.commands import (  # noqa: E402
    BatchOptions,
    BatchSettings,
    ExplainOptions,
    ModelOptions,
    batch_videos,
    write_demo_dataset,
)
from saliency_tubes.zoo import load_model  # noqa: E402
from saliency_tubes.zoo.sources import huggingface as hf  # noqa: E402

from .conftest import assert_close, model_input, state  # noqa: E402

LABELS = {0: "walking", 1: "running", 2: "jumping"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny TimeSformer (divided attention) saved with save_pretrained, fixed weights."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        tf = hf.import_transformers("test")
    config = tf.TimesformerConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        image_size=32, num_frames=8, patch_size=8, id2label=LABELS,
        label2id={v: k for k, v in LABELS.items()},
    )  # fmt: skip
    torch.manual_seed(0)
    model = tf.TimesformerForVideoClassification(config)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.mul_(15.0)  # sharper attention than the 0.02 initialisation gives
    out = tmp_path_factory.mktemp("hf") / "timesformer"
    model.save_pretrained(str(out))
    return out


def _cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("method", ["relevancy", "rollout"])
def test_explain_writes_the_api_s_tube(
    clip_path: Path, tmp_path: Path, folder: Path, method: str
) -> None:
    out = tmp_path / "out"
    code, _, stderr = _cli(
        "explain", str(clip_path), "--out", str(out), "--model", f"hf:{folder}",
        "--method", method, "--classes", "top2", "--format", "npy,mp4", "--quiet",
    )  # fmt: skip
    assert code == 0, stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"]["method"] == method
    assert manifest["model"]["layer"] == "timesformer.embeddings"
    assert manifest["tube"]["layer_grid"] == [8, 4, 4]
    tube = np.load(out / "tube.npy")
    assert tube.shape == (2, 8, 32, 32) and len(list(out.glob("heat_*.mp4"))) == 2
    loaded = load_model(f"hf:{folder}")
    before = state(loaded.model)
    classes = [c["index"] for c in manifest["classes"]]
    tubes = loaded.explainer(method)(model_input(clip_path, loaded), classes=classes)
    assert state(loaded.model) == before
    assert_close(tube, tubes.maps[0].numpy(), atol=1e-4)
    difference = float(np.abs(tube[0] - tube[1]).max())
    if method == "rollout":
        assert difference == 0.0 and tubes.class_agnostic
    else:
        assert difference > 1e-3 and not tubes.class_agnostic


def test_batch_runs_relevancy(tmp_path: Path, folder: Path) -> None:
    dataset = write_demo_dataset(tmp_path / "dataset", videos=2)
    out = tmp_path / "batch"
    explain = ExplainOptions(method="relevancy", formats=("npy",), progress=False)
    settings = BatchSettings(ModelOptions(name=f"hf:{folder}"), explain, out / "videos")
    result = batch_videos(dataset, out, settings, BatchOptions(progress=False))
    assert (result.ran, result.failed) == (2, 0)
    for row in pq.read_table(out / "index.parquet").to_pylist():
        assert row["status"] == "ok"
        manifest = json.loads((out / row["output"] / "manifest.json").read_text())
        assert manifest["model"]["method"] == "relevancy"
        tube = np.load(out / row["output"] / "tube.npy")
        assert tube.shape == (1, 8, 32, 32) and 0.0 <= tube.min() < tube.max() <= 1.0


def test_a_convolutional_model_is_refused_in_one_line(clip_path: Path, tmp_path: Path) -> None:
    code, _, stderr = _cli(
        "explain", str(clip_path), "--out", str(tmp_path / "o"), "--method", "relevancy", "--quiet",
    )  # fmt: skip
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: expected a video transformer")
    assert "gradcam" in lines[0] and "TinyActionNet" in lines[0]
    assert not (tmp_path / "o" / "manifest.json").exists()


def test_the_demo_shows_the_colour_model(tmp_path: Path) -> None:
    from saliency_tubes.commands import run_demo
    from saliency_tubes.errors import InputError
    from saliency_tubes.synthetic_colours import COLOURS

    result = run_demo(tmp_path / "demo", model="tiny-colours", formats=("npy",), progress=False)
    manifest = result.manifest
    assert manifest["model"]["name"] == "tiny-colours" and manifest["demo"]["true_class"] in COLOURS
    assert manifest["model"]["weights_source"] == "shipped"
    assert manifest["model"]["caveat"].startswith("knows only the 6 synthetic colour classes")
    assert manifest["classes"][0]["name"] == manifest["demo"]["true_class"]  # it is trained
    with pytest.raises(InputError, match="expected the demo's model to be one of"):
        run_demo(tmp_path / "other", model="videomae-base", progress=False)
    assert not (tmp_path / "other").exists()
