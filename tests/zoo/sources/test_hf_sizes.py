"""An untrusted ``hf:DIR`` config.json: its sizes are bounded before anything is built
(issue 28, item 7). The checks read the JSON alone: transformers is not needed for them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from saliency_tubes.errors import ModelLoadError
from saliency_tubes.zoo import load_model
from saliency_tubes.zoo.sources import huggingface as hf

ROOT = Path(__file__).resolve().parents[3]

#: A base VideoMAE's config: 16 frames of 224x224, patch 16, tubelet 2 (1568 tokens).
BASE: dict[str, Any] = {
    "architectures": ["VideoMAEForVideoClassification"],
    "num_frames": 16,
    "image_size": 224,
    "patch_size": 16,
    "tubelet_size": 2,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "id2label": {"0": "walking", "1": "running"},
}


def _refused(config: dict[str, Any]) -> str:
    with pytest.raises(ModelLoadError) as info:
        hf.layout(config, "DIR/config.json")
    text = str(info.value)
    assert "\n" not in text
    return text


def test_a_base_config_passes_and_keeps_its_layout() -> None:
    lay = hf.layout(BASE, "DIR/config.json")
    assert (lay.frames, lay.size, lay.grid) == (16, (224, 224), (8, 14, 14))


@pytest.mark.parametrize(
    ("key", "value"),
    [("num_frames", -4), ("num_frames", 0), ("image_size", "224"), ("patch_size", 2.5),
     ("num_hidden_layers", True), ("hidden_size", -768), ("tubelet_size", [2, -16, 16])],
)  # fmt: skip
def test_a_size_that_is_not_a_positive_whole_number_names_its_key(key: str, value: Any) -> None:
    text = _refused({**BASE, key: value})
    assert text.startswith(f"expected {key} in DIR/config.json to be a positive whole number")


def test_fewer_frames_than_one_token_is_refused() -> None:
    text = _refused({**BASE, "num_frames": 1})
    assert text.startswith("expected num_frames in DIR/config.json to be at least one token (2)")


@pytest.mark.parametrize("key", ["num_frames", "image_size"])
def test_an_absurd_size_is_checked_against_the_memory_before_building(key: str) -> None:
    text = _refused({**BASE, key: 100000})
    assert text.startswith("expected work that fits in memory, but the model of DIR/config.json")
    assert f"{key} 100000" in text and "GiB is available; fix those keys" in text


def test_the_cli_says_one_line_at_once(tmp_path: Path) -> None:
    """The issue's case: ``hf:DIR`` with num_frames 100000 hung, memory growing ~25 MB/s;
    -4 read "could not load ... weights (IndexError)". Now one line each, exit 2, before
    any weights are read (the folder has none)."""
    from _clips import write_demo_clip

    clip = write_demo_clip(tmp_path)
    for value, says in ((100000, "num_frames 100000"), (-4, "expected num_frames in")):
        folder = tmp_path / f"hf{value}"
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({**BASE, "num_frames": value}))
        proc = subprocess.run(
            [sys.executable, "-m", "saliency_tubes.cli", "explain", str(clip),
             "--out", str(tmp_path / "out"), "--model", f"hf:{folder}", "--quiet"],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and says in lines[0], proc.stderr
        assert not (tmp_path / "out").exists()
    with pytest.raises(ModelLoadError, match="num_frames 100000"):
        load_model(f"hf:{tmp_path / 'hf100000'}")


def test_weights_that_do_not_fit_are_one_line_without_the_load_report(tmp_path: Path) -> None:
    """transformers printed its load report (20-55 lines) before the error line."""
    pytest.importorskip("transformers", reason="the transformers extra is not installed")
    import torch
    from safetensors.torch import load_file, save_file

    from _clips import write_demo_clip

    tf = hf.import_transformers("test")
    config = tf.VivitConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        image_size=32, num_frames=8, tubelet_size=[2, 8, 8], id2label={0: "a", 1: "b"},
        label2id={"a": 0, "b": 1},
    )  # fmt: skip
    folder = tmp_path / "vivit"
    tf.VivitForVideoClassification(config).save_pretrained(str(folder))
    state = load_file(str(folder / "model.safetensors"))
    state.pop("classifier.weight")
    state["extra.weight"] = torch.zeros(2)
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    proc = subprocess.run(
        [sys.executable, "-m", "saliency_tubes.cli", "explain", str(write_demo_clip(tmp_path)),
         "--out", str(tmp_path / "out"), "--model", f"hf:{folder}"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.splitlines() == [
        f"error: the weights in {folder} do not fit its config.json: missing keys "
        "['classifier.weight']; unexpected keys ['extra.weight']; save the model again with "
        "save_pretrained"
    ], proc.stderr
