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


def test_an_encode_interrupted_mid_video_stops_its_decoding_thread_at_once(
    tmp_path: Path,
) -> None:
    """Ctrl-C while drawing: the decoding thread is stopped before the exception leaves
    encode(), even while the traceback (which holds the frame iterator) is still alive."""
    from saliency_tubes.commands.drawing import Product, encode
    from saliency_tubes.commands.options import ExplainOptions
    from saliency_tubes.commands.outputs import OutputFolder
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


def test_panels_drawn_on_the_second_painter_are_the_ones_drawn_in_turn() -> None:
    """During an encode every other panel of a frame is drawn on a second thread: the
    pixels are the same as drawn one after the other, for every layout and a grid."""
    from saliency_tubes.commands import drawing
    from saliency_tubes.commands.options import CompareOptions, ExplainOptions

    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    tubes = [rng.random((40, 56)).astype(np.float32) for _ in range(3)]
    tubes[0][:, :9] = np.nan  # a cropped-away border
    options = ExplainOptions(progress=False, background="dark")
    alone = drawing._layouts(image, tubes[0], "a", options)
    grid = CompareOptions(progress=False, style="focus")
    jobs = [(t, "focus") for t in tubes]
    in_turn = drawing._panels(image, jobs, grid)
    with drawing._second_painter():
        together = drawing._layouts(image, tubes[0], "a", options)
        painted = drawing._panels(image, jobs, grid)
        assert [t.name for t in threading.enumerate() if t.name.startswith("draw")]
    assert together.keys() == alone.keys() == {"heat", "focus", "side_by_side"}
    for key in alone:
        assert np.array_equal(together[key], alone[key]), key
    assert len(painted) == 3 and all(
        np.array_equal(a, b) for a, b in zip(painted, in_turn, strict=True)
    )
    assert not any(np.array_equal(painted[0], p) for p in painted[1:])  # each its own tube


def test_an_error_of_the_second_painter_is_raised_in_the_caller_and_leaves_no_thread() -> None:
    from saliency_tubes.commands import drawing
    from saliency_tubes.commands.options import ExplainOptions

    image = np.zeros((8, 8, 3), np.uint8)
    bad = np.zeros((4, 4), np.float32)  # not the frame's size: refused while drawing
    with pytest.raises(InputError, match="expected saliency of shape"):
        with drawing._second_painter():
            drawing._panels(
                image,
                [(np.zeros((8, 8), np.float32), "heat"), (bad, "focus")],
                ExplainOptions(progress=False),
            )
    assert not [t for t in threading.enumerate() if t.name.startswith("draw") and t.is_alive()]
