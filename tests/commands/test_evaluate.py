"""``evaluate_video`` called directly: its report's scores are the metrics' own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from saliency_tubes.commands import EvaluateOptions, evaluate_video
from saliency_tubes.metrics import baseline_fn, energy_inside, pointing_game
from saliency_tubes.metrics.benchmark import Protocol
from saliency_tubes.synthetic import make_clip
from saliency_tubes.video import VideoWriter


def test_evaluate_video_scores_match_the_metrics(tmp_path: Path, tiny) -> None:
    clip = make_clip(seed=1001, frames=16, size=(96, 96))  # the model's own size: no resize
    video = tmp_path / "clip.mp4"
    with VideoWriter(video, fps=12, crf=0) as writer:
        writer.write_frames(clip.video)
    np.save(tmp_path / "mask.npy", clip.mask)
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

    clip = make_clip(seed=1001, frames=16, size=(96, 96))
    video = tmp_path / "clip.mp4"
    with VideoWriter(video, fps=12, crf=0) as writer:
        writer.write_frames(clip.video)
    np.save(tmp_path / "mask.npy", clip.mask)
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
