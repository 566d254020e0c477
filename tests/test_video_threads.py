"""Decoding and encoding on threads: the same frames and files, errors raised in the caller."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from saliency_tubes.errors import InputError
from saliency_tubes.video import BackgroundWriter, VideoWriter, iter_frames, prefetch


def _frames(n: int = 6) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (16, 24, 3), dtype=np.uint8) for _ in range(n)]


def test_a_background_writer_writes_the_frames_a_plain_one_does(tmp_path: Path) -> None:
    frames = _frames()
    with BackgroundWriter(VideoWriter(tmp_path / "bg", 10, kind="png")) as bg:
        for f in frames:
            bg.write(f)
    back = [f.image for f in iter_frames(tmp_path / "bg")]
    assert len(back) == len(frames)
    for a, b in zip(back, frames, strict=True):
        np.testing.assert_array_equal(a, b)


def test_an_encoder_error_is_raised_in_the_caller_and_nothing_is_left(tmp_path: Path) -> None:
    bg = BackgroundWriter(VideoWriter(tmp_path / "out.mp4", 10))
    bg.write(_frames(1)[0])
    bg.write(np.zeros((8, 8, 3), np.uint8))  # another size: refused on the encoder's thread
    with pytest.raises(InputError, match="like the first"):
        for f in _frames(50):  # raised at a later write ...
            bg.write(f)
        bg.close()  # ... or at the latest here
    bg.abort()
    assert list(tmp_path.iterdir()) == []  # no half-written file


def test_an_interrupted_caller_leaves_no_file_and_no_thread(tmp_path: Path) -> None:
    before = threading.active_count()
    with pytest.raises(KeyboardInterrupt):
        with BackgroundWriter(VideoWriter(tmp_path / "out.mp4", 10)) as bg:
            for f in _frames(4):
                bg.write(f)
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    assert threading.active_count() == before


def test_prefetch_yields_the_same_items_and_raises_their_error() -> None:
    assert list(prefetch(iter(range(100)), depth=3)) == list(range(100))

    def failing() -> Iterator[int]:
        yield 1
        raise InputError("bad frame")

    got: list[int] = []
    with pytest.raises(InputError, match="bad frame"):
        for item in prefetch(failing()):
            got.append(item)
    assert got == [1]


def test_leaving_a_prefetch_early_closes_the_source_and_its_thread() -> None:
    closed = threading.Event()

    def endless() -> Iterator[int]:
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    before = threading.active_count()
    items = prefetch(endless(), depth=2)
    assert [next(items) for _ in range(5)] == [0, 1, 2, 3, 4]
    items.close()
    assert closed.is_set() and threading.active_count() == before
