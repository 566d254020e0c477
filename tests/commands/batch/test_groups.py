"""``batch --batch-size``: several videos' clips in one forward give each video what it gets
alone; forwards counted per group; one bad video of a group; resume across batch sizes."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from _grouping import TOLERANCE, explained_alone, grouped_jobs, npy_worker
from saliency_tubes.commands import (
    BatchOptions,
    BatchSettings,
    ExplainOptions,
    InputError,
    ModelOptions,
    batch_videos,
    load_model,
    write_demo_dataset,
)
from saliency_tubes.commands.batch.groups import GroupWorker
from saliency_tubes.commands.batch.worker import VideoWorker
from saliency_tubes.commands.pipeline.grouped import GROUPED_METHODS


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5 labelled synthetic clips (32 frames, 128x160) in one folder."""
    table = write_demo_dataset(tmp_path_factory.mktemp("dataset"), videos=5)
    return table.parent


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    """The workers made in-process here set torch's threads: put them back for later tests."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-actions")


def _serve(worker: VideoWorker, paths: list[Path], size: int) -> tuple[GroupWorker, list[dict]]:
    """Every video through a GroupWorker in groups of ``size``; the rows in input order."""
    count, groups = grouped_jobs(paths, size)
    grouped = GroupWorker(worker)
    rows: dict[int, dict] = {}
    grouped.serve(groups, rows.__setitem__)
    return grouped, [rows[i] for i in range(count)]


def _sorted_videos(folder: Path) -> list[Path]:
    found = sorted(folder.glob("*.mp4"))
    assert len(found) == 5
    return found


@pytest.mark.parametrize("method", GROUPED_METHODS)
def test_a_batch_of_videos_gives_each_what_it_getsexplained_alone(
    method: str, videos: Path, tiny, tmp_path: Path
) -> None:
    torch.set_num_threads(1)  # the same threads alone and batched: only batching differs
    paths = _sorted_videos(videos)[:4]
    worker = npy_worker(tmp_path / "b", tiny, method=method, classes="top2")
    grouped, rows = _serve(worker, paths, size=3)  # groups of 3 and 1
    assert grouped.alone is None and grouped.forwards == 2
    for path, row in zip(paths, rows, strict=True):
        assert row["status"] == "ok", row["error"]
        want_tube, want = explained_alone(
            path, tmp_path / "a" / path.stem, tiny, method=method, classes="top2"
        )
        folder = tmp_path / "b" / row["output"]
        got = json.loads((folder / "manifest.json").read_text())
        assert [c["index"] for c in got["classes"]] == [c["index"] for c in want["classes"]]
        for g, w in zip(got["classes"], want["classes"], strict=True):
            assert g["score"] == pytest.approx(w["score"], abs=TOLERANCE)
        tube = np.load(folder / "tube.npy")
        assert tube.shape == want_tube.shape == (2, 16, 96, 96)
        np.testing.assert_allclose(tube, want_tube, rtol=0, atol=TOLERANCE)
        assert row["method"] == method and row["pred"] == want["classes"][0]["index"]


def test_a_group_of_one_is_byte_identical_to_explain(videos: Path, tiny, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    paths = _sorted_videos(videos)[:2]
    worker = npy_worker(tmp_path / "b", tiny)
    _, rows = _serve(worker, paths, size=1)
    for path, row in zip(paths, rows, strict=True):
        want_tube, want = explained_alone(path, tmp_path / "a" / path.stem, tiny)
        assert np.array_equal(np.load(tmp_path / "b" / row["output"] / "tube.npy"), want_tube)
        got = json.loads((tmp_path / "b" / row["output"] / "manifest.json").read_text())
        assert got["classes"] == want["classes"] and got["tubes"] == want["tubes"]


class _Counted(torch.nn.Module):
    """The model, counting its forwards and their batch sizes."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(int(x.shape[0]))
        return self.model(x)


@pytest.mark.parametrize(("count", "size"), [(5, 2), (5, 5), (4, 1), (3, 4)])
def test_n_videos_in_groups_of_b_make_ceil_n_over_b_forwards(
    count: int, size: int, videos: Path, tmp_path: Path
) -> None:
    loaded = load_model("tiny-actions")
    counted = _Counted(loaded.model)
    layer = f"model.{loaded.layer}" if isinstance(loaded.layer, str) else loaded.layer
    head = f"model.{loaded.classifier}" if isinstance(loaded.classifier, str) else loaded.classifier
    loaded = dataclasses.replace(loaded, model=counted, layer=layer, classifier=head)
    worker = npy_worker(tmp_path, loaded)
    grouped, rows = _serve(worker, _sorted_videos(videos)[:count], size)
    assert [r["status"] for r in rows] == ["ok"] * count
    want = [min(size, count - i) for i in range(0, count, size)]
    assert counted.sizes == want  # every forward of the model, with its batch size
    assert grouped.forwards == math.ceil(count / size)


def test_an_unreadable_video_in_a_group_is_its_error_row_only(
    videos: Path, tiny, tmp_path: Path
) -> None:
    torch.set_num_threads(1)
    folder = tmp_path / "in"
    folder.mkdir()
    good = _sorted_videos(videos)[:3]
    names = ["a.mp4", "b_corrupt.mp4", "c.mp4", "d.mp4"]
    (folder / names[1]).write_bytes(b"\x00garbage" * 100)
    for name, src in zip([names[0], *names[2:]], good, strict=True):
        (folder / name).write_bytes(src.read_bytes())
    worker = npy_worker(tmp_path / "b", tiny)
    grouped, rows = _serve(worker, [folder / n for n in names], size=4)
    assert [r["status"] for r in rows] == ["ok", "error", "ok", "ok"]
    assert "\n" not in rows[1]["error"] and rows[1]["fingerprint"] == "print-1"
    assert not (tmp_path / "b" / "videos" / rows[1]["video_id"]).exists()
    assert grouped.forwards == 1  # the three good ones in one forward
    for name, row in zip(names, rows, strict=True):
        if row["status"] == "ok":
            want, _ = explained_alone(folder / name, tmp_path / "a" / name, tiny)
            got = np.load(tmp_path / "b" / row["output"] / "tube.npy")
            np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE)


def test_windows_and_many_forward_methods_are_explained_one_at_a_time(
    videos: Path, tiny, tmp_path: Path
) -> None:
    torch.set_num_threads(1)
    paths = _sorted_videos(videos)[:2]
    windows = npy_worker(tmp_path / "w", tiny, windows=(8, 8))
    grouped, rows = _serve(windows, paths, size=2)
    assert grouped.alone is not None and "--windows" in grouped.alone
    assert grouped.forwards == 0 and [r["status"] for r in rows] == ["ok", "ok"]
    want, _ = explained_alone(paths[0], tmp_path / "a", tiny, windows=(8, 8))
    assert np.array_equal(np.load(tmp_path / "w" / rows[0]["output"] / "tube.npy"), want)
    occlusion = GroupWorker(npy_worker(tmp_path / "o", tiny, method="occlusion"))
    assert occlusion.alone is not None and "occlusion" in occlusion.alone


def test_another_batch_size_redoes_nothing_and_force_redoes_all(
    videos: Path, tmp_path: Path
) -> None:
    out = tmp_path / "batch"
    settings = BatchSettings(
        ModelOptions(), ExplainOptions(formats=("npy",), progress=False), out / "videos"
    )
    first = batch_videos(videos, out, settings, BatchOptions(batch_size=2, progress=False))
    assert (first.ran, first.skipped, first.failed) == (5, 0, 0)
    said: list[str] = []
    again = batch_videos(
        videos, out, settings, BatchOptions(batch_size=3, progress=False), on_stage=said.append
    )
    assert (again.ran, again.skipped) == (0, 5)
    assert [r["fingerprint"] for r in again.rows] == [r["fingerprint"] for r in first.rows]
    forced = batch_videos(
        videos, out, settings, BatchOptions(batch_size=3, force=True, progress=False)
    )
    assert (forced.ran, forced.skipped, forced.failed) == (5, 0, 0)
    for a, b in zip(first.rows, forced.rows, strict=True):
        assert a["pred"] == b["pred"] and a["score"] == pytest.approx(b["score"], abs=TOLERANCE)


@pytest.mark.parametrize("size", [0, -1, True, 2.5])
def test_a_bad_batch_size_is_one_error(size: object) -> None:
    """Refused where the options are made (nothing can have been written yet)."""
    with pytest.raises(InputError, match="expected --batch-size >= 1"):
        BatchOptions(batch_size=size)  # type: ignore[arg-type]


@pytest.mark.parametrize("threads", [0, -2, True, 1.5])
def test_bad_threads_are_one_error_where_the_settings_are_made(threads: object) -> None:
    with pytest.raises(InputError, match="expected --threads >= 1"):
        BatchSettings(ModelOptions(), ExplainOptions(progress=False), Path("v"), threads)  # type: ignore[arg-type]


def _one_clip_only(x: tuple[torch.Tensor, ...]) -> None:
    """A forward pre-hook that refuses batches of more than one clip (an ``assert``, as a
    user's model may have)."""
    assert x[0].shape[0] == 1, "this model takes one clip at a time"


def test_a_group_whose_forward_fails_is_explained_one_video_at_a_time(
    videos: Path, tiny, tmp_path: Path
) -> None:
    """Any exception of the group's forward (here an AssertionError) falls back to each video
    alone: every row ok, no group forward counted, the tubes those of the videos alone."""
    model = copy.deepcopy(tiny.model)
    model.register_forward_pre_hook(lambda _m, x: _one_clip_only(x))
    one = dataclasses.replace(tiny, model=model)
    worker = npy_worker(tmp_path / "out", one)
    paths = _sorted_videos(videos)[:3]
    grouped, rows = _serve(worker, paths, 3)
    assert [r["status"] for r in rows] == ["ok", "ok", "ok"]
    assert grouped.forwards == 0
    for path, row in zip(paths, rows, strict=True):
        tube, _ = explained_alone(path, tmp_path / "alone" / path.stem, one)
        made = np.load(tmp_path / "out" / row["output"] / "tube.npy")
        assert np.array_equal(made, tube)


def test_the_batch_says_why_its_videos_go_one_at_a_time(videos: Path, tmp_path: Path) -> None:
    out = tmp_path / "batch"
    explain = ExplainOptions(formats=("npy",), windows=(8, 8), progress=False)
    said: list[str] = []
    options = BatchOptions(batch_size=2, limit=2, progress=False)
    result = batch_videos(
        videos, out, BatchSettings(ModelOptions(), explain, out / "videos"), options,
        on_stage=said.append,
    )  # fmt: skip
    assert (result.ran, result.failed) == (2, 0)
    notes = [line for line in said if line.startswith("--batch-size:")]
    assert notes == [
        "--batch-size: the videos are explained one at a time: --windows gives each video "
        "several clips, explained per video"
    ]
