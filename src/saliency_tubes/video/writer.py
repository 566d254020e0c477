"""Writing videos (H.264 MP4, GIF, PNG folders) and small files atomically."""

from __future__ import annotations

import json
import os
import shutil
import uuid
import warnings
from collections.abc import Iterable, Mapping
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import av
import numpy as np
import torch
from PIL import Image

from saliency_tubes.errors import InputError, VideoError
from saliency_tubes.vocabulary import X264_PRESETS

from .reader import ACCURATE_YUV, PathLike, check_fps

if TYPE_CHECKING:
    from typing_extensions import Self

_WRITER_FORMATS = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".mkv": "matroska",
    ".gif": "gif",
    "": "png",
}


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


class Finishing:
    """A writer as a context manager: leaving the block closes it (the file is complete
    under its final name); an error in the block aborts it (nothing is left). Subclasses
    define ``close`` and ``abort``; :class:`VideoWriter` and the background writer are two."""

    def close(self) -> object:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
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


class VideoWriter(Finishing):
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
        crf: H.264 constant rate factor, 0-51 (0 lossless-ish luma, 18 visually lossless,
            23 FFmpeg's default).
        preset: x264 speed preset (:data:`~saliency_tubes.vocabulary.X264_PRESETS`,
            ``"ultrafast"`` ... ``"veryslow"``); default ``"superfast"``: at crf 18 2.5x
            faster than ``"medium"`` and 1.3x faster than ``"veryfast"``, 38.2 dB RGB PSNR
            against the source (medium 38.8, veryfast 37.9), files 1.3x medium's
            (benchmarks/RESULTS_encode.md); pass ``"medium"`` for smaller files.
        odd: What to do with odd sizes in H.264: ``"pad"`` or ``"crop"``.
        options: Extra encoder options for FFmpeg (strings).
        kind: The format, whatever the suffix (a PNG frame folder named "heat_1_v1.0"
            has a dot in its name); default: from the suffix.

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
        preset: str = "superfast",
        odd: Literal["pad", "crop"] = "pad",
        options: Mapping[str, str] | None = None,
        kind: Literal["mp4", "mov", "mkv", "gif", "png"] | None = None,
    ) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if kind is not None:
            if kind not in set(_WRITER_FORMATS.values()):
                raise InputError(f"expected kind one of mp4, mov, mkv, gif, png, but got {kind!r}")
            self.format: str = kind
        elif suffix in _WRITER_FORMATS:
            self.format = _WRITER_FORMATS[suffix]
        else:
            raise InputError(
                f"expected an output ending in .mp4, .m4v, .mov, .mkv, .gif or no suffix (PNG "
                f"frame folder), but got '{self.path.name}'; change the output name "
                "(or pass kind=)"
            )
        self.rate = check_fps(fps, "fps")
        if odd not in ("pad", "crop"):
            raise InputError(f"expected odd='pad' or 'crop', but got {odd!r}; pick one")
        if self.format == "png":
            if self.path.exists() and not self.path.is_dir():
                raise InputError(
                    f"expected a folder path for PNG frames, but got the existing "
                    f"file '{self.path}'; remove it or add a suffix"
                )
        elif self.path.is_dir():
            raise InputError(
                f"expected a file path for the {self.format} output, but got the "
                f"existing folder '{self.path}'; pick another name"
            )
        if self.format == "gif" and float(self.rate) > 50:
            warnings.warn(
                f"GIF delays are whole centiseconds and players slow down frames shorter than "
                f"2 cs: {float(self.rate):.3g} fps will not play at full speed",
                stacklevel=2,
            )
        if isinstance(crf, bool) or not isinstance(crf, (int, np.integer)) or not 0 <= crf <= 51:
            raise InputError(
                f"expected crf an integer from 0 to 51 (18: visually lossless), but got {crf!r}"
            )
        if preset not in X264_PRESETS:
            raise InputError(
                f"expected preset one of {', '.join(X264_PRESETS)}, but got {preset!r}"
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
                    raise InputError(
                        f"expected frames at least 2x2 for H.264, but got {h}x{w}; "
                        "write a GIF or PNG folder instead"
                    )
                stream = container.add_stream(
                    "libx264",
                    rate=self.rate,
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
            raise VideoError(
                f"expected an open writer, but got a closed one for '{self.path}'; "
                "create a new VideoWriter"
            )
        arr = np.asarray(frame)
        if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8 or min(arr.shape[:2]) < 1:
            raise InputError(
                f"expected a frame of shape (H, W, 3) and dtype uint8, but got shape "
                f"{arr.shape} dtype {arr.dtype}; convert with np.uint8 / RGB"
            )
        h, w = int(arr.shape[0]), int(arr.shape[1])
        if self.size is None:
            self._open(h, w)
            self.size = (h, w)
        elif self.size != (h, w):
            raise InputError(
                f"expected every frame to be {self.size[0]}x{self.size[1]} (HxW) "
                f"like the first, but got {h}x{w}; resize before writing"
            )
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
                    vf = vf.reformat(format="yuv420p", interpolation=ACCURATE_YUV)
                vf.pts = i
                vf.time_base = 1 / self.rate
                self._encode(vf)
        except av.FFmpegError as exc:
            raise VideoError(
                f"could not encode frame {i} of '{self.path}': {exc}; expected "
                "FFmpeg to accept the frame, check free disk space"
            ) from exc
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
            raise VideoError(
                f"expected at least 1 frame written to '{self.path}', but got 0; "
                "write frames before closing"
            )
        try:
            if self._container is not None:
                self._encode(None)
                self._container.close()
                self._container = None
            self._commit()
        except (av.FFmpegError, OSError) as exc:
            self.abort()
            raise VideoError(
                f"could not finish '{self.path}': {exc}; expected a writable folder with free space"
            ) from exc
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
