"""Contrastive tubes, tube statistics, and the compare-classes / compare-models commands
(panels equal the single-class and single-model explanations; clean failures)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import saliency_tubes as st
from _clips import mapped, real_clip
from _models import HandNet, SmallResNet3D, hand_clip
from saliency_tubes import render
from saliency_tubes.cli import main
from saliency_tubes.errors import ClassSelectionError, InputError
from saliency_tubes.video import iter_frames, probe, read_frames
from saliency_tubes.zoo import load_model

FACTORY = "_models:SmallResNet3D"  # fixed weights, default preset (short side + centre crop)
GAP = 4  # pixels between grid panels (commands.pipeline.drawing.GAP)


# -- contrastive tubes ----------------------------------------------------------------


def test_contrastive_tube_by_hand() -> None:
    """HandNet: raw_0 = 2 x0 - 3, raw_1 = x0 + 1.5 (x0 = 0..7), so raw_0 - raw_1 = x0 - 4.5."""
    tubes = st.SaliencyTubes(HandNet())(hand_clip(), classes=[0, 1, 2])
    contrast = st.contrastive_tube(tubes, 0, 1)
    x0 = torch.arange(8, dtype=torch.float32).reshape(1, 2, 2, 2)
    torch.testing.assert_close(contrast.raw, x0 - 4.5)
    torch.testing.assert_close(contrast.maps, (x0 - 4.5) / 4.5)  # divided by max |.| = 4.5
    assert contrast.scale.tolist() == [4.5] and contrast.names == ("0", "1")
    # its mean is the logit difference without the biases: (4.1 - 0.1) - (5.0 - 0.0) = -1
    logits = HandNet()(hand_clip())[0].detach()
    assert float(contrast.raw.mean()) == pytest.approx(float(logits[0] - 0.1 - logits[1]))
    # on the normalised maps: their plain difference
    on_maps = st.contrastive_tube(tubes, 0, 1, on="maps")
    torch.testing.assert_close(on_maps.maps, tubes.maps[:, 0] - tubes.maps[:, 1])
    assert on_maps.scale.tolist() == [1.0]
    # class 2's raw map is constant 3: against it, class 1 is x0 - 1.5
    torch.testing.assert_close(st.contrastive_tube(tubes, 1, 2).raw, x0 - 1.5)


def test_contrastive_tube_is_the_upsampled_raw_difference() -> None:
    model = SmallResNet3D()
    clip = torch.randn(2, 3, 8, 32, 32, generator=torch.Generator().manual_seed(3))
    names = ["take", "wash", "turn-on", "open", "close"]
    tubes = st.SaliencyTubes(model, categories=names)(clip, classes=["wash", "take", "open"])
    contrast = st.contrastive_tube(tubes, "take", "wash")
    diff = tubes.raw[:, 1] - tubes.raw[:, 0]
    torch.testing.assert_close(contrast.raw, diff)
    up = st.upsample(diff.unsqueeze(1), (8, 32, 32))[:, 0]
    scale = up.abs().flatten(1).amax(1)
    torch.testing.assert_close(contrast.scale, scale)
    torch.testing.assert_close(contrast.maps, up / scale.view(-1, 1, 1, 1))
    assert float(contrast.maps.abs().amax()) == pytest.approx(1.0)
    assert contrast.a.tolist() == [0, 0] and contrast.b.tolist() == [1, 1]
    # global average pool + linear head: the raw difference's mean is the logit difference
    logits = tubes.logits
    bias = model.fc.bias.detach()
    expected = (logits[:, 0] - bias[0]) - (logits[:, 1] - bias[1])
    torch.testing.assert_close(contrast.raw.flatten(1).mean(1), expected, atol=1e-4, rtol=1e-4)
    # the panels of a multi-class call equal the single-class tubes
    alone = st.SaliencyTubes(model, categories=names)(clip, classes=["take"])
    torch.testing.assert_close(tubes.maps[:, 1], alone.maps[:, 0])


def test_contrastive_tube_errors() -> None:
    tubes = st.SaliencyTubes(HandNet(), categories=["a", "b", "c"])(hand_clip(), classes=[0, 1])
    with pytest.raises(ClassSelectionError, match="was not explained"):
        st.contrastive_tube(tubes, "a", "c")
    with pytest.raises(ClassSelectionError, match="unknown class name 'z'"):
        st.contrastive_tube(tubes, "a", "z")
    with pytest.raises(InputError, match="two different classes"):
        st.contrastive_tube(tubes, "a", 0)
    with pytest.raises(InputError, match="on='raw'"):
        st.contrastive_tube(tubes, "a", "b", on="normalised")  # type: ignore[arg-type]


def test_contrast_frame_blends_by_magnitude() -> None:
    frame = np.full((2, 3, 3), 100, np.uint8)
    c = np.array([[0.0, 1.0, -1.0], [0.5, np.nan, -0.5]], dtype=np.float32)
    out = render.contrast_frame(frame, c, colormap="gray", opacity=0.5)
    # a = 0.5 |c|, colour = gray level round(255 (c + 1) / 2)
    assert out[0, 0].tolist() == [100] * 3  # no preference: the frame
    assert out[0, 1].tolist() == [round(0.5 * 100 + 0.5 * 255)] * 3
    assert out[0, 2].tolist() == [50] * 3
    assert out[1, 0].tolist() == [round(0.75 * 100 + 0.25 * 191)] * 3
    w = 0.3 * 0.5 * (1 + np.cos(2 * np.pi * 2 / 12))  # unseen: half-bright grey, soft stripe
    assert out[1, 1].tolist() == [round((1 - w) * 50 + w * 160)] * 3
    legend = render.contrast_legend(120, ("take", "wash"))
    assert legend.shape == (24, 120, 3)
    bar = legend[:8, :, :]  # -1 (B) on the left in blue, +1 (A) on the right in red
    assert bar[0, 0, 2] > bar[0, 0, 0] and bar[0, -1, 0] > bar[0, -1, 2]


# -- tube statistics ------------------------------------------------------------------


def test_tube_stats_by_hand() -> None:
    tube = np.zeros((2, 4, 4), np.float32)
    tube[0, 0, 0], tube[0, 0, 3] = 1.0, 0.75  # weights max(s - 0.5, 0) = 0.5 and 0.25
    tube[1, 2, 1] = 1.0  # one pixel: no spread
    tube[1, 3, :] = np.nan  # 4 unseen pixels
    stats = st.tube_stats(tube)
    assert stats.voxels == 28 and stats.fraction_above == pytest.approx(3 / 28)
    # frame 0: x centres 0.125 and 0.875, centroid 0.375, variance
    # (0.5 * 0.25^2 + 0.25 * 0.5^2) / 0.75 = 0.125; frame 1 adds mass 0.5 and no variance
    assert stats.spread_x == pytest.approx(np.sqrt(0.75 * 0.125 / 1.25))
    assert stats.spread_y == 0.0 and stats.spread == pytest.approx(stats.spread_x)
    # a tube at 1 everywhere: sqrt(2 (1 - 1/n^2) / 12) ~ 0.408
    assert st.tube_stats(torch.ones(3, 50, 50)).spread == pytest.approx(
        np.sqrt(2 * (1 - 1 / 2500) / 12)
    )
    # a moving point: per-frame centroids, so no spread
    moving = np.zeros((4, 8, 8), np.float32)
    for t in range(4):
        moving[t, t, 2 * t] = 1.0
    assert st.tube_stats(moving).spread == 0.0
    with pytest.raises(InputError, match=r"\(T, H, W\)"):
        st.tube_stats(np.zeros((4, 4)))


# -- the commands on the demo clip -----------------------------------------------------


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [*args, "--quiet"])
    return result.exit_code, result.stdout, result.stderr


def _png_frames(folder: Path) -> list[np.ndarray]:
    return [f.image for f in iter_frames(folder)]


def _panel(grid: np.ndarray, k: int, cols: int, h: int, w: int) -> np.ndarray:
    r, c = divmod(k, cols)
    return grid[r * (h + GAP) : r * (h + GAP) + h, c * (w + GAP) : c * (w + GAP) + w]


def test_compare_classes_panels_equal_single_class_explain(demo_clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    code, stdout, stderr = _run(
        "compare-classes",
        str(demo_clip),
        "--out",
        str(out),
        *"--classes shrink,grow,left --contrast grow,up --format png,npy,plot --no-caption".split(),
    )
    assert code == 0, stderr
    manifest = json.loads((out / "manifest.json").read_text())
    names = [c["name"] for c in manifest["classes"]]
    assert names == ["shrink", "grow", "left", "up"]  # the contrast's B is explained too
    assert manifest["outputs"]["png"] == ["compare_classes", "contrast_grow_vs_up"]
    assert manifest["outputs"]["plot"] == ["temporal.png", "temporal_contrast_grow_vs_up.png"]
    assert "contrast grow vs up" in stdout
    tubes = np.load(out / "tube.npy")
    assert tubes.shape == (4, 16, 96, 96)

    single = tmp_path / "one"
    code, _, stderr = _run(
        "explain",
        str(demo_clip),
        "--out",
        str(single),
        *"--classes grow --layouts focus --format png,npy --no-caption".split(),
    )
    assert code == 0, stderr
    one = json.loads((single / "manifest.json").read_text())
    assert one["clips"] == manifest["clips"]
    # one forward for four classes or for one: equal up to float32 summation order
    np.testing.assert_allclose(np.load(single / "tube.npy")[0], tubes[1], atol=1e-6)
    for key in ("mean", "max"):
        np.testing.assert_allclose(
            one["tubes"][0]["temporal"][key], manifest["tubes"][1]["temporal"][key], atol=2e-4
        )
    keys = [t["temporal"]["key_frames"] for t in (one["tubes"][0], manifest["tubes"][1])]
    assert keys[0] == keys[1]
    grids = _png_frames(out / "compare_classes")
    alone = _png_frames(single / one["outputs"]["png"][0])
    assert len(grids) == len(alone) == 24
    assert grids[0].shape == (96, 4 * 128 + 3 * GAP, 3)
    for grid, frame in zip(grids, alone, strict=True):
        diff = np.abs(_panel(grid, 1, 4, 96, 128).astype(int) - frame.astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 0.01  # rounding of 1e-7 differences

    # the contrastive tube equals the API's on the same clip
    loaded = load_model("tiny-actions")
    indices = manifest["clips"][0]["frame_indices"]
    clip = loaded.preset.preprocess()(read_frames(demo_clip, indices))[None]
    explained = loaded.explainer("cam")(clip, classes=names)
    expected = st.contrastive_tube(explained, "grow", "up")
    written = np.load(out / "contrast_grow_vs_up.npy")
    assert written.shape == (16, 96, 96)
    np.testing.assert_allclose(written, expected.maps[0].numpy(), atol=1e-5)
    assert manifest["contrast"]["scale"] == pytest.approx(float(expected.scale[0]), rel=1e-5)
    np.testing.assert_allclose(tubes, explained.maps[0].numpy(), atol=1e-5)
    # and its video shows that tube over the frame, with the colour bar underneath
    on_source = mapped(written, indices, loaded.preset, demo_clip)
    legend = render.contrast_legend(128, ("grow", "up"))
    for frame, drawn in zip(
        iter_frames(demo_clip), _png_frames(out / "contrast_grow_vs_up"), strict=True
    ):
        np.testing.assert_array_equal(
            drawn[:96], render.contrast_frame(frame.image, on_source[frame.index])
        )
        np.testing.assert_array_equal(drawn[96:], legend)


def test_compare_models_panels_equal_single_model_tubes(demo_clip: Path, tmp_path: Path) -> None:
    """Each panel is its model's own tube (own sampling, preprocessing and geometry) drawn
    on the same source frames."""
    out = tmp_path / "models"
    code, stdout, stderr = _run(
        "compare-models",
        str(demo_clip),
        "--out",
        str(out),
        *f"--models tiny-actions,{FACTORY} --style heat --format png,npy --no-caption".split(),
    )
    assert code == 0, stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert [m["model"]["name"] for m in manifest["models"]] == ["tiny-actions", FACTORY]
    grids = _png_frames(out / "compare_models")
    assert len(grids) == 24 and grids[0].shape == (96, 2 * 128 + GAP, 3)
    for i, name in enumerate(["tiny-actions", FACTORY]):
        loaded = load_model(name)
        entry = manifest["models"][i]
        clip = loaded.preset.preprocess()(
            read_frames(demo_clip, entry["clips"][0]["frame_indices"])
        )
        expected = loaded.explainer("cam")(clip[None], classes="top1")
        tube = np.load(out / manifest["tubes"][i]["npy"]["file"])[0]
        np.testing.assert_allclose(tube, expected.maps[0, 0].numpy(), atol=1e-5)
        assert entry["classes"][0]["index"] == int(expected.classes[0, 0])
        on_source = mapped(tube, entry["clips"][0]["frame_indices"], loaded.preset, demo_clip)
        for frame, grid in zip(iter_frames(demo_clip), grids, strict=True):
            np.testing.assert_array_equal(
                _panel(grid, i, 2, 96, 128), render.heat(frame.image, on_source[frame.index])
            )
        # the printed numbers are the statistics of that tube on the source frames
        stats = st.tube_stats(on_source)
        row = manifest["summary"][i]
        assert row["model"] == name
        assert row["fraction_above"] == pytest.approx(stats.fraction_above, abs=6e-5)
        assert row["spread"] == pytest.approx(stats.spread, abs=6e-5)
        assert f"{name}: " in stdout and f"spread {stats.spread:.3f}" in stdout
    # the short-side crop of the second model leaves the sides unseen (hatched, not counted)
    assert np.isnan(on_source[:, :, 0]).all() and not np.isnan(on_source[:, :, 64]).any()
    assert manifest["summary"][1]["voxels"] == np.isfinite(on_source).sum() < 24 * 96 * 128
    assert manifest["summary"][0]["voxels"] == 24 * 96 * 128


# -- clean failures --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["compare-classes", "--classes", "shrink,jupm"], "unknown class name 'jupm'"),
        (["compare-classes", "--contrast", "shrink"], "two different classes"),
        (["compare-classes", "--contrast", "shrink,Shrink"], "two different classes"),
        (["compare-classes", "--contrast", "shrink,7"], "both class 7"),  # name and index
        (["compare-classes", "--contrast", "shrink,jupm"], "unknown class name 'jupm'"),
        (["compare-models", "--models", "tiny-actions,resnet3d-19"], "unknown model 'resnet3d-19'"),
        (["compare-models", "--models", "tiny-actions,tiny-actions"], "distinct model names"),
        (
            ["compare-models", "--models", "tiny-actions", "--weights", "resnet3d-50=x.pth"],
            "expected --weights MODEL=PATH",
        ),
    ],
)
def test_bad_requests_fail_in_one_line(
    demo_clip: Path, tmp_path: Path, args: list[str], fragment: str
) -> None:
    out = tmp_path / "out"
    code, _, stderr = _run(args[0], str(demo_clip), "--out", str(out), *args[1:])
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert fragment in lines[0], lines[0]
    assert not out.exists()


def test_failure_while_rendering_leaves_nothing(
    demo_clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    original = render.contrast_frame

    def failing(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:  # writers open, plots and npy already written
            raise RuntimeError("disk full")
        return original(*args, **kwargs)

    monkeypatch.setattr(render, "contrast_frame", failing)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = CliRunner().invoke(
        main,
        [
            "compare-classes",
            str(demo_clip),
            "--out",
            str(out),
            *"--contrast shrink,grow --format mp4,gif,npy,plot --quiet".split(),
        ],
    )
    assert result.exit_code != 0 and calls["n"] == 3
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


# -- the real clips ----------------------------------------------------------------------


def _shared(name: str) -> Path:
    return real_clip(name)


def test_compare_classes_on_a_real_clip(tmp_path: Path) -> None:
    video = _shared("pool_cleaning_32f.mp4")
    src = probe(video)
    code, _, stderr = _run(
        "compare-classes",
        str(video),
        "--out",
        str(tmp_path / "cc"),
        *"--classes up,left --contrast left,up --timeline --format mp4".split(),
    )
    assert code == 0, stderr
    manifest = json.loads((tmp_path / "cc" / "manifest.json").read_text())
    assert [c["name"] for c in manifest["classes"]] == ["up", "left"]  # nothing added
    assert manifest["outputs"]["mp4"] == ["compare_classes.mp4", "contrast_left_vs_up.mp4"]
    grid = probe(tmp_path / "cc" / "compare_classes.mp4")
    contrast = probe(tmp_path / "cc" / manifest["outputs"]["mp4"][1])
    k = 2
    bar = int(np.clip(src.height // 10, 12, 40))
    assert grid.num_frames == contrast.num_frames == src.num_frames and grid.rate == src.rate
    width = k * src.width + (k - 1) * GAP
    # Each panel: its caption in a strip above the picture, the timeline bar under it.
    from saliency_tubes.commands.pipeline.drawing import caption_of
    from saliency_tubes.numbers import probability
    from saliency_tubes.render import label_strip

    tiny = st.load_model("tiny-actions")
    strips = [
        label_strip(
            caption_of(tiny, f"{c['name']}  p={probability(c['score'])}"),
            src.width,
            src.height + bar,
        )
        for c in manifest["classes"]
    ]
    height = max(s.shape[0] for s in strips) + src.height + bar
    assert (grid.height, grid.width) == (height + height % 2, width + width % 2)
    assert contrast.width == src.width and contrast.height > src.height
    assert all(len(t["temporal"]["mean"]) == src.num_frames for t in manifest["tubes"])


def test_compare_models_numbers_on_a_long_real_clip(tmp_path: Path) -> None:
    """280 frames without rendering: curves and statistics over every source frame."""
    video = _shared("arm_wrestling.mp4")
    code, stdout, stderr = _run(
        "compare-models",
        str(video),
        "--out",
        str(tmp_path / "cm"),
        *"--models tiny-actions,resnet3d-18 --format npy,plot".split(),
    )
    assert code == 0, stderr
    manifest = json.loads((tmp_path / "cm" / "manifest.json").read_text())
    assert manifest["outputs"] == {
        "npy": ["tube_tiny-actions.npy", "tube_resnet3d-18.npy"],
        "plot": ["temporal.png"],
    }
    tiny, resnet = (t["temporal"] for t in manifest["tubes"])
    assert len(tiny["mean"]) == len(resnet["mean"]) == 280 and tiny["key_frames"]
    # Hara's 3D-ResNets leave one time step of 16 frames at layer4: the tube is the same
    # in every frame, so its curve is flat and has no key frame
    assert len(set(resnet["mean"])) == 1 and resnet["key_frames"] == []
    # nothing is drawn: each source frame's tube is measured on the clip's grid (96x96 for
    # tiny-actions, 112x112 for resnet3d-18), not on the 256x340 source pixels
    rows = manifest["summary"]
    assert [r["voxels"] for r in rows] == [280 * 96 * 96, 280 * 112 * 112]
    assert {t["measured_on"] for t in manifest["tubes"]} == {"clip grid"}
    for row in rows:
        assert 0.0 <= row["fraction_above"] <= 1.0 and 0.0 <= row["spread"] <= 0.71
        assert f"above 0.5: {100 * row['fraction_above']:.1f}% of voxels" in stdout


def test_compare_classes_over_sliding_windows(demo_clip: Path, tmp_path: Path) -> None:
    """Windows: classes picked from the mean score; the contrast shares one scale."""
    out = tmp_path / "win"
    code, _, stderr = _run(
        "compare-classes",
        str(demo_clip),
        "--out",
        str(out),
        *"--windows 8,6 --frames 8 --classes top2 --contrast shrink,left --format npy".split(),
    )
    assert code == 0, stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["clips"]) == 4 and len(manifest["classes"]) == 3
    contrast = np.load(out / "contrast_shrink_vs_left.npy")
    assert contrast.shape == (4, 8, 96, 96)
    assert np.abs(contrast).max() == pytest.approx(1.0)  # one bound over all windows
    tubes = np.load(out / "tube.npy")
    assert tubes.shape == (4, 3, 8, 96, 96) and tubes.min() == 0.0 and tubes.max() == 1.0


def test_compare_commands_load_checkpoints_with_another_class_count(
    demo_clip: Path, tmp_path: Path
) -> None:
    """A 5-class resnet3d-18 checkpoint with its names: --num-classes/--categories per model."""
    torch.manual_seed(0)
    ckpt = tmp_path / "r18_5.pth"
    torch.save(st.zoo.resnet3d(18, num_classes=5).state_dict(), ckpt)
    names = tmp_path / "names.txt"
    names.write_text("take\nwash\nturn-on\nopen\nclose\n")
    out = tmp_path / "classes"
    code, _, stderr = _run(
        "compare-classes", str(demo_clip), "--out", str(out), "--model", "resnet3d-18",
        "--weights", str(ckpt), "--num-classes", "5", "--categories", str(names),
        "--classes", "take,wash", "--frames", "8", "--format", "mp4",
    )  # fmt: skip
    assert code == 0, stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert [c["name"] for c in manifest["classes"]] == ["take", "wash"]
    out = tmp_path / "models"
    code, stdout, stderr = _run(
        "compare-models", str(demo_clip), "--out", str(out), "--models", "tiny-actions,resnet3d-18",
        "--weights", f"resnet3d-18={ckpt}", "--num-classes", "resnet3d-18=5",
        "--categories", f"resnet3d-18={names}", "--format", "mp4",
    )  # fmt: skip
    assert code == 0, stderr
    assert any(line.startswith("resnet3d-18: ") for line in stdout.splitlines())
    summary = json.loads((out / "manifest.json").read_text())["summary"]
    assert summary[1]["class"] in ("take", "wash", "turn-on", "open", "close")
    code, _, stderr = _run(
        "compare-models", str(demo_clip), "--out", str(tmp_path / "bad"),
        "--models", "tiny-actions,resnet3d-18", "--num-classes", "resnet3d-18=five",
    )  # fmt: skip
    assert code == 2 and "expected --num-classes MODEL=N" in stderr
    assert not (tmp_path / "bad").exists()
