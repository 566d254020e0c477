"""Hugging Face video transformers (the optional transformers extra): adapters, hf:DIR, the CLI.

Each family is exercised on a tiny config (hidden 32, 2 layers, 2 heads, 8 frames of
32x32, patch 8, tubelet 2, three named classes) saved with ``save_pretrained`` to a folder
and loaded back through ``hf:DIR`` and through ``--weights DIR`` with a registered name.
"""

from __future__ import annotations

import json
import shutil
import warnings
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner

pytest.importorskip(
    "transformers",
    reason="transformers is not installed (the optional extra: pip install 'saliency-tubes[transformers]')",
)

import saliency_tubes as st  # noqa: E402
from _clips import write_demo_clip  # noqa: E402
from _models import hooks_left  # noqa: E402
from saliency_tubes.cli import main  # noqa: E402
from saliency_tubes.commands import model_lines  # noqa: E402
from saliency_tubes.errors import InputError, ModelLoadError  # noqa: E402
from saliency_tubes.methods import METHODS  # noqa: E402
from saliency_tubes.tokens import TokenGrid  # noqa: E402
from saliency_tubes.vocabulary import INPUT_METHODS  # noqa: E402
from saliency_tubes.zoo import LoadedModel, available_models, get_adapter, load_model, registry  # noqa: E402
from saliency_tubes.zoo.sources import hf_adapters  # noqa: E402
from saliency_tubes.zoo.sources import huggingface as hf  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)  # torchvision's import workaround note
    TF = hf.import_transformers("test")

FAMILIES = ("videomae", "timesformer", "vivit")
PRESET_OF = {"videomae": "videomae-base", "timesformer": "timesformer-base", "vivit": "vivit-b"}
LABELS = {0: "walking", 1: "running", 2: "jumping"}
TINY: dict[str, Any] = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "image_size": 32,
    "num_frames": 8,
}
PER_FAMILY: dict[str, dict[str, Any]] = {
    "videomae": {"patch_size": 8, "tubelet_size": 2},
    "timesformer": {"patch_size": 8},
    "vivit": {"tubelet_size": [2, 8, 8]},
}
GRID = {"videomae": (4, 4, 4), "timesformer": (8, 4, 4), "vivit": (4, 4, 4)}


def _config(family: str, **extra: Any) -> Any:
    fam = hf.FAMILIES[family]
    return getattr(TF, fam.config_class)(
        **TINY,
        **PER_FAMILY[family],
        id2label=LABELS,
        label2id={v: k for k, v in LABELS.items()},
        **extra,
    )


def _save(folder: Path, family: str, seed: int = 0, **extra: Any) -> Path:
    torch.manual_seed(seed)
    model = getattr(TF, hf.FAMILIES[family].architecture)(_config(family, **extra))
    model.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf")
    out = {f: _save(root / f, f) for f in FAMILIES}
    out["videomae-cls"] = _save(root / "videomae-cls", "videomae", use_mean_pooling=False)
    return out


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_clip(tmp_path_factory.mktemp("clip"))


def _clip(seed: int = 0) -> torch.Tensor:
    return torch.randn(1, 3, 8, 32, 32, generator=torch.Generator().manual_seed(seed))


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


# ---------------------------------------------------------------- registry and presets


def test_presets_are_registered_and_listed() -> None:
    names = set(PRESET_OF.values())
    assert names <= set(available_models())
    lines = {line.split()[0]: line for line in model_lines()}
    assert "method=relevancy cam=approx" in lines["videomae-base"]
    assert "layer=videomae.encoder.layer.11" in lines["videomae-base"]
    assert "method=relevancy cam=n/a" in lines["timesformer-base"]
    assert "layer=timesformer.encoder.layer.10" in lines["timesformer-base"]
    assert "layer=vivit.layers.10" in lines["vivit-b"] and "32x224x224" in lines["vivit-b"]


@pytest.mark.parametrize("family", FAMILIES)
def test_preset_follows_the_installed_processor(family: str) -> None:
    """The presets' frames/size are the config class's defaults, their resize and statistics
    those of the family's video processor (folded onto the [0, 1] pixel scale)."""
    adapter = get_adapter(PRESET_OF[family])
    config = getattr(TF, hf.FAMILIES[family].config_class)()
    processor = getattr(
        TF, hf.FAMILIES[family].architecture.replace("ForVideoClassification", "VideoProcessor")
    )
    p = adapter.preset
    assert p.frames == config.num_frames and p.size == (config.image_size, config.image_size)
    assert p.resize_to == processor.size["shortest_edge"] and processor.crop_size["height"] == 224
    scale = 255 * processor.rescale_factor
    offset = 1.0 if family == "vivit" else 0.0  # ViViT's processor: x * rescale_factor - 1
    np.testing.assert_allclose(
        p.mean, [(offset + m) / scale for m in processor.image_mean], atol=1e-6
    )
    np.testing.assert_allclose(p.std, [s / scale for s in processor.image_std], atol=1e-6)
    # The layer is read from the config class's own defaults, as for a saved folder.
    assert adapter.layer == hf.layout(config.to_dict() | {"architectures": None}, "x").layer


def test_presets_build_offline_with_random_weights() -> None:
    for family, name in PRESET_OF.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded = load_model(name)
        assert loaded.random_weights and loaded.weights_source == "random"
        assert type(loaded.model).__name__ == hf.FAMILIES[family].architecture
        assert loaded.model.config.num_labels == 400 and loaded.categories is None
        assert not loaded.model.training


# ---------------------------------------------------------------- folders


def test_a_folder_under_home_is_found_with_a_tilde(
    folders: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = folders["videomae"]
    monkeypatch.setenv("HOME", str(folder.parent))
    loaded = load_model(f"hf:~/{folder.name}")
    assert loaded.categories == tuple(LABELS.values())


@pytest.mark.parametrize("family", FAMILIES)
def test_folder_is_explained_end_to_end(folders: dict[str, Path], family: str) -> None:
    loaded = load_model(f"hf:{folders[family]}")
    assert loaded.weights_source == "file" and not loaded.random_weights
    assert loaded.weights == str(folders[family])
    assert loaded.categories == tuple(LABELS.values())
    assert loaded.preset.frames == 8 and loaded.preset.size == (32, 32)
    tubes = loaded.explainer(loaded.adapter.default_method)(_clip(), classes="top2")
    assert tubes.maps.shape == (1, 2, 8, 32, 32)  # maps at the clip size
    assert tubes.raw.shape[2:] == GRID[family]  # the token grid from the config
    # relevancy (the default) reports on the embeddings' tokens, not on the adapter's layer
    assert tubes.layer == f"{family}.embeddings" and torch.isfinite(tubes.maps).all()
    assert set(tubes.names()[0]) <= set(LABELS.values())  # names from id2label
    reference = torch.softmax(loaded.model(hf.pixel_values(_clip())).logits, 1)
    torch.testing.assert_close(tubes.scores, reference.gather(1, tubes.classes))


@pytest.mark.parametrize("family", FAMILIES)
def test_registered_name_takes_the_folder_as_weights(folders: dict[str, Path], family: str) -> None:
    by_dir = load_model(f"hf:{folders[family]}")
    loaded = load_model(PRESET_OF[family], weights=folders[family])
    assert loaded.name == PRESET_OF[family] and loaded.weights_source == "file"
    assert loaded.categories == tuple(LABELS.values()) and loaded.preset == by_dir.preset
    assert loaded.adapter is not None and loaded.adapter.extra["grid"] == GRID[family]
    with torch.no_grad():
        a = loaded.model(hf.pixel_values(_clip())).logits
        b = by_dir.model(hf.pixel_values(_clip())).logits
    torch.testing.assert_close(a, b)
    other = folders["vivit" if family != "vivit" else "timesformer"]
    with pytest.raises(ModelLoadError, match=r"^expected a .* folder for --model"):
        load_model(PRESET_OF[family], weights=other)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_runs_or_is_refused(
    folders: dict[str, Path], family: str, method: str
) -> None:
    loaded = load_model(f"hf:{folders[family]}")
    if method == "cam" and family != "videomae":
        with pytest.raises(ModelLoadError, match="CAM does not apply to .*use method 'relevancy'"):
            loaded.explainer(method)
        return
    options = {}
    if method in ("lime", "kernelshap"):  # a noise clip: SLIC finds one supervoxel, says so
        with pytest.raises(InputError, match="but it found one .*use segments='grid'"):
            loaded.explainer(method)(_clip(1), classes="top1")
        options = {"segments": "grid"}
    tubes = loaded.explainer(method, **options)(_clip(1), classes="top1")
    assert tubes.maps.shape == (1, 1, 8, 32, 32) and torch.isfinite(tubes.maps).all()
    # Occlusion and integrated gradients (captum) attribute to the clip itself.
    grid = (8, 32, 32) if method in INPUT_METHODS else GRID[family]
    assert tubes.raw.shape[2:] == grid and tubes.categories == tuple(LABELS.values())


def _layer_gradients(loaded: LoadedModel, layer: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens, d top score / d tokens) at ``layer``'s output for one clip."""
    module = dict(loaded.model.named_modules())[layer]
    seen: dict[str, torch.Tensor] = {}

    def hook(_m: Any, _i: Any, output: Any) -> Any:
        tensor = output[0] if isinstance(output, tuple) else output
        tensor.retain_grad()
        seen["tokens"] = tensor
        return None

    handle = module.register_forward_hook(hook)
    try:
        logits = loaded.model(hf.pixel_values(_clip(2))).logits
        logits[0, logits[0].argmax()].backward()
    finally:
        handle.remove()
    tokens = seen["tokens"]
    assert tokens.grad is not None
    return tokens.detach(), tokens.grad


@pytest.mark.parametrize("family", [*FAMILIES, "videomae-cls"])
def test_the_chosen_layer_reaches_the_score(folders: dict[str, Path], family: str) -> None:
    """Non-zero gradient at every space-time token of the explained layer; for the
    class-token heads, exactly zero at the last block's output tokens (why the layer is
    the last block's input)."""
    loaded = load_model(f"hf:{folders[family]}")
    prefix = 0 if family.startswith("videomae") else 1
    _, grad = _layer_gradients(loaded, str(loaded.layer))
    per_token = grad[0, prefix:].abs().sum(-1)
    assert (per_token > 0).all()
    if family == "videomae":
        assert loaded.layer == "videomae.encoder.layer.1"  # the last layer: its tokens are pooled
        return
    blocks = hf.FAMILIES[family.split("-")[0]].blocks
    assert loaded.layer == f"{blocks}.0"  # the last block's input
    # The last block's output reaches the score only through the token the head reads
    # (the class token; VideoMAE without mean pooling: its first patch token).
    _, after = _layer_gradients(loaded, f"{blocks}.1")
    assert after[0, 0].abs().sum() > 0 and after[0, 1:].abs().max() == 0


@pytest.mark.parametrize("family", FAMILIES)
def test_token_order_planted_patch_lands_on_its_grid_cell(
    folders: dict[str, Path], family: str
) -> None:
    """One non-zero patch in frame t, row h, column w of the clip changes exactly one
    token of the embeddings, and the adapter's reshape puts it at grid cell (t', h, w)."""
    loaded = load_model(f"hf:{folders[family]}")
    embeddings = dict(loaded.model.named_modules())[f"{hf.FAMILIES[family].backbone}.embeddings"]
    reshape = loaded.adapter.reshape  # type: ignore[union-attr]
    t, h, w = 5, 1, 2
    clip = torch.zeros(1, 3, 8, 32, 32)
    clip[:, :, t, h * 8 : (h + 1) * 8, w * 8 : (w + 1) * 8] = 1.0
    with torch.no_grad():
        args = (None,) if family == "videomae" else ()
        planted = embeddings(hf.pixel_values(clip), *args)
        empty = embeddings(hf.pixel_values(torch.zeros_like(clip)), *args)
    delta = reshape(planted - empty, (8, 32, 32)).abs().sum(1)[0]  # (T', H', W')
    assert delta.shape == GRID[family]
    tubelet = 1 if family == "timesformer" else 2
    expected = torch.zeros(GRID[family], dtype=torch.bool)
    expected[t // tubelet, h, w] = True
    assert torch.equal(delta > 1e-6, expected)


def test_timesformer_layout_is_patch_major() -> None:
    """TimeSformer's token 1 + (h W' + w) T + t is patch (h, w) of frame t."""
    grid = TokenGrid((1, 8, 8), prefix=1, order="hwt")
    tokens = torch.zeros(1, 1 + 8 * 4 * 4, 1)
    tokens[0, 1 + (1 * 4 + 2) * 8 + 5] = 1.0
    volume = grid(tokens, (8, 32, 32))
    assert volume.shape == (1, 1, 8, 4, 4) and volume[0, 0, 5, 1, 2] == 1 and volume.sum() == 1


def test_videomae_cam_is_the_heads_local_linear_map_not_exact(folders: dict[str, Path]) -> None:
    """CAM through fc_norm + classifier: its tube is J A(x); it equals HiResCAM's map before
    the ReLU (up to 1/tokens), and its mean is ~0 (LayerNorm ignores scale), not the score."""
    loaded = load_model(f"hf:{folders['videomae']}")
    clip = _clip(3)
    cam = loaded.explainer("cam")(clip, classes=[0], upsample=False)
    hires = loaded.explainer("hirescam")(clip, classes=[0], upsample=False)
    tokens = int(np.prod(GRID["videomae"]))
    torch.testing.assert_close(hires.raw, cam.raw.clamp_min(0) / tokens, atol=1e-6, rtol=1e-4)
    assert abs(float(cam.raw.mean())) < 1e-3 * float(cam.raw.abs().max())
    assert abs(float(cam.logits[0, 0])) > 10 * abs(float(cam.raw.mean()))
    assert not loaded.adapter.cam_exact  # type: ignore[union-attr]


@pytest.mark.parametrize("family", FAMILIES)
def test_another_clip_size_is_one_line(folders: dict[str, Path], family: str) -> None:
    """TimeSformer would run on 4 frames with its tokens regrouped by num_frames=8: refused,
    as every other size is (before the forward)."""
    loaded = load_model(f"hf:{folders[family]}")
    explainer = loaded.explainer("gradcam")
    for clip in (torch.randn(1, 3, 4, 32, 32), torch.randn(1, 3, 8, 48, 48)):
        with pytest.raises(InputError, match=r"expected clips of 8x32x32 .* but got") as e:
            explainer(clip)
        _one_line(e)


def test_videomae_without_mean_pooling_reads_its_first_token(folders: dict[str, Path]) -> None:
    loaded = load_model(f"hf:{folders['videomae-cls']}")
    assert loaded.adapter is not None and loaded.adapter.default_method == "relevancy"
    assert loaded.adapter.pooled_head is None
    with pytest.raises(ModelLoadError, match="CAM does not apply"):
        loaded.explainer("cam")
    tubes = loaded.explainer("gradcam")(_clip(), classes="top1")
    assert tubes.maps.shape == (1, 1, 8, 32, 32)


def test_explaining_leaves_the_model_and_its_config_unchanged(folders: dict[str, Path]) -> None:
    loaded = load_model(f"hf:{folders['timesformer']}")
    model = loaded.model
    model.train()
    first = next(model.parameters())
    first.requires_grad_(False)
    config = model.config.to_dict()
    for method in ("gradcam", "scorecam", "eigencam"):
        loaded.explainer(method)(_clip(), classes="top1")
    assert model.training and not first.requires_grad
    assert all(p.requires_grad for p in list(model.parameters())[1:])
    assert hooks_left(model) == 0 and model.config.to_dict() == config


# ---------------------------------------------------------------- preprocessing


def test_preprocessing_from_the_processor_file(tmp_path: Path, folders: dict[str, Path]) -> None:
    folder = tmp_path / "m"
    shutil.copytree(folders["videomae"], folder)
    processor = {
        "image_mean": [0.45, 0.45, 0.45],
        "image_std": [0.225, 0.225, 0.225],
        "size": {"shortest_edge": 256},
        "crop_size": {"height": 224, "width": 224},
        "rescale_factor": 1 / 255,
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(processor))
    p = load_model(f"hf:{folder}").preset
    assert p.mean == (0.45, 0.45, 0.45) and p.std == (0.225, 0.225, 0.225)
    assert p.resize == "short_side" and p.resize_to == round(256 * 32 / 224)  # scaled to 32
    # ViViT's offset rescale (x / 127.5 - 1, then mean/std 0.5) is mean 0.75, std 0.25 on [0, 1].
    vivit = load_model(f"hf:{folders['vivit']}").preset
    assert vivit.mean == (0.75, 0.75, 0.75) and vivit.std == (0.25, 0.25, 0.25)
    frame = torch.rand(3, 1, 1)
    hf_way = ((frame * 255 / 127.5 - 1) - 0.5) / 0.5
    ours = (frame - 0.75) / 0.25
    torch.testing.assert_close(hf_way, ours)
    # A processor that resizes to a fixed height x width without a crop: a full-frame resize.
    (folder / "preprocessor_config.json").unlink()
    full = {"size": {"height": 32, "width": 32}, "do_center_crop": False, "do_normalize": False}
    (folder / "video_preprocessor_config.json").write_text(json.dumps(full))
    p = load_model(f"hf:{folder}").preset
    assert p.resize == "full" and p.mean == (0.0, 0.0, 0.0) and p.std == (1.0, 1.0, 1.0)


def test_placeholder_labels_are_no_names(tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = TF.VivitConfig(**TINY, tubelet_size=[2, 8, 8], num_labels=3)
    TF.VivitForVideoClassification(config).save_pretrained(str(tmp_path / "v"))
    loaded = load_model(f"hf:{tmp_path / 'v'}")
    assert loaded.categories is None and loaded.adapter.num_classes == 3  # type: ignore[union-attr]


# ---------------------------------------------------------------- errors


def _one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_bad_folders_are_one_line_errors(tmp_path: Path, folders: dict[str, Path]) -> None:
    with pytest.raises(ModelLoadError, match="expected a Hugging Face model folder") as e:
        load_model(f"hf:{tmp_path / 'missing'}")
    assert "no such folder" in _one_line(e)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="a folder without config.json") as e:
        load_model(f"hf:{tmp_path / 'empty'}")
    _one_line(e)
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"architectures": ["BertForMaskedLM"]}))
    with pytest.raises(
        ModelLoadError, match=r"expected a config of VideoMAE.*'BertForMaskedLM'"
    ) as e:
        load_model(f"hf:{bert}")
    _one_line(e)
    (bert / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="as JSON") as e:
        load_model(f"hf:{bert}")
    _one_line(e)
    # Broken weights: a truncated file, a file missing a tensor, no weights at all.
    broken = tmp_path / "broken"
    shutil.copytree(folders["vivit"], broken)
    weights = broken / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="could not load the VivitForVideoClassification") as e:
        load_model(f"hf:{broken}")
    _one_line(e)
    from safetensors.torch import load_file, save_file

    state = load_file(str(folders["vivit"] / "model.safetensors"))
    state.pop("classifier.weight")
    save_file(state, str(weights), metadata={"format": "pt"})
    with pytest.raises(ModelLoadError, match="do not fit its config.json: missing keys") as e:
        load_model(f"hf:{broken}")
    _one_line(e)
    weights.unlink()
    with pytest.raises(ModelLoadError, match="could not load") as e:
        load_model(f"hf:{broken}")
    _one_line(e)
    with pytest.raises(ModelLoadError, match="has 3 classes, but num_classes=5"):
        load_model(f"hf:{folders['vivit']}", num_classes=5)


def test_space_only_timesformer_is_refused(tmp_path: Path) -> None:
    folder = _save(tmp_path / "t", "timesformer", attention_type="space_only")
    with pytest.raises(ModelLoadError, match="attention_type 'space_only'"):
        load_model(f"hf:{folder}")


def test_missing_transformers_is_one_line(
    monkeypatch: pytest.MonkeyPatch, video: Path, tmp_path: Path, folders: dict[str, Path]
) -> None:
    monkeypatch.setattr(hf, "available", lambda: False)
    expected = (
        "error: --model videomae-base needs transformers, which is not installed; install it "
        "with pip install 'saliency-tubes[transformers]'"
    )
    code, _, stderr = _run(
        "explain", str(video), "--out", str(tmp_path / "o"), "--model", "videomae-base"
    )
    assert code == 2 and stderr.strip() == expected
    code, _, stderr = _run(
        "explain", str(video), "--out", str(tmp_path / "o"), "--model", f"hf:{folders['vivit']}"
    )
    assert code == 2 and stderr.strip().startswith(
        f"error: --model hf:{folders['vivit']} needs transformers"
    )


# ---------------------------------------------------------------- command line


@pytest.mark.parametrize("family", FAMILIES)
def test_cli_explains_a_folder(
    video: Path, tmp_path: Path, folders: dict[str, Path], family: str
) -> None:
    out = tmp_path / "out"
    code, stdout, stderr = _run(
        "explain", str(video), "--out", str(out), "--model", f"hf:{folders[family]}",
        "--quiet", "--classes", "top2", "--format", "npy",
    )  # fmt: skip
    assert code == 0, stderr
    assert "random weights" not in stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert (
        manifest["model"]["method"] == "relevancy" and manifest["model"]["weights_source"] == "file"
    )
    assert manifest["tube"]["layer_grid"] == list(GRID[family])
    assert {c["name"] for c in manifest["classes"]} <= set(LABELS.values())
    assert np.load(out / "tube.npy").shape == (2, 8, 32, 32)
    assert all(c["name"] in stdout for c in manifest["classes"])


def test_cli_registered_name_with_weights_dir(
    video: Path, tmp_path: Path, folders: dict[str, Path]
) -> None:
    out = tmp_path / "out"
    code, _, stderr = _run(
        "explain", str(video), "--out", str(out), "--model", "timesformer-base",
        "--weights", str(folders["timesformer"]), "--quiet", "--format", "npy", "--method", "layercam",
    )  # fmt: skip
    assert code == 0, stderr
    model = json.loads((out / "manifest.json").read_text())["model"]
    assert model["name"] == "timesformer-base" and model["weights"] == str(folders["timesformer"])
    assert model["layer"] == "timesformer.encoder.layer.0"


def test_cli_random_weights_warning_on_a_narrow_preset(
    video: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A preset without weights says so (stderr, manifest): a narrow twin of videomae-base
    (the same adapter code on a tiny config), so that the forward is cheap."""
    config = {
        **TINY,
        **PER_FAMILY["videomae"],
        "architectures": [hf.FAMILIES["videomae"].architecture],
    }
    twin = hf_adapters.adapter_for(
        "videomae-tiny-twin",
        config | {"num_labels": 3},
        {},
        partial(hf.build, "videomae", "videomae-tiny-twin", **TINY, **PER_FAMILY["videomae"]),
        description="test twin",
        where="test",
    )
    monkeypatch.setitem(registry._REGISTRY, twin.name, twin)
    out = tmp_path / "out"
    code, _, stderr = _run(
        "explain", str(video), "--out", str(out), "--model", twin.name, "--quiet", "--format", "npy",
    )  # fmt: skip
    assert code == 0, stderr
    assert f"warning: {twin.name} has random weights" in stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"]["random_weights"] is True


def test_api_call_on_a_folder(folders: dict[str, Path], video: Path, tmp_path: Path) -> None:
    loaded = st.load_model(f"hf:{folders['vivit']}")
    result = st.explain_video(
        video,
        tmp_path / "api",
        loaded,
        st.ExplainOptions(method="auto", formats=("npy",), progress=False),
    )
    assert result.tubes[0].name in LABELS.values()
    assert np.load(tmp_path / "api" / "tube.npy").shape == (1, 8, 32, 32)


def test_import_listing_and_help_do_not_import_transformers() -> None:
    import subprocess
    import sys

    code = (
        "import sys, saliency_tubes.zoo\nfrom saliency_tubes.cli.app import main\n"
        "from saliency_tubes.commands import model_lines\nmodel_lines()\n"
        "for c in ([], ['explain'], ['models']):\n"
        "    try:\n        main([*c, '--help'])\n    except SystemExit:\n        pass\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'transformers', 'torchvision'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stderr


def test_without_the_extra_the_presets_are_listed_with_the_install_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hf_adapters, "available", lambda: False)  # imported there by name
    listed = {a.name: a.description for a in hf_adapters.adapters()}
    assert set(listed) == set(PRESET_OF.values())
    assert all(d.endswith(f"[needs the transformers extra: {hf.INSTALL}]") for d in listed.values())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
@pytest.mark.parametrize("family", FAMILIES)
def test_tubes_on_cuda_equal_tubes_on_cpu(folders: dict[str, Path], family: str) -> None:
    cpu = load_model(f"hf:{folders[family]}")
    cuda = load_model(f"hf:{folders[family]}", device="cuda")
    method = cpu.adapter.default_method  # type: ignore[union-attr]
    a = cpu.explainer(method)(_clip(), classes="top2")
    b = cuda.explainer(method)(_clip(), classes="top2").to("cpu")
    assert torch.equal(a.classes, b.classes)
    torch.testing.assert_close(a.maps, b.maps, atol=1e-3, rtol=1e-3)
