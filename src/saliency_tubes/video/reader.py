"""Reading videos and frame folders (PyAV): facts, timestamps, frames."""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

from saliency_tubes.errors import InputError, VideoError

PathLike = str | os.PathLike[str]

#: Suffixes of the image files that make up a frame folder.
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

#: Frame rate assumed for a folder of frames when the caller gives none.
DEFAULT_FOLDER_FPS = 25.0


@dataclass(frozen=True)
class VideoInfo:
    """Facts about a video, as returned by :func:`probe`.

    Attributes:
        path: The video file or frame folder.
        width: Frame width in pixels.
        height: Frame height in pixels.
        num_frames: Number of frames (counted, not taken from the header).
        fps: Average frame rate in frames per second (FFmpeg's ``avg_frame_rate``; for a
            frame folder, the rate given by the caller).
        duration: Seconds the video plays: ``timestamps[-1] - timestamps[0] + 1 / fps``
            (the span of the presentation timestamps plus one frame period).
        timestamps: ``(num_frames,)`` float64 presentation time in seconds of every frame, in
            presentation order; frame ``i`` of :func:`iter_frames` has ``timestamps[i]``.
        codec: Codec name as FFmpeg spells it (``"h264"``, ``"mpeg4"``, ``"gif"``, ...); for a
            frame folder the image format (``"png"``, ``"jpeg"``, ...).
        rate: ``fps`` as an exact fraction (e.g. ``30000/1001``), for writing outputs.
        rotation: Degrees (0, 90, 180 or 270) by which the decoded frames are turned
            counter-clockwise to be upright, from the file's display matrix (phone videos);
            ``width`` and ``height`` are the upright frame's, and every frame this module
            returns is upright.
        keyframes: Sorted indices (presentation order) of the frames a decoder can start
            from after a seek (the packets flagged as keyframes when probing), or None where
            unknown (frame folders, videos whose packets carry no pts): then every read
            decodes from the start.
        first: For a segment (:func:`segment`), the file's index of its frame 0; frame
            ``i`` of the segment is the file's frame ``first + i``.
        whole: For a segment, the whole file's facts (the reader decodes through them);
            None for a whole video.
    """

    path: Path
    width: int
    height: int
    num_frames: int
    fps: float
    duration: float
    timestamps: np.ndarray = field(compare=False, repr=False)
    codec: str
    rate: Fraction
    rotation: int = 0
    keyframes: np.ndarray | None = field(default=None, compare=False, repr=False)
    first: int = 0
    whole: VideoInfo | None = field(default=None, compare=False, repr=False)

    @property
    def size(self) -> tuple[int, int]:
        """Frame size ``(H, W)``."""
        return (self.height, self.width)


@dataclass(frozen=True)
class Frame:
    """One decoded frame.

    Attributes:
        index: Position in presentation order, from 0.
        timestamp: Presentation time in seconds.
        image: ``(H, W, 3)`` uint8 RGB pixels.
    """

    index: int
    timestamp: float
    image: np.ndarray = field(repr=False)


def _natural_key(name: str) -> list[Any]:
    """Sort key that orders ``frame2`` before ``frame10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def folder_images(folder: Path) -> list[Path]:
    """The image files of a frame folder, sorted naturally (hidden files skipped)."""
    files = [
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    ]
    return sorted(files, key=lambda p: _natural_key(p.name))


def _to_fraction(fps: float | Fraction | int) -> Fraction:
    """Exact fraction for a frame rate (``29.97002997`` becomes ``30000/1001``)."""
    if isinstance(fps, Fraction):
        return fps
    return Fraction(fps).limit_denominator(100_000)


def check_fps(fps: float | Fraction | int, what: str) -> Fraction:
    try:
        value = float(fps)
    except (TypeError, ValueError):
        value = float("nan")
    if not np.isfinite(value) or value <= 0:
        raise InputError(
            f"expected {what} to be a positive frame rate, but got {fps!r}; "
            "pass frames per second, e.g. 25 or Fraction(30000, 1001)"
        )
    return _to_fraction(fps)


def _existing_path(path: PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise VideoError(
            f"expected an existing video file or frame folder, but got missing path '{p}'; "
            "check the path"
        )
    if p.is_file() and p.stat().st_size == 0:
        raise VideoError(
            f"video file '{p}' is empty (0 bytes); expected a video file FFmpeg can decode"
        )
    return p


def read_error(path: Path, exc: BaseException) -> VideoError:
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    reason = " ".join(str(reason).split())
    return VideoError(
        f"could not read video '{path}': {reason}; expected a video file FFmpeg can decode"
    )


def open_input(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), mode="r")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise read_error(path, exc) from exc


def video_stream(container: av.container.InputContainer, path: Path) -> av.VideoStream:
    if not container.streams.video:
        kinds: list[str] = sorted({str(s.type) for s in container.streams}) or ["no streams"]
        raise VideoError(
            f"expected a video stream in '{path}', but got {', '.join(kinds)}; "
            "pass a file that contains video"
        )
    return container.streams.video[0]


def _timestamps_by_demux(
    container: av.container.InputContainer, stream: av.VideoStream
) -> tuple[np.ndarray, np.ndarray] | None:
    """Presentation times (seconds, sorted) read from the packets, without decoding, and
    the indices of the keyframes among them.

    Returns ``None`` when a packet has no pts (raw elementary streams), so the caller falls
    back to decoding. Packets marked for discarding (outside an MP4 edit list) and empty
    flush packets are skipped: they never become frames.
    """
    pts: list[int] = []
    keys: list[int] = []
    for packet in container.demux(stream):
        if packet.size == 0 or packet.is_discard:
            continue
        if packet.pts is None:
            return None
        pts.append(packet.pts)
        if packet.is_keyframe:
            keys.append(packet.pts)
    tb = stream.time_base
    if tb is None:
        return None
    ordered = np.sort(np.asarray(pts, dtype=np.int64))
    keyframes = np.unique(np.searchsorted(ordered, np.asarray(keys, dtype=np.int64)))
    return ordered.astype(np.float64) * float(tb), keyframes.astype(np.int64)


def _timestamps_by_decoding(path: Path, fps: float) -> np.ndarray:
    """Presentation times from decoded frames (frame time, else index / fps), sorted."""
    times: list[float] = []
    with open_input(path) as container:
        stream = video_stream(container, path)
        try:
            for i, frame in enumerate(container.decode(stream)):
                t = frame.time
                times.append(float(t) if t is not None else i / fps)
        except av.FFmpegError as exc:
            raise read_error(path, exc) from exc
    return np.sort(np.asarray(times, dtype=np.float64))


def _zero_frames(path: Path) -> VideoError:
    return VideoError(
        f"expected at least 1 frame in '{path}', but got 0; "
        "the video is empty or truncated, re-encode or replace it"
    )


def _probe_folder(folder: Path, fps: float | Fraction) -> VideoInfo:
    rate = check_fps(fps, "folder_fps")
    files = folder_images(folder)
    if not files:
        raise VideoError(
            f"expected a frame folder with images ({', '.join(IMAGE_SUFFIXES)}), but got none "
            f"in '{folder}'; pass a video file or a folder of numbered frames"
        )
    try:
        with Image.open(files[0]) as im:
            width, height = im.size
            codec = (im.format or files[0].suffix.lstrip(".")).lower()
    except OSError as exc:
        raise VideoError(
            f"could not read frame '{files[0]}': {exc}; expected an image file PIL can decode"
        ) from exc
    n = len(files)
    timestamps = np.arange(n, dtype=np.float64) / float(rate)
    return VideoInfo(
        path=folder,
        width=int(width),
        height=int(height),
        num_frames=n,
        fps=float(rate),
        duration=n / float(rate),
        timestamps=timestamps,
        codec=codec,
        rate=rate,
    )


def probe(
    path: PathLike, *, folder_fps: float | Fraction = DEFAULT_FOLDER_FPS, min_frames: int = 1
) -> VideoInfo:
    """Read the facts of a video without decoding it where possible.

    Timestamps come from demuxing: the pts of every packet times the stream's time base,
    sorted (decoders emit frames in presentation order, so the ``i``-th decoded frame has the
    ``i``-th smallest pts). Where packets carry no pts, the video is decoded instead. Variable
    frame rate videos are therefore described exactly: ``index`` is the order in presentation
    time and ``timestamps[index]`` the time.

    Args:
        path: A video file (anything FFmpeg reads: mp4, avi, webm, mov, mkv, gif, ...) or a
            folder of numbered frames (png/jpg/..., sorted naturally: ``2.png`` < ``10.png``).
        folder_fps: Frame rate of a frame folder (files carry their own rate).
        min_frames: Fewest frames accepted; see :func:`check_min_frames`.

    Returns:
        The :class:`VideoInfo`.

    Raises:
        VideoError: The path is missing, is not a video FFmpeg can decode, has no video
            stream, has no frames, or has fewer than ``min_frames``.
    """
    p = _existing_path(path)
    if p.is_dir():
        info = _probe_folder(p, folder_fps)
        return check_min_frames(info, min_frames)

    with open_input(p) as container:
        stream = video_stream(container, p)
        width, height = int(stream.codec_context.width), int(stream.codec_context.height)
        codec = stream.codec_context.name
        avg = stream.average_rate or stream.guessed_rate
        try:
            demuxed = _timestamps_by_demux(container, stream)
        except av.FFmpegError as exc:
            raise read_error(p, exc) from exc
    rotation = _rotation(p)
    if rotation in (90, 270):
        width, height = height, width
    keyframes = None
    if demuxed is None:
        timestamps = _timestamps_by_decoding(p, float(avg) if avg else DEFAULT_FOLDER_FPS)
    else:
        timestamps, keyframes = demuxed
    n = int(timestamps.size)
    if n == 0:
        raise _zero_frames(p)
    if avg is not None and avg > 0:
        rate = Fraction(avg.numerator, avg.denominator)
    elif n > 1 and timestamps[-1] > timestamps[0]:
        rate = _to_fraction((n - 1) / (timestamps[-1] - timestamps[0]))
    else:
        rate = _to_fraction(DEFAULT_FOLDER_FPS)
    info = VideoInfo(
        path=p,
        width=width,
        height=height,
        num_frames=n,
        fps=float(rate),
        duration=float(timestamps[-1] - timestamps[0] + 1.0 / float(rate)),
        timestamps=timestamps,
        codec=codec,
        rate=rate,
        rotation=rotation,
        keyframes=keyframes,
    )
    return check_min_frames(info, min_frames)


def _rotation(path: Path) -> int:
    """The display rotation of the first frame (counter-clockwise degrees, 0/90/180/270)."""
    degrees = 0.0
    try:
        with open_input(path) as container:
            for frame in container.decode(video_stream(container, path)):
                degrees = float(getattr(frame, "rotation", 0) or 0)
                break
    except (av.FFmpegError, VideoError):
        return 0  # decoding reports what is wrong with the file, later
    return int(round(degrees / 90.0)) * 90 % 360


def check_min_frames(info: VideoInfo, min_frames: int = 2) -> VideoInfo:
    """Reject videos too short to explain.

    A saliency tube needs a time axis: a single-frame "video" (a still image saved as a
    video) has none, so by default at least 2 frames are required.

    Args:
        info: What :func:`probe` returned.
        min_frames: Fewest frames accepted.

    Returns:
        ``info`` unchanged.

    Raises:
        VideoError: ``info.num_frames < min_frames``.
    """
    if info.num_frames < min_frames:
        got = f"{info.num_frames} frame" + ("" if info.num_frames == 1 else "s")
        raise VideoError(
            f"expected a video with at least {min_frames} frames, but got {got} in "
            f"'{info.path}'; a still image has no time axis to explain, pass a longer video"
        )
    return info


def load_image(path: Path, expected_hw: tuple[int, int] | None) -> np.ndarray:
    try:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except OSError as exc:
        raise VideoError(
            f"could not read frame '{path}': {exc}; expected an image file PIL can decode"
        ) from exc
    if expected_hw is not None and rgb.shape[:2] != expected_hw:
        raise VideoError(
            f"expected every frame of the folder to be {expected_hw[0]}x{expected_hw[1]} "
            f"(HxW), but got {rgb.shape[0]}x{rgb.shape[1]} in '{path}'; resize the frames"
        )
    return rgb


#: swscale flags for accurate YUV -> RGB: FFmpeg's default unscaled yuv420p -> rgb24 path
#: rounds down (measured: about 1.2 grey levels darker on average); full-chroma
#: interpolation with accurate rounding removes the bias (about 9x slower, ~3 ms per
#: 256x340 frame).
ACCURATE_RGB = (
    av.video.reformatter.Interpolation.BILINEAR
    | av.video.reformatter.Interpolation.ACCURATE_RND
    | av.video.reformatter.Interpolation.FULL_CHR_H_INT
)


#: swscale flags for RGB -> YUV 4:2:0 when writing: accurate rounding, filtered chroma.
ACCURATE_YUV = (
    av.video.reformatter.Interpolation.BICUBIC
    | av.video.reformatter.Interpolation.ACCURATE_RND
    | av.video.reformatter.Interpolation.FULL_CHR_H_INP
)


def segment(info: VideoInfo, start: float | None = None, end: float | None = None) -> VideoInfo:
    """The frames shown from ``start`` up to ``end`` seconds, as a video of their own.

    Times are the file's (as in :attr:`VideoInfo.timestamps`); the segment holds the frames
    with ``start <= t < end`` (None: from the first, to the last). Its frames are numbered
    from 0 (the file's frame ``first + i``), its timestamps are the file's, and the reader
    (:func:`~saliency_tubes.video.iter_frames`, :func:`~saliency_tubes.video.read_frames`)
    decodes only from the keyframe before its first frame where it can seek.

    Raises:
        InputError: ``end <= start``, or no frame is shown in ``[start, end)``.
    """
    base = info.whole if info.whole is not None else info
    if start is not None and end is not None and end <= start:
        raise InputError(f"expected --end after --start, but got start {start} and end {end}")
    times = info.timestamps
    lo = int(np.searchsorted(times, start, side="left")) if start is not None else 0
    hi = int(np.searchsorted(times, end, side="left")) if end is not None else info.num_frames
    if hi <= lo:
        raise InputError(
            f"expected --start/--end to hold frames, but no frame of '{info.path}' is shown "
            f"from {start} to {end} s; its frames span {times[0]:.3f} to {times[-1]:.3f} s"
        )
    picked = times[lo:hi]
    return dataclasses.replace(
        info,
        num_frames=hi - lo,
        timestamps=picked,
        duration=float(picked[-1] - picked[0] + 1.0 / info.fps),
        keyframes=None,
        first=info.first + lo,
        whole=base,
    )
