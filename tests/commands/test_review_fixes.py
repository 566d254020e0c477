"""Defects found in review, each pinned by a test that failed before its fix."""

from __future__ import annotations

import json
from pathlib import Path

from saliency_tubes.commands.batch_index import Journal, read_journal


def test_journal_row_after_a_cut_line_is_kept(tmp_path: Path) -> None:
    # A run killed mid-write leaves a last line without its newline; the next run's first
    # row must not be glued onto it (and lost: that video would run a third time).
    path = tmp_path / ".batch" / "journal.jsonl"
    path.parent.mkdir()
    whole = json.dumps({"video_id": "a", "status": "ok", "fingerprint": "f"})
    path.write_text(whole + "\n" + '{"video_id": "b", "sta', encoding="utf-8")
    journal = Journal(path)
    journal.add({"video_id": "c", "status": "ok", "fingerprint": "g"})
    journal.close()
    rows = read_journal(path)
    assert sorted(rows) == ["a", "c"]
    assert rows["c"]["fingerprint"] == "g"
