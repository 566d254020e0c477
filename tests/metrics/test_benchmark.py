"""The benchmark runner, the video evaluation and the ``evaluate`` command (small and fast)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from saliency_tubes import InputError
from saliency_tubes.cli import main
from saliency_tubes.commands import EvaluateOptions, write_benchmark
from saliency_tubes.commands import evaluate as ev
from saliency_tubes.commands.pipeline import outputs
from saliency_tubes.metrics import benchmark as bench
from saliency_tubes.metrics.benchmark import BenchmarkConfig, Protocol
from saliency_tubes.metrics.benchmark_run import run_benchmark
from saliency_tubes.synthetic import make_clip
from saliency_tubes.video import VideoWriter
from saliency_tubes.zoo import load_model

from .test_metrics import _one_thread  # noqa: F401  (autouse: one torch thread here too)

FAST = Protocol(steps=2, resamples=200)


def _strict_json(path: Path) -> dict:
    def reject(token: str) -> None:
        raise AssertionError(f"{path} holds {token}, which is not JSON")

    return json.loads(path.read_text(), parse_constant=reject)


@pytest.fixture(scope="module")
def result() -> bench.BenchmarkResult:
    config = BenchmarkConfig(
        clips=2,
        methods=("cam",),
        interpolations=("cubic", "nearest"),
        baselines=("uniform", "motion"),
        protocol=FAST,
    )
    return run_benchmark(config)


def test_benchmark_scores_every_row(result: bench.BenchmarkResult) -> None:
    assert result.rows == ["cam/cubic", "cam/nearest", "baseline/uniform", "baseline/motion"]
    assert result.layers == ["fc", "features", "layer2", "layer1", "stem"]
    assert result.accuracy == 1.0 and result.labels.shape == (2,)
    for row in result.rows:
        scores = result.per_clip[row]
        for name in ("pointing", "mass", "iou", "deletion", "insertion"):
            assert np.all((scores[name] >= 0) & (scores[name] <= 1)), (row, name)
        assert result.curves[row]["deletion"].shape == (2, 3)
        assert np.allclose(result.sanity[row][0][~np.isnan(result.sanity[row][0])], 1.0)
    assert result.fractions.tolist() == [0.0, 0.5, 1.0]
    # baselines never look at the model: rho stays 1; a uniform tube has no ranking at all
    assert np.all(result.per_clip["baseline/motion"]["sanity_all"] == 1.0)
    assert np.all(np.isnan(result.per_clip["baseline/uniform"]["sanity_all"]))
    # the uniform tube scores chance: mass = |G| / |V|
    assert np.all(result.per_clip["baseline/uniform"]["mass"] < 0.05)
    assert "n/a" in result.table() and "| CAM, nearest |" in result.table()
    assert "IoU top-\\|G\\|" in result.table()  # escaped inside Markdown cells
    versus = result.versus_table().splitlines()
    assert len(versus) == 3 and versus[2].startswith("| CAM, cubic | ")


def test_write_benchmark(result: bench.BenchmarkResult, tmp_path: Path) -> None:
    files = write_benchmark(result, tmp_path / "out")
    assert set(files) == {"deletion_insertion", "sanity", "evaluation", "table", "json"}
    record = _strict_json(tmp_path / "out" / "results.json")
    assert record["summary"]["baseline/uniform"]["sanity_all"]["mean"] is None
    assert record["data"]["seed"] == bench.HELD_OUT_SEED
    assert (tmp_path / "out" / "evaluation.png").read_bytes()[:4] == b"\x89PNG"
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


def test_config_errors() -> None:
    with pytest.raises(InputError, match="methods"):
        BenchmarkConfig(methods=("loco",)).check()
    with pytest.raises(InputError, match="substrate"):
        BenchmarkConfig(protocol=Protocol(substrate="noise")).check()
    assert Protocol().grid((16, 96, 96)) == (16, 24, 24)


# --------------------------------------------------------------------------- the command


def _run(*args: str) -> tuple[int, str, str]:
    out = CliRunner().invoke(main, ["evaluate", *args])
    return out.exit_code, out.stdout, out.stderr


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A generated 20-frame 64x80 clip, its target's mask (.npy) and boxes (.json)."""
    root = tmp_path_factory.mktemp("video")
    clip = make_clip(seed=12_345, frames=20, size=(64, 80))
    path = root / "clip.mp4"
    with VideoWriter(path, fps=10, crf=10) as writer:
        for image in clip.video:
            writer.write(np.ascontiguousarray(image))
    mask = root / "mask.npy"
    np.save(mask, clip.mask)
    boxes = {}
    for t, m in enumerate(clip.mask):
        ys, xs = np.nonzero(m)
        boxes[str(t)] = [[int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]]
    box_path = root / "boxes.json"
    box_path.write_text(json.dumps({"boxes": boxes}))
    return path, mask, box_path


FAST_ARGS = ("--method", "cam", "--baselines", "motion", "--steps", "2", "--quiet")


def test_evaluate_video_with_mask_and_boxes(video: tuple[Path, Path, Path], tmp_path: Path) -> None:
    path, mask, boxes = video
    code, stdout, stderr = _run(
        str(path), "--gt", str(mask), "--out", str(tmp_path / "m"), *FAST_ARGS
    )
    assert code == 0, stderr
    report = _strict_json(tmp_path / "m" / "report.json")
    assert set(report["tubes"]) == {"cam/cubic", "baseline/motion"}
    cam = report["tubes"]["cam/cubic"]
    # the quick protocol: units voxel and tube, the sanity cascade at its two ends
    assert {"deletion_tube", "insertion_tube", "pointing", "mass"} <= set(cam)
    assert "deletion_frame" not in cam
    assert report["evaluation"]["sanity_steps"] == [0, 1, 5]
    assert cam["sanity"][0] == 1.0 and len(cam["sanity"]) == 3
    assert report["ground_truth"]["kind"] == "mask" and report["clip"]["grid"] == [16, 96, 96]
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "deletion_insertion.png",
        "report.json",
        "sanity.png",
    ]
    assert "cam/cubic" in stdout
    # The table says its units, steps, substrate and sanity steps (issue 27 item 4).
    assert "steps, blur substrate, units voxel (cells of 1 frame x 4 x 4 px), tube" in stdout
    assert "step 1: top 1 (fc) random; step 5: all 5 layers random" in stdout
    assert "deletion tube ↓" in stdout and "sanity ρ step 5 ↓" in stdout
    code, _, stderr = _run(
        str(path), "--gt", str(boxes), "--out", str(tmp_path / "b"), "--units", "voxel", *FAST_ARGS
    )
    assert code == 0, stderr
    assert _strict_json(tmp_path / "b" / "report.json")["ground_truth"]["kind"] == "boxes"
    # the full protocol: every unit, every step of the cascade (--baselines still overrides)
    code, _, stderr = _run(
        str(path), "--gt", str(mask), "--out", str(tmp_path / "f"), "--protocol", "full", *FAST_ARGS
    )
    assert code == 0, stderr
    full = _strict_json(tmp_path / "f" / "report.json")
    assert set(full["tubes"]) == {"cam/cubic", "baseline/motion"}
    assert full["evaluation"]["units"] == ["voxel", "frame", "tube"]
    assert full["evaluation"]["sanity_steps"] == [0, 1, 2, 3, 4, 5]
    whole = full["tubes"]["cam/cubic"]
    assert len(whole["sanity"]) == 6 and "deletion_frame" in whole
    # the two steps both protocols explain agree, and so do the voxel curves
    assert whole["sanity"][1] == pytest.approx(cam["sanity"][1], abs=1e-9)
    assert whole["sanity"][5] == pytest.approx(cam["sanity"][2], abs=1e-9)
    assert whole["deletion"] == pytest.approx(cam["deletion"], abs=1e-6)


def test_evaluate_benchmark_command(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    code, stdout, stderr = _run(
        "--clips",
        "1",
        "--interpolation",
        "linear",
        "--out",
        str(out),
        *FAST_ARGS,
    )
    assert code == 0, stderr
    assert "| CAM, linear |" in stdout and "| motion (baseline) |" in stdout
    assert (out / "results.md").is_file() and (out / "sanity.png").is_file()


@pytest.mark.parametrize(
    ("gt", "match"),
    [
        ("missing.npy", "does not exist"),
        ("short.npy", r"expected a mask of shape \(frames, height, width\) = \(20, 64, 80\)"),
        ("late.json", r"frame indices in \[0, 20\)"),
    ],
)
def test_bad_ground_truth_leaves_nothing(
    video: tuple[Path, Path, Path], tmp_path: Path, gt: str, match: str
) -> None:
    path = video[0]
    np.save(tmp_path / "short.npy", np.zeros((19, 64, 80), dtype=bool))
    (tmp_path / "late.json").write_text(json.dumps({"boxes": {"25": [[0, 0, 4, 4]]}}))
    out = tmp_path / "out"
    code, stdout, stderr = _run(
        str(path), "--gt", str(tmp_path / gt), "--out", str(out), *FAST_ARGS
    )
    assert code == 2 and stdout == ""
    assert len(stderr.strip().splitlines()) == 1 and stderr.startswith("error: ")
    assert re.search(match, stderr), stderr
    assert not out.exists()


def test_usage_and_video_errors(video: tuple[Path, Path, Path], tmp_path: Path) -> None:
    path, mask, _ = video
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    cases = [
        ((str(path), "--out", str(tmp_path / "o")), "expected --gt"),
        (("--gt", str(mask), "--out", str(tmp_path / "o")), "expected VIDEO"),
        ((str(empty), "--gt", str(mask), "--out", str(tmp_path / "o")), "empty.mp4"),
        ((str(path), "--gt", str(mask), "--clips", "3", "--out", str(tmp_path / "o")), "--clips"),
        (("--protocol", "full", "--out", str(tmp_path / "o")), "--protocol with VIDEO only"),
        (("--units", "voxel", "--out", str(tmp_path / "o")), "--units with VIDEO only"),
        ((str(path), "--gt", str(mask), "--batch", "0", "--out", str(tmp_path / "o")), "--batch"),
    ]
    for args, match in cases:
        code, _, stderr = _run(*args, "--quiet")
        assert code == 2 and match in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert not (tmp_path / "o").exists()


def test_failure_midway_removes_written_files(
    video: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plots are written, then the report fails: the plots go, older files stay."""
    path, mask, _ = video
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")

    def broken(*_args: object, **_kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(outputs, "atomic_write_json", broken)
    with pytest.raises(InputError, match="but got disk full"):
        ev.evaluate_video(
            path,
            mask,
            out,
            load_model("tiny-actions"),
            EvaluateOptions(baselines=(), units=("voxel",), protocol=FAST),
        )
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_the_help_states_the_quick_defaults() -> None:
    """The help text (written without importing torch) says what EvaluateOptions defaults to."""
    out = CliRunner().invoke(main, ["evaluate", "--help"], terminal_width=200).stdout
    quick = EvaluateOptions()
    assert f"baselines {','.join(quick.baselines)}, units {','.join(quick.units)}" in " ".join(
        out.split()
    )
    assert quick.methods is None  # the model's defaults: the CAMs, RISE on a plain callable
    text = " ".join(out.split())
    assert (
        f"VIDEO: {','.join(EvaluateOptions.NETWORK_METHODS)} on a network, the callable's auto (rise) on a plain callable"
        in text
    )
    assert f"[benchmark: {','.join(bench.BenchmarkConfig().methods)};" in text
    assert EvaluateOptions.full().baselines == bench.BenchmarkConfig().baselines


def test_a_run_skipping_clips_scores_the_others_as_a_full_run_does() -> None:
    """Resuming (``skip`` + ``on_chunk``) gives each clip the numbers a full run gives it, and
    ``clip_record`` / ``from_records`` carry a clip through JSON unchanged."""
    config = BenchmarkConfig(
        clips=3,
        chunk=1,
        methods=("cam",),
        interpolations=("cubic",),
        baselines=("motion",),
        protocol=FAST,
    )
    calls: list[list[int]] = []
    full = run_benchmark(config, on_chunk=lambda _r, idx: calls.append(list(idx)))
    assert calls == [[0], [1], [2]]
    seen: list[tuple[list[int], dict]] = []

    def keep(result: bench.BenchmarkResult, idx: list[int]) -> None:
        seen.append((list(idx), json.loads(json.dumps(result.clip_record(idx[0])))))

    part = run_benchmark(config, skip={1}, on_chunk=keep)
    assert [idx for idx, _ in seen] == [[0], [2]]
    assert part.labels.tolist() == full.labels[[0, 2]].tolist()
    for row in full.rows:
        for m in bench.METRICS:
            assert np.array_equal(
                part.per_clip[row][m], full.per_clip[row][m][[0, 2]], equal_nan=True
            )
        assert np.array_equal(part.curves[row]["deletion"], full.curves[row]["deletion"][[0, 2]])
        assert np.array_equal(part.sanity[row], full.sanity[row][:, [0, 2]], equal_nan=True)
    # the journal's way: clip 1 from the full run, clips 0 and 2 from the resumed one
    records = [seen[0][1], json.loads(json.dumps(full.clip_record(1))), seen[1][1]]
    rebuilt = bench.BenchmarkResult.from_records(config, full.layers, full.fractions, records)
    assert rebuilt.table() == full.table() and rebuilt.versus_table() == full.versus_table()
    assert rebuilt.to_json()["summary"] == full.to_json()["summary"]
    assert full.subset([2, 0]).labels.tolist() == full.labels[[2, 0]].tolist()
