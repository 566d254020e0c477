"""Decoding frames (PyAV): every frame in order, or only the wanted ones, seeking where cheaper.

A video is decoded in runs (:func:`plan_runs`): the first starts at the beginning, and a new
run starts with a seek to the keyframe before a wanted frame whenever that skips at least
:data:`SEEK_MIN_SKIP` frames that decoding on would have had to decode. Dense sampling,
short videos (one keyframe) and readers of every frame therefore decode sequentially as
before; a few frames spread over a long video cost a seek and part of a GOP each.

Frames are identified by their presentation time, which must be one of the probed
timestamps exactly; the first frame at or after the keyframe must be the keyframe. Frames
that are not wanted and that no other frame refers to (most B-frames) are not decoded at
all (the decoder's ``skip_frame``), which halves the decoding between a keyframe and a
wanted frame with B-frames. Only H.264 and HEVC are read this way (:data:`BY_TIME`);
other codecs decode sequentially.
Where either fails (a container whose seeks are approximate, a decoder that drops frames
after a seek) the read starts again from the beginning and decodes sequentially, so the
frames returned are always those of a sequential decode.
"""

from __future__ import annotations

from collections.abc import Collection, Generator, Iterator, Sequence
from contextlib import closing
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from saliency_tubes.errors import InputError, VideoError

from .reader import (
    ACCURATE_RGB,
    DEFAULT_FOLDER_FPS,
    Frame,
    PathLike,
    VideoInfo,
    folder_images,
    load_image,
    open_input,
    probe,
    read_error,
    video_stream,
)

__all__ = ["BY_TIME", "SEEK_MIN_SKIP", "iter_frames", "plan_runs", "read_frames"]

#: Fewest frames a seek must save for it to be taken instead of decoding on. A seek
#: flushes the decoder (its frame threads refill before the first frame comes out), so
#: skipping a handful of frames is not worth it.
SEEK_MIN_SKIP = 12


#: Codecs read by time (seeks, skipped frames): one frame per packet, each frame's time its
#: packet's. Not MPEG-4 part 2, whose AVI files pack a B-frame with the next P-frame in one
#: packet (the times of the frames decoded from it are not those probed); other codecs
#: are decoded sequentially, every frame counted.
BY_TIME = frozenset({"h264", "hevc"})


#: An upright frame size ``(H, W)`` to scale decoded frames to, or None (as decoded).
Size = tuple[int, int] | None


def to_rgb(
    frame: av.VideoFrame, accurate: bool, rotation: int = 0, size: Size = None
) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB pixels of a decoded frame, turned upright by ``rotation``;
    with ``size``, scaled to that upright size in the same conversion (swscale)."""
    scale: dict[str, int] = {}
    if size is not None:
        h, w = (size[0], size[1]) if rotation in (0, 180) else (size[1], size[0])
        if (h, w) != (frame.height, frame.width):
            scale = {"width": int(w), "height": int(h)}
    rgb: np.ndarray
    if accurate:
        rgb = frame.reformat(format="rgb24", interpolation=ACCURATE_RGB, **scale).to_ndarray()
    else:
        rgb = frame.reformat(format="rgb24", **scale).to_ndarray()
    if rotation:
        rgb = np.ascontiguousarray(np.rot90(rgb, k=rotation // 90))
    return rgb


def _extra_timestamp(info: VideoInfo, index: int) -> float:
    """Time of a decoded frame beyond the probed count (should not happen; extrapolate)."""
    last = float(info.timestamps[-1])
    return last + (index - info.num_frames + 1) / info.fps


def plan_runs(
    keyframes: np.ndarray | None, wanted: Sequence[int], min_skip: int = SEEK_MIN_SKIP
) -> list[tuple[int | None, list[int]]]:
    """How to decode the ``wanted`` frames: runs of ``(start, frames)``.

    ``start`` is None for the first run when it decodes from the beginning, else the
    keyframe it seeks to; each run decodes forward from there to its last frame. A run
    starts at the keyframe before a wanted frame when that skips at least ``min_skip``
    frames beyond the last one decoded.

    Args:
        keyframes: sorted keyframe indices (:attr:`VideoInfo.keyframes`); None: never seek.
        wanted: frame indices, sorted, without repeats.
        min_skip: see :data:`SEEK_MIN_SKIP`.
    """
    runs: list[tuple[int | None, list[int]]] = []
    after = 0  # the next frame a run in progress would decode
    for target in wanted:
        start = None
        if keyframes is not None and len(keyframes):
            at = int(np.searchsorted(keyframes, target, side="right")) - 1
            if at >= 0 and int(keyframes[at]) - after >= min_skip:
                start = int(keyframes[at])
        if start is not None or not runs:
            runs.append((start, [target]))
        else:
            runs[-1][1].append(target)
        after = target + 1
    return runs


class _Lost(Exception):
    """A seek did not land where a sequential decode would have: start again from 0."""


def _seekable(info: VideoInfo) -> bool:
    times = info.timestamps
    return info.codec in BY_TIME and info.keyframes is not None and bool(np.all(np.diff(times) > 0))


def _index_of(info: VideoInfo, t: float) -> int:
    """The frame shown at exactly ``t`` seconds, or -1 when no probed frame is."""
    index = int(np.searchsorted(info.timestamps, t))
    return index if index < info.num_frames and info.timestamps[index] == t else -1


def _by_time(
    container: av.container.InputContainer,
    stream: av.VideoStream,
    info: VideoInfo,
    start: int | None,
    wanted: Collection[int],
) -> Generator[tuple[int, av.VideoFrame], None, None]:
    """``(index, frame)`` from keyframe ``start`` on (None: from the beginning, frame 0),
    indexed by their times.

    Packets of frames not wanted are sent with ``skip_frame = NONREF``: a frame no other
    frame refers to (most B-frames) is then not decoded at all; wanted frames and every
    reference frame are decoded as always, so the wanted pixels do not change.
    """
    base = stream.time_base
    if base is None:
        raise _Lost
    tb = float(base)
    if start is not None:
        target = int(round(float(info.timestamps[start]) / tb))
        container.seek(target, stream=stream, backward=True, any_frame=False)
    first, lower = True, start or 0
    codec = stream.codec_context
    try:
        for packet in container.demux(stream):
            if packet.pts is not None:
                wants = _index_of(info, float(packet.pts) * tb) in wanted
                codec.skip_frame = "DEFAULT" if wants else "NONREF"
            for frame in packet.decode():
                index = _index_of(info, float(frame.pts) * tb) if frame.pts is not None else -1
                if index < 0:
                    raise _Lost
                if index < lower:
                    continue  # a frame before the keyframe (an open GOP's leading frames)
                if first and index != lower:
                    raise _Lost
                first = False
                yield index, frame
    finally:
        codec.skip_frame = "DEFAULT"


def _runs_of(
    container: av.container.InputContainer,
    stream: av.VideoStream,
    info: VideoInfo,
    wanted: Sequence[int],
    accurate: bool,
    size: Size = None,
) -> Iterator[Frame]:
    """The ``wanted`` frames (sorted), decoded run by run (:func:`plan_runs`)."""
    runs = plan_runs(info.keyframes, wanted, SEEK_MIN_SKIP)
    chosen = frozenset(wanted)
    for start, targets in runs:
        todo = iter(targets)
        target = next(todo)
        with closing(_by_time(container, stream, info, start, chosen)) as frames:
            for index, frame in frames:
                if index < target:
                    continue
                if index > target:
                    raise _Lost  # a frame went missing
                yield _frame(info, index, frame, accurate, size)
                target = next(todo, -1)
                if target < 0:
                    break


def _frame(info: VideoInfo, index: int, frame: av.VideoFrame, accurate: bool, size: Size) -> Frame:
    t = float(info.timestamps[index]) if index < info.num_frames else _extra_timestamp(info, index)
    return Frame(index, t, to_rgb(frame, accurate, info.rotation, size))


def _sequential(
    container: av.container.InputContainer,
    stream: av.VideoStream,
    info: VideoInfo,
    wanted: Collection[int] | None,
    accurate: bool,
    after: int = -1,
    size: Size = None,
) -> Iterator[Frame]:
    """Frames from the beginning, in order, counted: the ``wanted`` ones after ``after``."""
    last = max(wanted) if wanted else None
    for i, frame in enumerate(container.decode(stream)):
        if i > after and (wanted is None or i in wanted):
            yield _frame(info, i, frame, accurate, size)
        if last is not None and i >= last:
            return


def _decode(
    path: Path, info: VideoInfo, wanted: Collection[int] | None, accurate: bool, size: Size
) -> Iterator[Frame]:
    """The frames of a video file: every one, or the ``wanted`` ones seeking where cheaper."""
    if wanted is not None and not wanted:
        return
    with open_input(path) as container:
        stream = video_stream(container, path)
        stream.thread_type = "AUTO"
        try:
            if wanted is None or not _seekable(info):
                yield from _sequential(container, stream, info, wanted, accurate, size=size)
                return
            done = -1
            try:
                for frame in _runs_of(container, stream, info, sorted(wanted), accurate, size):
                    done = frame.index
                    yield frame
                return
            except _Lost:
                pass
        except av.FFmpegError as exc:
            raise read_error(path, exc) from exc
    with open_input(path) as container:  # a fresh start: the seeks' state is gone
        stream = video_stream(container, path)
        stream.thread_type = "AUTO"
        try:
            yield from _sequential(container, stream, info, wanted, accurate, done, size)
        except av.FFmpegError as exc:
            raise read_error(path, exc) from exc


def iter_frames(
    path: PathLike,
    *,
    folder_fps: float | Fraction = DEFAULT_FOLDER_FPS,
    info: VideoInfo | None = None,
    accurate: bool = True,
    wanted: Collection[int] | None = None,
    size: Size = None,
) -> Iterator[Frame]:
    """Stream the frames of a video one at a time, in presentation order.

    Only one decoded frame is held at a time, so memory does not grow with the video's
    length. The generator closes the file when exhausted or closed.

    Args:
        path: A video file or frame folder (see :func:`probe`).
        folder_fps: Frame rate of a frame folder.
        info: The result of :func:`probe` for ``path``, to skip probing again.
        accurate: Convert YUV to RGB with accurate rounding and interpolated chroma (FFmpeg's
            fast default is about 1 grey level darker on average); ``False`` is several times
            faster for long renders.
        wanted: Only these frame indices, each once, in order: the video is decoded up to
            the last of them, seeking to the keyframe before a wanted frame where that
            skips enough frames (:func:`plan_runs`); the frames are those of a sequential
            decode either way. None: every frame, decoded sequentially.
        size: ``(H, W)`` to scale the frames to (in the YUV to RGB conversion; frame
            folders with PIL), or None: the video's size.

    Yields:
        :class:`Frame` ``(index, timestamp, image)`` with ``timestamp = info.timestamps[index]``.

    Raises:
        VideoError: As :func:`probe`, or when decoding fails part way.
    """
    info = info if info is not None else probe(path, folder_fps=folder_fps)
    if info.whole is not None:  # a segment: the file's frames first + i
        first = info.first
        inner = (
            range(first, first + info.num_frames)
            if wanted is None
            else {int(i) + first for i in wanted}
        )
        for f in iter_frames(path, info=info.whole, accurate=accurate, wanted=inner, size=size):
            yield Frame(f.index - first, f.timestamp, f.image)
        return
    p = Path(path)
    if p.is_dir():
        hw = info.size
        for i, file in enumerate(folder_images(p)):
            if wanted is None or i in wanted:
                image = load_image(file, hw)
                if size is not None and tuple(size) != hw:
                    picture = Image.fromarray(image).resize(
                        (size[1], size[0]), Image.Resampling.BILINEAR
                    )
                    image = np.asarray(picture)
                yield Frame(i, float(info.timestamps[i]), image)
        return
    yield from _decode(p, info, wanted, accurate, size)


def _checked_indices(indices: Sequence[int] | np.ndarray, info: VideoInfo) -> np.ndarray:
    idx = np.asarray(indices)
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise InputError(
            f"expected a 1-D sequence of integer frame indices, but got shape {idx.shape} "
            f"dtype {idx.dtype}; pass e.g. sample_uniform(num_frames, T)"
        )
    idx = idx.astype(np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= info.num_frames):
        bad = int(idx.min()) if idx.min() < 0 else int(idx.max())
        raise InputError(
            f"expected frame indices in [0, {info.num_frames}), but got {bad}; "
            f"'{info.path}' has {info.num_frames} frames"
        )
    return idx


def read_frames(
    path: PathLike,
    indices: Sequence[int] | np.ndarray,
    *,
    folder_fps: float | Fraction = DEFAULT_FOLDER_FPS,
    info: VideoInfo | None = None,
    accurate: bool = True,
) -> np.ndarray:
    """Decode the frames at ``indices`` (in presentation order; repeats allowed).

    Only what the requested frames need is decoded (:func:`iter_frames` with ``wanted``:
    up to the largest index, seeking over long gaps) and only they are converted to RGB
    and kept; frame folders load only the requested files.

    Args:
        path: A video file or frame folder.
        indices: Frame indices in ``[0, num_frames)``, any order, repeats allowed.
        folder_fps: Frame rate of a frame folder.
        info: The result of :func:`probe` for ``path``, to skip probing again.
        accurate: Accurate YUV to RGB conversion (see :func:`iter_frames`).

    Returns:
        ``(len(indices), H, W, 3)`` uint8 RGB frames, in the order of ``indices``.

    Raises:
        InputError: An index is not an integer in ``[0, num_frames)``.
        VideoError: As :func:`probe`, or the video ends before a requested frame.
    """
    info = info if info is not None else probe(path, folder_fps=folder_fps)
    idx = _checked_indices(indices, info)
    out = np.empty((idx.size, info.height, info.width, 3), dtype=np.uint8)
    if idx.size == 0:
        return out
    p = Path(path)
    wanted = {int(i) for i in idx}
    found: dict[int, np.ndarray] = {}
    if p.is_dir():
        files = folder_images(p)
        for i in wanted:
            found[i] = load_image(files[info.first + i], info.size)
    else:
        for frame in iter_frames(p, info=info, accurate=accurate, wanted=wanted):
            found[frame.index] = frame.image
        if len(found) < len(wanted):
            missing = min(wanted - found.keys())
            raise VideoError(
                f"expected frame {missing} in '{p}', but got only {max(found, default=-1) + 1} "
                "decodable frames; the video is truncated or corrupt, re-encode it"
            )
    for k, i in enumerate(idx):
        frame_i = found[int(i)]
        if frame_i.shape != out.shape[1:]:
            raise VideoError(
                f"expected frames of {info.height}x{info.width} (HxW), but got "
                f"{frame_i.shape[0]}x{frame_i.shape[1]} at frame {int(i)} of '{p}'; "
                "videos whose size changes midway are not supported, re-encode it"
            )
        out[k] = frame_i
    return out
