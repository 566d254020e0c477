"""The output folder: staged writes, moved in only when complete; a failure changes nothing."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest

from saliency_tubes.commands.pipeline.outputs import output_folder
from saliency_tubes.errors import InputError


def _tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_writes_are_staged_then_moved_in(tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    with output_folder(out_dir) as out:
        assert out.write_json("a.json", {"x": 1}) == "a.json"
        assert out.write_bytes("b.txt", b"hi") == "b.txt"
        out.folder("tubes")
        assert out.save_npy("tubes/c.npy", np.arange(3, dtype=np.float32)) == "tubes/c.npy"
        blocks = (np.full((1, 2), i, dtype=np.float32) for i in range(3))
        assert out.save_npy_stream("d.npy", (3, 2), blocks) == "d.npy"
        assert not (out_dir / "b.txt").exists()  # nothing in place before the end
    assert (out_dir / "b.txt").read_bytes() == b"hi"
    np.testing.assert_array_equal(np.load(out_dir / "d.npy"), [[0, 0], [1, 1], [2, 2]])
    assert sorted(_tree(out_dir)) == ["a.json", "b.txt", "d.npy", "tubes/c.npy"]
    assert sorted(p.name for p in out_dir.iterdir()) == ["a.json", "b.txt", "d.npy", "tubes"]


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_a_failed_rerun_leaves_the_folder_as_it_was(tmp_path: Path, error: BaseException) -> None:
    out_dir = tmp_path / "out"
    with output_folder(out_dir) as out:  # a first, complete run
        out.write_bytes("heat.mp4", b"first run")
        out.folder("tubes")
        out.save_npy("tubes/class.npy", np.ones(2, np.float32))
        out.write_json("manifest.json", {"outputs": ["heat.mp4"]})
    (out_dir / "keep.txt").write_text("mine")
    before = _tree(out_dir)
    with pytest.raises(type(error)), output_folder(out_dir) as out:
        out.write_bytes("heat.mp4", b"second run")
        out.save_npy("tubes/class.npy", np.zeros(2, np.float32))
        writer, _ = out.video("v.mp4", fps=10)
        writer.__enter__()
        writer.write(np.zeros((8, 8, 3), np.uint8))
        raise error
    assert _tree(out_dir) == before
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(
        ["heat.mp4", "keep.txt", "manifest.json", "tubes"]
    )


def test_a_full_disk_is_one_line_and_changes_nothing(tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "old.json").write_text("{}")
    with pytest.raises(InputError) as caught, output_folder(out_dir) as out:
        out.write_bytes("a.txt", b"x")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    message = str(caught.value)
    assert "No space left on device" in message and "free some space" in message
    assert len(message.splitlines()) == 1
    assert _tree(out_dir) == {"old.json": b"{}"}


def test_a_failed_move_puts_the_earlier_files_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out_dir = tmp_path / "out"
    with output_folder(out_dir) as out:
        out.write_bytes("a.txt", b"old a")
        out.write_bytes("b.txt", b"old b")
    before = _tree(out_dir)
    real = os.replace
    calls = {"n": 0}

    def failing(src: object, dst: object) -> None:
        calls["n"] += 1
        if calls["n"] == 5:  # a aside, a in, c in, b aside, then b in fails
            raise OSError(errno.ENOSPC, "No space left on device")
        real(src, dst)  # type: ignore[arg-type]

    with pytest.raises(InputError, match="No space left"), output_folder(out_dir) as out:
        out.write_bytes("a.txt", b"new a")
        out.folder("new")
        out.write_bytes("new/c.txt", b"new c")  # a new sub-folder: gone again after the failure
        out.write_bytes("b.txt", b"new b")
        monkeypatch.setattr(os, "replace", failing)
    monkeypatch.setattr(os, "replace", real)
    assert calls["n"] >= 5 and _tree(out_dir) == before
    assert sorted(p.name for p in out_dir.iterdir()) == ["a.txt", "b.txt"]


def test_a_new_folder_goes_with_a_failed_run(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), output_folder(tmp_path / "new") as out:
        out.write_bytes("a", b"1")
        raise RuntimeError("boom")
    assert not (tmp_path / "new").exists()


def test_a_claimed_folder_replaces_the_earlier_one_whole(tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    with output_folder(out_dir) as out:
        out.folder("tubes")
        out.write_bytes("tubes/deep.npy", b"depth 3")
    with output_folder(out_dir) as out:
        out.folder("tubes")
        out.write_bytes("tubes/class.npy", b"depth 1")
    assert _tree(out_dir) == {"tubes/class.npy": b"depth 1"}  # no stale file nobody lists


def test_parents_made_for_a_failed_run_go_too(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), output_folder(tmp_path / "a" / "b" / "c") as out:
        out.write_bytes("x", b"1")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_an_earlier_file_that_cannot_be_put_back_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should even the rollback fail, the earlier file stays on disk (in the staging
    folder's .replaced), never deleted."""
    out_dir = tmp_path / "out"
    with output_folder(out_dir) as out:
        out.write_bytes("a.txt", b"old a")
    real = os.replace

    def failing(src: object, dst: object) -> None:
        if str(dst).endswith("b.txt") or ".replaced" in str(src):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(src, dst)  # type: ignore[arg-type]

    with pytest.raises(InputError), output_folder(out_dir) as out:
        out.write_bytes("a.txt", b"new a")
        out.write_bytes("b.txt", b"new b")
        monkeypatch.setattr(os, "replace", failing)
    monkeypatch.setattr(os, "replace", real)
    kept = [p for p in out_dir.rglob("a.txt") if ".replaced" in p.parts]
    assert [p.read_bytes() for p in kept] == [b"old a"]
