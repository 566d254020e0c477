"""Video input and output: reading, sampling, preprocessing, mapping saliency back, writing.

The package is the bridge between video files and the clip tensors a video classifier sees,
and back again:

1. **Reading** (``reader``, ``decoding``, PyAV): :func:`probe` gives the facts of a video
   (:class:`VideoInfo`), with the presentation timestamp of every frame and its keyframes;
   :func:`iter_frames` streams frames one at a time; :func:`read_frames` decodes only what
   is needed to return the requested frames, seeking to the keyframe before a frame when
   that skips enough decoding (frame-accurate: the frames of a sequential decode). Any
   container FFmpeg reads works, and so does a folder of numbered images.
2. **Sampling** (``sampling``): :func:`sample_uniform` (the frames of one clip spread over the whole video)
   and :func:`sliding_windows` (clips that together cover every frame).
3. **Preprocessing** (``preprocess``): :class:`Preprocess` turns ``(T, H, W, 3)`` uint8 frames into a
   normalised ``(3, T, h, w)`` float tensor and records, as a :class:`Geometry`, which source
   region the clip covers.
4. **Mapping back** (``mapping``): :class:`TubeMapper` turns a saliency tube on the clip grid into a map
   on any source frame, at any time; :func:`stitch_windows` blends the tubes of several
   windows into one whole-video mapper. Its parts are public for streaming callers:
   :class:`TimedTube` (one clip's tube in time), :func:`covering` and :func:`blend` (the
   clips that hold a time, blended), :class:`SourceSampler` (grid to source pixels).
5. **Writing** (``writer``): :class:`VideoWriter` writes H.264 MP4, GIF or PNG frame folders atomically;
   :func:`atomic_write_bytes`, :func:`atomic_save_npy` and :func:`atomic_write_json` do the
   same for small files. :class:`BackgroundWriter` and :func:`prefetch` (``threads``) run
   an encoder or a decoder on a thread of its own, overlapping the caller's work.

Conventions: frames are ``(H, W, 3)`` uint8 RGB numpy arrays, sizes are written
``(T, H, W)``, times are seconds (float64) as stored in the file (not shifted to start at 0).
"""

from .decoding import iter_frames, read_frames
from .mapping import (
    SourceSampler,
    TimedTube,
    TubeMapper,
    blend,
    covering,
    resample_times,
    stitch_windows,
)
from .preprocess import KINETICS_MEAN, KINETICS_STD, Geometry, Preprocess
from .reader import (
    DEFAULT_FOLDER_FPS,
    IMAGE_SUFFIXES,
    Frame,
    PathLike,
    VideoInfo,
    check_min_frames,
    probe,
    segment,
)
from .sampling import sample_uniform, sliding_windows
from .threads import BackgroundWriter, prefetch
from .writer import VideoWriter, atomic_save_npy, atomic_write_bytes, atomic_write_json

__all__ = [
    "BackgroundWriter",
    "DEFAULT_FOLDER_FPS",
    "IMAGE_SUFFIXES",
    "KINETICS_MEAN",
    "KINETICS_STD",
    "Frame",
    "Geometry",
    "PathLike",
    "Preprocess",
    "SourceSampler",
    "TimedTube",
    "TubeMapper",
    "VideoInfo",
    "VideoWriter",
    "atomic_save_npy",
    "atomic_write_bytes",
    "atomic_write_json",
    "blend",
    "check_min_frames",
    "covering",
    "iter_frames",
    "prefetch",
    "probe",
    "read_frames",
    "resample_times",
    "sample_uniform",
    "segment",
    "sliding_windows",
    "stitch_windows",
]
