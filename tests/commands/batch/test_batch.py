"""``batch``: one row per video, exactly what explain writes, resume, faults isolated."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from saliency_tubes.commands import (
    BatchOptions,
    BatchSettings,
    ExplainOptions,
    InputError,
    ModelOptions,
    batch_videos,
    explain_video,
    load_model,
    merge_batches,
    write_demo_dataset,
)
from saliency_tubes.commands.batch import local as pool
from saliency_tubes.commands.batch.inputs import in_shard, read_inputs, video_id
from saliency_tubes.commands.batch.records import read_journal
from saliency_tubes.metrics.groundtruth import load_ground_truth
from saliency_tubes.metrics.localisation import localisation
from saliency_tubes.metrics.protocol import Protocol

ROOT = Path(__file__).resolve().parents[3]
OPTIONS = ExplainOptions(formats=("npy", "plot"), progress=False)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 labelled synthetic clips with masks, listed in labels.csv."""
    return write_demo_dataset(tmp_path_factory.mktemp("dataset"), videos=4)


def _settings(out: Path, explain: ExplainOptions = OPTIONS, **model) -> BatchSettings:
    return BatchSettings(ModelOptions(**model), explain, out / "videos")


def _stable(manifest: dict) -> dict:
    return {k: v for k, v in manifest.items() if k not in ("seconds",)}


# A batch worker runs torch on its share of the cores (one thread here), a direct explain on
# all of them: a convolution summed in another order differs in the last bits of float32
# (3.6e-7 measured on an Intel Xeon, 0 on others). Tubes are in [0, 1] and scores are
# probabilities, so 1e-5 is far below anything a reader or a test of meaning could see.
FLOAT_TOLERANCE = 1e-5


def _same_up_to_floats(got: object, want: object, where: str = "manifest") -> None:
    """``got == want`` with every float compared to :data:`FLOAT_TOLERANCE`."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), where
        for key in want:
            _same_up_to_floats(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (a, b) in enumerate(zip(got, want, strict=True)):
            _same_up_to_floats(a, b, f"{where}[{i}]")
    elif isinstance(want, float) and not isinstance(got, bool):
        assert got == pytest.approx(want, rel=FLOAT_TOLERANCE, abs=FLOAT_TOLERANCE), where
    else:
        assert got == want, where


def test_the_float_comparison_fails_on_a_real_difference() -> None:
    _same_up_to_floats({"a": [1.0, {"b": 0.5}]}, {"a": [1.0, {"b": 0.5 + 1e-7}]})
    for wrong in ({"a": [1.0, {"b": 0.51}]}, {"a": [1.0, {"c": 0.5}]}, {"a": [1.0]}):
        with pytest.raises(AssertionError):
            _same_up_to_floats(wrong, {"a": [1.0, {"b": 0.5}]})
    with pytest.raises(AssertionError):
        _same_up_to_floats({"a": "x"}, {"a": "y"})


def test_every_video_gets_what_explain_writes_and_a_row(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "batch"
    result = batch_videos(dataset, out, _settings(out), BatchOptions(workers=2, progress=False))
    assert (result.ran, result.skipped, result.failed) == (4, 0, 0)
    table = pq.read_table(out / "index.parquet").to_pylist()
    assert [r["video_id"] for r in table] == [r["video_id"] for r in result.rows]
    labels = {r["path"]: r["label"] for r in _csv(dataset)}
    labels_gt = {r["path"]: r["gt"] for r in _csv(dataset)}
    tiny = load_model("tiny-actions")
    for row in table:
        # The folder holds what explain writes for the video, the same tubes.
        alone = explain_video(row["path"], tmp_path / "alone" / row["video_id"], tiny, OPTIONS)
        folder = out / row["output"]
        written = json.loads((folder / "manifest.json").read_text())
        _same_up_to_floats(_stable(written), _stable(json.loads(json.dumps(alone.manifest))))
        np.testing.assert_allclose(
            np.load(folder / "tube.npy"), np.load(alone.files["npy"][0]), rtol=0,
            atol=FLOAT_TOLERANCE,
        )  # fmt: skip
        # The row is the manifest's numbers.
        top = written["classes"][0]
        assert row["status"] == "ok" and row["error"] is None
        assert (row["pred"], row["pred_name"]) == (top["index"], top["name"])
        assert row["score"] == pytest.approx(top["score"], abs=1e-6)
        assert row["label"] == labels[Path(row["path"]).name]
        assert row["correct"] == (row["pred_name"] == row["label"])
        assert row["random_weights"] is False and row["frames"] == 32
        # Localisation: the top-1 tube against the mask on the clip grid, as evaluate scores.
        gt = dataset.parent / labels_gt[Path(row["path"]).name]
        truth = load_ground_truth(gt, 32, (128, 160))
        indices = np.asarray(written["clips"][0]["frame_indices"])
        mask = truth.on_clip(indices, tiny.preset.preprocess())
        protocol = Protocol()
        want = localisation(
            np.load(folder / "tube.npy")[0],
            mask,
            tolerance_frames=protocol.tolerance_frames,
            tolerance_px=protocol.tolerance_px,
        )
        for key in ("pointing", "mass", "iou"):
            assert row[key] == pytest.approx(want[key], abs=1e-9)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ok"] == 4 and summary["failed"] == 0
    assert summary["accuracy"] == pytest.approx(np.mean([r["correct"] for r in table]))
    assert (out / "summary.md").read_text().startswith("# Batch summary")


def _csv(table: Path) -> list[dict]:
    import csv

    with table.open() as fh:
        return list(csv.DictReader(fh))


def test_a_rerun_skips_what_is_done_and_a_changed_option_redoes_it(
    dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "batch"
    first = batch_videos(dataset, out, _settings(out), BatchOptions(progress=False))
    again = batch_videos(dataset, out, _settings(out), BatchOptions(progress=False))
    assert (again.ran, again.skipped) == (0, 4)
    assert [r["fingerprint"] for r in again.rows] == [r["fingerprint"] for r in first.rows]
    changed = ExplainOptions(formats=("npy",), colormap="turbo", progress=False)
    redo = batch_videos(dataset, out, _settings(out, changed), BatchOptions(progress=False))
    assert (redo.ran, redo.skipped) == (4, 0)
    forced = batch_videos(
        dataset, out, _settings(out, changed), BatchOptions(force=True, limit=2, progress=False)
    )
    assert (forced.ran, forced.skipped) == (2, 0) and len(forced.rows) == 2
    # A folder whose outputs were deleted is redone even with the same fingerprint.
    gone = out / redo.rows[0]["output"] / "manifest.json"
    gone.unlink()
    healed = batch_videos(dataset, out, _settings(out, changed), BatchOptions(progress=False))
    assert (healed.ran, healed.skipped) == (1, 3)


def test_bad_videos_are_error_rows_and_the_cli_exits_1(dataset: Path, tmp_path: Path) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    good = dataset.parent / _csv(dataset)[0]["path"]
    (folder / "good.mp4").write_bytes(good.read_bytes())
    (folder / "corrupt.mp4").write_bytes(b"\x00garbage" * 100)
    (folder / "empty.avi").write_bytes(b"")
    out = tmp_path / "batch"
    cmd = [sys.executable, "-m", "saliency_tubes.cli", "batch", str(folder), "--out", str(out)]
    proc = subprocess.run([*cmd, "--format", "npy", "--quiet"], capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("2 of 3 videos failed") and "index.parquet" in last
    rows = {Path(r["path"]).name: r for r in pq.read_table(out / "index.parquet").to_pylist()}
    assert rows["good.mp4"]["status"] == "ok"
    for name in ("corrupt.mp4", "empty.avi"):
        assert rows[name]["status"] == "error" and "\n" not in rows[name]["error"]
        assert not (out / "videos" / rows[name]["video_id"]).exists()  # nothing half-written
    # Fixed, the failed ones are retried and the done one skipped.
    (folder / "corrupt.mp4").unlink()
    (folder / "empty.avi").unlink()
    proc = subprocess.run([*cmd, "--format", "npy", "--quiet"], capture_output=True, text=True)
    assert proc.returncode == 0 and "0 explained now, 1 done before" in proc.stdout


def test_a_worker_that_never_loads_the_model_is_one_error(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "tests"))  # the factory, for the workers too
    monkeypatch.setattr(pool, "START_LIMIT", 3.0)
    out = tmp_path / "batch"
    settings = _settings(out, name="_batch_models:loading_forever")
    started = time.monotonic()
    with pytest.raises(InputError, match="expected batch workers to load the model within 3 s"):
        batch_videos(dataset, out, settings, BatchOptions(workers=2, progress=False))
    assert time.monotonic() - started < 60
    assert not (out / "videos").exists() or not any((out / "videos").iterdir())


def test_a_worker_stuck_loading_is_stopped_and_the_others_go_on(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "tests"))
    monkeypatch.setenv("SALIENCY_TUBES_TEST_MARKER", str(tmp_path / "marker"))
    monkeypatch.setattr(pool, "START_LIMIT", 120.0)  # the batch needs no limit to pass
    out = tmp_path / "batch"
    settings = _settings(
        out, ExplainOptions(formats=("npy",), progress=False),
        name="_batch_models:first_one_loading_forever",
    )  # fmt: skip
    result = batch_videos(dataset, out, settings, BatchOptions(workers=2, progress=False))
    assert (tmp_path / "marker").exists()  # one worker did hang
    assert [r["status"] for r in result.rows] == ["ok"] * 4  # the other did every video


@pytest.mark.slow
def test_a_hung_video_times_out_and_a_crashed_worker_is_replaced(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "tests"))  # the factories, for the workers too
    # The crash needs no --timeout (a loaded machine may take seconds to decode a video before
    # the forward that crashes: a timeout there would win the race); the hang gets one.
    for factory, timeout, message in (
        ("hanging", 2.0, "timed out after 2 s"),
        ("crashing", None, "exit code 3"),
    ):
        out = tmp_path / factory
        settings = _settings(
            out, ExplainOptions(formats=("npy",), progress=False), name=f"_batch_models:{factory}"
        )
        options = BatchOptions(limit=2, timeout=timeout, progress=False)
        result = batch_videos(dataset, out, settings, options)
        assert [r["status"] for r in result.rows] == ["error", "error"]
        assert all(message in r["error"] for r in result.rows), result.rows[0]["error"]
        assert not list(out.rglob(".saliency-tubes-run-*"))  # the killed run's staging: gone


def test_a_model_that_cannot_load_is_one_error_before_any_video(
    dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "batch"
    settings = _settings(out, weights=str(tmp_path / "missing.pth"))
    with pytest.raises(InputError, match="model could not be loaded"):
        batch_videos(dataset, out, settings, BatchOptions(progress=False))


@pytest.mark.slow
def test_ctrl_c_keeps_what_finished_and_a_rerun_does_each_video_once(
    dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "batch"
    cmd = [
        sys.executable, "-m", "saliency_tubes.cli", "batch", str(dataset), "--out", str(out),
        "--format", "mp4", "--quiet",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    journal = out / ".batch" / "journal.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(read_journal(journal)) < 1:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "interrupted"
    done = pq.read_table(out / "index.parquet").to_pylist()
    assert 1 <= len(done) < 4 and all(r["status"] == "ok" for r in done)
    assert not list(out.rglob(".saliency-tubes-run-*"))  # no half-written folder
    finished = subprocess.run(cmd, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    rows = pq.read_table(out / "index.parquet").to_pylist()
    assert sorted(r["video_id"] for r in rows) == sorted(i.video_id for i in read_inputs(dataset))
    assert f"{4 - len(done)} explained now, {len(done)} done before" in finished.stdout


def test_shards_merge_into_the_index_of_one_run(dataset: Path, tmp_path: Path) -> None:
    whole = batch_videos(
        dataset, tmp_path / "whole", _settings(tmp_path / "whole"), BatchOptions(progress=False)
    )
    out = tmp_path / "sharded"
    parts = [
        batch_videos(dataset, out, _settings(out), BatchOptions(shard=(i, 2), progress=False))
        for i in (1, 2)
    ]
    assert sum(len(p.rows) for p in parts) == 4
    assert (out / "index.shard-1-of-2.parquet").is_file()
    merged = merge_batches([out], out)
    keep = lambda r: {k: v for k, v in r.items() if k not in ("seconds",)}  # noqa: E731
    # The whole run explains its 4 videos in one forward, the shards theirs in groups of 2:
    # the same numbers up to the float order of a batched convolution (--batch-size).
    _same_up_to_floats(
        [keep(r) for r in merged.rows],
        sorted((keep(r) for r in whole.rows), key=lambda r: r["video_id"]),
        "rows",
    )
    assert merged.summary["ok"] == 4


def test_inputs_from_folders_lists_and_tables(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/x.mp4", "a/b/y.avi", "a/.hidden/z.mp4", "a/notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    folder = read_inputs(tmp_path / "a")
    assert [i.path.name for i in folder] == ["y.avi", "x.mp4"]  # sorted paths, hidden skipped
    assert folder[1].video_id == video_id("x.mp4") and video_id("x.mp4").startswith("x.mp4-")
    assert video_id("b/y.avi") != video_id("b_y.avi")  # the hash keeps them apart
    (tmp_path / "list.txt").write_text("# clips\na/x.mp4\n\n a/b/y.avi \n")
    assert [i.path for i in read_inputs(tmp_path / "list.txt")] == [
        (tmp_path / "a/x.mp4").resolve(),
        (tmp_path / "a/b/y.avi").resolve(),
    ]
    (tmp_path / "t.jsonl").write_text('{"path": "a/x.mp4", "label": 3, "gt": "m.npy"}\n')
    (item,) = read_inputs(tmp_path / "t.jsonl")
    assert (item.label, item.gt) == ("3", (tmp_path / "m.npy").resolve())
    import pyarrow as pa

    pq.write_table(pa.table({"path": ["a/x.mp4"], "label": ["left"]}), tmp_path / "t.parquet")
    assert read_inputs(tmp_path / "t.parquet")[0].label == "left"
    (tmp_path / "bad.csv").write_text("video,label\na/x.mp4,1\n")
    with pytest.raises(InputError, match="expected a 'path' column"):
        read_inputs(tmp_path / "bad.csv")
    with pytest.raises(InputError, match="does not exist"):
        read_inputs(tmp_path / "nothing")
    ids = [f"v{i}" for i in range(200)]
    shards = [[v for v in ids if in_shard(v, (i, 3))] for i in (1, 2, 3)]
    assert sorted(sum(shards, [])) == sorted(ids) and min(map(len, shards)) > 40


def test_an_interrupted_forced_rerun_keeps_the_earlier_rows(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from saliency_tubes.commands.batch import run as batch_module
    from saliency_tubes.commands.batch.worker import error_row

    out = tmp_path / "batch"
    first = batch_videos(dataset, out, _settings(out), BatchOptions(progress=False))

    def one_then_interrupt(settings, todo, workers, timeout, finished, *rest) -> None:
        item, fingerprint = todo[0]
        finished(error_row(item, "a new failure", fingerprint))
        raise KeyboardInterrupt

    monkeypatch.setattr(batch_module, "run_local", one_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        batch_videos(dataset, out, _settings(out), BatchOptions(force=True, progress=False))
    rows = pq.read_table(out / "index.parquet").to_pylist()
    assert [r["video_id"] for r in rows] == [r["video_id"] for r in first.rows]
    # The redone video failed with the same fingerprint while its earlier outputs stayed:
    # its ok row stands (issue 28: an error row never replaces a good row of the same
    # fingerprint); the journal records the failure all the same.
    assert rows == [{**r, "seconds": rows[k]["seconds"]} for k, r in enumerate(first.rows)]
    journal = (out / ".batch" / "journal.jsonl").read_text().splitlines()
    assert json.loads(journal[-1])["error"] == "a new failure"
    assert [r["status"] for r in rows] == ["ok"] * 4  # the others: not redone yet


def test_a_folder_input_leaves_out_the_batch_and_tables_may_start_with_a_bom(
    tmp_path: Path,
) -> None:
    (tmp_path / "clips" / "out" / "videos").mkdir(parents=True)
    (tmp_path / "clips" / "a.mp4").write_bytes(b"")
    (tmp_path / "clips" / "out" / "videos" / "heat_1_x.mp4").write_bytes(b"")
    found = read_inputs(tmp_path / "clips", tmp_path / "clips" / "out")
    assert [i.path.name for i in found] == ["a.mp4"]
    (tmp_path / "t.csv").write_bytes("\ufeffpath,label\nclips/a.mp4,left\n".encode())
    assert read_inputs(tmp_path / "t.csv")[0].label == "left"
    (tmp_path / "bad.txt").write_bytes(b"clips/\xff.mp4\n")
    with pytest.raises(InputError, match="expected .*bad.txt in UTF-8"):
        read_inputs(tmp_path / "bad.txt")


def test_what_a_killed_run_left_is_cleaned_and_earlier_files_put_back(tmp_path: Path) -> None:
    from saliency_tubes.commands.pipeline.outputs import recover_staging

    folder = tmp_path / "video"
    staging = folder / ".saliency-tubes-run-abc"
    (staging / ".replaced").mkdir(parents=True)
    (folder / "manifest.json").write_text("earlier")
    (folder / "heat.mp4").write_text("new, half committed")  # moved in before the kill
    (staging / ".replaced" / "heat.mp4").write_text("earlier")  # the earlier one, aside
    (staging / "focus.mp4").write_text("new, not committed")
    recover_staging(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["heat.mp4", "manifest.json"]
    assert (folder / "heat.mp4").read_text() == "earlier"


def test_a_weights_folder_rewritten_in_place_changes_the_fingerprint(tmp_path: Path) -> None:
    """save_pretrained overwrites model.safetensors inside the same folder: the folder's
    own size and time do not change, its files' do, and so must the fingerprint."""
    from saliency_tubes.commands.batch.inputs import Item, fingerprint, model_files

    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    weights = folder / "model.safetensors"
    weights.write_bytes(b"a" * 10)
    item = Item(path=tmp_path / "v.mp4", video_id="v")
    files = model_files(f"hf:{folder}", None)
    assert files == [folder / "config.json", weights]
    assert model_files("r3d_18", folder) == files  # --weights DIR
    assert model_files("r3d_18", tmp_path / "w.pth") == [tmp_path / "w.pth"]
    before = fingerprint({}, item, files)
    weights.write_bytes(b"b" * 11)
    assert fingerprint({}, item, model_files(f"hf:{folder}", None)) != before


def test_merging_into_an_unsharded_source_keeps_its_rows(tmp_path: Path) -> None:
    """``--merge A B --out A`` with A a whole (unsharded) batch: A's rows stay in its index."""
    from saliency_tubes.commands.batch.records import read_index, write_index

    def row(vid: str) -> dict:
        return {"video_id": vid, "path": f"/v/{vid}.mp4", "status": "ok", "output": f"videos/{vid}"}

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    write_index(a / "index.parquet", [row("a1"), row("a2")])
    write_index(b / "index.parquet", [row("b1")])
    merged = merge_batches([a, b], a)
    assert [r["video_id"] for r in merged.rows] == ["a1", "a2", "b1"]
    assert [r["video_id"] for r in read_index(a / "index.parquet")] == ["a1", "a2", "b1"]
    assert [r["output"] for r in merged.rows] == ["videos/a1", "videos/a2", "../b/videos/b1"]
