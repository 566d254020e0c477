"""``evaluate_video`` called directly: its report's scores are the metrics' own."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from _clips import write_evaluation_clip
from saliency_tubes import InputError
from saliency_tubes.commands import EvaluateOptions, evaluate_video
from saliency_tubes.metrics import baseline_fn, energy_inside, pointing_game
from saliency_tubes.metrics.benchmark import Protocol


def test_evaluate_video_scores_match_the_metrics(tmp_path: Path, tiny) -> None:
    video, _, clip = write_evaluation_clip(tmp_path)
    options = EvaluateOptions(
        methods=("cam",),
        baselines=("uniform", "centre"),
        units=("voxel",),
        protocol=Protocol(steps=2, resamples=100),
    )
    result = evaluate_video(video, tmp_path / "mask.npy", tmp_path / "out", tiny, options)
    report = result.manifest
    assert report["class"]["name"] == "shrink" and set(report["tubes"]) == {
        "cam/cubic",
        "baseline/uniform",
        "baseline/centre",
    }
    mask = torch.from_numpy(clip.mask)
    assert report["ground_truth"]["clip_voxels"] == int(mask.sum())
    assert report["protocol"]["increase_tolerance"] == 1e-5  # recorded with the scores
    # A baseline does not look at the model: its scores follow from the mask alone.
    centre = baseline_fn("centre")(tiny.model, torch.zeros(1, 3, *mask.shape))[0]
    row = report["tubes"]["baseline/centre"]
    assert row["mass"] == pytest.approx(float(energy_inside(centre, mask)), abs=1e-6)
    assert row["pointing"] == pytest.approx(float(pointing_game(centre, mask)), abs=1e-6)
    assert {p.name for ps in result.files.values() for p in ps} == {
        "deletion_insertion.png",
        "sanity.png",
        "report.json",
    }
    assert (tmp_path / "out" / "report.json").is_file()


def test_the_cam_row_is_the_metrics_of_the_cam_tube(tmp_path: Path, tiny) -> None:
    """The method's row: localisation and deletion of CAM's tube, each computed by hand."""
    from saliency_tubes.metrics import deletion, localisation, make_substrate

    from .conftest import model_input

    video, _, clip = write_evaluation_clip(tmp_path)
    protocol = Protocol(steps=4, resamples=100)
    options = EvaluateOptions(methods=("cam",), baselines=(), units=("voxel",), protocol=protocol)
    row = evaluate_video(video, tmp_path / "mask.npy", tmp_path / "out", tiny, options).manifest[
        "tubes"
    ]["cam/cubic"]
    x = model_input(video, tiny)
    tubes = tiny.explainer("cam", align=protocol.align)(x, classes="top1")
    tube, target = tubes.maps[0, 0], int(tubes.classes[0, 0])
    mask = torch.from_numpy(clip.mask)
    scores = localisation(
        tube, mask, tolerance_frames=protocol.tolerance_frames, tolerance_px=protocol.tolerance_px
    )
    for name in ("pointing", "mass", "iou"):
        assert row[name] == pytest.approx(scores[name], abs=1e-6), name
    curve = deletion(
        tiny.model,
        x,
        tube,
        target,
        steps=4,
        substrate=make_substrate(x, "blur"),
        grid=protocol.grid(tube.shape),
    )
    assert row["deletion"] == pytest.approx(curve.auc, abs=1e-6)


# --------------------------------------------------------------------------- forwards counted


class _Tally:
    """Clips and calls counted by :class:`_Counted`; shared by its deep copies (the sanity
    check randomises a copy of the model)."""

    def __init__(self) -> None:
        self.clips = 0
        self.calls = 0

    def __deepcopy__(self, memo: dict) -> _Tally:
        return self


class _Counted(torch.nn.Module):
    """A model that counts the clips it is fed (a batch of B counts B) and its calls."""

    def __init__(self, inner: torch.nn.Module, tally: _Tally) -> None:
        super().__init__()
        self.inner = inner
        self.tally = tally

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.tally.clips += int(x.shape[0])
        self.tally.calls += 1
        return self.inner(x)


def _counted(tiny) -> tuple[object, _Tally]:
    import dataclasses

    tally = _Tally()
    model = _Counted(tiny.model, tally)
    return dataclasses.replace(
        tiny, model=model, layer="inner.features", classifier="inner.fc"
    ), tally


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("counted")
    video, _, clip = write_evaluation_clip(root)
    return video, root / "mask.npy"


def _estimate(lines: list[str]) -> int:
    (line,) = [ln for ln in lines if "clip forwards in all" in ln]
    assert "an estimate" in line and "s per clip forward" in line, line
    return int(line.split()[0])


def test_the_default_run_does_the_forwards_it_announces(tiny, synthetic, tmp_path: Path) -> None:
    """Counted by the model itself: the announced forwards are the forwards run, <= 400."""
    video, mask = synthetic
    loaded, tally = _counted(tiny)
    lines: list[str] = []
    options = EvaluateOptions(protocol=Protocol(resamples=100), progress=False)
    report = evaluate_video(video, mask, tmp_path / "out", loaded, options, on_stage=lines.append)
    report = report.manifest
    forwards = report["evaluation"]["forwards"]
    assert tally.clips == forwards["total"] == forwards["run"] == _estimate(lines)
    assert tally.clips <= 400
    parts = forwards["parts"]
    # 2 (the clip and its substrate), one explanation per method, the trace of the layers
    assert (parts["select the class"], parts["explain"], parts["sanity layers"]) == (2, 3, 1)
    # no methods given: a network's defaults, the three CAMs
    assert report["evaluation"]["methods"] == ["cam", "gradcam", "gradcam++"]
    # 16 steps of 1x4x4 cells: 17 scores per curve, of which the 2 ends are known
    assert parts["CAM, cubic: voxel"] == parts["motion (baseline): voxel"] == 2 * 15
    assert parts["Grad-CAM++, cubic: sanity"] == 2  # top block random, all random
    assert parts["uniform (baseline): tube"] == 0  # a flat tube is one region: both ends
    assert "random (baseline): voxel" not in parts and not any("frame" in p for p in parts)
    assert sum(parts.values()) == tally.clips
    # the report says what its new entries mean
    assert set(report["evaluation"]["definitions"]) == {
        "forwards",
        "sanity_steps",
        "seconds_per_forward_estimate",
    }
    assert report["evaluation"]["seconds_per_forward_estimate"] > 0
    # without a terminal, one line per part
    assert "CAM, cubic: voxel: 30 clip forwards" in lines
    # the worst case whatever the model and tube: 6 rows x 2 units x 30, 3 x 2 sanity, 6
    assert 6 * 2 * 30 + 3 * 2 + 2 + 3 + 1 == 372 <= 400


def test_score_cam_forwards_are_counted_before_they_are_announced(
    tiny, synthetic, tmp_path: Path
) -> None:
    """Score-CAM runs one forward per channel that varies, known only once it has the
    activations: its first explanation is counted on the model, and the estimate, the
    parts and the report are the forwards the model really ran."""
    video, mask = synthetic
    loaded, tally = _counted(tiny)
    lines: list[str] = []
    options = EvaluateOptions(
        methods=("scorecam",), protocol=Protocol(resamples=100), progress=False
    )
    report = evaluate_video(video, mask, tmp_path / "out", loaded, options, on_stage=lines.append)
    forwards = report.manifest["evaluation"]["forwards"]
    parts = forwards["parts"]
    assert tally.clips == forwards["run"]
    assert forwards["total"] == _estimate(lines)
    assert 10 < parts["explain"] <= 1 + 48  # the call's forward and one per varying channel
    # The sanity steps' randomised layers may have a few more or fewer channels that vary
    # (measured: one fewer): the estimate is off by those, no longer by a factor of ~48.
    assert abs(forwards["total"] - tally.clips) <= 4, (forwards["total"], tally.clips)
    assert parts["Score-CAM, cubic: sanity"] == 2 * parts["explain"]  # as planned


def test_the_full_protocol_does_the_forwards_it_announces(tiny, synthetic, tmp_path: Path) -> None:
    video, mask = synthetic
    loaded, tally = _counted(tiny)
    lines: list[str] = []
    options = EvaluateOptions.full(
        methods=("cam",), protocol=Protocol(steps=4, resamples=100), progress=False
    )
    report = evaluate_video(video, mask, tmp_path / "out", loaded, options, on_stage=lines.append)
    evaluation = report.manifest["evaluation"]
    assert tally.clips == evaluation["forwards"]["total"] == _estimate(lines)
    layers = report.manifest["sanity_layers"]
    assert evaluation["sanity_steps"] == list(range(len(layers) + 1))
    parts = evaluation["forwards"]["parts"]
    assert parts["CAM, cubic: sanity"] == len(layers)  # every step but the trained one
    assert parts["CAM, cubic: frame"] == parts["random (baseline): frame"] == 2 * 3  # 4 steps
    assert len(report.manifest["tubes"]["cam/cubic"]["sanity"]) == len(layers) + 1


@pytest.mark.parametrize("skip", [(), (0, 2)], ids=["every clip", "clips 1 and 3 skipped"])
def test_the_benchmark_does_the_forwards_it_announces(
    tiny, monkeypatch: pytest.MonkeyPatch, skip: tuple[int, ...]
) -> None:
    from saliency_tubes.commands import evaluate as ev
    from saliency_tubes.metrics import benchmark_run as bench

    loaded, tally = _counted(tiny)
    monkeypatch.setattr(bench, "load_model", lambda *_a, **_k: loaded)
    config = bench.BenchmarkConfig(
        clips=3,
        chunk=2,
        methods=("cam",),
        interpolations=("cubic", "linear"),
        baselines=("uniform",),
        protocol=Protocol(steps=3, resamples=100),
    )
    lines: list[str] = []
    result = ev.benchmark(config, on_stage=lines.append, skip=skip)
    plan = bench.benchmark_forwards(config, len(result.layers), skip)
    assert tally.clips == _estimate(lines) == plan.total
    layers = len(result.layers)
    # 3 predictions + 1 trace; per clip scored: its substrate, CAM (1 + layers explanations,
    # two modes from each), 3 rows x 2 curves x (3 + 1 - 2) perturbed clips and 3 rows x 1
    # explanation-map clip (the average drop / increase in confidence)
    scored = 3 - len(skip)
    assert tally.clips == 3 + 1 + scored * (1 + (1 + layers) + 3 * 2 * 2 + 3)
    assert result.labels.size == scored
    last = "clips 2-2 of 3: CAM" if skip else "clips 3-3 of 3: CAM"
    assert any(ln.startswith(last) for ln in lines)
    if skip:  # clip 2 alone: the chunks are made of the clips not skipped
        assert [label for label, _ in plan.parts[2:]] == [
            "clips 2-2 of 3: substrates",
            "clips 2-2 of 3: CAM",
            "clips 2-2 of 3: uniform (baseline)",
        ]


def test_progress_options_are_checked() -> None:
    with pytest.raises(InputError, match="--batch"):
        EvaluateOptions(batch_size=0).check()
    with pytest.raises(InputError, match="cascade"):
        EvaluateOptions(cascade="some").check()
    quick, full = EvaluateOptions(), EvaluateOptions.full(units=("voxel",))
    assert (quick.baselines, quick.units, quick.cascade) == (
        ("uniform", "centre", "motion"),
        ("voxel", "tube"),
        "ends",
    )
    assert (full.baselines, full.units, full.cascade) == (
        ("uniform", "centre", "random", "motion"),
        ("voxel",),
        "every",
    )


def test_batch_size_does_not_change_the_scores(tiny, synthetic, tmp_path: Path) -> None:
    """One perturbed clip per forward or all at once: the same curves."""
    video, mask = synthetic
    base = dict(methods=("cam",), baselines=("centre",), units=("voxel",), progress=False)
    protocol = Protocol(steps=4, resamples=100)
    one = evaluate_video(
        video, mask, tmp_path / "a", tiny, EvaluateOptions(**base, protocol=protocol, batch_size=1)
    ).manifest["tubes"]
    many = evaluate_video(
        video, mask, tmp_path / "b", tiny, EvaluateOptions(**base, protocol=protocol)
    ).manifest["tubes"]
    for row in ("cam/cubic", "baseline/centre"):
        assert one[row]["deletion"] == pytest.approx(many[row]["deletion"], abs=1e-5)
        assert one[row]["insertion"] == pytest.approx(many[row]["insertion"], abs=1e-5)
