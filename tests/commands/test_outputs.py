"""The output folder: claimed names, atomic writes, and clean-up that spares other files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from saliency_tubes.commands.outputs import output_folder


def test_writes_are_listed_relative_and_complete(tmp_path: Path) -> None:
    with output_folder(tmp_path / "out") as out:
        assert out.write_json("a.json", {"x": 1}) == "a.json"
        assert out.write_bytes("b.txt", b"hi") == "b.txt"
        sub = out.folder("tubes")
        assert out.save_npy("tubes/c.npy", np.arange(3, dtype=np.float32)) == "tubes/c.npy"
        blocks = (np.full((1, 2), i, dtype=np.float32) for i in range(3))
        assert out.save_npy_stream("d.npy", (3, 2), blocks) == "d.npy"
    assert sub.is_dir() and (tmp_path / "out" / "b.txt").read_bytes() == b"hi"
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "d.npy"), [[0, 0], [1, 1], [2, 2]])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "a.json",
        "b.txt",
        "d.npy",
        "tubes",
    ]  # no partial or test files left


@pytest.mark.parametrize("error", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_a_failure_removes_this_runs_files_only(tmp_path: Path, error: BaseException) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "keep.txt").write_text("mine")
    (out_dir / "tubes").mkdir()
    (out_dir / "tubes" / "old.npy").write_bytes(b"old")
    with pytest.raises(type(error)), output_folder(out_dir) as out:
        out.write_bytes("new.txt", b"x")
        out.folder("tubes")  # existed before: not claimed, so not removed
        writer, _ = out.video("v.mp4", fps=10)
        writer.__enter__()
        writer.write(np.zeros((8, 8, 3), np.uint8))
        raise error
    assert sorted(p.name for p in out_dir.rglob("*")) == ["keep.txt", "old.npy", "tubes"]


def test_a_new_folder_goes_with_a_failed_run(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), output_folder(tmp_path / "new") as out:
        out.write_bytes("a", b"1")
        raise RuntimeError("boom")
    assert not (tmp_path / "new").exists()
