"""Defects found in review, each pinned by a test that failed before its fix."""

from __future__ import annotations

import json
from pathlib import Path

from saliency_tubes.commands.batch.records import Journal, read_journal


def test_journal_row_after_a_cut_line_is_kept(tmp_path: Path) -> None:
    # A run killed mid-write leaves a last line without its newline; the next run's first
    # row must not be glued onto it (and lost: that video would run a third time).
    path = tmp_path / ".batch" / "journal.jsonl"
    path.parent.mkdir()
    whole = json.dumps({"video_id": "a", "path": "a.mp4", "status": "ok", "fingerprint": "f"})
    path.write_text(whole + "\n" + '{"video_id": "b", "sta', encoding="utf-8")
    journal = Journal(path)
    journal.add({"video_id": "c", "path": "c.mp4", "status": "ok", "fingerprint": "g"})
    journal.close()
    rows = read_journal(path)
    assert sorted(rows) == ["a", "c"]
    assert rows["c"]["fingerprint"] == "g"


def test_a_nested_run_on_the_same_folder_keeps_the_outer_runs_files(tmp_path: Path) -> None:
    # The folder lock is re-entrant in a thread (a command inside a command); the inner
    # run's clean-up of killed runs' staging folders must not take the outer, live one's.
    from saliency_tubes.commands.pipeline.outputs import output_folder

    with output_folder(tmp_path) as outer:
        outer.write_bytes("outer.txt", b"outer")
        with output_folder(tmp_path) as inner:
            inner.write_bytes("inner.txt", b"inner")
        outer.write_json("manifest.json", {"ok": True})
    assert (tmp_path / "inner.txt").read_bytes() == b"inner"
    assert (tmp_path / "outer.txt").read_bytes() == b"outer"
    assert (tmp_path / "manifest.json").is_file()
    assert not list(tmp_path.glob(".saliency-tubes-run-*"))


def test_the_pool_takes_every_waiting_row_before_checking_timeouts() -> None:
    # Two workers finish at once: both rows are read before the timeouts are checked, or
    # the second worker's video, done in time, is killed and recorded as timed out.
    import queue
    import time

    from saliency_tubes.commands.batch import local as pool

    state = object.__new__(pool._Pool)
    state.results = queue.Queue()
    now = time.monotonic()
    state.pool = {
        w: pool._Worker(None, None, groups=[[w]], began=now, size=1, ready=True) for w in (0, 1)
    }
    state.remaining = 2
    got: list[dict[str, str]] = []
    state.on_row = got.append
    for w in (0, 1):
        state.results.put(("row", w, w, {"video_id": f"v{w}"}))
    state.receive()
    assert got == [{"video_id": "v0"}, {"video_id": "v1"}]
    assert state.remaining == 0
    assert all(not w.groups for w in state.pool.values())  # both groups done


def test_recovery_after_a_killed_commit_puts_a_frame_folder_back_whole(
    tmp_path: Path, monkeypatch
) -> None:
    # A run killed while its commit replaces a frame folder (a claimed folder): the next
    # run's recovery must put the earlier folder back as it was, not the earlier frames
    # over the new ones (a folder of 3 frames: 2 old and 1 new).
    import os

    from saliency_tubes.commands.pipeline.outputs import OutputFolder, recover_staging

    earlier = tmp_path / "frames"
    earlier.mkdir()
    for i in range(2):
        (earlier / f"{i}.png").write_bytes(b"old")
    (tmp_path / "manifest.json").write_text("old")
    run = OutputFolder(tmp_path)
    frames = run.folder("frames")
    for i in range(3):
        (frames / f"{i}.png").write_bytes(b"new")
    run.write_json("manifest.json", {"new": True})
    real = os.replace
    calls = []

    def killed(src, dst):  # the manifest's move is where the process dies
        calls.append(dst)
        if Path(dst) == tmp_path / "manifest.json" and ".replaced" not in str(src):
            raise KeyboardInterrupt  # no finally of the run runs after a kill:
        return real(src, dst)

    monkeypatch.setattr(OutputFolder, "_rollback", lambda *_args: None)  # ... nor this
    monkeypatch.setattr(os, "replace", killed)
    try:
        run.commit(last="manifest.json")
    except KeyboardInterrupt:
        pass
    monkeypatch.setattr(os, "replace", real)
    recover_staging(tmp_path)
    assert sorted(p.name for p in earlier.iterdir()) == ["0.png", "1.png"]
    assert {p.read_bytes() for p in earlier.iterdir()} == {b"old"}
    assert (tmp_path / "manifest.json").read_text() == "old"
    assert not list(tmp_path.glob(".saliency-tubes-run-*"))


def test_batch_thumbnails_of_a_segment_show_the_segments_frames(
    tmp_path: Path, monkeypatch
) -> None:
    # batch --start 1 --end 2 --format html: the thumbnails' frames (key frames of the
    # segment's curve, numbered from the segment's first frame) must be read from the
    # segment, not from the file's first frames (2 s clips at 16 fps: frames 16..31).
    from saliency_tubes.commands import BatchSettings, ExplainOptions, ModelOptions
    from saliency_tubes.commands.batch.inputs import read_inputs
    from saliency_tubes.commands.batch.worker import VideoWorker
    from saliency_tubes.commands.demo import write_demo_dataset
    from saliency_tubes.commands.report import thumbs

    table = write_demo_dataset(tmp_path / "data", videos=1)
    options = ExplainOptions(formats=("html",), start=1.0, end=2.0, progress=False)
    settings = BatchSettings(ModelOptions(), options, tmp_path / "batch" / "videos")
    seen: list[float] = []
    real = thumbs.read_frames

    def recording(path, frames, *, info, **kwargs):  # type: ignore[no-untyped-def]
        seen.extend(float(info.timestamps[f]) for f in frames)
        return real(path, frames, info=info, **kwargs)

    monkeypatch.setattr(thumbs, "read_frames", recording)
    (item,) = read_inputs(table, settings.videos, [])
    row = VideoWorker(settings).run(item, "fingerprint")
    assert row["status"] == "ok", row.get("error")
    assert row["frames"] == 16
    assert seen and all(1.0 <= t < 2.0 for t in seen), seen


def test_a_batch_video_whose_folder_is_in_use_leaves_that_runs_files(tmp_path: Path) -> None:
    # Another run writing the same video folder (a Ray task retried while its first actor
    # still runs): this worker must fail with an error row, not first delete that run's
    # live staging folder (the clean-up of killed runs belongs after the lock is taken).
    import threading

    from saliency_tubes.commands import BatchSettings, ExplainOptions, ModelOptions
    from saliency_tubes.commands.batch.inputs import read_inputs
    from saliency_tubes.commands.batch.worker import VideoWorker
    from saliency_tubes.commands.demo import write_demo_dataset
    from saliency_tubes.commands.pipeline.lock import folder_lock

    table = write_demo_dataset(tmp_path / "data", videos=1)
    options = ExplainOptions(formats=("npy",), progress=False)
    settings = BatchSettings(ModelOptions(), options, tmp_path / "batch" / "videos")
    (item,) = read_inputs(table, settings.videos, [])
    folder = settings.videos / item.video_id
    live = folder / ".saliency-tubes-run-live"
    live.mkdir(parents=True)
    (live / "tube.npy").write_bytes(b"being written")
    held, done = threading.Event(), threading.Event()

    def other_run() -> None:
        with folder_lock(folder):
            held.set()
            done.wait(60)

    thread = threading.Thread(target=other_run)
    thread.start()
    try:
        assert held.wait(60)
        row = VideoWorker(settings).run(item, "fingerprint")
    finally:
        done.set()
        thread.join(60)
    assert row["status"] == "error" and "in use" in row["error"], row
    assert (live / "tube.npy").read_bytes() == b"being written"


def test_a_timed_out_worker_that_will_not_die_keeps_its_folder(tmp_path: Path) -> None:
    # A worker killed for its timeout but still alive after the wait (uninterruptible
    # I/O) may still write its video's folder: that folder is not cleaned under it (the
    # next run's recovery, under the folder's lock, does it).
    import time
    from types import SimpleNamespace

    from saliency_tubes.commands.batch import local as pool
    from saliency_tubes.commands.batch.inputs import Item

    class Undying:
        pid, exitcode = 0, None

        def is_alive(self) -> bool:
            return True

        def kill(self) -> None:
            pass

        def join(self, timeout: float | None = None) -> None:
            pass

    videos = tmp_path / "videos"
    live = videos / "v" / ".saliency-tubes-run-live"
    live.mkdir(parents=True)
    item = Item(video_id="v", path=tmp_path / "v.mp4", label=None, gt=None)
    state = object.__new__(pool._Pool)
    state.settings = SimpleNamespace(videos=videos)
    state.tasks, state.timeout, state.pending, state.remaining = [(item, "fp")], 1.0, [], 1
    rows: list[dict] = []
    state.on_row = rows.append
    worker = pool._Worker(
        Undying(), None, groups=[[0]], began=time.monotonic() - 10, size=1, ready=True
    )
    state.pool = {0: worker}
    state.check_busy(0, worker, time.monotonic())
    assert rows and rows[0]["status"] == "error" and "timed out" in rows[0]["error"]
    assert live.is_dir()


def test_a_worker_that_dies_holding_two_groups_blames_no_video(tmp_path: Path) -> None:
    # With decode-ahead (and --decoders N) a worker holds the next group too, which it may
    # be decoding or explaining when it dies: the head group's lone video is not blamed;
    # every unfinished video it held is tried again alone, and their folders are cleaned.
    import time
    from types import SimpleNamespace

    from saliency_tubes.commands.batch import local as pool
    from saliency_tubes.commands.batch.inputs import Item

    class Dead:
        pid, exitcode = 0, -9

        def is_alive(self) -> bool:
            return False

        def kill(self) -> None:
            pass

        def join(self, timeout: float | None = None) -> None:
            pass

    videos = tmp_path / "videos"
    items = [Item(video_id=f"v{i}", path=tmp_path / f"v{i}.mp4") for i in range(3)]
    staged = videos / "v2" / ".saliency-tubes-run-live"
    staged.mkdir(parents=True)
    state = object.__new__(pool._Pool)
    state.settings = SimpleNamespace(videos=videos)
    state.tasks = [(item, "fp") for item in items]
    state.timeout, state.pending, state.remaining, state.suspects = None, [], 2, set()
    rows: list[dict] = []
    state.on_row = rows.append
    started: list[str] = []
    state.start = started.append
    # the head group [0] of one video; of the next group [1, 2], video 1 already finished
    worker = pool._Worker(Dead(), None, groups=[[0], [2]], began=time.monotonic(), size=1)
    state.pool = {0: worker}
    state.check_busy(0, worker, time.monotonic())
    assert rows == []  # nobody blamed yet: each video gets its own run
    assert state.pending == [[0], [2]] and state.remaining == 2 and started == ["cpu"]
    assert not staged.exists()  # what the dead worker left of video 2 is cleaned
    # each suspect then runs with nothing decoded beside it, so that a death names it
    assert state.suspects == {0, 2}
    fresh = pool._Worker(Dead(), None, ready=True)
    fresh.tasks = SimpleNamespace(put=lambda jobs: None)
    state.pool = {1: fresh}
    state.hand_out()
    assert fresh.groups == [[0]] and state.pending == [[2]]
    # and when it dies again alone, it is the one at fault and gets the row
    state.check_busy(1, fresh, time.monotonic())
    assert [r["video_id"] for r in rows] == ["v0"] and "died on this video" in rows[0]["error"]
