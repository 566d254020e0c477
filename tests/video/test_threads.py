"""Decoding and encoding on threads: the same frames and files, errors raised in the caller."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from saliency_tubes.errors import InputError
from saliency_tubes.video import BackgroundWriter, VideoWriter, iter_frames, prefetch, threads


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


def test_an_encode_interrupted_mid_video_stops_its_decoding_thread_at_once(
    tmp_path: Path,
) -> None:
    """Ctrl-C while drawing: the decoding thread is stopped before the exception leaves
    encode(), even while the traceback (which holds the frame iterator) is still alive."""
    from saliency_tubes.commands.options import ExplainOptions
    from saliency_tubes.commands.pipeline.drawing import Product, encode
    from saliency_tubes.commands.pipeline.outputs import OutputFolder
    from saliency_tubes.video import probe

    video = tmp_path / "in.mp4"
    with VideoWriter(video, 10) as writer:
        for _ in range(40):
            writer.write(_frames(1)[0])
    info = probe(video)

    def draw(frame) -> dict[str, np.ndarray]:
        if frame.index == 3:
            raise KeyboardInterrupt
        return {"x": frame.image}

    (tmp_path / "out").mkdir()
    outputs = OutputFolder(tmp_path / "out")
    options = ExplainOptions(progress=False)
    with pytest.raises(KeyboardInterrupt) as caught:
        encode(video, info, outputs, [Product({"x": "x"}, draw)], ["mp4"], options)
    assert caught.traceback  # still referenced here
    assert not [t for t in threading.enumerate() if t.name == "decode" and t.is_alive()]
    assert not [t for t in threading.enumerate() if t.name.startswith("encode ")]
    outputs.cleanup()


def test_an_abort_after_a_ctrl_c_broke_the_queue_returns_and_removes_the_output(
    tmp_path: Path,
) -> None:
    """A KeyboardInterrupt raised inside the caller's ``put`` can leave the queue's lock held
    (Python raises it between any two bytecodes, inside ``threading``'s ``with lock:`` too:
    seen as a hung Ctrl-C, 1 run in 25 under load). The abort must neither wait for the
    lock nor for the thread blocked on it, and still remove the temporary output."""
    bg = BackgroundWriter(VideoWriter(tmp_path / "out.mp4", 10))
    bg.write(np.zeros((32, 32, 3), np.uint8))
    assert bg._queue.mutex.acquire(timeout=5)  # what the interrupted put left behind
    done = threading.Event()
    aborter = threading.Thread(target=lambda: (bg.abort(), done.set()), daemon=True)
    aborter.start()
    assert done.wait(timeout=60), "abort waited on a lock that no one will release"
    assert list(tmp_path.iterdir()) == []
    bg._queue.mutex.release()  # (here the lock can be given back: the thread then stops)
    bg._thread.join(timeout=60)
    assert not bg._thread.is_alive()


def test_a_lost_wake_up_does_not_keep_the_encoding_thread(tmp_path: Path) -> None:
    """The end marker put without a wake-up (what an interrupted ``put`` can leave): the idle
    thread still finds it (it looks every poll) and stops."""
    bg = BackgroundWriter(VideoWriter(tmp_path / "out.mp4", 10))
    with bg._queue.mutex:
        bg._queue.queue.append(threads._END)  # no notify
    bg._thread.join(timeout=60)
    assert not bg._thread.is_alive()
    bg.writer.abort()
