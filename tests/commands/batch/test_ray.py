"""``batch --engine ray``: Ray in local mode gives what the local workers give.

Ray takes seconds to start, so these tests are few: the first lets the engine start and stop
its own Ray; the others share one Ray started by the module's fixture (the engine then uses
it and leaves it running). Skipped, with the reason, where the ``ray`` extra is missing.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from saliency_tubes.commands import (
    BatchOptions,
    BatchSettings,
    ExplainOptions,
    ModelOptions,
    batch_videos,
)
from saliency_tubes.commands.batch.records import read_index
from saliency_tubes.commands.demo import write_demo_dataset
from saliency_tubes.errors import InputError

try:
    import ray
    import ray.data  # noqa: F401
except ImportError:  # pragma: no cover - the ray extra is part of scripts/test.sh
    ray = None

needs_ray = pytest.mark.skipif(
    ray is None, reason="the ray extra is not installed (pip install 'saliency-tubes[ray]')"
)

#: What a video's manifest records of time (differs from run to run).
TIMES = {"seconds", "timings"}


def _settings(out: Path) -> BatchSettings:
    # one torch thread in both engines, so that their floating-point sums agree bit for bit
    return BatchSettings(
        ModelOptions(), ExplainOptions(formats=("mp4", "npy"), progress=False), out / "videos", 1
    )


def _run(table: Path, out: Path, engine: str, **options: Any) -> Any:
    workers = 2 if engine == "local" else 1
    # Ray's actors explain one video per forward: the local workers too (--batch-size 1), so
    # that the tubes agree byte for byte (batched ones within 1e-6: test_batch_groups.py).
    options.setdefault("batch_size", 1)
    opts = BatchOptions(workers=workers, engine=engine, progress=False, **options)
    return batch_videos(table, out, _settings(out), opts)


def _timeless(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _timeless(v) for k, v in value.items() if k not in TIMES}
    if isinstance(value, list):
        return [_timeless(v) for v in value]
    return value


def _manifest(out: Path, row: dict[str, Any]) -> dict[str, Any]:
    text = (out / row["output"] / "manifest.json").read_text(encoding="utf-8")
    return _timeless(json.loads(text))


def _with_broken_video(folder: Path, videos: int) -> Path:
    """The demo dataset of ``videos`` clips plus ``broken.mp4`` (garbage bytes) in its table."""
    table = write_demo_dataset(folder, videos=videos)
    (folder / "broken.mp4").write_bytes(b"\x00not a video\xff" * 500)
    with table.open("a", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerow(["broken.mp4", "left", ""])
    return table


@pytest.fixture(scope="module")
def shared_ray() -> Any:
    """One Ray for the module's later tests (the engine uses it and leaves it running)."""
    if ray is None:
        pytest.skip("the ray extra is not installed (pip install 'saliency-tubes[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@needs_ray
def test_ray_gives_the_rows_and_manifests_of_the_local_workers(tmp_path: Path) -> None:
    table = write_demo_dataset(tmp_path / "data", videos=4)
    local = _run(table, tmp_path / "local", "local")
    on_ray = _run(table, tmp_path / "ray", "ray")
    assert not ray.is_initialized()  # the engine started its own Ray, and stopped it
    assert (local.ran, on_ray.ran, local.failed, on_ray.failed) == (4, 4, 0, 0)
    a = read_index(local.index)
    b = read_index(on_ray.index)
    assert [r["video_id"] for r in a] == [r["video_id"] for r in b]
    assert len(a) == 4 and all(r["status"] == "ok" for r in b)
    for ra, rb in zip(a, b, strict=True):
        assert ra["output"] == rb["output"] == f"videos/{ra['video_id']}"
        assert {k: v for k, v in ra.items() if k != "seconds"} == {
            k: v for k, v in rb.items() if k != "seconds"
        }
        assert _manifest(local.out, ra) == _manifest(on_ray.out, rb)
        tube = f"{ra['output']}/tube.npy"
        assert (local.out / tube).read_bytes() == (on_ray.out / tube).read_bytes()


@needs_ray
def test_a_corrupt_video_is_an_error_row_on_ray(tmp_path: Path, shared_ray: Any) -> None:
    table = _with_broken_video(tmp_path / "data", videos=1)
    result = _run(table, tmp_path / "out", "ray")
    assert shared_ray.is_initialized()  # a Ray the engine did not start is left running
    status = {Path(r["path"]).name: r["status"] for r in result.rows}
    assert status == {"clip_00_left.mp4": "ok", "broken.mp4": "error"}
    broken = next(r for r in result.rows if r["status"] == "error")
    assert broken["error"].startswith("could not read video")
    assert "\n" not in broken["error"] and broken["output"] is None
    assert (result.ran, result.failed) == (2, 1)


@needs_ray
def test_a_resume_on_ray_skips_the_videos_done(tmp_path: Path, shared_ray: Any) -> None:
    table = write_demo_dataset(tmp_path / "data", videos=3)
    out = tmp_path / "out"
    first = _run(table, out, "ray", limit=2)  # as if the batch had been stopped after two
    assert (first.ran, first.skipped, first.failed) == (2, 0, 0)
    done = {
        r["video_id"]: (out / r["output"] / "manifest.json").stat().st_mtime_ns for r in first.rows
    }
    second = _run(table, out, "ray")
    assert (second.ran, second.skipped, second.failed) == (1, 2, 0)
    assert len(second.rows) == 3 and len({r["video_id"] for r in second.rows}) == 3
    for vid, mtime in done.items():  # the finished videos were not touched
        assert (out / "videos" / vid / "manifest.json").stat().st_mtime_ns == mtime
    assert [r["video_id"] for r in read_index(second.index)] == [r["video_id"] for r in second.rows]
    again = _run(table, out, "ray")  # all done: nothing runs
    assert (again.ran, again.skipped) == (0, 3)


@needs_ray
def test_the_timeout_on_ray_gives_error_rows_and_fresh_actors(
    tmp_path: Path, shared_ray: Any
) -> None:
    """Past --timeout a video is an error row at once; its actor, spent, is replaced before
    the next video (which is retried there), so every video still gets exactly one row."""
    table = write_demo_dataset(tmp_path / "data", videos=3)
    result = _run(table, tmp_path / "out", "ray", timeout=0.01)
    assert len(result.rows) == 3 and result.failed == 3
    assert {r["error"] for r in result.rows} == {
        "timed out after 0.01 s (--timeout); the video may hang the decoder: re-encode it, "
        "or raise --timeout"
    }


def test_without_ray_the_engine_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    table = write_demo_dataset(tmp_path / "data", videos=1)
    with pytest.raises(InputError) as caught:
        _run(table, tmp_path / "out", "ray")
    assert str(caught.value) == (
        "expected the ray extra (pip install 'saliency-tubes[ray]') for --engine ray, "
        "but ray is not installed"
    )


#: Batched convolutions may add in another order than one clip's: tubes (normalised to
#: [0, 1]) and scores then differ in float32's last bits (test_groups.py: 5.96e-7 measured).
TOLERANCE = 1e-6

#: The row's columns computed from floats (compared within TOLERANCE; the curve is rounded
#: to 4 places, so a last-bit change may move its last place).
FLOATS = {"score", "topk_scores", "fraction_above", "spread", "curve", "seconds", "mass", "iou"}


def _same_row(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert {k: v for k, v in a.items() if k not in FLOATS} == {
        k: v for k, v in b.items() if k not in FLOATS
    }
    for key in ("score", "fraction_above", "spread", "mass", "iou"):
        assert a[key] == pytest.approx(b[key], abs=TOLERANCE), key
    assert a["topk_scores"] == pytest.approx(b["topk_scores"], abs=TOLERANCE)
    assert a["curve"] == pytest.approx(b["curve"], abs=1.01e-4)


@needs_ray
def test_two_stages_give_the_rows_of_the_per_video_path_and_resume(
    tmp_path: Path, shared_ray: Any
) -> None:
    """--batch-size 3 on Ray: decode actors, then explain actors with 3 clips per forward.
    Stopped after 3 videos and resumed: every video one row, the broken one its error row,
    the others what the local per-video path gives (tubes and floats within 1e-6)."""
    table = _with_broken_video(tmp_path / "data", videos=4)
    local = _run(table, tmp_path / "local", "local")
    out = tmp_path / "ray"
    said: list[str] = []
    first = _run(table, out, "ray", batch_size=3, limit=3)
    assert (first.ran, first.failed) == (3, 0)
    explain = ExplainOptions(formats=("mp4", "npy"), progress=False)
    second = batch_videos(
        table,
        out,
        BatchSettings(ModelOptions(), explain, out / "videos", 1),
        BatchOptions(engine="ray", batch_size=3, progress=False),
        on_stage=said.append,
    )
    assert said[0] == (
        "5 videos: 3 done before, 2 to explain on Ray decode actors then explain actors, "
        "up to 3 per forward"
    )
    assert (second.ran, second.skipped, second.failed) == (2, 3, 1)
    rows = read_index(second.index)
    assert [r["video_id"] for r in rows] == [r["video_id"] for r in local.rows]
    broken = next(r for r in rows if r["status"] == "error")
    assert Path(broken["path"]).name == "broken.mp4" and broken["output"] is None
    assert broken["error"].startswith("could not read video") and "\n" not in broken["error"]
    for ra, rb in zip(read_index(local.index), rows, strict=True):
        if ra["status"] == "error":
            continue
        _same_row(ra, rb)
        tube = f"{ra['output']}/tube.npy"
        np.testing.assert_allclose(
            np.load(out / tube), np.load(local.out / tube), rtol=0, atol=TOLERANCE
        )
        names = sorted(p.name for p in (out / ra["output"]).iterdir())
        assert names == sorted(p.name for p in (local.out / ra["output"]).iterdir())


@needs_ray
def test_two_stages_time_out_per_stage_with_one_row_per_video(
    tmp_path: Path, shared_ray: Any
) -> None:
    table = write_demo_dataset(tmp_path / "data", videos=3)
    result = _run(table, tmp_path / "out", "ray", timeout=0.01, batch_size=2)
    assert len(result.rows) == 3 and result.failed == 3
    assert {r["error"] for r in result.rows} == {
        "timed out after 0.01 s (--timeout); the video may hang the decoder: re-encode it, "
        "or raise --timeout"
    }


@needs_ray
def test_two_stages_end_with_one_error_when_the_model_cannot_load(
    tmp_path: Path, shared_ray: Any
) -> None:
    table = write_demo_dataset(tmp_path / "data", videos=2)
    out = tmp_path / "out"
    settings = BatchSettings(
        ModelOptions(name="no_such_module:factory"),
        ExplainOptions(formats=("npy",), progress=False),
        out / "videos",
        1,
    )
    with pytest.raises(InputError, match="could not be loaded in a batch worker"):
        batch_videos(table, out, settings, BatchOptions(engine="ray", batch_size=2, progress=False))
    assert not (out / "index.parquet").exists()


@needs_ray
def test_two_stages_explain_windows_alone_as_the_per_video_path(
    tmp_path: Path, shared_ray: Any
) -> None:
    """--windows cannot be batched: the decode actors hand the videos on undecoded and the
    explain actor explains each alone, byte for byte as the per-video path."""
    table = write_demo_dataset(tmp_path / "data", videos=2)
    rows = {}
    for engine, size in (("local", 1), ("ray", 2)):
        out = tmp_path / engine
        explain = ExplainOptions(formats=("npy",), windows=(8, 8), progress=False)
        settings = BatchSettings(ModelOptions(), explain, out / "videos", 1)
        options = BatchOptions(engine=engine, batch_size=size, progress=False)
        result = batch_videos(table, out, settings, options)
        assert (result.ran, result.failed) == (2, 0)
        rows[engine] = read_index(result.index)
    for a, b in zip(rows["local"], rows["ray"], strict=True):
        assert {k: v for k, v in a.items() if k != "seconds"} == {
            k: v for k, v in b.items() if k != "seconds"
        }
        tube = f"{a['output']}/tube.npy"
        assert (tmp_path / "local" / tube).read_bytes() == (tmp_path / "ray" / tube).read_bytes()
