"""torchvision's video classifiers as adapters, the import workaround, named weights, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import types
import warnings
from pathlib import Path
from typing import Any
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

import saliency_tubes as st
from _models import SmallResNet3D, hooks_left
from saliency_tubes.cli import main
from saliency_tubes.errors import ModelLoadError
from saliency_tubes.tokens import TokenGrid
from saliency_tubes.video import VideoWriter
from saliency_tubes.zoo import available_models, get_adapter, load_model, registry
from saliency_tubes.zoo.sources import _torchvision
from saliency_tubes.zoo.sources import torchvision as tvm

try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        _torchvision.import_torchvision()
except ModelLoadError as exc:  # pragma: no cover - depends on the environment
    pytest.skip(
        f"torchvision cannot be imported here, even with the workaround: {exc}",
        allow_module_level=True,
    )

NAMES = [spec.name for spec in tvm.SPECS]
# The smallest clips each architecture takes that still leave a grid of more than one cell
# (MViT's positional embeddings fix its input at the preset 16x224x224: see test_mvit_explains_at_its_preset).
SMALL: dict[str, tuple[int, int, int]] = {
    "r3d_18": (8, 64, 64),
    "mc3_18": (8, 64, 64),
    "r2plus1d_18": (8, 64, 64),
    "s3d": (24, 224, 224),  # AvgPool3d((2, 7, 7)) needs T' >= 2, H', W' >= 7; T' = 3 here
    "swin3d_t": (4, 64, 64),
    "swin3d_s": (4, 64, 64),
    "swin3d_b": (4, 64, 64),
}
FAST = [n for n in NAMES if n in SMALL]
MVITS = [n for n in NAMES if n not in SMALL]


def _clip(name: str, seed: int = 0) -> torch.Tensor:
    """Noise whose second half moves more than its first: tubes that vary in time."""
    g = torch.Generator().manual_seed(seed)
    clip = torch.randn((1, 3, *SMALL[name]), generator=g)
    half = clip.shape[2] // 2
    clip[:, :, :half] *= 0.2
    return clip


def test_every_torchvision_model_is_registered_with_a_known_method() -> None:
    assert set(NAMES) == {
        "r3d_18",
        "mc3_18",
        "r2plus1d_18",
        "s3d",
        "mvit_v1_b",
        "mvit_v2_s",
        "swin3d_t",
        "swin3d_s",
        "swin3d_b",
    }
    assert set(NAMES) <= set(available_models())
    for name in NAMES:
        adapter = get_adapter(name)
        assert adapter.default_method in st.METHODS
        assert adapter.num_classes == 400
        assert adapter.weight_names is not None
    assert get_adapter("mvit_v1_b").default_method == "gradcam"
    assert not get_adapter("s3d").cam_exact and get_adapter("r3d_18").cam_exact


@pytest.mark.parametrize("name", FAST)
def test_adapter_explains_small_clip_with_default_method(name: str) -> None:
    loaded = load_model(name)
    model = loaded.model
    if name == "s3d":
        _kaiming(model)
    assert loaded.categories == tvm.kinetics400_categories(name)
    assert len(loaded.categories) == 400 and loaded.categories[0] == "abseiling"
    assert hooks_left(model) == 0
    state = {k: v.clone() for k, v in model.state_dict().items()}
    clip = _clip(name)
    tubes = loaded.explainer(get_adapter(name).default_method)(clip, classes="top2")
    assert tubes.maps.shape == (1, 2, *SMALL[name])
    assert tubes.maps.min() >= 0 and tubes.maps.max() <= 1 and tubes.maps.max() == 1
    assert hooks_left(model) == 0 and not model.training
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())

    # CAM against normalised Grad-CAM (relu=False), and the score against the tube.
    grad = loaded.explainer("gradcam", relu=False)(clip, classes=tubes.classes)
    torch.testing.assert_close(tubes.maps, grad.maps, atol=1e-4, rtol=0)
    head = dict(model.named_modules())[str(loaded.classifier)]
    bias = head.bias.detach()[tubes.classes[0]]
    omega = _pool_weights(name, tubes.raw.shape[2:])
    score = (tubes.raw[0] * omega).sum(dim=(1, 2, 3)) + bias
    scale = float(tubes.raw.abs().max())
    assert scale > 1e-2  # a tube with signal, not vanishing activations
    close = {"atol": 1e-4 * scale, "rtol": 1e-4}
    torch.testing.assert_close(score, tubes.logits[0, tubes.classes[0]], **close)
    plain = tubes.raw[0].mean(dim=(1, 2, 3)) + bias
    if get_adapter(name).cam_exact:  # the score is the tube's plain mean plus the bias
        torch.testing.assert_close(plain, score, **close)
    else:  # S3D: the edge time steps weigh half, so the plain mean misses the score
        assert (plain - score).abs().max() > 1e-2 * scale


def _kaiming(model: torch.nn.Module) -> None:
    """Re-initialise convolutions so that activations keep their scale through the network.

    With torchvision's default initialisation S3D's random-weight activations vanish
    (its tube is of order 1e-8); Kaiming-normal weights keep them of order one.
    """
    torch.manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv3d):
                torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")


def _pool_weights(name: str, grid: tuple[int, ...]) -> torch.Tensor:
    """omega(t, h, w): how much each cell of the layer's grid counts in the class score.

    Global average pooling: 1 / (T'H'W') everywhere. S3D: the adjoint of
    AvgPool3d((2, 7, 7), stride 1) followed by the mean over the pooled grid.
    """
    if name != "s3d":
        return torch.full(tuple(grid), 1.0 / float(np.prod(grid)))
    cells = torch.zeros((1, 1, *grid), requires_grad=True)
    (omega,) = torch.autograd.grad(F.avg_pool3d(cells, (2, 7, 7), stride=1).mean(), cells)
    return omega[0, 0]


def test_s3d_edge_steps_weigh_half() -> None:
    omega = _pool_weights("s3d", (3, 7, 7))
    torch.testing.assert_close(omega.sum(), torch.tensor(1.0))
    torch.testing.assert_close(omega[:, 0, 0], torch.tensor([1.0, 2.0, 1.0]) / (4 * 49))


def _tiny_mvit(v2: bool) -> torch.nn.Module:
    """A two-block MViT (v1- or v2-style) on 4x32x32 clips: token grid 2x4x4 at the end."""
    from torchvision.models.video.mvit import MSBlockConfig, MViT

    torch.manual_seed(0)
    blocks = [
        MSBlockConfig(2, 16, 32, [3, 3, 3], [3, 3, 3], [1, 2, 2], [1, 2, 2]),
        MSBlockConfig(
            2, 32, 32, [3, 3, 3] if v2 else [], [3, 3, 3], [1, 1, 1] if v2 else [], [1, 1, 1]
        ),
    ]
    model = MViT(
        spatial_size=(32, 32),
        temporal_size=4,
        block_setting=blocks,
        residual_pool=v2,
        residual_with_cls_embed=False,
        rel_pos_embed=v2,
        proj_after_attn=v2,
        num_classes=5,
    )
    return model.eval()


@pytest.mark.parametrize("v2", [False, True])
def test_mvit_tokens_reach_the_score_only_through_the_last_attention(v2: bool) -> None:
    """Why the MViT adapters read ``blocks.<last>.norm1``: the class token alone feeds the
    head, so the spatial tokens a block outputs get no gradient; the ones entering the last
    block's attention do (through its keys and values)."""
    model = _tiny_mvit(v2)
    clip = torch.randn(1, 3, 4, 32, 32, generator=torch.Generator().manual_seed(1))
    grid = TokenGrid(stride=(2, 8, 8), prefix=1)
    dead = st.GradCAM(model, layer="blocks.1", reshape=grid, relu=False)(clip, classes=[0, 3])
    alive = st.GradCAM(model, layer="blocks.1.norm1", reshape=grid, relu=False)(
        clip, classes=[0, 3]
    )
    assert dead.raw.shape == alive.raw.shape == (1, 2, 2, 4, 4)
    assert torch.count_nonzero(dead.raw) == 0
    assert torch.count_nonzero(alive.raw) == alive.raw.numel()
    assert hooks_left(model) == 0


@pytest.mark.parametrize("name", MVITS)
def test_mvit_explains_at_its_preset(name: str) -> None:
    """MViT's positional embeddings fix the input at 16x224x224: explained at the preset."""
    loaded = load_model(name)
    adapter = get_adapter(name)
    assert adapter.default_method == "gradcam" and not adapter.cam_exact
    assert loaded.categories is not None and len(loaded.categories) == 400
    p = loaded.preset
    clip = torch.randn(1, 3, p.frames, *p.size, generator=torch.Generator().manual_seed(0))
    tubes = loaded.explainer(adapter.default_method)(clip, classes="top1")
    assert tubes.maps.shape == (1, 1, 16, 224, 224)
    assert tubes.raw.shape == (1, 1, 8, 7, 7)  # the 8x7x7 token grid, class token dropped
    assert tubes.maps.max() == 1 and torch.count_nonzero(tubes.raw) > 0
    assert tubes.layer == "blocks.15.norm1"
    assert hooks_left(loaded.model) == 0


# ---------------------------------------------------------------- the import workaround


def test_saliency_tubes_import_does_not_import_torchvision() -> None:
    code = "import sys, saliency_tubes, saliency_tubes.zoo, saliency_tubes.cli; print('torchvision' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _fake_import(outcomes: list[BaseException | types.ModuleType]) -> Any:
    calls: list[str] = []

    def fake(name: str) -> types.ModuleType:
        calls.append(name)
        outcome = outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    fake.calls = calls  # type: ignore[attr-defined]
    return fake


def test_workaround_not_applied_when_torchvision_imports(monkeypatch: pytest.MonkeyPatch) -> None:
    real = types.ModuleType("torchvision")
    fake = _fake_import([real])
    monkeypatch.setattr(_torchvision.importlib, "import_module", fake)

    def never() -> None:
        raise AssertionError("the placeholders must not be defined for a working torchvision")

    monkeypatch.setattr(_torchvision, "_define_placeholders", never)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _torchvision.import_torchvision() is real
    assert fake.calls == ["torchvision"]


def test_workaround_applied_on_missing_operator(monkeypatch: pytest.MonkeyPatch) -> None:
    real = types.ModuleType("torchvision")
    fake = _fake_import([RuntimeError(_torchvision.MISSING_OPERATOR), real])
    monkeypatch.setattr(_torchvision.importlib, "import_module", fake)
    defined: list[bool] = []
    monkeypatch.setattr(_torchvision, "_define_placeholders", lambda: defined.append(True))
    monkeypatch.setitem(sys.modules, "torchvision.half_imported", types.ModuleType("x"))
    with pytest.warns(RuntimeWarning, match="pytorch/vision#9085"):
        assert _torchvision.import_torchvision() is real
    assert defined == [True] and fake.calls == ["torchvision", "torchvision"]
    assert "torchvision.half_imported" not in sys.modules


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (ImportError("No module named 'torchvision'"), "saliency-tubes\\[torchvision\\]"),
        (RuntimeError("some other failure"), "importing torchvision failed: some other failure"),
    ],
)
def test_other_import_failures_are_one_line_errors(
    monkeypatch: pytest.MonkeyPatch, error: BaseException, message: str
) -> None:
    monkeypatch.setattr(_torchvision.importlib, "import_module", _fake_import([error]))
    monkeypatch.setattr(_torchvision, "_define_placeholders", lambda: pytest.fail("applied"))
    with pytest.raises(ModelLoadError, match=message) as info:
        _torchvision.import_torchvision()
    assert "\n" not in str(info.value)


def test_placeholder_ops_raise_a_clear_error() -> None:
    if not _torchvision.workaround_applied():
        pytest.skip("torchvision's compiled ops loaded here: no placeholders were defined")
    with pytest.raises(RuntimeError, match="placeholder defined by saliency_tubes"):
        torch.ops.torchvision.nms(torch.zeros(2, 4), torch.zeros(2), 0.5)


# ---------------------------------------------------------------- weights


def test_kinetics400_categories() -> None:
    names = tvm.kinetics400_categories()
    assert len(names) == 400 == len(set(names))
    assert names[0] == "abseiling" and names[-1] == "zumba"
    assert all(tvm.kinetics400_categories(n) == names for n in ("s3d", "mvit_v2_s", "swin3d_b"))


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("r3d_18", "kinetics400", "R3D_18_Weights.KINETICS400_V1"),
        ("r3d_18", "Kinetics400", "R3D_18_Weights.KINETICS400_V1"),
        ("r3d_18", "DEFAULT", "R3D_18_Weights.KINETICS400_V1"),
        ("r3d_18", "R3D_18_Weights.KINETICS400_V1", "R3D_18_Weights.KINETICS400_V1"),
        ("s3d", "kinetics400_v1", "S3D_Weights.KINETICS400_V1"),
        (
            "swin3d_b",
            "Swin3D_B_Weights.KINETICS400_IMAGENET22K_V1",
            "Swin3D_B_Weights.KINETICS400_IMAGENET22K_V1",
        ),
        ("r3d_18", "r3d.pth", None),
        ("r3d_18", "ckpt/kinetics400", None),
        ("r3d_18", "my_weights", None),
    ],
)
def test_weights_names(name: str, text: str, expected: str | None) -> None:
    assert tvm.resolve_weights(tvm._spec(name), text) == expected


def test_wrong_enum_names_are_refused() -> None:
    with pytest.raises(ModelLoadError, match="known: KINETICS400_V1"):
        tvm.resolve_weights(tvm._spec("r3d_18"), "R3D_18_Weights.KINETICS600")
    with pytest.raises(ModelLoadError, match="expected weights of r3d_18"):
        tvm.resolve_weights(tvm._spec("r3d_18"), "S3D_Weights.KINETICS400_V1")


def _hub(monkeypatch: pytest.MonkeyPatch, answer: Any) -> list[str]:
    """Replace torchvision's downloader (``Weights.get_state_dict`` calls it)."""
    import torchvision.models._api as api

    urls: list[str] = []

    def fake(url: str, *args: Any, **kwargs: Any) -> Any:
        urls.append(url)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    monkeypatch.setattr(api, "load_state_dict_from_url", fake)
    return urls


def test_named_weights_download_failure_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    urls = _hub(monkeypatch, URLError("[Errno -3] Temporary failure in name resolution"))
    with pytest.raises(ModelLoadError) as info:
        load_model("mc3_18", weights="KINETICS400")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("downloading the MC3_18_Weights.KINETICS400_V1 weights failed")
    assert "pass a local checkpoint path instead (--weights PATH)" in message
    assert len(urls) == 1 and urls[0].endswith(".pth")


def test_named_weights_load_what_torchvision_returns(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    torch.manual_seed(3)
    reference = tvm.build("mc3_18").state_dict()
    _hub(monkeypatch, reference)
    loaded = load_model("mc3_18", weights="mc3_18_weights.kinetics400_v1")
    assert loaded.weights == "MC3_18_Weights.KINETICS400_V1"
    assert loaded.categories is not None and len(loaded.categories) == 400
    assert all(torch.equal(reference[k], v) for k, v in loaded.model.state_dict().items())
    with pytest.raises(ModelLoadError, match="have 400 classes, but num_classes=10"):
        load_model("mc3_18", weights="kinetics400", num_classes=10)

    # A local path loads through the checkpoint loader, also when named like the weights.
    monkeypatch.chdir(tmp_path)
    torch.save(reference, tmp_path / "kinetics400")
    _hub(monkeypatch, AssertionError("no download for an existing file"))
    local = load_model("mc3_18", weights="kinetics400")
    assert local.weights == "kinetics400"
    assert all(torch.equal(reference[k], v) for k, v in local.model.state_dict().items())
    small = load_model("mc3_18", num_classes=10)
    assert small.categories is None  # the Kinetics names do not fit a 10-class head


# ---------------------------------------------------------------- command line


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("src") / "clip.mp4"
    h, w = 60, 80
    yy, xx = np.mgrid[0:h, 0:w]
    with VideoWriter(path, fps=12, crf=10) as writer:
        for t in range(12):
            image = np.full((h, w, 3), 40, np.uint8)
            image[(yy - 30) ** 2 + (xx - 10 - 5 * t) ** 2 < 80] = (230, 200, 60)
            writer.write(image)
    return path


def test_cli_explain_r3d_18_end_to_end(video: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, stdout, stderr = _run(
        "explain",
        str(video),
        "--out",
        str(out),
        "--model",
        "r3d_18",
        "--quiet",
        "--classes",
        "top2",
    )
    assert code == 0, stderr
    manifest = json.loads((out / "manifest.json").read_text())
    model = manifest["model"]
    assert (model["name"], model["method"], model["layer"], model["classifier"]) == (
        "r3d_18",
        "cam",
        "layer4",
        "fc",
    )
    assert model["preset"]["frames"] == 16 and model["preset"]["resize_to"] == 128
    assert manifest["tube"]["layer_grid"] == [2, 7, 7]  # 16x112x112 / (8, 16, 16)
    names = tvm.kinetics400_categories()
    assert [names[c["index"]] == c["name"] for c in manifest["classes"]] == [True, True]
    assert len(manifest["outputs"]["mp4"]) == 6
    assert all(c["name"] in stdout for c in manifest["classes"])


def test_cli_method_defaults_to_the_adapters(
    video: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    adapter = registry.ModelAdapter(
        name="test-gradcam-default",
        builder=lambda pretrained=False, num_classes=5: SmallResNet3D(num_classes),
        layer="layer2",
        classifier="fc",
        preset=registry.Preset(frames=8, size=(32, 32)),
        default_method="gradcam",
    )
    monkeypatch.setitem(registry._REGISTRY, adapter.name, adapter)
    for extra, method in (((), "gradcam"), (("--method", "cam"), "cam")):
        out = tmp_path / method
        args = ("explain", str(video), "--out", str(out), "--model", adapter.name, "--quiet")
        code, _, stderr = _run(*args, "--format", "npy", *extra)
        assert code == 0, stderr
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["model"]["method"] == manifest["method"] == method


def test_cli_models_lists_layer_head_preset_method(monkeypatch: pytest.MonkeyPatch) -> None:
    pair = registry.ModelAdapter(
        name="test-two-pathways",
        builder=SmallResNet3D,
        layer=("layer1", "layer2"),
        classifier="fc",
        preset=registry.Preset(),
    )
    monkeypatch.setitem(registry._REGISTRY, pair.name, pair)
    code, stdout, _ = _run("models")
    assert code == 0
    lines = {line.split()[0]: line for line in stdout.splitlines()}
    assert (
        "layer=layer4 head=fc input=16x112x112 (short_side) method=cam cam=exact" in lines["r3d_18"]
    )
    assert "layer=features head=classifier.1 input=64x224x224" in lines["s3d"]
    assert "cam=approx" in lines["s3d"]
    assert "layer=blocks.15.norm1 head=head.1 input=16x224x224" in lines["mvit_v1_b"]
    assert "method=gradcam cam=n/a" in lines["mvit_v1_b"]
    assert "layer=norm head=head input=32x224x224" in lines["swin3d_b"]
    assert "layer=layer1+layer2" in lines["test-two-pathways"]


def _accelerators() -> list[str]:
    found = ["cuda"] if torch.cuda.is_available() else []
    mps = getattr(torch.backends, "mps", None)
    return found + (["mps"] if mps is not None and mps.is_available() else [])


@pytest.mark.skipif(not _accelerators(), reason="no CUDA or MPS device here")
@pytest.mark.parametrize("method", ["cam", "gradcam"])
def test_tubes_on_an_accelerator_equal_tubes_on_cpu(method: str) -> None:
    cpu = load_model("r3d_18")
    clip = _clip("r3d_18")
    expected = cpu.explainer(method)(clip, classes="top2")
    for device in _accelerators():
        loaded = load_model("r3d_18", device=device)
        loaded.model.load_state_dict(cpu.model.state_dict())
        tubes = loaded.explainer(method)(clip, classes=expected.classes)
        assert tubes.maps.device.type == device and tubes.raw.device.type == device
        # Convolutions may run in TF32 on CUDA: a float tolerance, not bit equality.
        torch.testing.assert_close(tubes.maps.cpu(), expected.maps, atol=5e-3, rtol=0)
        torch.testing.assert_close(tubes.logits.cpu(), expected.logits, atol=5e-3, rtol=1e-3)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available: no error to check")
def test_cli_cuda_unavailable_is_one_line_error(video: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, _, stderr = _run(
        "explain", str(video), "--out", str(out), "--model", "r3d_18", "--device", "cuda"
    )
    assert code == 2
    assert stderr.strip().splitlines() == [
        "error: --device cuda asked for, but CUDA is not available here; use --device cpu"
    ]
    assert not out.exists()


def test_the_torchvision_note_is_said_only_with_verbose(video: Path, tmp_path: Path) -> None:
    base = [sys.executable, "-m", "saliency_tubes.cli"]
    args = ["explain", str(video), "--model", "r3d_18", "--format", "npy", "--quiet"]
    plain = subprocess.run(
        [*base, *args, "--out", str(tmp_path / "a")], capture_output=True, text=True
    )
    loud = subprocess.run(
        [*base, "--verbose", *args, "--out", str(tmp_path / "b")], capture_output=True, text=True
    )
    assert plain.returncode == loud.returncode == 0, plain.stderr
    assert "pytorch/vision#9085" not in plain.stderr
    assert plain.stderr.count("random weights") == 1  # what matters is still said
    assert loud.stderr.count("pytorch/vision#9085") == 1
