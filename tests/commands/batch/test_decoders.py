"""``batch --decoders N``: several threads decode for one model; the model takes whatever clips
are decoded. The rows equal the per-video path, the clips decoded ahead stay bounded, a video
that cannot be decoded is its error row only."""

from __future__ import annotations

import json
import shutil
import threading
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


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """10 synthetic clips: the demo dataset's 5, each also under a second name."""
    table = write_demo_dataset(tmp_path_factory.mktemp("dataset"), videos=5)
    found = sorted(table.parent.glob("*.mp4"))
    for path in found:
        shutil.copyfile(path, path.with_name(f"again_{path.name}"))
    return sorted(table.parent.glob("*.mp4"))


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def loaded():
    return load_model("tiny-actions")


class _Counting(GroupWorker):
    """Counts the clips decoded and not yet explained (``most``: the largest count seen)."""

    def __init__(self, worker: VideoWorker) -> None:
        super().__init__(worker)
        self.lock = threading.Lock()
        self.held = self.most = self.decoded = 0
        self.sizes: list[int] = []

    def decode(self, job):
        done = super().decode(job)
        with self.lock:
            self.held += 1
            self.decoded += 1
            self.most = max(self.most, self.held)
        return done

    def finish(self, group):
        self.sizes.append(len(group))
        with self.lock:
            self.held -= len(group)
        yield from super().finish(group)


def _serve(grouped: GroupWorker, paths: list[Path], size: int, decoders: int) -> list[dict]:
    count, groups = grouped_jobs(paths, size)
    rows: dict[int, dict] = {}
    grouped.serve(groups, rows.__setitem__, decoders, size)
    return [rows[i] for i in range(count)]


def test_three_decoders_give_each_video_what_it_getsexplained_alone(
    videos: list[Path], loaded, tmp_path: Path
) -> None:
    torch.set_num_threads(1)
    grouped = _Counting(npy_worker(tmp_path / "b", loaded))
    rows = _serve(grouped, videos, size=3, decoders=3)
    assert sum(grouped.sizes) == len(videos) and max(grouped.sizes) <= 3
    for path, row in zip(videos, rows, strict=True):
        assert row["status"] == "ok", row["error"]
        want_tube, want = explained_alone(path, tmp_path / "a" / path.stem, loaded)
        folder = tmp_path / "b" / row["output"]
        got = json.loads((folder / "manifest.json").read_text())
        assert [c["index"] for c in got["classes"]] == [c["index"] for c in want["classes"]]
        for g, w in zip(got["classes"], want["classes"], strict=True):
            assert g["score"] == pytest.approx(w["score"], abs=TOLERANCE)
        np.testing.assert_allclose(np.load(folder / "tube.npy"), want_tube, rtol=0, atol=TOLERANCE)


class _FirstForwardWaits(torch.nn.Module):
    """The model; its first forward waits until ``release`` is set (at most 60 s)."""

    def __init__(self, model: torch.nn.Module, release: threading.Event) -> None:
        super().__init__()
        self.model, self.release, self.waited = model, release, False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.waited:
            self.waited = True
            self.release.wait(timeout=60)
        return self.model(x)


def test_the_clips_decoded_ahead_stay_bounded(
    videos: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model is held in its first forward until a decoder finds the queue full (or,
    were the queue unbounded, until every video is decoded): at most batch (queue) +
    decoders (one clip each, waiting to be queued) + batch (taken by the model) clips are
    then decoded and not yet explained, not all ten."""
    import dataclasses
    import queue
    import types

    from saliency_tubes.commands.batch import groups as module

    release = threading.Event()

    class Watched(queue.Queue):
        def put(self, item, block=True, timeout=None):
            if self.full():
                release.set()
            super().put(item, block, timeout)

    monkeypatch.setattr(module, "queue", types.SimpleNamespace(Queue=Watched, Empty=queue.Empty))
    torch.set_num_threads(1)
    plain = load_model("tiny-actions")
    held = _FirstForwardWaits(plain.model, release)
    prefix = lambda name: f"model.{name}" if isinstance(name, str) else name  # noqa: E731
    model = dataclasses.replace(
        plain, model=held, layer=prefix(plain.layer), classifier=prefix(plain.classifier)
    )
    grouped = _Counting(npy_worker(tmp_path, model))
    original = grouped.decode

    def decode(job):
        done = original(job)
        if grouped.decoded == len(videos):
            release.set()
        return done

    grouped.decode = decode  # type: ignore[method-assign]
    rows = _serve(grouped, videos, size=2, decoders=2)
    assert [r["status"] for r in rows] == ["ok"] * len(videos)
    assert held.waited and release.is_set()
    assert grouped.most <= 2 + 2 + 2 < len(videos)


def test_an_undecodable_video_is_its_error_row_only(
    videos: list[Path], loaded, tmp_path: Path
) -> None:
    torch.set_num_threads(1)
    folder = tmp_path / "in"
    folder.mkdir()
    names = ["a.mp4", "b_corrupt.mp4", "c.mp4", "d.mp4", "e.mp4"]
    (folder / names[1]).write_bytes(b"\x00garbage" * 100)
    for name, src in zip([names[0], *names[2:]], videos, strict=False):
        shutil.copyfile(src, folder / name)
    grouped = GroupWorker(npy_worker(tmp_path / "b", loaded))
    rows = _serve(grouped, [folder / n for n in names], size=2, decoders=2)
    assert [r["status"] for r in rows] == ["ok", "error", "ok", "ok", "ok"]
    assert rows[1]["error"].startswith("could not read video") and "\n" not in rows[1]["error"]
    assert rows[1]["fingerprint"] == "print-1" and rows[1]["output"] is None
    for name, row in zip(names, rows, strict=True):
        if row["status"] == "ok":
            want, _ = explained_alone(folder / name, tmp_path / "a" / name, loaded)
            got = np.load(tmp_path / "b" / row["output"] / "tube.npy")
            np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE)


def test_a_batch_with_decoders_gives_the_rows_of_one_decoder(
    videos: list[Path], tmp_path: Path
) -> None:
    """Through the worker process (rows of a later group may come before an earlier one's)."""
    folder = videos[0].parent
    rows = {}
    for decoders in (1, 3):
        out = tmp_path / str(decoders)
        explain = ExplainOptions(formats=("npy",), progress=False)
        settings = BatchSettings(ModelOptions(), explain, out / "videos", threads=1)
        options = BatchOptions(batch_size=2, decoders=decoders, progress=False)
        result = batch_videos(folder, out, settings, options)
        assert (result.ran, result.failed) == (len(videos), 0)
        rows[decoders] = result.rows
    for a, b in zip(rows[1], rows[3], strict=True):
        assert a["video_id"] == b["video_id"] and a["pred"] == b["pred"]
        assert a["topk"] == b["topk"] and a["fingerprint"] == b["fingerprint"]
        assert a["score"] == pytest.approx(b["score"], abs=TOLERANCE)
        assert a["curve"] == pytest.approx(b["curve"], abs=1e-4)  # rounded to 4 places
        tube_a = np.load(tmp_path / "1" / a["output"] / "tube.npy")
        tube_b = np.load(tmp_path / "3" / b["output"] / "tube.npy")
        np.testing.assert_allclose(tube_a, tube_b, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("decoders", [0, -1, True, 1.5])
def test_bad_decoders_are_one_error(decoders: object) -> None:
    with pytest.raises(InputError, match=r"expected --decoders >= 1"):
        BatchOptions(decoders=decoders)  # type: ignore[arg-type]
