"""The batch index's one row type: its columns, its Parquet schema, plain dicts and back."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from saliency_tubes.commands.batch.records import COLUMNS, IndexRow, read_index, write_index
from saliency_tubes.commands.batch.worker import COLUMNS as WORKER_COLUMNS


def _full() -> IndexRow:
    return IndexRow(
        video_id="a-1234abcd", path="/data/a.mp4", status="ok", label="take", label_index=3,
        pred=3, pred_name="take", score=0.75, correct=True, topk=[3, 1], topk_names=["take", "x"],
        topk_scores=[0.75, 0.125], fraction_above=0.25, spread=0.5, key_times=[0.5, 1.25],
        curve=[0.0, 0.5, 1.0], pointing=1.0, mass=0.5, iou=0.25, frames=24, fps=12.0,
        duration=2.0, seconds=1.5, output="videos/a-1234abcd", random_weights=False,
        model="tiny-actions", method="cam", weights_source="shipped", caveat="8 classes only",
        fingerprint="b8bfe298230830f6",
    )  # fmt: skip


def test_the_schema_is_derived_from_the_row_and_is_the_one_index_files_had() -> None:
    """The schema written before the row type existed (1c708bc's ``_schema``), literally."""
    text, num, whole, flag = pa.string(), pa.float64(), pa.int64(), pa.bool_()
    before = pa.schema(
        [
            ("video_id", text), ("path", text), ("status", text), ("error", text),
            ("label", text), ("label_index", whole), ("pred", whole), ("pred_name", text),
            ("score", num), ("correct", flag), ("topk", pa.list_(whole)),
            ("topk_names", pa.list_(text)), ("topk_scores", pa.list_(num)),
            ("fraction_above", num), ("spread", num), ("key_times", pa.list_(num)),
            ("curve", pa.list_(num)), ("pointing", num), ("mass", num), ("iou", num),
            ("frames", whole), ("fps", num), ("duration", num), ("seconds", num),
            ("output", text), ("random_weights", flag), ("model", text), ("method", text),
            ("weights_source", text), ("caveat", text), ("fingerprint", text),
        ]
    )  # fmt: skip
    assert IndexRow.schema().equals(before)
    assert list(COLUMNS) == before.names and WORKER_COLUMNS is COLUMNS
    assert COLUMNS["iou"] == "IoU of the tube's top voxels with the ground truth"


def test_a_row_round_trips_through_a_dict_and_the_parquet_index(tmp_path: Path) -> None:
    row = _full()
    plain = row.to_dict()
    assert list(plain) == list(COLUMNS) and IndexRow.from_dict(plain) == row
    error = IndexRow(video_id="b", path="/b.mp4", status="error", error="unreadable")
    write_index(tmp_path / "index.parquet", [plain, error.to_dict()])
    rows = read_index(tmp_path / "index.parquet")
    assert [IndexRow.from_dict(r) for r in rows] == [row, error]
    assert rows[1]["topk"] is None and rows[1]["error"] == "unreadable"


def test_an_older_rows_missing_columns_are_empty_and_other_keys_left_out() -> None:
    older = {"video_id": "a", "path": "/a.mp4", "status": "ok", "pred": 2, "extra": "x"}
    row = IndexRow.from_dict(older)
    assert row.pred == 2 and row.weights_source is None and "extra" not in row.to_dict()
    with pytest.raises(TypeError):  # video_id, path and status are every row's
        IndexRow.from_dict({"video_id": "a"})


def test_merging_an_index_without_path_or_status_is_one_error(tmp_path: Path) -> None:
    """An index whose rows lack ``path``/``status`` (no batch wrote it) is one InputError
    line, and the merge's --out is not made (the row type would refuse the rows later)."""
    import pyarrow.parquet as pq

    from saliency_tubes.commands import InputError, merge_batches

    src = tmp_path / "src"
    src.mkdir()
    pq.write_table(pa.table({"video_id": ["a"], "score": [0.5]}), src / "index.parquet")
    out = tmp_path / "merged"
    with pytest.raises(InputError, match=r"with a video_id, path and status in every row"):
        merge_batches([src], out)
    assert not out.exists()


def test_a_journal_line_without_path_or_status_is_not_a_row(tmp_path: Path) -> None:
    """A damaged journal's line that names a video but lacks its path or status is skipped
    (that video runs again) instead of reaching the row type."""
    import json

    from saliency_tubes.commands.batch.records import read_journal

    good = {"video_id": "a", "path": "/v/a.mp4", "status": "ok", "fingerprint": "f"}
    journal = tmp_path / "journal.jsonl"
    lines = [good, {"video_id": "b", "score": 0.3}, {"video_id": "c", "path": "/v/c.mp4"}]
    journal.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    assert read_journal(journal) == {"a": good}
