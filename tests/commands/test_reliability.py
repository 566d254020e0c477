"""Issue 28's hostile cases: a full disk, failed re-runs, two runs on one folder, killed
runs and their workers. Each test reproduces one case as the issue describes it.

Nothing here waits on a fixed sleep: each wait polls for the event it needs (a line on a
pipe, a folder, a process gone) up to a bound generous enough for a machine 5x slower
than the one the tests were written on (:data:`BOUND` seconds).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from _clips import write_demo_clip
from saliency_tubes.commands import (
    BatchOptions,
    BatchSettings,
    ExplainOptions,
    InputError,
    ModelOptions,
    batch_videos,
    write_demo_dataset,
)
from saliency_tubes.commands.pipeline.lock import LOCK_NAME, folder_lock

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"

#: Seconds any one wait may take (an event seen in about 5 s here; 5x slower is 25 s).
BOUND = 300.0

NPY = ExplainOptions(formats=("npy",), progress=False)


def _env() -> dict[str, str]:
    """The environment of a command in a subprocess: this tree and the tests' factories."""
    paths = [str(ROOT / "src"), str(TESTS), os.environ.get("PYTHONPATH", "")]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in paths if p))


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "saliency_tubes.cli", *args]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _cli(*args), capture_output=True, text=True, env=_env(), timeout=BOUND * 2
    )


def _wait(what: str, ready: Callable[[], bool], bound: float = BOUND) -> None:
    """Poll ``ready`` until it holds; fail naming ``what`` after ``bound`` seconds."""
    deadline = time.monotonic() + bound
    while not ready():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {bound:g} s for {what}")
        time.sleep(0.05)


def _one_error_line(proc: subprocess.CompletedProcess[str], code: int = 2) -> str:
    """The one ``error:`` line of a failed command (``warning:`` lines aside: the embedded
    model says what it knows)."""
    lines = [ln for ln in proc.stderr.strip().splitlines() if not ln.startswith("warning: ")]
    assert proc.returncode == code and len(lines) == 1, (proc.returncode, proc.stderr)
    assert lines[0].startswith("error: "), proc.stderr
    return lines[0]


def _files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too) and its bytes."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_clip(tmp_path_factory.mktemp("clip"))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 labelled synthetic clips (32 frames of 128x160) in labels.csv."""
    return write_demo_dataset(tmp_path_factory.mktemp("dataset"), videos=2)


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """``mount(size)``: a real tmpfs of that size (root with mount rights only; else skip)."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        disk = tmp_path / f"disk{len(mounted)}"
        disk.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)],
            capture_output=True,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()[:80]})")
        mounted.append(disk)
        return disk

    yield mount
    for disk in mounted:
        subprocess.run(["umount", str(disk)], capture_output=True)
        shutil.rmtree(disk, ignore_errors=True)


def _fill(disk: Path, leave: int) -> None:
    """Fill ``disk`` until at most ``leave`` bytes are free (unbuffered: nothing is left to
    flush into a full disk afterwards)."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        while (free := shutil.disk_usage(disk).free) > leave:
            try:
                os.write(fd, b"\0" * min(65536, max(4096, free - leave)))
            except OSError:
                break
    finally:
        os.close(fd)


def _settings(out: Path, explain: ExplainOptions = NPY, **model: str) -> BatchSettings:
    return BatchSettings(ModelOptions(**model), explain, out / "videos")


# 1. A full disk while the tube is written -------------------------------------------------


def test_a_full_disk_while_writing_npy_is_one_line_not_sigbus(
    clip: Path, small_disk: Callable[[str], Path]
) -> None:
    """``explain --format npy`` into a 300 KB tmpfs: the tube (1.2 MB) does not fit. It
    was written through a memory map (SIGBUS, exit 135, a .partial left for good)."""
    disk = small_disk("300k")
    (disk / "earlier.txt").write_text("an earlier result")
    proc = _run("explain", str(clip), "--out", str(disk / "ex"), "--format", "npy", "--quiet")
    line = _one_error_line(proc)
    assert "but got No space left on device; free some space" in line
    assert _files(disk) == {"earlier.txt": b"an earlier result"}  # no staging, no .partial
    assert not (disk / "ex").exists()


def test_a_full_disk_in_a_batch_is_each_videos_error_row(
    dataset: Path, small_disk: Callable[[str], Path]
) -> None:
    """The same in ``batch``: each video's row says the disk is full (it said "worker
    process died (exit code -7)"), the index and summary (small) are written."""
    disk = small_disk("300k")
    out = disk / "batch"
    proc = _run("batch", str(dataset), "--out", str(out), "--format", "npy", "--quiet")
    assert proc.returncode == 1, proc.stderr
    rows = pq.read_table(out / "index.parquet").to_pylist()
    assert [r["status"] for r in rows] == ["error", "error"]
    assert all("No space left on device; free some space" in r["error"] for r in rows)
    assert not list(out.rglob(".saliency-tubes-run-*")) and not list(out.rglob("*.partial"))


# 2. A failed re-run never replaces good records ----------------------------------------


@pytest.fixture(scope="module")
def finished(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A batch folder whose 2 videos finished (the tests copy it before changing it)."""
    out = tmp_path_factory.mktemp("finished") / "batch"
    result = batch_videos(dataset, out, _settings(out), BatchOptions(progress=False))
    assert [r["status"] for r in result.rows] == ["ok", "ok"]
    return out


def _copy(finished: Path, where: Path) -> Path:
    out = where / "batch"
    shutil.copytree(finished, out)
    return out


@pytest.mark.parametrize("classes", ["shrimp", "999", "top99"])
def test_classes_the_model_lacks_are_one_error_before_any_row(
    dataset: Path, finished: Path, tmp_path: Path, classes: str
) -> None:
    """``--classes shrimp`` (or 999, top99) on a finished folder turned every ok row into an
    error row (exit 1): now one line, exit 2, the folder byte for byte as it was."""
    out = _copy(finished, tmp_path)
    before = _files(out)
    proc = _run("batch", str(dataset), "--out", str(out), "--format", "npy",
                "--classes", classes, "--quiet")  # fmt: skip
    line = _one_error_line(proc)
    assert "expected --classes among the 8 classes of tiny-actions, but got" in line
    assert "nothing was written" in line
    assert _files(out) == before


def test_a_forced_rerun_that_hits_a_full_disk_keeps_the_earlier_rows(
    dataset: Path, small_disk: Callable[[str], Path]
) -> None:
    """``--force`` on a finished folder, the disk full but for 120 KB: no tube fits, the
    journal and index do. The videos' error rows do not replace their ok rows (same
    fingerprint, outputs still there); the CLI says so and exits 1. With the disk full to
    the last byte even the index cannot be written: the earlier one stays, one line."""
    disk = small_disk("8m")
    out = disk / "batch"
    cmd = ("batch", str(dataset), "--out", str(out), "--format", "npy", "--quiet")
    assert _run(*cmd).returncode == 0
    index = (out / "index.parquet").read_bytes()
    tubes = {p: p.read_bytes() for p in out.rglob("tube.npy")}
    assert len(tubes) == 2
    _fill(disk, leave=120_000)
    proc = _run(*cmd, "--force")
    assert proc.returncode == 1, proc.stderr
    assert "2 videos could not be redone" in proc.stdout, proc.stdout
    assert "No space left on device" in proc.stdout
    rows = pq.read_table(out / "index.parquet").to_pylist()
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert {p: p.read_bytes() for p in out.rglob("tube.npy")} == tubes
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["ok"], summary["failed"]) == (2, 0)
    _fill(disk, leave=0)
    proc = _run(*cmd, "--force")
    line = _one_error_line(proc)
    assert "No space left on device" in line
    assert (out / "index.parquet").read_bytes() == index
    assert not list(out.rglob(".saliency-tubes-run-*"))


# 3. A model that fails to load writes nothing ------------------------------------------


def test_a_model_that_cannot_load_writes_nothing(
    dataset: Path, finished: Path, tmp_path: Path
) -> None:
    """Bad weights: the summary was rewritten (saying the earlier results came from the bad
    weights) and a new folder got an empty index. Now nothing is written, either way."""
    out = _copy(finished, tmp_path)
    before = _files(out)
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    proc = _run("batch", str(dataset), "--out", str(out), "--format", "npy",
                "--weights", str(bad), "--quiet")  # fmt: skip
    assert "could not be loaded" in _one_error_line(proc)
    assert _files(out) == before
    new = tmp_path / "new" / "batch"
    with pytest.raises(InputError, match="could not be loaded"):
        batch_videos(dataset, new, _settings(new, weights=str(bad)), BatchOptions(progress=False))
    assert not (tmp_path / "new").exists()


def test_a_model_that_cannot_load_on_ray_writes_nothing(
    dataset: Path, finished: Path, tmp_path: Path
) -> None:
    """The same with ``--engine ray`` (its own local Ray, started and stopped)."""
    pytest.importorskip("ray.data", reason="the ray extra is not installed")
    out = _copy(finished, tmp_path)
    before = _files(out)
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    settings = _settings(out, weights=str(bad))
    with pytest.raises(InputError, match=r"could not be loaded .* \(on the Ray actors\)"):
        batch_videos(dataset, out, settings, BatchOptions(engine="ray", progress=False))
    assert _files(out) == before


# 4. One run at a time in an output folder ----------------------------------------------

HOLD = """
import sys
from saliency_tubes.commands.pipeline.lock import folder_lock
with folder_lock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.readline()
"""


def _holder(folder: Path) -> subprocess.Popen[str]:
    """A process that holds ``folder``'s lock until its stdin closes (read "held" first)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_env(),
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_run_on_a_busy_folder_is_one_line_naming_the_first(
    clip: Path, dataset: Path, finished: Path, tmp_path: Path
) -> None:
    """Two runs on one --out broke each other; the second now gets one line (pid, since
    when), exit 2, and changes nothing: explain, batch and batch --merge alike."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "earlier.txt").write_text("kept")
    holder = _holder(out)
    try:
        for args in (
            ("explain", str(clip), "--format", "npy"),
            ("batch", str(dataset), "--format", "npy"),
            ("batch", "--merge", str(finished)),
        ):
            proc = _run(*args, "--out", str(out), "--quiet")
            line = _one_error_line(proc)
            assert f"is in use by another run, pid {holder.pid}, since 20" in line, line
            assert "UTC; wait for that run to end or choose another --out" in line
            assert sorted(_files(out)) == [LOCK_NAME, "earlier.txt"]
    finally:
        holder.communicate("", timeout=BOUND)
    assert _files(out) == {"earlier.txt": b"kept"}  # the lock file goes with its run


def test_the_lock_is_reentrant_in_a_thread_and_refused_to_another(tmp_path: Path) -> None:
    import threading

    refused: list[str] = []

    def other() -> None:
        try:
            with folder_lock(tmp_path):
                pass
        except InputError as exc:
            refused.append(str(exc))

    with folder_lock(tmp_path), folder_lock(tmp_path):  # a command inside a command
        thread = threading.Thread(target=other)
        thread.start()
        thread.join(BOUND)
        assert (tmp_path / LOCK_NAME).exists()
    assert len(refused) == 1 and f"pid {os.getpid()}" in refused[0]
    assert not (tmp_path / LOCK_NAME).exists()


# 5. and 6. A killed run: its workers go, its leftovers are cleaned up -----------------


def _children(pid: int, marker: str) -> list[int]:
    """The processes whose parent is ``pid`` and whose command line contains ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and marker in cmdline:
            found.append(int(entry.name))
    return found


def _gone(pid: int) -> bool:
    """Whether ``pid`` has ended (a zombie waiting for init to reap it counts as ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc")
def test_kill_9_of_the_batch_parent_ends_its_workers(dataset: Path, tmp_path: Path) -> None:
    """kill -9 of ``batch`` left its workers blocked for good (~300 MB each, a GPU's memory
    held). Two workers, each inside a video that hangs: the parent is killed, both end."""
    out = tmp_path / "batch"
    hanging = tmp_path / "hanging"
    hanging.mkdir()
    parent = subprocess.Popen(
        _cli("batch", str(dataset), "--out", str(out), "--format", "npy", "--workers", "2",
             "--model", "_batch_models:hanging", "--quiet"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**_env(), "SALIENCY_TUBES_TEST_HANGING": str(hanging)},
    )  # fmt: skip
    try:
        # Both workers are inside a video once each has reached its (hanging) forward; a
        # batch explains its videos before it makes their folders (--batch-size).
        _wait("both workers to start a video", lambda: len(list(hanging.iterdir())) == 2)
        workers = _children(parent.pid, "spawn_main")
        assert len(workers) == 2, workers
    finally:
        parent.kill()
        parent.wait(BOUND)
    _wait("the orphaned workers to end", lambda: all(map(_gone, workers)))
    # What the killed run left is cleaned up by the next run in that folder.
    again = batch_videos(dataset, out, _settings(out), BatchOptions(progress=False))
    assert [r["status"] for r in again.rows] == ["ok", "ok"]
    assert not list(out.rglob(".saliency-tubes-run-*"))


def test_kill_9_of_explain_leaves_nothing_for_the_next_run(clip: Path, tmp_path: Path) -> None:
    """kill -9 of ``explain`` left its staging folder in --out for good (and now its lock
    file): the next run in that folder removes the staging and takes the stale lock over;
    the earlier results stay."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "earlier.txt").write_text("kept")
    run = subprocess.Popen(
        _cli("explain", str(clip), "--out", str(out), "--format", "npy",
             "--model", "_batch_models:hanging", "--quiet"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(),
    )  # fmt: skip
    try:
        _wait("explain to stage its outputs", lambda: bool(list(out.glob(".saliency-tubes-run-*"))))
    finally:
        run.kill()
        run.wait(BOUND)
    left = sorted(p.name for p in out.iterdir())
    assert LOCK_NAME in left and any(n.startswith(".saliency-tubes-run-") for n in left)
    proc = _run("explain", str(clip), "--out", str(out), "--format", "npy", "--quiet")
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == ["earlier.txt", "manifest.json", "tube.npy"], names
    assert (out / "earlier.txt").read_text() == "kept"


# 8. Tracebacks that became one line -------------------------------------------------------


def _table(folder: Path, dataset: Path, rows: list[dict[str, str]]) -> Path:
    """A labels.csv in ``folder`` listing clips of ``dataset`` (``path`` relative to it)."""
    import csv

    folder.mkdir(parents=True, exist_ok=True)
    table = folder / "labels.csv"
    with table.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["path", "label"])
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "path": row["path"] and str(dataset.parent / row["path"])})
    return table


def _clips(dataset: Path) -> list[str]:
    return sorted(p.name for p in dataset.parent.glob("*.mp4"))


def test_labels_that_are_not_classes_are_said_and_rerun(dataset: Path, tmp_path: Path) -> None:
    """Labels 99999999999999999999 (an OverflowError on every re-run), ``--5`` and ``²``
    ("unexpected ValueError" after the outputs were written) and ``shrimp`` (silently left
    out of the accuracy): each video is explained, counted as not labelled, and the CLI
    says how many and which; a re-run skips them all."""
    a, b = _clips(dataset)
    table = _table(tmp_path / "in", dataset, [
        {"path": a, "label": "99999999999999999999"}, {"path": b, "label": "--5"},
    ])  # fmt: skip
    out = tmp_path / "batch"
    cmd = ("batch", str(table), "--out", str(out), "--format", "npy", "--quiet")
    proc = _run(*cmd)
    assert proc.returncode == 0, proc.stderr
    assert "note: 2 of 2 videos have labels the model does not know ('--5', " in proc.stdout
    assert "'99999999999999999999'): left out of the accuracy" in proc.stdout
    rows = pq.read_table(out / "index.parquet").to_pylist()
    assert [(r["status"], r["label_index"], r["correct"]) for r in rows] == [("ok", None, None)] * 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["unknown_labels"] == {"videos": 2, "labels": ["--5", "99999999999999999999"]}
    assert summary["labelled"] == 0 and summary["accuracy"] is None
    again = _run(*cmd)
    assert again.returncode == 0 and "0 explained now, 2 done before" in again.stdout
    from saliency_tubes.commands.batch.worker import label_index
    from saliency_tubes.zoo import load_model

    tiny = load_model("tiny-actions")
    assert [label_index(t, tiny) for t in ("²", "-1", "7", "8", " Shrink ", "shrimp")] == [
        None, None, 7, None, tiny.categories.index("shrink"), None,
    ]  # fmt: skip


def test_a_nul_byte_in_a_listed_path_is_one_line(tmp_path: Path) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text("a\0b.mp4\n")
    proc = _run("batch", str(listing), "--out", str(tmp_path / "out"), "--quiet")
    assert "expected video paths without NUL bytes, but got 'a\\x00b.mp4'" in _one_error_line(proc)
    assert not (tmp_path / "out").exists()


def test_merging_a_corrupt_index_or_one_without_video_id_is_one_line(tmp_path: Path) -> None:
    import pyarrow as pa

    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "index.parquet").write_bytes(b"PAR1 not really")
    other = tmp_path / "other"
    other.mkdir()
    pq.write_table(pa.table({"path": ["a.mp4"], "status": ["ok"]}), other / "index.parquet")
    for src, says in (
        (corrupt, "could not be read"),
        (
            other,
            "with a video_id, path and status in every row, but its columns are ['path', 'status']",
        ),
    ):
        proc = _run("batch", "--merge", str(src), "--out", str(tmp_path / "merged"))
        line = _one_error_line(proc)
        assert f"expected a batch index at {src / 'index.parquet'}" in line and says in line
        assert not (tmp_path / "merged").exists()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc")
def test_ctrl_c_while_the_workers_start_is_one_line(dataset: Path, tmp_path: Path) -> None:
    """Ctrl-C (to the whole process group, as a terminal sends it) while two workers import
    torch printed 40-100 lines of their tracebacks. Sent as soon as both exist."""
    out = tmp_path / "batch"
    proc = subprocess.Popen(
        _cli("batch", str(dataset), "--out", str(out), "--format", "npy", "--workers", "2",
             "--quiet"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
        start_new_session=True,
    )  # fmt: skip
    try:
        _wait("two workers", lambda: len(_children(proc.pid, "spawn_main")) == 2)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=BOUND)
    assert (proc.returncode, err.strip().splitlines()) == (130, ["interrupted"]), err
    assert "leaked" not in err


# 9. Unclear or silent cases, now said -----------------------------------------------------


def test_csv_newlines_missing_paths_and_repeats_are_read_and_said(
    dataset: Path, tmp_path: Path
) -> None:
    """A quoted newline in a .csv path was misread; rows without a path and a video listed
    twice (also as ``./a.mp4`` beside ``a.mp4``) were dropped or done twice without a word."""
    from saliency_tubes.commands.batch.inputs import read_inputs

    a, _ = _clips(dataset)
    folder = tmp_path / "in"
    folder.mkdir()
    odd = folder / "two\nlines.mp4"
    shutil.copy(dataset.parent / a, odd)
    shutil.copy(dataset.parent / a, folder / "a.mp4")
    (folder / "labels.csv").write_text(
        'path,label\n"two\nlines.mp4",shrink\n,grow\na.mp4,shrink\n./a.mp4,shrink\n,\n',
        encoding="utf-8",
    )
    notes: list[str] = []
    items = read_inputs(folder / "labels.csv", notes=notes)
    assert [i.path for i in items] == [odd.resolve(), (folder / "a.mp4").resolve()]
    assert notes == [
        "2 row(s) of labels.csv have no path (rows 2, 5): left out",
        "1 video(s) listed again ('./a.mp4'): explained once, the first row",
    ]
    proc = _run("batch", str(folder / "labels.csv"), "--out", str(tmp_path / "out"),
                "--format", "npy", "--quiet")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "2 videos: 2 ok" in proc.stdout
    for note in notes:
        assert f"note: {note}" in proc.stdout


def test_an_out_folder_holding_the_input_still_finds_the_videos(
    dataset: Path, tmp_path: Path
) -> None:
    """``--out`` containing INPUT said no video was found (everything under --out was left
    out); now only --out's own videos/ is."""
    out = tmp_path / "work"
    shutil.copytree(dataset.parent, out / "data")
    result = batch_videos(out / "data", out, _settings(out), BatchOptions(progress=False))
    assert (result.ran, result.failed) == (2, 0)
    again = batch_videos(out / "data", out, _settings(out), BatchOptions(progress=False))
    assert (again.ran, again.skipped, len(again.rows)) == (0, 2, 2)  # not its own outputs


def test_a_timed_out_video_leaves_no_empty_folder(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "batch"
    settings = _settings(out, name="_batch_models:hanging")
    import sys as _sys

    _sys.path.insert(0, str(TESTS))  # the factory, for the workers too
    try:
        result = batch_videos(
            dataset, out, settings, BatchOptions(limit=1, timeout=3.0, progress=False)
        )
    finally:
        _sys.path.remove(str(TESTS))
    assert "timed out after 3 s" in result.rows[0]["error"]
    assert not (out / "videos" / result.rows[0]["video_id"]).exists()


def test_a_weights_folder_for_a_checkpoint_says_so(clip: Path, tmp_path: Path) -> None:
    proc = _run("explain", str(clip), "--out", str(tmp_path / "out"), "--weights",
                str(tmp_path), "--quiet")  # fmt: skip
    line = _one_error_line(proc)
    assert (
        f"expected a checkpoint file (.pth/.pt/.safetensors) at {tmp_path}, but it is a folder"
        in line
    )


def test_a_3000_character_class_name_is_a_short_file_name(clip: Path, tmp_path: Path) -> None:
    """It failed with "File name too long; check its permissions"."""
    long = "a-very-long-class-" * 170  # 3060 characters
    names = tmp_path / "names.txt"
    from saliency_tubes.zoo import load_model

    others = list(load_model("tiny-actions").categories or [])
    names.write_text("\n".join([long, *others[1:]]) + "\n")
    out = tmp_path / "out"
    proc = _run("explain", str(clip), "--out", str(out), "--categories", str(names),
                "--classes", "0", "--format", "mp4,plot", "--quiet")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["classes"][0]["name"] == long
    assert max(len(p.name) for p in out.iterdir()) < 120


def test_a_huge_upsample_and_odd_clips_are_one_clear_line() -> None:
    """``st.upsample`` to a huge size raised a raw RuntimeError of the allocator; float64
    and 2-channel clips got a hint about the clip's size."""
    import torch

    import saliency_tubes as st
    from saliency_tubes.zoo import load_model

    with pytest.raises(InputError, match=r"upsampling 1 map\(s\) to 100000x100000x100000 needs"):
        st.upsample(torch.rand(1, 1, 2, 3, 3), size=(100000, 100000, 100000))
    explainer = load_model("tiny-actions").explainer("cam")
    with pytest.raises(InputError, match=r"expected a torch.float32 clip .* but got torch.float64"):
        explainer(torch.rand(1, 3, 16, 96, 96, dtype=torch.float64))
    with pytest.raises(InputError, match=r"a clip of 2 channels .* give \(N, 3, T, H, W\) RGB"):
        explainer(torch.rand(1, 2, 16, 96, 96))
