"""Video input and output: reading, sampling, preprocessing, mapping saliency back, writing.

The module is the bridge between video files and the clip tensors a video classifier sees,
and back again:

1. **Reading** (PyAV): :func:`probe` gives the facts of a video (:class:`VideoInfo`), with the
   presentation timestamp of every frame; :func:`iter_frames` streams frames one at a time;
   :func:`read_frames` decodes only what is needed to return the requested frames. Any
   container FFmpeg reads works, and so does a folder of numbered images.
2. **Sampling**: :func:`sample_uniform` (the frames of one clip spread over the whole video)
   and :func:`sliding_windows` (clips that together cover every frame).
3. **Preprocessing**: :class:`Preprocess` turns ``(T, H, W, 3)`` uint8 frames into a
   normalised ``(3, T, h, w)`` float tensor and records, as a :class:`Geometry`, which source
   region the clip covers.
4. **Mapping back**: :class:`TubeMapper` turns a saliency tube on the clip grid into a map
   on any source frame, at any time; :func:`stitch_windows` blends the tubes of several
   windows into one whole-video mapper.
5. **Writing**: :class:`VideoWriter` writes H.264 MP4, GIF or PNG frame folders atomically;
   :func:`atomic_write_bytes`, :func:`atomic_save_npy` and :func:`atomic_write_json` do the
   same for small files.

Conventions: frames are ``(H, W, 3)`` uint8 RGB numpy arrays, sizes are written
``(T, H, W)``, times are seconds (float64) as stored in the file (not shifted to start at 0).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import av
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from saliency_tubes.errors import InputError, VideoError

__all__ = [
    "IMAGE_SUFFIXES",
    "Frame",
    "Geometry",
    "Preprocess",
    "TubeMapper",
    "VideoInfo",
    "VideoWriter",
    "atomic_save_npy",
    "atomic_write_bytes",
    "atomic_write_json",
    "check_min_frames",
    "iter_frames",
    "probe",
    "read_frames",
    "resample_times",
    "sample_uniform",
    "sliding_windows",
    "stitch_windows",
]

PathLike = str | os.PathLike[str]

#: Suffixes of the image files that make up a frame folder.
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

#: Frame rate assumed for a folder of frames when the caller gives none.
DEFAULT_FOLDER_FPS = 25.0

#: Kinetics-400 normalisation of the torchvision video models (pixels scaled to [0, 1]).
KINETICS_MEAN: tuple[float, float, float] = (0.43216, 0.394666, 0.37645)
KINETICS_STD: tuple[float, float, float] = (0.22803, 0.22145, 0.216989)


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------


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


def _folder_images(folder: Path) -> list[Path]:
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


def _check_fps(fps: float | Fraction | int, what: str) -> Fraction:
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
        raise VideoError(f"video file '{p}' is empty (0 bytes); expected a video file FFmpeg can decode")
    return p


def _read_error(path: Path, exc: BaseException) -> VideoError:
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    reason = " ".join(str(reason).split())
    return VideoError(
        f"could not read video '{path}': {reason}; expected a video file FFmpeg can decode"
    )


def _open_input(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), mode="r")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise _read_error(path, exc) from exc


def _video_stream(container: av.container.InputContainer, path: Path) -> av.VideoStream:
    if not container.streams.video:
        kinds: list[str] = sorted({str(s.type) for s in container.streams}) or ["no streams"]
        raise VideoError(
            f"expected a video stream in '{path}', but got {', '.join(kinds)}; "
            "pass a file that contains video"
        )
    return container.streams.video[0]


def _timestamps_by_demux(
    container: av.container.InputContainer, stream: av.VideoStream
) -> np.ndarray | None:
    """Presentation times (seconds, sorted) read from the packets, without decoding.

    Returns ``None`` when a packet has no pts (raw elementary streams), so the caller falls
    back to decoding. Packets marked for discarding (outside an MP4 edit list) and empty
    flush packets are skipped: they never become frames.
    """
    pts: list[int] = []
    for packet in container.demux(stream):
        if packet.size == 0 or packet.is_discard:
            continue
        if packet.pts is None:
            return None
        pts.append(packet.pts)
    tb = stream.time_base
    if tb is None:
        return None
    return np.sort(np.asarray(pts, dtype=np.float64)) * float(tb)


def _timestamps_by_decoding(path: Path, fps: float) -> np.ndarray:
    """Presentation times from decoded frames (frame time, else index / fps), sorted."""
    times: list[float] = []
    with _open_input(path) as container:
        stream = _video_stream(container, path)
        try:
            for i, frame in enumerate(container.decode(stream)):
                t = frame.time
                times.append(float(t) if t is not None else i / fps)
        except av.FFmpegError as exc:
            raise _read_error(path, exc) from exc
    return np.sort(np.asarray(times, dtype=np.float64))


def _zero_frames(path: Path) -> VideoError:
    return VideoError(
        f"expected at least 1 frame in '{path}', but got 0; "
        "the video is empty or truncated, re-encode or replace it"
    )


def _probe_folder(folder: Path, fps: float | Fraction) -> VideoInfo:
    rate = _check_fps(fps, "folder_fps")
    files = _folder_images(folder)
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

    with _open_input(p) as container:
        stream = _video_stream(container, p)
        width, height = int(stream.codec_context.width), int(stream.codec_context.height)
        codec = stream.codec_context.name
        avg = stream.average_rate or stream.guessed_rate
        try:
            timestamps = _timestamps_by_demux(container, stream)
        except av.FFmpegError as exc:
            raise _read_error(p, exc) from exc
    if timestamps is None:
        timestamps = _timestamps_by_decoding(p, float(avg) if avg else DEFAULT_FOLDER_FPS)
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
    )
    return check_min_frames(info, min_frames)


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


def _load_image(path: Path, expected_hw: tuple[int, int] | None) -> np.ndarray:
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
_ACCURATE_RGB = (
    av.video.reformatter.Interpolation.BILINEAR
    | av.video.reformatter.Interpolation.ACCURATE_RND
    | av.video.reformatter.Interpolation.FULL_CHR_H_INT
)


#: swscale flags for RGB -> YUV 4:2:0 when writing: accurate rounding, filtered chroma.
_ACCURATE_YUV = (
    av.video.reformatter.Interpolation.BICUBIC
    | av.video.reformatter.Interpolation.ACCURATE_RND
    | av.video.reformatter.Interpolation.FULL_CHR_H_INP
)


def _to_rgb(frame: av.VideoFrame, accurate: bool) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB pixels of a decoded frame."""
    if accurate:
        return frame.reformat(format="rgb24", interpolation=_ACCURATE_RGB).to_ndarray()
    return frame.to_ndarray(format="rgb24")


def _extra_timestamp(info: VideoInfo, index: int) -> float:
    """Time of a decoded frame beyond the probed count (should not happen; extrapolate)."""
    last = float(info.timestamps[-1])
    return last + (index - info.num_frames + 1) / info.fps


def iter_frames(
    path: PathLike,
    *,
    folder_fps: float | Fraction = DEFAULT_FOLDER_FPS,
    info: VideoInfo | None = None,
    accurate: bool = True,
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

    Yields:
        :class:`Frame` ``(index, timestamp, image)`` with ``timestamp = info.timestamps[index]``.

    Raises:
        VideoError: As :func:`probe`, or when decoding fails part way.
    """
    info = info if info is not None else probe(path, folder_fps=folder_fps)
    p = Path(path)
    if p.is_dir():
        hw = info.size
        for i, file in enumerate(_folder_images(p)):
            yield Frame(i, float(info.timestamps[i]), _load_image(file, hw))
        return
    with _open_input(p) as container:
        stream = _video_stream(container, p)
        stream.thread_type = "AUTO"
        try:
            for i, frame in enumerate(container.decode(stream)):
                t = float(info.timestamps[i]) if i < info.num_frames else _extra_timestamp(info, i)
                yield Frame(i, t, _to_rgb(frame, accurate))
        except av.FFmpegError as exc:
            raise _read_error(p, exc) from exc


def read_frames(
    path: PathLike,
    indices: Sequence[int] | np.ndarray,
    *,
    folder_fps: float | Fraction = DEFAULT_FOLDER_FPS,
    info: VideoInfo | None = None,
    accurate: bool = True,
) -> np.ndarray:
    """Decode the frames at ``indices`` (in presentation order; repeats allowed).

    The video is decoded sequentially up to the largest index and only the requested frames
    are converted to RGB and kept; frame folders load only the requested files.

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
    out = np.empty((idx.size, info.height, info.width, 3), dtype=np.uint8)
    if idx.size == 0:
        return out
    p = Path(path)
    wanted = {int(i) for i in idx}
    found: dict[int, np.ndarray] = {}
    if p.is_dir():
        files = _folder_images(p)
        for i in wanted:
            found[i] = _load_image(files[i], info.size)
    else:
        last = max(wanted)
        with _open_input(p) as container:
            stream = _video_stream(container, p)
            stream.thread_type = "AUTO"
            try:
                for i, frame in enumerate(container.decode(stream)):
                    if i in wanted:
                        found[i] = _to_rgb(frame, accurate)
                    if i >= last:
                        break
            except av.FFmpegError as exc:
                raise _read_error(p, exc) from exc
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


# --------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < 1:
        raise InputError(f"expected {name} to be a positive integer, but got {value!r}; "
                         f"pass {name} >= 1")
    return int(value)


def sample_uniform(num_frames: int, T: int) -> np.ndarray:
    """``T`` frame indices spread evenly over the whole video.

    As in the Saliency Tubes authors' script, indices are ``floor(linspace(0, n - 1, T))``:
    the first and last frames are always included and the rest are evenly spaced,

    .. math:: i_k = \\left\\lfloor k \\frac{n - 1}{T - 1} \\right\\rfloor, \\quad k = 0..T-1.

    When ``T > num_frames`` frames repeat (each about ``T / n`` times); ``T == 1`` gives frame 0.

    Args:
        num_frames: Frames in the video, ``n >= 1``.
        T: Frames wanted.

    Returns:
        ``(T,)`` int64 non-decreasing indices in ``[0, n)``.

    Raises:
        InputError: ``num_frames`` or ``T`` is not a positive integer.
    """
    n = _positive_int(num_frames, "num_frames")
    t = _positive_int(T, "T")
    # The tiny epsilon keeps exact integers (k * (n-1) / (T-1) == m) from flooring to m - 1.
    idx = np.floor(np.linspace(0.0, n - 1, t) + 1e-9).astype(np.int64)
    return np.clip(idx, 0, n - 1)


def sliding_windows(num_frames: int, length: int, stride: int, step: int = 1) -> list[np.ndarray]:
    """Clips of ``length`` frames that together cover every frame of the video.

    Window ``k`` holds frames ``s_k + step * [0, 1, ..., length - 1]`` with starts
    ``s_k = k * stride``; when the last regular window stops short of the end, one more window
    aligned to the end (``s = n - span``, ``span = (length - 1) * step + 1``) is added. A video
    shorter than one window gives a single window of :func:`sample_uniform` indices (frames
    repeat).

    Args:
        num_frames: Frames in the video.
        length: Frames per window (the model's clip length).
        stride: Frames between the starts of consecutive windows, ``<= span`` so no frame is
            skipped.
        step: Frames between consecutive frames of a window (temporal subsampling).

    Returns:
        A list of ``(length,)`` int64 index arrays, in time order.

    Raises:
        InputError: A non-positive argument, or ``stride > span`` (windows would leave gaps).
    """
    n = _positive_int(num_frames, "num_frames")
    length = _positive_int(length, "length")
    stride = _positive_int(stride, "stride")
    step = _positive_int(step, "step")
    span = (length - 1) * step + 1
    if stride > span:
        raise InputError(
            f"expected stride <= window span {span} so the windows cover every frame, but got "
            f"stride {stride}; lower the stride or raise length/step"
        )
    if n < span:
        return [sample_uniform(n, length)]
    offsets = step * np.arange(length, dtype=np.int64)
    starts = list(range(0, n - span + 1, stride))
    if starts[-1] + span < n:
        starts.append(n - span)
    return [s + offsets for s in starts]


# --------------------------------------------------------------------------------------
# Preprocessing
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Geometry:
    """Where the clip's pixel grid lies on the source frame.

    The clip's ``(h, w)`` grid covers the source rectangle ``[top, top + height) x
    [left, left + width)`` (pixel-edge coordinates, floats: pixel ``(Y, X)`` of the source
    spans ``[Y, Y + 1) x [X, X + 1)``). A grid of ``(gh, gw)`` cells over that region (the
    clip itself, or a coarser saliency map) has cell ``(y, x)`` centred at

    .. math:: Y = \\text{top} + (y + 0.5) \\frac{\\text{height}}{g_h} - 0.5, \\qquad
              X = \\text{left} + (x + 0.5) \\frac{\\text{width}}{g_w} - 0.5

    in source pixel-centre coordinates.

    Attributes:
        top: Source row (edge coordinate) of the clip's top edge.
        left: Source column (edge coordinate) of the clip's left edge.
        height: Source rows covered by the clip.
        width: Source columns covered by the clip.
        src_hw: Source frame size ``(H, W)``.
        clip_hw: Clip frame size ``(h, w)``.
    """

    top: float
    left: float
    height: float
    width: float
    src_hw: tuple[int, int]
    clip_hw: tuple[int, int]

    def to_source(
        self, y: float | np.ndarray, x: float | np.ndarray, grid_hw: tuple[int, int] | None = None
    ) -> tuple[Any, Any]:
        """Source pixel-centre coordinates ``(Y, X)`` of grid cell ``(y, x)``.

        Args:
            y: Row(s) on the grid.
            x: Column(s) on the grid.
            grid_hw: Grid size; defaults to the clip size.

        Returns:
            ``(Y, X)`` as floats or arrays (sub-pixel; round for a pixel index).
        """
        gh, gw = grid_hw if grid_hw is not None else self.clip_hw
        ys = self.top + (np.asarray(y, dtype=np.float64) + 0.5) * self.height / gh - 0.5
        xs = self.left + (np.asarray(x, dtype=np.float64) + 0.5) * self.width / gw - 0.5
        return (ys[()] if ys.ndim == 0 else ys), (xs[()] if xs.ndim == 0 else xs)


@dataclass(frozen=True)
class Preprocess:
    """Resize, crop and normalise frames into a model's clip tensor.

    ``resize="short_side"`` scales the frame by ``s`` and centre-crops ``size``; ``s`` makes
    the short side ``resize_to`` pixels when given (the usual "resize 256, crop 224" recipe),
    and is otherwise just large enough for the frame to cover ``size``:

    .. math:: s = \\max\\left(\\frac{h}{H}, \\frac{w}{W}\\right)
              \\;\\text{or}\\; \\max\\left(\\frac{r}{\\min(H, W)}, \\frac{h}{H}, \\frac{w}{W}\\right).

    ``resize="full"`` resizes the whole frame to ``size`` (aspect ratio not kept, no crop).
    Resizing is bilinear with antialiasing (``torch.nn.functional.interpolate``), over all
    frames at once. Pixels are then scaled to ``[0, 1]`` and normalised per channel,
    ``x' = (x / 255 - mean_c) / std_c``.

    Attributes:
        size: Clip frame size ``(h, w)``.
        resize: ``"short_side"`` (resize then centre crop) or ``"full"`` (resize, no crop).
        mean: Per-channel mean (RGB, on the ``[0, 1]`` scale). Default: Kinetics-400 as used by
            the torchvision video models.
        std: Per-channel standard deviation (RGB, ``[0, 1]`` scale).
        resize_to: For ``"short_side"``: short-side length before cropping (default: the
            smallest that covers ``size``).
    """

    size: tuple[int, int]
    resize: Literal["short_side", "full"] = "short_side"
    mean: tuple[float, float, float] = KINETICS_MEAN
    std: tuple[float, float, float] = KINETICS_STD
    resize_to: int | None = None

    def __post_init__(self) -> None:
        size = tuple(self.size)
        if len(size) != 2 or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in size
        ):
            raise InputError(
                f"expected size to be (h, w) positive integers, but got {self.size!r}; "
                "pass e.g. size=(112, 112)"
            )
        object.__setattr__(self, "size", (int(size[0]), int(size[1])))
        if self.resize not in ("short_side", "full"):
            raise InputError(
                f"expected resize to be 'short_side' or 'full', but got {self.resize!r}; "
                "pick one of the two"
            )
        for name in ("mean", "std"):
            values = tuple(float(v) for v in getattr(self, name))
            if len(values) != 3 or not all(np.isfinite(values)):
                raise InputError(
                    f"expected {name} to be 3 finite floats (R, G, B), but got "
                    f"{getattr(self, name)!r}; pass per-channel values on the [0, 1] scale"
                )
            object.__setattr__(self, name, values)
        if min(self.std) <= 0:
            raise InputError(f"expected std > 0 for every channel, but got {self.std!r}; "
                             "pass positive standard deviations")
        if self.resize_to is not None:
            _positive_int(self.resize_to, "resize_to")

    def _resized_hw(self, src_hw: tuple[int, int]) -> tuple[int, int]:
        """Size ``(Hr, Wr)`` of the frame after resizing (before any crop)."""
        H, W = src_hw
        h, w = self.size
        if self.resize == "full":
            return h, w
        scale = max(h / H, w / W)
        if self.resize_to is not None:
            scale = max(scale, self.resize_to / min(H, W))
        return max(h, round(H * scale)), max(w, round(W * scale))

    def geometry(self, src_hw: tuple[int, int]) -> Geometry:
        """The source region the clip covers, for frames of size ``src_hw = (H, W)``.

        With resized size ``(Hr, Wr)`` and crop offset ``(cy, cx) = ((Hr - h) // 2,
        (Wr - w) // 2)``, resized pixel edges map to source edges by ``H / Hr`` and
        ``W / Wr`` (``align_corners=False``), so the region is
        ``top = cy * H / Hr``, ``height = h * H / Hr`` (columns alike). For ``"full"``
        it is the whole frame.

        Args:
            src_hw: Source frame size ``(H, W)``.

        Returns:
            The :class:`Geometry`.

        Raises:
            InputError: ``src_hw`` is not two positive integers.
        """
        if len(tuple(src_hw)) != 2 or min(src_hw) < 1:
            raise InputError(f"expected src_hw to be (H, W) positive integers, but got "
                             f"{src_hw!r}; pass the source frame size")
        H, W = int(src_hw[0]), int(src_hw[1])
        h, w = self.size
        Hr, Wr = self._resized_hw((H, W))
        cy, cx = (Hr - h) // 2, (Wr - w) // 2
        return Geometry(
            top=cy * H / Hr,
            left=cx * W / Wr,
            height=h * H / Hr,
            width=w * W / Wr,
            src_hw=(H, W),
            clip_hw=(h, w),
        )

    def __call__(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Turn ``(T, H, W, 3)`` uint8 RGB frames into a ``(3, T, h, w)`` float32 clip.

        Args:
            frames: Frames as numpy or torch uint8, e.g. from :func:`read_frames`.

        Returns:
            The normalised clip, float32, on the CPU (or the input tensor's device). Add the
            batch axis with ``clip[None]``.

        Raises:
            InputError: ``frames`` is not a ``(T, H, W, 3)`` uint8 array with ``T >= 1``.
        """
        x = torch.from_numpy(np.ascontiguousarray(frames)) if isinstance(
            frames, np.ndarray) else frames
        if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.ndim != 4 \
                or x.shape[-1] != 3 or x.shape[0] < 1 or min(x.shape[1:3]) < 1:
            shape = tuple(getattr(frames, "shape", ()))
            dtype = getattr(frames, "dtype", type(frames).__name__)
            raise InputError(
                f"expected frames of shape (T, H, W, 3) and dtype uint8, but got shape {shape} "
                f"dtype {dtype}; pass RGB frames as returned by read_frames"
            )
        H, W = int(x.shape[1]), int(x.shape[2])
        h, w = self.size
        Hr, Wr = self._resized_hw((H, W))
        y = x.permute(0, 3, 1, 2).to(torch.float32)  # (T, 3, H, W)
        if (Hr, Wr) != (H, W):
            y = F.interpolate(y, size=(Hr, Wr), mode="bilinear", align_corners=False,
                              antialias=True)
        cy, cx = (Hr - h) // 2, (Wr - w) // 2
        y = y[:, :, cy:cy + h, cx:cx + w]
        mean = torch.tensor(self.mean, dtype=torch.float32, device=y.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32, device=y.device).view(1, 3, 1, 1)
        y = (y / 255.0 - mean) / std
        return y.permute(1, 0, 2, 3).contiguous()  # (3, T, h, w)


# --------------------------------------------------------------------------------------
# Mapping back
# --------------------------------------------------------------------------------------


def resample_times(times: Sequence[float] | np.ndarray, length: int) -> np.ndarray:
    """Times of a coarser (or finer) temporal grid over the same clip.

    A saliency tube computed at feature resolution has ``T' != T`` time steps; step ``k`` of
    ``T'`` covers clip frames around position ``p_k = (k + 0.5) T / T' - 0.5`` (the pixel-centre
    convention along time), and its time is the clip times linearly interpolated at ``p_k``
    (clamped to the first and last clip frame).

    Args:
        times: ``(T,)`` source timestamps of the clip's frames.
        length: ``T'``, the tube's time steps.

    Returns:
        ``(T',)`` float64 times.
    """
    t = np.asarray(times, dtype=np.float64).reshape(-1)
    n = _positive_int(length, "length")
    if t.size == 0:
        raise InputError("expected at least 1 clip time, but got 0; pass the sampled timestamps")
    pos = (np.arange(n) + 0.5) * t.size / n - 0.5
    return np.interp(np.clip(pos, 0, t.size - 1), np.arange(t.size), t)


def _axis_sampling(
    start: float, extent: float, grid: int, n_src: int
) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear sampling of a ``grid``-cell axis onto the source pixels it covers.

    Source pixel ``P`` (centre ``P + 0.5``) is covered when ``start <= P + 0.5 <= start +
    extent``; its grid coordinate is ``g = (P + 0.5 - start) * grid / extent - 0.5``, clamped to
    ``[0, grid - 1]`` (edge cells hold to the border).

    Returns:
        ``(first, stop, i0, i1, frac)``: covered source pixels ``first..stop-1``, and for each
        the two grid cells and the weight of the second.
    """
    eps = 1e-6
    first = max(0, int(np.ceil(start - 0.5 - eps)))
    stop = min(n_src, int(np.floor(start + extent - 0.5 + eps)) + 1)
    if stop <= first:
        empty = np.zeros(0, dtype=np.int64)
        return first, first, empty, empty, np.zeros(0, dtype=np.float32)
    P = np.arange(first, stop, dtype=np.float64)
    g = np.clip((P + 0.5 - start) * grid / extent - 0.5, 0.0, grid - 1)
    i0 = np.floor(g).astype(np.int64)
    i1 = np.minimum(i0 + 1, grid - 1)
    frac = (g - i0).astype(np.float32)
    return first, stop, i0, i1, frac


def _as_float_array(x: object, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float32).numpy()
    try:
        return np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InputError(f"expected {name} to be a numeric array, but got "
                         f"{type(x).__name__}; pass a numpy array or torch tensor") from exc


class _Window:
    """One clip's tube with its times, duplicates merged, for temporal interpolation."""

    def __init__(self, tube: np.ndarray, times: np.ndarray) -> None:
        uniq, inverse = np.unique(times, return_inverse=True)
        if uniq.size < times.size:  # repeated frames (T > num_frames): average their maps
            merged = np.zeros((uniq.size,) + tube.shape[1:], dtype=np.float64)
            np.add.at(merged, inverse, tube)
            merged /= np.bincount(inverse, minlength=uniq.size)[:, None, None]
            tube = merged.astype(np.float32)
        self.times = uniq
        self.maps = np.ascontiguousarray(tube, dtype=np.float32)
        self.start = float(uniq[0])
        self.end = float(uniq[-1])
        spacing = (self.end - self.start) / (uniq.size - 1) if uniq.size > 1 else 1.0
        self.center = 0.5 * (self.start + self.end)
        self.half = 0.5 * (self.end - self.start) + spacing

    def at(self, t: float) -> np.ndarray:
        """Linear interpolation in time, holding the first/last map outside the window."""
        times = self.times
        if t <= times[0] or times.size == 1:
            return self.maps[0]
        if t >= times[-1]:
            return self.maps[-1]
        i = int(np.searchsorted(times, t, side="right")) - 1
        a = (t - times[i]) / (times[i + 1] - times[i])
        return (1.0 - a) * self.maps[i] + a * self.maps[i + 1]

    def weight(self, t: float, kind: str) -> float:
        """Blending weight at ``t`` (inside the window)."""
        if kind == "uniform":
            return 1.0
        return max(1.0 - abs(t - self.center) / self.half, 1e-6)


class TubeMapper:
    """Maps a saliency tube on the clip grid back onto source frames, at any time.

    For a source time ``t`` the map is built in two linear steps (they commute, so the cheap
    one runs first):

    1. **Temporal**, on the tube's grid: linear interpolation between the sampled timestamps,
       ``M(t) = (1 - a) M_i + a M_{i+1}`` with ``a = (t - t_i) / (t_{i+1} - t_i)``, clamped:
       before the first sampled time the first map holds, after the last the last one.
       Stitched mappers (:func:`stitch_windows`) blend the windows that contain ``t``,
       ``M(t) = sum_k w_k(t) M_k(t) / sum_k w_k(t)``.
    2. **Spatial**: the ``(gh, gw)`` map is resized bilinearly onto the source pixels inside
       the clip's region (:class:`Geometry`), cell centres landing at
       ``top + (y + 0.5) * height / gh - 0.5``; pixels outside the region (cropped away, never
       seen by the model) are NaN.

    The tube's grid may be the clip's ``(T, h, w)`` or coarser (e.g. the feature grid): only
    the region matters spatially, and ``times`` must have one entry per tube time step (see
    :func:`resample_times`). Mapping a frame costs ``O(H_src * W_src)``; no whole-video array
    is ever built, so it suits streaming renders.

    Args:
        tube: ``(T, gh, gw)`` saliency (numpy or torch), finite; usually in ``[0, 1]``.
        times: ``(T,)`` source timestamps (seconds) of the clip's frames, non-decreasing;
            repeats (frames sampled twice) are averaged.
        geometry: Where the clip lies on the source (:meth:`Preprocess.geometry`).
        src_hw: Source frame size ``(H, W)``; defaults to ``geometry.src_hw`` and must agree
            with it.

    Raises:
        InputError: Shapes disagree, values are not finite, or times decrease.
    """

    def __init__(
        self,
        tube: np.ndarray | torch.Tensor,
        times: Sequence[float] | np.ndarray,
        geometry: Geometry,
        src_hw: tuple[int, int] | None = None,
    ) -> None:
        self._init([tube], [times], geometry, src_hw, "triangular")

    @classmethod
    def _stitched(
        cls,
        tubes: Sequence[np.ndarray | torch.Tensor],
        times: Sequence[Sequence[float] | np.ndarray],
        geometry: Geometry,
        src_hw: tuple[int, int] | None,
        weights: str,
    ) -> TubeMapper:
        self = cls.__new__(cls)
        self._init(tubes, times, geometry, src_hw, weights)
        return self

    def _init(
        self,
        tubes: Sequence[np.ndarray | torch.Tensor],
        times: Sequence[Sequence[float] | np.ndarray],
        geometry: Geometry,
        src_hw: tuple[int, int] | None,
        weights: str,
    ) -> None:
        if not isinstance(geometry, Geometry):
            raise InputError(f"expected a Geometry, but got {type(geometry).__name__}; "
                             "pass Preprocess.geometry(src_hw)")
        hw = tuple(int(v) for v in (src_hw if src_hw is not None else geometry.src_hw))
        if hw != tuple(geometry.src_hw):
            raise InputError(f"expected src_hw to equal geometry.src_hw {geometry.src_hw}, but "
                             f"got {hw}; build the geometry for this source size")
        if weights not in ("triangular", "uniform"):
            raise InputError(f"expected weights 'triangular' or 'uniform', but got {weights!r}; "
                             "pick one of the two")
        if len(tubes) == 0 or len(tubes) != len(times):
            raise InputError(
                f"expected one times array per tube and at least one tube, but got "
                f"{len(tubes)} tubes and {len(times)} times; pass matching lists"
            )
        windows: list[_Window] = []
        grid: tuple[int, int] | None = None
        for k, (tube, tk) in enumerate(zip(tubes, times, strict=True)):
            m = _as_float_array(tube, "tube")
            t = np.asarray(tk, dtype=np.float64).reshape(-1)
            if m.ndim != 3 or min(m.shape) < 1:
                raise InputError(f"expected tube {k} of shape (T, h, w), but got {m.shape}; "
                                 "pass one map per clip time step")
            if t.size != m.shape[0]:
                raise InputError(
                    f"expected {m.shape[0]} times for tube {k} of shape {m.shape}, but got "
                    f"{t.size}; pass one timestamp per tube time step (see resample_times)"
                )
            if not (np.isfinite(m).all() and np.isfinite(t).all()):
                raise InputError(f"expected finite tube and times, but got NaN/inf in window "
                                 f"{k}; normalise the saliency before mapping")
            if np.any(np.diff(t) < 0):
                raise InputError(f"expected non-decreasing times, but got {t.tolist()} in "
                                 f"window {k}; sort the sampled frames by time")
            if grid is None:
                grid = (m.shape[1], m.shape[2])
            elif grid != (m.shape[1], m.shape[2]):
                raise InputError(f"expected every tube on the same (h, w) grid {grid}, but got "
                                 f"{m.shape[1:]} in window {k}; resize the tubes first")
            windows.append(_Window(m, t))
        assert grid is not None  # internal invariant: at least one window was added
        order = np.argsort([w.start for w in windows], kind="stable")
        self._windows = [windows[i] for i in order]
        self._starts = np.array([w.start for w in self._windows])
        self._ends = np.array([w.end for w in self._windows])
        self._weights = weights
        self.geometry = geometry
        self.src_hw: tuple[int, int] = (hw[0], hw[1])
        self.grid_hw: tuple[int, int] = grid
        H, W = self.src_hw
        self._rows = _axis_sampling(geometry.top, geometry.height, grid[0], H)
        self._cols = _axis_sampling(geometry.left, geometry.width, grid[1], W)

    @property
    def time_range(self) -> tuple[float, float]:
        """First and last sampled time covered by the tube(s)."""
        return float(self._starts.min()), float(self._ends.max())

    def grid_map(self, t: float) -> np.ndarray:
        """The saliency at time ``t`` on the tube's grid, ``(gh, gw)`` float32 (step 1)."""
        t = float(t)
        if not np.isfinite(t):
            raise InputError(f"expected a finite time in seconds, but got {t}; pass a frame's "
                             "timestamp")
        active = np.flatnonzero((self._starts <= t) & (t <= self._ends))
        if active.size == 0:  # before, after or between windows: nearest window, clamped
            dist = np.maximum(self._starts - t, 0.0) + np.maximum(t - self._ends, 0.0)
            return np.asarray(self._windows[int(np.argmin(dist))].at(t), dtype=np.float32)
        if active.size == 1:
            return np.asarray(self._windows[int(active[0])].at(t), dtype=np.float32)
        acc = np.zeros(self.grid_hw, dtype=np.float64)
        total = 0.0
        for k in active:
            win = self._windows[int(k)]
            w = win.weight(t, self._weights)
            acc += w * win.at(t)
            total += w
        return (acc / total).astype(np.float32)

    def frame(self, t: float) -> np.ndarray:
        """The saliency map on the source frame shown at time ``t`` (seconds).

        Args:
            t: Presentation time, e.g. ``VideoInfo.timestamps[i]`` or ``Frame.timestamp``.

        Returns:
            ``(H_src, W_src)`` float32; NaN where the model never saw the pixel.
        """
        m = self.grid_map(t)
        H, W = self.src_hw
        out = np.full((H, W), np.nan, dtype=np.float32)
        r0, r1, yi0, yi1, fy = self._rows
        c0, c1, xi0, xi1, fx = self._cols
        if r1 > r0 and c1 > c0:
            rows = m[yi0] * (1.0 - fy)[:, None] + m[yi1] * fy[:, None]  # (rows, gw)
            out[r0:r1, c0:c1] = rows[:, xi0] * (1.0 - fx) + rows[:, xi1] * fx
        return out

    __call__ = frame


def stitch_windows(
    tubes: Sequence[np.ndarray | torch.Tensor],
    times: Sequence[Sequence[float] | np.ndarray],
    geometry: Geometry,
    src_hw: tuple[int, int] | None = None,
    *,
    weights: Literal["triangular", "uniform"] = "triangular",
) -> TubeMapper:
    """One whole-video mapper from the tubes of several (overlapping) windows.

    Explain each window of :func:`sliding_windows` separately, then pass every window's tube
    with its frames' timestamps. At time ``t`` the windows whose time span
    ``[t_first, t_last]`` contains ``t`` are blended,

    .. math:: M(t) = \\frac{\\sum_k w_k(t) M_k(t)}{\\sum_k w_k(t)},

    with triangular weights ``w_k(t) = 1 - |t - c_k| / (r_k + \\delta_k)`` (``c_k`` the window's
    centre time, ``r_k`` its half span, ``\\delta_k`` its mean frame spacing, so edges keep a
    small positive weight) or uniform weights ``w_k = 1``. Outside every window the nearest
    one holds its first/last map. The tubes are blended as given: normalise them on a common
    scale first if windows should be comparable.

    Args:
        tubes: ``(T_k, gh, gw)`` tubes, the same grid for all windows.
        times: ``(T_k,)`` source timestamps per window.
        geometry: Shared clip geometry (same preprocessing for every window).
        src_hw: Source size; defaults to ``geometry.src_hw``.
        weights: ``"triangular"`` (smooth hand-over between windows) or ``"uniform"``.

    Returns:
        A :class:`TubeMapper` whose :meth:`TubeMapper.frame` covers the whole video.

    Raises:
        InputError: As :class:`TubeMapper`, or the lists differ in length or are empty.
    """
    return TubeMapper._stitched(tubes, times, geometry, src_hw, weights)


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------

_WRITER_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska",
                   ".gif": "gif", "": "png"}


def _partial_name(path: Path) -> Path:
    token = uuid.uuid4().hex[:8]
    return path.with_name(f".{path.stem}.{token}.partial{path.suffix}")


def _remove(path: Path) -> None:
    try:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    except OSError:
        pass


class VideoWriter:
    """Write frames to an MP4 (H.264), a GIF or a folder of PNGs, atomically.

    Frames go to a hidden temporary name in the destination folder
    (``.name.<random>.partial.mp4``); :meth:`close` renames it onto ``path`` only when
    everything succeeded. Leaving a ``with`` block by an exception (or calling :meth:`abort`)
    deletes the temporary output, so ``path`` is either the complete new video or untouched.

    Formats, chosen by the suffix of ``path``:

    * ``.mp4`` / ``.m4v`` / ``.mov`` / ``.mkv``: H.264 (``libx264``), ``yuv420p``, ``crf``
      quality, ``+faststart``. ``yuv420p`` needs even sizes: an odd height or width is
      **padded by one row/column that repeats the last one** (``odd="pad"``, nothing lost, the
      file is ``ceil``-to-even larger) or **cropped by one** (``odd="crop"``, the file is
      ``floor``-to-even). Frame count and rate are kept exactly.
    * ``.gif``: per-frame 256-colour palette (PIL octree quantisation, no dithering) encoded
      by FFmpeg's GIF encoder, looping forever. GIF delays are whole centiseconds, so rates
      that do not divide 100 are approximated (FFmpeg spreads the rounding); above 50 fps
      browsers slow playback down, and a warning is issued.
    * no suffix: a folder of ``000000.png``, ``000001.png``, ... (lossless; read it back with
      :func:`probe` and ``folder_fps``).

    Args:
        path: Output file or folder; parent folders are created.
        fps: Frame rate, float or :class:`~fractions.Fraction` (e.g. ``VideoInfo.rate``).
        crf: H.264 constant rate factor (0 lossless-ish luma, 18 visually lossless, 23 default).
        preset: x264 speed preset (``"ultrafast"`` ... ``"veryslow"``).
        odd: What to do with odd sizes in H.264: ``"pad"`` or ``"crop"``.
        options: Extra encoder options for FFmpeg (strings).

    Raises:
        InputError: Unsupported suffix, bad fps/odd, or ``path`` is an existing folder for a
            file format (or an existing file for a frame folder).
    """

    def __init__(
        self,
        path: PathLike,
        fps: float | Fraction = 25,
        *,
        crf: int = 18,
        preset: str = "medium",
        odd: Literal["pad", "crop"] = "pad",
        options: Mapping[str, str] | None = None,
    ) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in _WRITER_FORMATS:
            raise InputError(
                f"expected an output ending in .mp4, .m4v, .mov, .mkv, .gif or no suffix (PNG "
                f"frame folder), but got '{self.path.name}'; change the output name"
            )
        self.format = _WRITER_FORMATS[suffix]
        self.rate = _check_fps(fps, "fps")
        if odd not in ("pad", "crop"):
            raise InputError(f"expected odd='pad' or 'crop', but got {odd!r}; pick one")
        if self.format == "png":
            if self.path.exists() and not self.path.is_dir():
                raise InputError(f"expected a folder path for PNG frames, but got the existing "
                                 f"file '{self.path}'; remove it or add a suffix")
        elif self.path.is_dir():
            raise InputError(f"expected a file path for the {self.format} output, but got the "
                             f"existing folder '{self.path}'; pick another name")
        if self.format == "gif" and float(self.rate) > 50:
            warnings.warn(
                f"GIF delays are whole centiseconds and players slow down frames shorter than "
                f"2 cs: {float(self.rate):.3g} fps will not play at full speed",
                stacklevel=2,
            )
        self.crf = int(crf)
        self.preset = preset
        self.odd = odd
        self.options = dict(options or {})
        self.frames_written = 0
        self.size: tuple[int, int] | None = None  # (H, W) of the frames given to write()
        self._container: av.container.OutputContainer | None = None
        self._stream: av.VideoStream | None = None
        self._closed = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = _partial_name(self.path)
        if self.format == "png":
            self._tmp.mkdir()

    # -- context manager ---------------------------------------------------------------
    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # -- encoding ----------------------------------------------------------------------
    def _open(self, h: int, w: int) -> None:
        if self.format == "png":
            return
        muxer_options = {"movflags": "+faststart"} if self.format in ("mp4", "mov") else {}
        container = av.open(
            str(self._tmp), mode="w", format=self.format, container_options=muxer_options
        )
        try:
            if self.format == "gif":
                stream = container.add_stream("gif", rate=self.rate)
                stream.pix_fmt = "pal8"
                stream.width, stream.height = w, h
            else:
                if self.odd == "pad":
                    ew, eh = w + w % 2, h + h % 2
                else:
                    ew, eh = w - w % 2, h - h % 2
                if ew < 2 or eh < 2:
                    raise InputError(f"expected frames at least 2x2 for H.264, but got {h}x{w}; "
                                     "write a GIF or PNG folder instead")
                stream = container.add_stream(
                    "libx264", rate=self.rate,
                    options={"crf": str(self.crf), "preset": self.preset, **self.options},
                )
                stream.pix_fmt = "yuv420p"
                stream.width, stream.height = ew, eh
        except BaseException:
            container.close()
            raise
        self._container, self._stream = container, stream

    def _encode(self, frame: av.VideoFrame | None) -> None:
        assert self._container is not None and self._stream is not None
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def _gif_frame(self, image: np.ndarray) -> av.VideoFrame:
        quant = Image.fromarray(image).quantize(
            256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE
        )
        index = np.asarray(quant, dtype=np.uint8)
        rgb = np.asarray(quant.getpalette() or [], dtype=np.uint8).reshape(-1, 3)[:256]
        palette = np.zeros((256, 4), dtype=np.uint8)
        palette[:, 0] = 255  # opaque (ARGB)
        palette[: len(rgb), 1:] = rgb
        return av.VideoFrame.from_ndarray((index, palette), format="pal8")  # type: ignore[arg-type]

    def write(self, frame: np.ndarray) -> None:
        """Append one ``(H, W, 3)`` uint8 RGB frame (every frame the same size).

        Raises:
            InputError: Wrong shape/dtype, or a size different from the first frame.
            VideoError: The writer is closed, or FFmpeg failed to encode.
        """
        if self._closed:
            raise VideoError(f"expected an open writer, but got a closed one for '{self.path}'; "
                             "create a new VideoWriter")
        arr = np.asarray(frame)
        if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8 or min(arr.shape[:2]) < 1:
            raise InputError(f"expected a frame of shape (H, W, 3) and dtype uint8, but got shape "
                             f"{arr.shape} dtype {arr.dtype}; convert with np.uint8 / RGB")
        h, w = int(arr.shape[0]), int(arr.shape[1])
        if self.size is None:
            self._open(h, w)
            self.size = (h, w)
        elif self.size != (h, w):
            raise InputError(f"expected every frame to be {self.size[0]}x{self.size[1]} (HxW) "
                             f"like the first, but got {h}x{w}; resize before writing")
        i = self.frames_written
        try:
            if self.format == "png":
                Image.fromarray(arr).save(self._tmp / f"{i:06d}.png", compress_level=1)
            else:
                if self.format == "gif":
                    vf = self._gif_frame(arr)
                else:
                    if h % 2 or w % 2:
                        if self.odd == "pad":
                            arr = np.pad(arr, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
                        else:
                            arr = arr[: h - h % 2, : w - w % 2]
                    vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb24")
                    vf = vf.reformat(format="yuv420p", interpolation=_ACCURATE_YUV)
                vf.pts = i
                vf.time_base = 1 / self.rate
                self._encode(vf)
        except av.FFmpegError as exc:
            raise VideoError(f"could not encode frame {i} of '{self.path}': {exc}; expected "
                             "FFmpeg to accept the frame, check free disk space") from exc
        self.frames_written += 1

    def write_frames(self, frames: Iterable[np.ndarray]) -> None:
        """Append frames one by one (an iterable or a ``(N, H, W, 3)`` array)."""
        for f in frames:
            self.write(f)

    # -- finishing ---------------------------------------------------------------------
    def close(self) -> Path:
        """Flush, finish the file and move it onto ``path`` atomically.

        Returns:
            The final path.

        Raises:
            VideoError: No frame was written, or FFmpeg failed finishing the file (the
                temporary output is deleted in both cases).
        """
        if self._closed:
            return self.path
        if self.frames_written == 0:
            self.abort()
            raise VideoError(f"expected at least 1 frame written to '{self.path}', but got 0; "
                             "write frames before closing")
        try:
            if self._container is not None:
                self._encode(None)
                self._container.close()
                self._container = None
            self._commit()
        except (av.FFmpegError, OSError) as exc:
            self.abort()
            raise VideoError(f"could not finish '{self.path}': {exc}; expected a writable "
                             "folder with free space") from exc
        self._closed = True
        return self.path

    def _commit(self) -> None:
        if self.format == "png" and self.path.exists():
            old = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}.old")
            os.replace(self.path, old)
            os.replace(self._tmp, self.path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Stop writing and delete the temporary output; ``path`` is left untouched."""
        if self._container is not None:
            try:
                self._container.close()
            except (av.FFmpegError, OSError):
                pass
            self._container = None
        _remove(self._tmp)
        self._closed = True


def _atomic_write(path: PathLike, write: Any) -> Path:
    """Write through ``write(file_object)`` to a temp file, fsync, then ``os.replace``."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder + ``os.replace``).

    Returns:
        The final path.
    """
    return _atomic_write(path, lambda fh: fh.write(data))


def atomic_save_npy(path: PathLike, array: np.ndarray | torch.Tensor) -> Path:
    """Save an array as ``.npy`` at exactly ``path`` (no suffix added), atomically.

    Returns:
        The final path.
    """
    arr = array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
    return _atomic_write(path, lambda fh: np.save(fh, arr, allow_pickle=False))


def atomic_write_json(path: PathLike, obj: Any, *, indent: int | None = 2) -> Path:
    """Write ``obj`` as UTF-8 JSON atomically (numpy scalars/arrays become numbers/lists).

    Returns:
        The final path.
    """

    def default(o: Any) -> Any:
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, (Path, Fraction)):
            return str(o)
        raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")

    text = json.dumps(obj, indent=indent, default=default, ensure_ascii=False) + "\n"
    return _atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))
