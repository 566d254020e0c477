"""pytorchvideo's models as adapters (the optional extra): builds, exact CAMs, the CLI.

Every adapter is built at full size without weights. The explanations run at each model's
preset size (its head pools with a fixed kernel set for that size) on *narrow twins*: the
same pytorchvideo builder with fewer channels (``stem_dim_out=4`` ...), so the same module
names, strides, pools and heads, at a fraction of the cost. The full-size explanations at
the preset are the ``slow`` tests; the CLI runs the full-size x3d_xs end to end.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.error import URLError

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

import saliency_tubes as st
from _models import hooks_left
from saliency_tubes.cli import main
from saliency_tubes.errors import InputError, ModelLoadError
from saliency_tubes.video import VideoWriter
from saliency_tubes.zoo import available_models, get_adapter, load_model
from saliency_tubes.zoo.loading import LoadedModel
from saliency_tubes.zoo.sources import pytorchvideo as pvm

if importlib.util.find_spec("pytorchvideo") is None:  # pragma: no cover - depends on the env
    pytest.skip(
        "pytorchvideo is not installed (the optional extra: pip install 'saliency-tubes[pytorchvideo]')",
        allow_module_level=True,
    )
try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pvm.import_hub()
except ModelLoadError as exc:  # pragma: no cover - depends on the environment
    pytest.skip(f"pytorchvideo's model builders cannot be imported: {exc}", allow_module_level=True)

NAMES = [spec.name for spec in pvm.SPECS]
KIND = {spec.name: spec.kind for spec in pvm.SPECS}
# Builder arguments of the narrow twins: same layers and pools, a few channels per stage.
NARROW: dict[str, dict[str, Any]] = {
    "x3d": {"width_factor": 0.5, "head_dim_out": 32, "stem_dim_in": 4},
    "resnet": {"stem_dim_out": 4},
    "slowfast": {"stem_dim_outs": (8, 1)},
    "mvit": {"patch_embed_dim": 8},
}
# (frames, crop, short side, sampling rate) of each preset; layer grid at the preset.
PRESETS = {
    "x3d_xs": (4, 160, 182, 12),
    "x3d_s": (13, 160, 182, 6),
    "x3d_m": (16, 224, 256, 5),
    "x3d_l": (16, 312, 356, 5),
    "slow_r50": (8, 224, 256, 8),
    "slowfast_r50": (32, 224, 256, 2),
    "i3d_r50": (8, 224, 256, 8),
    "r2plus1d_r50": (16, 224, 256, 4),
    "csn_r101": (32, 224, 256, 2),
    "c2d_r50": (8, 224, 256, 8),
    "mvit_base_16x4": (16, 224, 224, 4),
}


def _narrow(name: str) -> LoadedModel:
    """The adapter's wiring around a narrow twin of its network (random weights, seeded)."""
    adapter = get_adapter(name)
    torch.manual_seed(0)
    model = adapter.builder(**NARROW[KIND[name]]).eval()
    return LoadedModel(
        model=model,
        name=name,
        layer=adapter.layer,
        classifier=adapter.classifier,
        preset=adapter.preset,
        categories=model.categories,
        weights=None,
        adapter=adapter,
    )


def _clip(name: str, seed: int = 0, batch: int = 1) -> torch.Tensor:
    """Noise at the preset size whose second half moves more than its first."""
    p = get_adapter(name).preset
    g = torch.Generator().manual_seed(seed)
    clip = torch.randn((batch, 3, p.frames, *p.size), generator=g)
    clip[:, :, : p.frames // 2] *= 0.2
    return clip


@contextmanager
def _captured(model: nn.Module, *names: str) -> Iterator[dict[str, torch.Tensor]]:
    """Record the outputs of named modules during the forward passes in the block."""
    out: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())
    handles = [
        modules[n].register_forward_hook(
            lambda _m, _i, o, n=n: out.__setitem__(
                n, (o[0] if isinstance(o, tuple) else o).detach()
            )
        )
        for n in names
    ]
    try:
        yield out
    finally:
        for h in handles:
            h.remove()


# ---------------------------------------------------------------- registry and builds


def test_every_pytorchvideo_model_is_registered_with_its_preset() -> None:
    assert set(NAMES) == set(PRESETS) and set(NAMES) <= set(available_models())
    for name, (frames, crop, short, rate) in PRESETS.items():
        a = get_adapter(name)
        p = a.preset
        assert (p.frames, p.size, p.resize, p.resize_to) == (
            frames,
            (crop, crop),
            "short_side",
            short,
        )
        assert p.mean == (0.45, 0.45, 0.45) and p.std == (0.225, 0.225, 0.225)
        assert a.extra == {"requires": "pytorchvideo", "sampling_rate": rate}
        assert a.num_classes == 400 and a.weight_names is not None
        mvit = name == "mvit_base_16x4"
        assert (a.default_method, a.cam_exact) == (("gradcam", False) if mvit else ("cam", True))
    assert get_adapter("slowfast_r50").layer == (
        "blocks.4.multipathway_blocks.0",
        "blocks.4.multipathway_blocks.1",
    )
    assert get_adapter("x3d_xs").pooled_head is pvm.x3d_pooled_head


@pytest.mark.parametrize("name", NAMES)
def test_adapter_builds_without_weights_and_gives_logits(name: str) -> None:
    loaded = load_model(name)
    model, adapter = loaded.model, get_adapter(name)
    modules = dict(model.named_modules())
    layers = adapter.layer if isinstance(adapter.layer, tuple) else (adapter.layer,)
    assert all(layer in modules for layer in layers)
    head = modules[str(adapter.classifier)]
    assert isinstance(head, nn.Linear) and head.out_features == 400
    # No softmax (nor any activation) after the projection: the model gives logits.
    assert not any(isinstance(m, nn.Softmax) for m in model.modules())
    assert modules[str(adapter.classifier).rpartition(".")[0]].activation is None
    assert loaded.categories is not None and len(loaded.categories) == 400
    assert loaded.categories[:2] == ("abseiling", "air drumming")
    assert loaded.categories == pvm.kinetics400_categories()
    assert sum(p.numel() for p in model.parameters()) > 3_000_000 and not model.training


def test_pytorchvideo_heads_would_apply_a_softmax() -> None:
    """Why the adapters pass head_activation=None: the hub's X3D ends in a softmax."""
    hub = pvm.import_hub()
    assert any(isinstance(m, nn.Softmax) for m in hub.x3d_xs().modules())
    assert not any(isinstance(m, nn.Softmax) for m in load_model("x3d_xs").model.modules())


def test_other_class_counts_drop_the_kinetics_names() -> None:
    loaded = load_model("c2d_r50", num_classes=7)
    assert loaded.model.blocks[6].proj.out_features == 7 and loaded.categories is None
    mvit = pvm.build("mvit_base_16x4", num_classes=5, patch_embed_dim=8)
    assert mvit.head.proj.out_features == 5 and not hasattr(mvit, "categories")


def test_import_does_not_import_pytorchvideo_or_torchvision() -> None:
    code = (
        "import sys, saliency_tubes, saliency_tubes.zoo, saliency_tubes.cli; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'pytorchvideo', 'torchvision'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_without_the_extra_models_are_listed_with_the_install_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pvm, "available", lambda: False)
    adapters = pvm.adapters()
    assert [a.name for a in adapters] == NAMES
    hint = "[needs the pytorchvideo extra: pip install 'saliency-tubes[pytorchvideo]']"
    assert all(a.description.endswith(hint) for a in adapters)
    with pytest.raises(ModelLoadError) as info:
        adapters[0].builder()
    assert "\n" not in str(info.value)
    assert str(info.value).endswith("install it with: pip install 'saliency-tubes[pytorchvideo]'")


# ---------------------------------------------------------------- explanations


@pytest.mark.parametrize("name", NAMES)
def test_default_method_at_the_preset_and_exact_cam(name: str) -> None:
    loaded = _narrow(name)
    model, adapter = loaded.model, get_adapter(name)
    model.train()  # the explainer runs in eval mode and gives the training flag back
    state = {k: v.clone() for k, v in model.state_dict().items()}
    clip = _clip(name)
    tubes = loaded.explainer(adapter.default_method)(clip, classes="top2")
    assert tubes.maps.shape == (1, 2, *clip.shape[2:])
    assert tubes.maps.min() >= 0 and tubes.maps.max() == 1
    assert hooks_left(model) == 0 and model.training
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    model.eval()
    modules = dict(model.named_modules())
    if KIND[name] == "mvit":  # Grad-CAM on the 8x7x7 token grid, class token dropped
        assert tubes.raw.shape == (1, 2, 8, 7, 7) and tubes.layer == "blocks.15.norm1"
        return

    # The head's fixed pool covers the layer's whole grid at the preset (a global mean) ...
    raws = list(tubes.pathways_raw.values()) or [tubes.raw]
    if KIND[name] == "slowfast":
        pools = [p.kernel_size for p in modules["blocks.5.pool"]]
    elif KIND[name] == "x3d":
        pools = [modules["blocks.5.pool.pool"].kernel_size]
    else:
        pools = [modules[str(adapter.classifier).replace("proj", "pool")].kernel_size]
    assert [tuple(p) for p in pools] == [tuple(r.shape[2:]) for r in raws]
    # ... so the score is the tube's space-time mean (per pathway) plus the bias.
    bias = modules[str(adapter.classifier)].bias.detach()[tubes.classes[0]]
    score = sum(r[0].mean(dim=(1, 2, 3)) for r in raws) + bias
    scale = float(max(r.abs().max() for r in raws))
    assert scale > 1e-3
    torch.testing.assert_close(
        score, tubes.logits[0, tubes.classes[0]], atol=1e-4 * scale, rtol=1e-4
    )

    # CAM equals normalised Grad-CAM (relu=False): per pathway for SlowFast, and fused (the
    # fused Grad-CAM tube counts each pathway by its share of the score, as CAM's does).
    grad = loaded.explainer("gradcam", relu=False)(clip, classes=tubes.classes)
    for layer, maps in tubes.pathways.items():
        torch.testing.assert_close(grad.pathways[layer], maps, atol=1e-4, rtol=0)
    torch.testing.assert_close(grad.maps, tubes.maps, atol=1e-4, rtol=0)
    assert hooks_left(model) == 0


def test_x3d_cam_equals_its_hand_computed_definition() -> None:
    """tube_c = sum_j w_cj A_j with w_c = W_proj[c] diag(1[W_post p > 0]) W_post, p = mean(A)."""
    loaded = _narrow("x3d_xs")
    model = loaded.model
    clip = _clip("x3d_xs", seed=1, batch=2)
    layer = "blocks.5.pool.pre_act"
    with _captured(model, layer) as seen:
        tubes = loaded.explainer("cam")(clip, classes="top3")
    a = seen[layer]  # (2, C, 4, 5, 5): the activation the head pools
    pool = model.blocks[5].pool
    assert pool.post_norm is None and pool.post_conv.bias is None
    w_post = pool.post_conv.weight.detach().flatten(1)  # (D, C)
    w_proj, b_proj = model.blocks[5].proj.weight.detach(), model.blocks[5].proj.bias.detach()
    for n in range(2):
        p = a[n].mean(dim=(1, 2, 3))
        mask = (w_post @ p > 0).float()
        assert 0 < int(mask.sum()) < mask.numel()  # a real piece of the ReLU, not all or none
        for k, c in enumerate(tubes.classes[n].tolist()):
            w_eff = (w_proj[c] * mask) @ w_post
            expected = torch.einsum("c,cthw->thw", w_eff, a[n])
            scale = float(expected.abs().max())
            torch.testing.assert_close(tubes.raw[n, k], expected, atol=1e-5 * scale, rtol=1e-4)
            # The score: the tube's mean plus the bias (post_conv has no bias).
            torch.testing.assert_close(
                expected.mean() + b_proj[c], tubes.logits[n, c], atol=1e-5 * scale, rtol=1e-4
            )
    torch.testing.assert_close(
        tubes.maps, st.normalize_tubes(st.upsample(tubes.raw, (4, 160, 160)))
    )


def test_slowfast_cam_equals_its_hand_computed_definition() -> None:
    """Per pathway w_slice . A; score = mean(slow tube) + mean(fast tube) + bias; fused tube."""
    loaded = _narrow("slowfast_r50")
    model = loaded.model
    slow, fast = get_adapter("slowfast_r50").layer
    clip = _clip("slowfast_r50", seed=2)
    with _captured(model, "blocks.0.multipathway_blocks.0", slow, fast) as seen:
        tubes = loaded.explainer("cam")(clip, classes=[5, 17])
    a_slow, a_fast = seen[slow][0], seen[fast][0]  # (Cs, 8, 7, 7), (Cf, 32, 7, 7)
    # The slow pathway saw frames linspace(0, 31, 8) rounded down: 0, 4, 8, 13, 17, 22, 26, 31.
    stem = model.blocks[0].multipathway_blocks[0]
    frames = torch.tensor([0, 4, 8, 13, 17, 22, 26, 31])
    with torch.no_grad():
        model.eval()
        torch.testing.assert_close(seen["blocks.0.multipathway_blocks.0"], stem(clip[:, :, frames]))
    w, b = model.blocks[6].proj.weight.detach(), model.blocks[6].proj.bias.detach()
    cs = a_slow.shape[0]
    assert w.shape[1] == cs + a_fast.shape[0]
    for k, c in enumerate([5, 17]):
        raw_slow = torch.einsum("c,cthw->thw", w[c, :cs], a_slow)
        raw_fast = torch.einsum("c,cthw->thw", w[c, cs:], a_fast)
        scale = float(max(raw_slow.abs().max(), raw_fast.abs().max()))
        close = {"atol": 1e-5 * scale, "rtol": 1e-4}
        torch.testing.assert_close(tubes.pathways_raw[slow][0, k], raw_slow, **close)
        torch.testing.assert_close(tubes.pathways_raw[fast][0, k], raw_fast, **close)
        torch.testing.assert_close(
            raw_slow.mean() + raw_fast.mean() + b[c], tubes.logits[0, c], **close
        )
        # Fused: the slow tube upsampled in time to the fast grid, plus the fast tube.
        fused = st.upsample(raw_slow[None, None], (32, 7, 7))[0, 0] + raw_fast
        torch.testing.assert_close(tubes.raw[0, k], fused, **close)
    torch.testing.assert_close(
        tubes.maps, st.normalize_tubes(st.upsample(tubes.raw, (32, 224, 224)))
    )
    assert tubes.pathways[fast].shape == tubes.pathways[slow].shape == (1, 2, 32, 224, 224)


def test_mvit_gradcam_equals_its_hand_computed_definition() -> None:
    """Grad-CAM on blocks.15.norm1: w_c = mean over the patch tokens of dy_c/dA, tube = w . A."""
    loaded = _narrow("mvit_base_16x4")
    model = loaded.model
    clip = _clip("mvit_base_16x4", seed=3)
    tubes = loaded.explainer("gradcam")(clip, classes=[11])
    # Differentiate from the score back to norm1's output only: it becomes a leaf.
    seen: dict[str, torch.Tensor] = {}

    def leaf(_m: nn.Module, _i: Any, out: torch.Tensor) -> torch.Tensor:
        seen["tokens"] = out.detach().requires_grad_(True)
        return seen["tokens"]

    model.requires_grad_(False)
    handle = model.blocks[15].norm1.register_forward_hook(leaf)
    try:
        model(clip)[0, 11].backward()
    finally:
        handle.remove()
    tokens, grads = seen["tokens"].detach()[0], seen["tokens"].grad[0]  # (1 + 392, C)
    assert grads[1:].abs().sum() > 0  # the patch tokens reach the score through attention
    a = tokens[1:].reshape(8, 7, 7, -1).permute(3, 0, 1, 2)  # class token dropped
    weights = grads[1:].mean(dim=0)
    expected = torch.einsum("c,cthw->thw", weights, a).clamp_min(0)  # Grad-CAM's ReLU
    scale = float(expected.abs().max())
    assert scale > 0
    torch.testing.assert_close(tubes.raw[0, 0], expected, atol=1e-4 * scale, rtol=1e-3)
    assert hooks_left(model) == 0


def test_pack_pathways() -> None:
    clip = torch.arange(32.0).reshape(1, 1, 32, 1, 1).expand(2, 3, 32, 2, 2)
    slow, fast = pvm.PackPathways(4)(clip)
    assert fast is clip
    assert slow[0, 0, :, 0, 0].tolist() == [0, 4, 8, 13, 17, 22, 26, 31]
    assert pvm.PackPathways(4)(clip[:, :, :9])[0].shape[2] == 2
    with pytest.raises(InputError, match="expected a clip of at least 4 frames"):
        pvm.PackPathways(4)(clip[:, :, :3])


# ---------------------------------------------------------------- named weights


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("kinetics400", "kinetics400"),
        ("Kinetics400", "kinetics400"),
        ("default", "kinetics400"),
        ("X3D_XS.pyth", None),
        ("weights/x3d.pth", None),
        ("imagenet", None),
    ],
)
def test_weights_names(text: str, expected: str | None) -> None:
    assert pvm.resolve_weights(text) == expected


def _hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, outcome: Any) -> list[str]:
    """Point torch's hub folder at tmp_path; downloads save ``outcome`` (or raise it)."""
    urls: list[str] = []

    def download(url: str, dst: str, progress: bool = True) -> None:
        urls.append(url)
        if isinstance(outcome, BaseException):
            raise outcome
        torch.save(outcome, dst)

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    return urls


def test_named_weights_download_failure_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    urls = _hub(monkeypatch, tmp_path, URLError("[Errno -3] Temporary failure in name resolution"))
    with pytest.raises(ModelLoadError) as info:
        load_model("x3d_xs", weights="kinetics400")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("downloading the x3d_xs Kinetics-400 weights failed")
    assert message.endswith("pass a local checkpoint path instead (--weights PATH)")
    assert urls == [pvm.checkpoint_url("x3d_xs")] and urls[0].endswith("/X3D_XS.pyth")
    assert not list(tmp_path.rglob("*.pyth"))


def test_named_weights_load_weights_only_once_downloaded(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    torch.manual_seed(4)
    reference = pvm.build("x3d_xs").state_dict()
    # pytorchvideo's checkpoints nest the weights under "model_state" next to plain values.
    urls = _hub(monkeypatch, tmp_path, {"model_state": reference, "epoch": 300, "cfg": "TRAIN: {}"})
    loaded = load_model("x3d_xs", weights="Kinetics400")
    assert loaded.weights == "kinetics400" and len(urls) == 1
    assert (tmp_path / "checkpoints" / "X3D_XS.pyth").is_file()
    assert all(torch.equal(reference[k], v) for k, v in loaded.model.state_dict().items())
    again = load_model("x3d_xs", weights="kinetics400")  # from the cache: no second download
    assert len(urls) == 1 and torch.equal(
        again.model.blocks[5].proj.bias, reference["blocks.5.proj.bias"]
    )
    with pytest.raises(ModelLoadError, match="have 400 classes, but num_classes=10"):
        load_model("x3d_xs", weights="kinetics400", num_classes=10)

    # A checkpoint holding a pickled object is refused (weights-only), not run.
    (tmp_path / "checkpoints" / "X3D_XS.pyth").unlink()
    _hub(monkeypatch, tmp_path, {"model_state": reference, "payload": _Payload()})
    with pytest.raises(ModelLoadError, match="refused to unpickle X3D_XS.pyth"):
        load_model("x3d_xs", weights="kinetics400")


class _Payload:
    """A pickled object that a weights-only load must refuse."""


# ---------------------------------------------------------------- command line


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_cli_explain_x3d_xs_end_to_end(tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    h, w = 90, 120
    yy, xx = np.mgrid[0:h, 0:w]
    with VideoWriter(video, fps=12, crf=10) as writer:
        for t in range(10):
            image = np.full((h, w, 3), 40, np.uint8)
            image[(yy - 45) ** 2 + (xx - 20 - 8 * t) ** 2 < 120] = (230, 200, 60)
            writer.write(image)
    out = tmp_path / "out"
    args = ("explain", str(video), "--out", str(out), "--model", "x3d_xs", "--quiet")
    code, stdout, stderr = _run(*args, "--classes", "top2", "--format", "mp4,npy")
    assert code == 0, stderr
    manifest = json.loads((out / "manifest.json").read_text())
    model = manifest["model"]
    assert (model["name"], model["method"], model["layer"], model["classifier"]) == (
        "x3d_xs",
        "cam",
        "blocks.5.pool.pre_act",
        "blocks.5.proj",
    )
    assert model["preset"]["frames"] == 4 and model["preset"]["resize_to"] == 182
    assert manifest["tube"]["layer_grid"] == [4, 5, 5]  # 4x160x160 / (1, 32, 32)
    tube = np.load(out / "tube.npy")
    assert tube.shape == (2, 4, 160, 160) and tube.min() == 0.0 and tube.max() == 1.0
    names = pvm.kinetics400_categories()
    assert all(names[c["index"]] == c["name"] and c["name"] in stdout for c in manifest["classes"])
    assert len(manifest["outputs"]["mp4"]) == 6


def test_cli_models_lists_the_pytorchvideo_models() -> None:
    code, stdout, _ = _run("models")
    assert code == 0
    lines = {line.split()[0]: line for line in stdout.splitlines()}
    assert "layer=blocks.5.pool.pre_act head=blocks.5.proj input=4x160x160" in lines["x3d_xs"]
    assert (
        "layer=blocks.4.multipathway_blocks.0+blocks.4.multipathway_blocks.1 head=blocks.6.proj "
        "input=32x224x224" in lines["slowfast_r50"]
    )
    assert "layer=blocks.5 head=blocks.6.proj input=8x224x224" in lines["i3d_r50"]
    assert "method=gradcam cam=n/a" in lines["mvit_base_16x4"]
    assert all("cam=exact" in lines[n] for n in NAMES if n != "mvit_base_16x4")


# ---------------------------------------------------------------- full size (slow)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_full_size_model_explains_at_its_preset(name: str) -> None:
    loaded = load_model(name)
    adapter = get_adapter(name)
    clip = _clip(name, seed=5)
    tubes = loaded.explainer(adapter.default_method)(clip, classes="top1")
    assert tubes.maps.shape == (1, 1, *clip.shape[2:]) and tubes.maps.max() == 1
    assert hooks_left(loaded.model) == 0
    if adapter.cam_exact:
        raws = list(tubes.pathways_raw.values()) or [tubes.raw]
        head = dict(loaded.model.named_modules())[str(adapter.classifier)]
        c = int(tubes.classes[0, 0])
        score = sum(float(r[0, 0].mean()) for r in raws) + float(head.bias.detach()[c])
        scale = max(float(r.abs().max()) for r in raws)
        assert abs(score - float(tubes.logits[0, c])) <= 1e-4 * scale + 1e-4 * abs(score)
