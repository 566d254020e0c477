"""Video in, explained video out: decode, sample, explain, map back, render, encode.

Three commands share one path, stage by stage:

1. **explain** (:func:`_explain`, one :class:`_Job` per model): decode the frames the
   models' windows need (once, whatever the number of models), preprocess them with each
   model's preset, and keep each window's raw tube on the layer's grid;
2. **summarise** (:func:`_summarise`): map every tube back onto every source frame
   (:class:`~saliency_tubes.video.TubeMapper`) and reduce it to the temporal curve and the
   tube statistics (:mod:`saliency_tubes.temporal`, :mod:`saliency_tubes.compare`);
3. **write**: ``tube.npy``, plots, and the videos (:func:`_encode`: one decode of the
   source, each output frame drawn by a *product* from the mapped tubes, every format
   encoded as it goes), then ``manifest.json`` (:func:`_produce`).

:func:`explain_video` runs them for one model and its classes (heat, focus and
side-by-side per class); :func:`compare_classes` for one model and several classes in one
grid video (plus a contrastive tube); :func:`compare_models` for several models, each with
its own preprocessing, in one grid over the same source frames.

Memory does not grow with the video's length: frames are decoded one at a time, a clip
holds only the frames of one window (at the model's resolution), each window keeps only
its raw tube on the layer's grid (a few kilobytes), and the summary and render passes map
and draw one source frame at a time. Outputs appear under their final names only when
complete, and on any error every file a call wrote is removed.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from . import compare, render, temporal
from .errors import InputError, VideoError
from .methods import METHODS, Explainer, Tubes, normalize_tubes, select_classes
from .methods.base import ClassSpec
from .upsample import upsample
from .video import (
    Frame,
    Geometry,
    TubeMapper,
    VideoInfo,
    VideoWriter,
    atomic_write_json,
    check_min_frames,
    iter_frames,
    probe,
    sample_uniform,
    sliding_windows,
    stitch_windows,
)
from .zoo.registry import LoadedModel

LAYOUTS = ("heat", "focus", "side_by_side")
FORMATS = ("mp4", "gif", "png", "npy", "plot")
STYLES = ("focus", "heat")
_VIDEO_FORMATS = ("mp4", "gif", "png")


@dataclass
class ExplainOptions:
    """Options of :func:`explain_video` (the CLI's flags).

    Attributes:
        method: "cam" (the paper's Saliency Tubes), "gradcam", "gradcam++", or "auto" (the
            model adapter's default method).
        classes: "topK", an index, a name, or a list of them.
        frames: clip length T; None takes the model preset's.
        windows: (length, stride) sliding windows covering the whole video, each
            explained and the tubes stitched (overlaps blended); None samples one clip of
            ``frames`` frames spread uniformly over the video (the authors' choice).
        interpolation: spline mode of the upsampling ("cubic", "quadratic", "linear", "nearest").
        align: "corners" or "centers" (see :func:`saliency_tubes.upsample`).
        colormap: any matplotlib colour map name for heat tubes.
        opacity: heat map opacity over the frame.
        floor: focus tubes' minimum opacity (the authors used 20/255).
        background: focus background: "black", "dark", "blur" or "gray".
        formats: any of "mp4", "gif", "png" (frame folders), "npy" (the tube) and "plot"
            (the temporal importance curves as PNG).
        layouts: any of "heat", "focus", "side_by_side".
        caption: draw class name and probability on each frame.
        timeline: draw the tube's temporal importance bar (with a cursor at the shown
            frame) under every output frame.
        device: "cpu", "cuda", "cuda:1", "mps".
        progress: show progress bars (stderr).
    """

    method: str = "cam"
    classes: ClassSpec = "top1"
    frames: int | None = None
    windows: tuple[int, int] | None = None
    interpolation: str = "cubic"
    align: str = "corners"
    colormap: str = "jet"
    opacity: float = 0.5
    floor: float = 20 / 255
    background: Literal["black", "dark", "blur", "gray"] = "black"
    formats: tuple[str, ...] = ("mp4", "plot")
    layouts: tuple[str, ...] = LAYOUTS
    caption: bool = True
    timeline: bool = False
    device: str = "cpu"
    progress: bool = True

    def check(self) -> None:
        """Validate the options (one-line errors)."""
        if self.method not in (*METHODS, "auto"):
            raise InputError(
                f"expected method one of {', '.join(METHODS)} or auto, but got {self.method!r}"
            )
        bad = [f for f in self.formats if f not in FORMATS]
        if bad or not self.formats:
            raise InputError(
                f"expected formats among {', '.join(FORMATS)}, but got {', '.join(self.formats) or 'none'}"
            )
        bad = [layout for layout in self.layouts if layout not in LAYOUTS]
        if bad or not self.layouts:
            raise InputError(
                f"expected layouts among {', '.join(LAYOUTS)}, but got {', '.join(self.layouts) or 'none'}"
            )
        if self.frames is not None and self.frames < 2:
            raise InputError(f"expected at least 2 frames per clip, but got {self.frames}")
        if self.windows is not None:
            length, stride = self.windows
            if length < 2 or stride < 1:
                raise InputError(f"expected windows LEN>=2,STRIDE>=1, but got {length},{stride}")
        if not 0.0 <= self.opacity <= 1.0 or not 0.0 <= self.floor <= 1.0:
            raise InputError(
                f"expected opacity and floor in [0, 1], but got {self.opacity} and {self.floor}"
            )


@dataclass
class CompareOptions(ExplainOptions):
    """Options of :func:`compare_classes` and :func:`compare_models` (``layouts`` unused).

    Attributes:
        style: each panel is a "focus" or a "heat" tube.
        cols: panels per row of the grid; None: all in one row up to 4.
        contrast: ``(A, B)`` classes (indices or names) for a contrastive tube "why A and
            not B" (:func:`compare_classes` only); explained too when not among ``classes``.
    """

    style: str = "focus"
    cols: int | None = None
    contrast: tuple[int | str, int | str] | None = None

    def check(self) -> None:
        """Validate the options (one-line errors)."""
        super().check()
        if self.style not in STYLES:
            raise InputError(f"expected style one of {', '.join(STYLES)}, but got {self.style!r}")
        if self.cols is not None and self.cols < 1:
            raise InputError(f"expected cols >= 1, but got {self.cols}")
        if self.contrast is not None:
            items = list(self.contrast)
            if len(items) != 2 or str(items[0]).lower() == str(items[1]).lower():
                raise InputError(
                    "expected a contrast of two different classes A,B (e.g. take,wash), but got "
                    f"{','.join(str(i) for i in items) or 'none'}; name a second class"
                )


@dataclass
class _Window:
    indices: np.ndarray  # source frame indices of the clip
    times: np.ndarray  # their timestamps (seconds)
    raw: torch.Tensor | None = None  # (K, T', H', W') on CPU


class _Outputs:
    """Every file of one run; on failure all of them are removed."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: list[Path] = []
        self.writers: list[VideoWriter] = []

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def add(self, name: str) -> Path:
        """Claim ``root / name`` for this run (removed on failure)."""
        path = self.root / name
        self.files.append(path)
        return path

    def cleanup(self) -> None:
        for writer in self.writers:
            writer.abort()
        for path in self.files:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "class"


def _prepare_out_dir(out_dir: Path) -> bool:
    """Create ``out_dir`` if needed and check it is writable; return whether it was created."""
    created = not out_dir.exists()
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(
            f"output folder {out_dir} is a file; expected a folder path (it is created if missing)"
        )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise InputError(
            f"output folder {out_dir} is not writable ({exc.strerror or exc}); choose another --out"
        ) from None
    return created


def _window_clips(
    path: Path, jobs: Sequence[tuple[Sequence[_Window], Any]], info: VideoInfo
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Decode once for every job, yield ``(job, window, (1, C, T, h, w) clip)`` as windows complete.

    A job is one model's ``(windows, preprocess)``; each frame is preprocessed once per job
    that needs it. Only frames still needed by a pending window are kept, at each model's
    resolution.
    """
    needed: dict[int, list[tuple[int, int]]] = {}
    for j, (windows, _) in enumerate(jobs):
        for w, win in enumerate(windows):
            for i in np.unique(win.indices):
                needed.setdefault(int(i), []).append((j, w))
    remaining = {
        (j, w): len(np.unique(win.indices))
        for j, (windows, _) in enumerate(jobs)
        for w, win in enumerate(windows)
    }
    last = max(int(i) for i in needed)
    buffer: dict[tuple[int, int], torch.Tensor] = {}
    for frame in iter_frames(path, info=info):
        if frame.index not in needed:
            continue
        for j in dict.fromkeys(j for j, _ in needed[frame.index]):
            buffer[(j, frame.index)] = jobs[j][1](frame.image[None])[:, 0]  # (C, h, w)
        for j, w in needed[frame.index]:
            remaining[(j, w)] -= 1
            if remaining[(j, w)] == 0:
                indices = jobs[j][0][w].indices
                clip = torch.stack([buffer[(j, int(i))] for i in indices], dim=1)
                yield j, w, clip.unsqueeze(0)
        # drop frames no pending window of their job needs
        for key in [
            (j, i)
            for j, i in buffer
            if all(remaining[(jj, w)] == 0 for jj, w in needed[i] if jj == j)
        ]:
            del buffer[key]
        if frame.index >= last and all(v == 0 for v in remaining.values()):
            break
    if any(v > 0 for v in remaining.values()):
        raise VideoError(
            f"{path} ended before all sampled frames were decoded ({info.num_frames} frames were announced); "
            "the file may be truncated: re-encode it (e.g. ffmpeg -i in.mp4 out.mp4)"
        )


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        desc=desc,
        disable=not enabled,
        leave=False,
        unit="frame" if "render" in desc else "clip",
    )


class _TubeTrack:
    """Per-class whole-video tubes from per-window raw tubes, normalised on one scale.

    Unsigned tracks are min-max normalised to ``[0, 1]`` (each window on its own when there
    is one window, as :func:`~saliency_tubes.normalize_tubes`; over all windows otherwise).
    Signed tracks (contrastive tubes) are divided by their largest magnitude over all
    windows, so 0 stays 0 and the range is ``[-1, 1]``.
    """

    def __init__(
        self,
        windows: Sequence[_Window],
        clip_size: tuple[int, int, int],
        mode: str,
        align: str,
        geometry: Geometry,
        *,
        signed: bool = False,
    ) -> None:
        self.windows = windows
        self.size = clip_size
        self.mode = mode
        self.align = align
        self.geometry = geometry
        self.signed = signed
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._mappers: OrderedDict[tuple[int, ...], list[TubeMapper]] = OrderedDict()
        if signed:
            ups = [self._upsampled(win).flatten(1) for win in windows]
            self.bound = torch.stack([u.abs().amax(1) for u in ups]).amax(0)  # (K,)
        elif len(windows) > 1:  # one window is normalised on its own (normalize_tubes)
            ups = [self._upsampled(win).flatten(1) for win in windows]
            self.low = torch.stack([u.amin(1) for u in ups]).amin(0)  # (K,)
            self.high = torch.stack([u.amax(1) for u in ups]).amax(0)
        self._starts = np.array([float(w.times.min()) for w in windows])
        self._ends = np.array([float(w.times.max()) for w in windows])

    @property
    def count(self) -> int:
        """Number of tubes (classes) in the track."""
        raw = self.windows[0].raw
        assert raw is not None  # set by the explain pass before tracks are built
        return int(raw.shape[0])

    def _upsampled(self, win: _Window) -> torch.Tensor:
        assert win.raw is not None  # set by the explain pass before tracks are built
        if tuple(win.raw.shape[1:]) == tuple(self.size):
            return win.raw
        return upsample(win.raw.unsqueeze(0), self.size, mode=self.mode, align=self.align)[0]

    def normalised(self, w: int) -> np.ndarray:
        """(K, T, h, w) float32 for window ``w`` on the video-wide scale."""
        if w in self._cache:
            self._cache.move_to_end(w)
            return self._cache[w]
        up = self._upsampled(self.windows[w])
        if self.signed:
            bound = self.bound.view(-1, 1, 1, 1)
            safe = torch.where(bound > 0, bound, torch.ones_like(bound))
            maps = torch.where(bound > 0, up / safe, torch.zeros_like(up)).clamp(-1, 1)
        elif len(self.windows) == 1:
            maps = normalize_tubes(up.unsqueeze(0))[0].clamp(0, 1)
        else:
            low = self.low.view(-1, 1, 1, 1)
            span = (self.high - self.low).view(-1, 1, 1, 1)
            maps = torch.where(span > 0, (up - low) / span.clamp_min(1e-30), torch.zeros_like(up))
            maps = maps.clamp(0, 1)
        out = maps.cpu().numpy().astype(np.float32)
        self._cache[w] = out
        if len(self._cache) > 8:
            self._cache.popitem(last=False)
        return out

    def mappers(self, t: float) -> list[TubeMapper]:
        """One mapper per class for source time ``t``, over the windows that cover it."""
        active = np.flatnonzero((self._starts <= t) & (t <= self._ends))
        if active.size == 0:
            dist = np.maximum(self._starts - t, 0.0) + np.maximum(t - self._ends, 0.0)
            active = np.array([int(np.argmin(dist))])
        key = tuple(int(a) for a in active)
        if key not in self._mappers:
            tubes = [self.normalised(w) for w in key]
            times = [self.windows[w].times for w in key]
            self._mappers[key] = [
                stitch_windows([tube[k] for tube in tubes], times, self.geometry)
                for k in range(tubes[0].shape[0])
            ]
            if len(self._mappers) > 4:
                self._mappers.popitem(last=False)
        else:
            self._mappers.move_to_end(key)
        return self._mappers[key]

    def frame(self, k: int, t: float) -> np.ndarray:
        """Tube ``k`` on the source frame shown at time ``t`` (NaN where unseen)."""
        return self.mappers(t)[k].frame(t)


def _versions() -> dict[str, str]:
    out = {}
    for name in ("saliency-tubes", "torch", "numpy", "av", "pillow", "matplotlib"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _video_facts(info: VideoInfo) -> dict[str, Any]:
    return {
        "path": str(info.path),
        "width": info.width,
        "height": info.height,
        "num_frames": info.num_frames,
        "fps": info.fps,
        "rate": str(info.rate),
        "duration": info.duration,
        "codec": info.codec,
    }


# --------------------------------------------------------------------------------------
# Stage 1: explain the windows of one model
# --------------------------------------------------------------------------------------


@dataclass
class _Explained:
    """One model's explanation of the whole video: raw tubes per window, classes, scores."""

    loaded: LoadedModel
    method: str
    windows: list[_Window]
    classes: list[int]
    names: list[str]
    scores: list[float]
    layer: str
    classifier: str
    clip_size: tuple[int, int, int]
    track: _TubeTrack
    options: ExplainOptions

    def position(self, item: int | str) -> int:
        """Where class ``item`` (an index or name) is among :attr:`classes`."""
        for k, (c, n) in enumerate(zip(self.classes, self.names, strict=True)):
            if (isinstance(item, int) and item == c) or str(item).strip().lower() in (
                str(c),
                n.lower(),
            ):
                return k
        raise InputError(f"class {item!r} was not explained; expected one of {self.names}")

    def contrast_track(self, ka: int, kb: int) -> _TubeTrack:
        """The signed track of ``raw[ka] - raw[kb]`` (see :func:`~saliency_tubes.contrastive_tube`)."""
        diffs = []
        for win in self.windows:
            assert win.raw is not None
            diffs.append(_Window(win.indices, win.times, (win.raw[ka] - win.raw[kb]).unsqueeze(0)))
        o = self.options
        return _TubeTrack(
            diffs, self.clip_size, o.interpolation, o.align, self.track.geometry, signed=True
        )


def _is_topk(spec: ClassSpec) -> bool:
    return isinstance(spec, str) and re.fullmatch(r"top\d+", spec.strip().lower()) is not None


def _method(loaded: LoadedModel, method: str) -> str:
    if method != "auto":
        return method
    return loaded.adapter.default_method if loaded.adapter is not None else "cam"


class _Job:
    """One model's explanation in progress: windows, preprocessing, explainer, classes."""

    def __init__(
        self,
        video: Path,
        info: VideoInfo,
        loaded: LoadedModel,
        options: ExplainOptions,
        say: Callable[[str], None],
        extra: Sequence[int | str] = (),
    ) -> None:
        preset = loaded.preset
        frames = options.frames or preset.frames
        self.preprocess = preset.preprocess()
        if options.windows is None:
            index_sets = [sample_uniform(info.num_frames, frames)]
        else:
            index_sets = sliding_windows(info.num_frames, *options.windows)
        self.windows = [_Window(indices=ix, times=info.timestamps[ix]) for ix in index_sets]
        self.device = torch.device(options.device)
        loaded.model = loaded.model.to(self.device)
        self.loaded, self.options, self.extra, self.info = loaded, options, extra, info
        self.method = _method(loaded, options.method)
        self.explainer = loaded.explainer(
            self.method, interpolation=options.interpolation, align=options.align
        )
        self.classes: ClassSpec = options.classes
        if len(self.windows) > 1 and _is_topk(self.classes):
            say(
                f"scoring {len(self.windows)} windows of {loaded.name} to pick the video's {self.classes}"
            )
            probs = _video_scores(
                self.explainer,
                (
                    clip
                    for _, _, clip in _window_clips(video, [(self.windows, self.preprocess)], info)
                ),
                len(self.windows),
                options.progress,
            )
            self.classes = select_classes(self.classes, probs[None], loaded.categories)[0].tolist()
        say(
            f"explaining {len(self.windows)} clip(s) of {len(self.windows[0].indices)} frames "
            f"with {loaded.name} ({self.method})"
        )
        self.scores: list[torch.Tensor] = []
        self.chosen: list[int] | None = None
        self.tubes: Tubes | None = None

    def feed(self, w: int, clip: torch.Tensor) -> None:
        """Explain window ``w``; the first window fixes the classes for all of them."""
        tubes = self.explainer(clip.to(self.device), classes=self.classes)
        if self.extra and self.chosen is None:  # first window: add the extra classes once
            items: list[Any] = list(self.extra)  # indices and names may be mixed
            wanted = select_classes(items, tubes.logits, self.loaded.categories)[0].tolist()
            first = tubes.classes[0].tolist()
            missing = [c for c in dict.fromkeys(wanted) if c not in first]
            if missing:
                tubes = self.explainer(clip.to(self.device), classes=first + missing)
        self.windows[w].raw = tubes.raw[0].cpu()
        self.scores.append(tubes.scores[0].cpu())
        self.chosen = tubes.classes[0].tolist()
        self.classes = [self.chosen]  # the same classes in every window
        self.tubes = tubes

    def finish(self) -> _Explained:
        tubes, chosen, loaded, o = self.tubes, self.chosen, self.loaded, self.options
        assert tubes is not None and chosen is not None  # every window was explained
        clip_size = (len(self.windows[0].indices), loaded.preset.size[0], loaded.preset.size[1])
        geometry = self.preprocess.geometry(self.info.size)
        return _Explained(
            loaded=loaded,
            method=self.method,
            windows=self.windows,
            classes=chosen,
            names=[loaded.categories[c] if loaded.categories else str(c) for c in chosen],
            scores=torch.stack(self.scores).mean(0).tolist(),
            layer=tubes.layer,
            classifier=tubes.classifier,
            clip_size=clip_size,
            track=_TubeTrack(self.windows, clip_size, o.interpolation, o.align, geometry),
            options=o,
        )


def _explain(
    video: Path, info: VideoInfo, jobs: Sequence[_Job], progress: bool
) -> list[_Explained]:
    """Explain every window of every job (model) from one decode of ``video``."""
    bar = _progress(sum(len(job.windows) for job in jobs), "model", progress)
    try:
        pairs = [(job.windows, job.preprocess) for job in jobs]
        for j, w, clip in _window_clips(video, pairs, info):
            jobs[j].feed(w, clip)
            bar.update(1)
    finally:
        bar.close()
    return [job.finish() for job in jobs]


def _video_scores(
    explainer: Explainer,
    clips: Iterator[torch.Tensor],
    n_windows: int,
    progress: bool,
) -> torch.Tensor:
    """The video's class probabilities: the mean softmax over the windows, (num_classes,)."""
    total: torch.Tensor | None = None
    bar = _progress(n_windows, "scoring windows", progress)
    try:
        for clip in clips:
            probs = torch.softmax(explainer.logits(clip).float(), dim=1)[0]
            total = probs if total is None else total + probs
            bar.update(1)
    finally:
        bar.close()
    assert total is not None  # at least one window exists
    return (total / n_windows).cpu()


# --------------------------------------------------------------------------------------
# Stage 2: temporal curves and statistics on the source frames
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Summary:
    curve: temporal.TemporalCurve
    stats: compare.TubeStats


def _summarise(info: VideoInfo, tracks: Sequence[_TubeTrack]) -> list[list[_Summary]]:
    """Per track and tube: the temporal curve and the statistics over every source frame."""
    builders = [
        [(temporal.CurveBuilder(), compare.StatsBuilder()) for _ in range(track.count)]
        for track in tracks
    ]
    for t in info.timestamps:
        for track, row in zip(tracks, builders, strict=True):
            for k, (curve, stats) in enumerate(row):
                saliency = track.frame(k, float(t))
                curve.add(saliency)
                stats.add(saliency)
    return [
        [_Summary(curve.build(info.timestamps), stats.build()) for curve, stats in row]
        for row in builders
    ]


# --------------------------------------------------------------------------------------
# Stage 3: files
# --------------------------------------------------------------------------------------


def _save_tube_npy(path: Path, track: _TubeTrack, index: int | None = None) -> None:
    """Tubes of a track as float32, streamed.

    (K, T, h, w) for one clip, (num_windows, K, T, h, w) for windows; with ``index`` only
    that tube: (T, h, w) or (num_windows, T, h, w).
    """

    def window(w: int) -> np.ndarray:
        maps = track.normalised(w)
        return maps if index is None else maps[index]

    first = window(0)
    shape = first.shape if len(track.windows) == 1 else (len(track.windows), *first.shape)
    partial = path.with_name(f".{path.name}.partial")
    try:
        array = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32, shape=shape)
        if len(track.windows) == 1:
            array[...] = first
        else:
            for w in range(len(track.windows)):
                array[w] = window(w)
        array.flush()
        del array
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _save_npy(
    outputs: _Outputs,
    files: dict[str, list[str]],
    name: str,
    track: _TubeTrack,
    index: int | None = None,
) -> str:
    """Write a track's tubes as ``name`` (see :func:`_save_tube_npy`), list it in ``files``."""
    path = outputs.add(name)
    _save_tube_npy(path, track, index)
    rel = outputs.rel(path)
    files.setdefault("npy", []).append(rel)
    return rel


@dataclass
class _Product:
    """Output videos drawn together from each source frame: ``draw(frame) -> {key: image}``."""

    stems: dict[str, str]  # key -> file stem
    draw: Callable[[Frame], dict[str, np.ndarray]]


def _encode(
    video: Path,
    info: VideoInfo,
    outputs: _Outputs,
    products: Sequence[_Product],
    formats: Sequence[str],
    progress: bool,
) -> dict[str, list[str]]:
    """One pass over the source: draw every product's frames and encode them in ``formats``."""
    files: dict[str, list[str]] = {f: [] for f in formats}
    with ExitStack() as stack:
        writers: dict[tuple[int, str], list[VideoWriter]] = {}
        for p, product in enumerate(products):
            for key, stem in product.stems.items():
                for fmt in formats:
                    path = outputs.add(stem if fmt == "png" else f"{stem}.{fmt}")
                    writer = VideoWriter(path, fps=info.rate)
                    outputs.writers.append(writer)
                    stack.enter_context(writer)
                    writers.setdefault((p, key), []).append(writer)
                    files[fmt].append(outputs.rel(path))
        bar = stack.enter_context(_progress(info.num_frames, "render+encode", progress))
        for frame in iter_frames(video, info=info):
            for p, product in enumerate(products):
                for key, image in product.draw(frame).items():
                    for writer in writers[(p, key)]:
                        writer.write(image)
            bar.update(1)
    return files


def _draw(
    image: np.ndarray, saliency: np.ndarray, name: str, score: float, options: ExplainOptions
) -> dict[str, np.ndarray]:
    label = f"{name}  p={score:.2f}"
    heat = _panel(image, saliency, "heat", f"heat: {label}", options)
    focus = _panel(image, saliency, "focus", f"focus: {label}", options)
    drawn: dict[str, np.ndarray] = {}
    if "heat" in options.layouts:
        drawn["heat"] = heat
    if "focus" in options.layouts:
        drawn["focus"] = focus
    if "side_by_side" in options.layouts:
        original = render.caption(image, "original") if options.caption else image
        drawn["side_by_side"] = render.side_by_side([original, heat, focus])
    return drawn


def _panel(
    image: np.ndarray, saliency: np.ndarray, style: str, label: str, options: ExplainOptions
) -> np.ndarray:
    """A heat or focus tube frame, captioned when ``options.caption``."""
    if style == "heat":
        out = render.heat(image, saliency, colormap=options.colormap, opacity=options.opacity)
    else:
        out = render.focus(image, saliency, floor=options.floor, background=options.background)
    return render.caption(out, label) if options.caption else out


def _under(image: np.ndarray, strip: np.ndarray) -> np.ndarray:
    return np.concatenate([image, strip], axis=0)


def _timeline(
    image: np.ndarray, curve: temporal.TemporalCurve, frame: Frame, scale: float
) -> np.ndarray:
    """``image`` with the curve's timeline bar (cursor at ``frame``) underneath."""
    height = int(np.clip(image.shape[0] // 10, 12, 40))
    current = min(frame.index, len(curve) - 1)
    strip = temporal.timeline_bar(curve, image.shape[1], height, current, scale=scale)
    return _under(image, strip)


def _grid_cols(count: int, cols: int | None) -> int:
    return cols if cols is not None else min(count, 4)


def _plot(
    outputs: _Outputs,
    name: str,
    curves: Sequence[tuple[str, temporal.TemporalCurve]],
    title: str,
    sampled: Sequence[int],
) -> str:
    path = outputs.add(name)
    temporal.plot_curves(curves, path, title=title, sampled=sampled)
    return outputs.rel(path)


def _sampled(e: _Explained) -> list[int]:
    return sorted({int(i) for win in e.windows for i in win.indices})


# --------------------------------------------------------------------------------------
# Manifest pieces
# --------------------------------------------------------------------------------------


def _model_entry(e: _Explained) -> dict[str, Any]:
    return {
        "name": e.loaded.name,
        "weights": e.loaded.weights,
        "layer": e.layer,
        "classifier": e.classifier,
        "method": e.method,
        "preset": asdict(e.loaded.preset),
    }


def _clips_entry(e: _Explained) -> list[dict[str, Any]]:
    return [
        {
            "frame_indices": win.indices.tolist(),
            "timestamps": [round(float(t), 6) for t in win.times],
        }
        for win in e.windows
    ]


def _tube_entry(e: _Explained) -> dict[str, Any]:
    raw = e.windows[0].raw
    return {
        "grid": list(e.clip_size),
        "layer_grid": list(raw.shape[1:]) if raw is not None else None,
        "normalisation": "min-max over the whole tube"
        if len(e.windows) == 1
        else "min-max over all windows",
    }


def _classes_entry(e: _Explained) -> list[dict[str, Any]]:
    return [
        {"index": c, "name": n, "score": round(float(s), 6)}
        for c, n, s in zip(e.classes, e.names, e.scores, strict=True)
    ]


def _tubes_entries(
    e: _Explained, summaries: Sequence[_Summary], npy: str | None
) -> list[dict[str, Any]]:
    """One entry per tube: model, class, score, where it is stored, statistics, curve."""
    return [
        {
            "model": e.loaded.name,
            "class": cls,
            "npy": {"file": npy, "index": k} if npy else None,
            "stats": summary.stats.to_dict(),
            "temporal": summary.curve.to_dict(),
        }
        for k, (cls, summary) in enumerate(zip(_classes_entry(e), summaries, strict=True))
    ]


def _one_model_manifest(
    command: str,
    info: VideoInfo,
    e: _Explained,
    summaries: Sequence[_Summary],
    npy: str | None,
    more_options: dict[str, Any],
    files: dict[str, list[str]],
) -> dict[str, Any]:
    """The manifest of a run with one model (``explain``, ``compare-classes``)."""
    return {
        **_header(command, info),
        "model": _model_entry(e),
        "method": e.method,
        "options": {"frames": e.clip_size[0], **_options_entry(e.options), **more_options},
        "classes": _classes_entry(e),
        "clips": _clips_entry(e),
        "tube": _tube_entry(e),
        "tubes": _tubes_entries(e, summaries, npy),
        "definitions": _DEFINITIONS,
        "versions": _versions(),
        "outputs": files,
    }


def _options_entry(options: ExplainOptions) -> dict[str, Any]:
    return {
        "windows": list(options.windows) if options.windows else None,
        "interpolation": options.interpolation,
        "align": options.align,
        "colormap": options.colormap,
        "opacity": options.opacity,
        "floor": options.floor,
        "background": options.background,
        "formats": list(options.formats),
        "timeline": options.timeline,
        "device": options.device,
    }


_DEFINITIONS = {"temporal": temporal.DEFINITION, "stats": compare.DEFINITION}


# --------------------------------------------------------------------------------------
# Running a command
# --------------------------------------------------------------------------------------

_Work = Callable[[VideoInfo, _Outputs, Callable[[str], None]], dict[str, Any]]


@contextmanager
def output_folder(out_dir: str | Path) -> Iterator[_Outputs]:
    """Claim files in ``out_dir`` for one run; on any error remove them all.

    Creates ``out_dir`` if needed (checking it is writable) and yields the run's
    :class:`_Outputs`: register every file with ``outputs.add(name)`` (and every open
    :class:`~saliency_tubes.video.VideoWriter` in ``outputs.writers``). If the block raises
    (errors and interrupts alike), the writers are aborted, the files removed, and
    ``out_dir`` too when this call created it; files already there stay.
    """
    out = Path(out_dir)
    created = _prepare_out_dir(out)
    outputs = _Outputs(out)
    try:
        yield outputs
    except BaseException:
        outputs.cleanup()
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise


def _produce(
    video: str | Path,
    out_dir: str | Path,
    options: ExplainOptions,
    work: _Work,
    info: VideoInfo | None,
    manifest_extra: dict[str, Any] | None,
    on_stage: Callable[[str], None] | None,
) -> dict[str, Any]:
    """Check, create the folder, run ``work``, write ``manifest.json``; clean up on error."""
    options.check()
    say = on_stage or (lambda _msg: None)
    started = time.perf_counter()
    video = Path(video)
    info = probe(video, min_frames=2) if info is None else check_min_frames(info, 2)
    with output_folder(out_dir) as outputs:
        manifest = work(info, outputs, say)
        manifest.update(manifest_extra or {})
        manifest["seconds"] = round(time.perf_counter() - started, 3)
        atomic_write_json(outputs.add("manifest.json"), manifest)
    return manifest


def _header(command: str, info: VideoInfo) -> dict[str, Any]:
    return {"tool": "saliency-tubes", "command": command, "source": _video_facts(info)}


def explain_video(
    video: str | Path,
    out_dir: str | Path,
    loaded: LoadedModel,
    options: ExplainOptions | None = None,
    *,
    info: VideoInfo | None = None,
    manifest_extra: dict[str, Any] | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Explain a video file and write heat, focus and side-by-side videos at its own size.

    Args:
        video: a video file (anything FFmpeg reads) or a folder of numbered frames.
        out_dir: output folder (created if missing).
        loaded: the model and its preset (see :func:`saliency_tubes.zoo.load_model`).
        options: see :class:`ExplainOptions`.
        info: the video's :func:`~saliency_tubes.video.probe` result, if already known.
        manifest_extra: more top-level entries for the manifest (the demo records its seed).
        on_stage: called with a short message at each stage (the CLI prints them).

    Returns:
        The manifest (also written as ``manifest.json``): model, layer, method, options,
        classes and scores, source video facts, the sampled frames, per tube its
        statistics and temporal importance curve with key frames
        (:mod:`saliency_tubes.temporal`), package versions and every output file relative
        to ``out_dir`` (``temporal_K_NAME.png`` per class with the "plot" format).

    On any error every file this call wrote is removed (and ``out_dir`` too, if this call
    created it); outputs appear under their final names only once complete.
    """
    options = options or ExplainOptions()

    def work(info: VideoInfo, outputs: _Outputs, say: Callable[[str], None]) -> dict[str, Any]:
        (e,) = _explain(
            Path(video), info, [_Job(Path(video), info, loaded, options, say)], options.progress
        )
        (summaries,) = _summarise(info, [e.track])
        files: dict[str, list[str]] = {}
        npy = _save_npy(outputs, files, "tube.npy", e.track) if "npy" in options.formats else None
        if "plot" in options.formats:
            files["plot"] = [
                _plot(
                    outputs,
                    f"temporal_{k + 1}_{_slug(name)}.png",
                    [(name, summary.curve)],
                    f"{loaded.name}: {name} (p={score:.2f}), temporal importance",
                    _sampled(e),
                )
                for k, (name, score, summary) in enumerate(
                    zip(e.names, e.scores, summaries, strict=True)
                )
            ]
        formats = [f for f in options.formats if f in _VIDEO_FORMATS]
        if formats:
            say(
                f"rendering {info.num_frames} frames ({', '.join(options.layouts)}) to {', '.join(formats)}"
            )
            products = [
                _explain_product(e, k, summaries[k], options) for k in range(len(e.classes))
            ]
            files.update(_encode(Path(video), info, outputs, products, formats, options.progress))
        layouts = {"layouts": list(options.layouts)}
        return _one_model_manifest("explain", info, e, summaries, npy, layouts, files)

    return _produce(video, out_dir, options, work, info, manifest_extra, on_stage)


def _explain_product(e: _Explained, k: int, summary: _Summary, options: ExplainOptions) -> _Product:
    name, score = e.names[k], e.scores[k]
    stems = {layout: f"{layout}_{k + 1}_{_slug(name)}" for layout in options.layouts}
    scale = float(summary.curve.mean.max(initial=0.0))

    def draw(frame: Frame) -> dict[str, np.ndarray]:
        drawn = _draw(frame.image, e.track.frame(k, frame.timestamp), name, score, options)
        if options.timeline:
            drawn = {key: _timeline(img, summary.curve, frame, scale) for key, img in drawn.items()}
        return drawn

    return _Product(stems, draw)


def _grid_product(
    stem: str,
    panels: Sequence[tuple[_TubeTrack, int, str, _Summary]],
    options: CompareOptions,
) -> _Product:
    """One video: a grid of panels ``(track, tube index, caption, summary)``."""
    cols = _grid_cols(len(panels), options.cols)
    scale = max(float(s.curve.mean.max(initial=0.0)) for _, _, _, s in panels)

    def draw(frame: Frame) -> dict[str, np.ndarray]:
        images = []
        for track, k, label, summary in panels:
            image = _panel(
                frame.image, track.frame(k, frame.timestamp), options.style, label, options
            )
            if options.timeline:
                image = _timeline(image, summary.curve, frame, scale)
            images.append(image)
        return {"grid": render.grid(images, cols, gap=_GAP)}

    return _Product({"grid": stem}, draw)


#: Pixels between the panels of a comparison grid.
_GAP = 4


def compare_classes(
    video: str | Path,
    out_dir: str | Path,
    loaded: LoadedModel,
    options: CompareOptions | None = None,
    *,
    info: VideoInfo | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """One model, several classes: one video with a panel per class, and a contrastive tube.

    Every class's panel is exactly what :func:`explain_video` draws for that class alone
    (the tubes come from one forward pass and are normalised each on its own), captioned
    with the class and its probability. With ``options.contrast = (A, B)`` it also writes
    ``contrast_A_vs_B.mp4``: the contrastive tube (:func:`~saliency_tubes.contrastive_tube`
    on the raw maps) over the frame in a diverging colour map, with its colour bar.

    Args:
        video: a video file or frame folder.
        out_dir: output folder (created if missing).
        loaded: the model (see :func:`saliency_tubes.zoo.load_model`).
        options: see :class:`CompareOptions` (``classes`` picks the panels).
        info: the video's probe result, if already known.
        on_stage: progress messages.

    Returns:
        The manifest (``manifest.json``): as :func:`explain_video`'s, with ``contrast``
        (classes, scale, statistics and temporal curve of the contrastive tube) and the
        outputs ``compare_classes.mp4`` (grid), ``contrast_A_vs_B.mp4``, ``temporal.png``,
        ``tube.npy`` (K, T, h, w) and ``contrast_A_vs_B.npy`` (T, h, w) with "npy".
    """
    options = options or CompareOptions()
    contrast = options.contrast

    def work(info: VideoInfo, outputs: _Outputs, say: Callable[[str], None]) -> dict[str, Any]:
        job = _Job(Path(video), info, loaded, options, say, extra=contrast or ())
        (e,) = _explain(Path(video), info, [job], options.progress)
        tracks = [e.track]
        ka = kb = -1
        if contrast is not None:
            ka, kb = e.position(contrast[0]), e.position(contrast[1])
            if ka == kb:
                raise InputError(
                    f"expected a contrast of two different classes, but {contrast[0]!r} and "
                    f"{contrast[1]!r} are both class {e.classes[ka]}; name a second class"
                )
            tracks.append(e.contrast_track(ka, kb))
        summaries = _summarise(info, tracks)
        files: dict[str, list[str]] = {}
        npy = None
        pair = f"{_slug(e.names[ka])}_vs_{_slug(e.names[kb])}" if contrast is not None else ""
        if "npy" in options.formats:
            npy = _save_npy(outputs, files, "tube.npy", e.track)
            if contrast is not None:
                _save_npy(outputs, files, f"contrast_{pair}.npy", tracks[1], index=0)
        if "plot" in options.formats:
            curves = [(n, s.curve) for n, s in zip(e.names, summaries[0], strict=True)]
            files["plot"] = [
                _plot(
                    outputs,
                    "temporal.png",
                    curves,
                    f"{loaded.name}: temporal importance per class",
                    _sampled(e),
                )
            ]
            if contrast is not None:
                label = f"{e.names[ka]} vs {e.names[kb]}"
                files["plot"].append(
                    _plot(
                        outputs,
                        f"temporal_contrast_{pair}.png",
                        [(label, summaries[1][0].curve)],
                        f"{loaded.name}: contrast {label} (+: {e.names[ka]}, -: {e.names[kb]})",
                        _sampled(e),
                    )
                )
        formats = [f for f in options.formats if f in _VIDEO_FORMATS]
        if formats:
            say(f"rendering {info.num_frames} frames of {len(e.classes)} class panels")
            panels = [
                (e.track, k, f"{n}  p={s:.2f}", summary)
                for k, (n, s, summary) in enumerate(
                    zip(e.names, e.scores, summaries[0], strict=True)
                )
            ]
            products = [_grid_product("compare_classes", panels, options)]
            if contrast is not None:
                products.append(
                    _contrast_product(f"contrast_{pair}", e, ka, kb, tracks[1], options)
                )
            files.update(_encode(Path(video), info, outputs, products, formats, options.progress))
        grid = {"style": options.style, "cols": options.cols}
        manifest = _one_model_manifest("compare-classes", info, e, summaries[0], npy, grid, files)
        manifest["contrast"] = None
        if contrast is not None:
            manifest["contrast"] = {
                "a": {"index": e.classes[ka], "name": e.names[ka]},
                "b": {"index": e.classes[kb], "name": e.names[kb]},
                "on": "raw",
                "definition": "(up(raw_A - raw_B)) / max|.| over the video, in [-1, 1]; "
                "positive: evidence for A over B",
                "scale": round(float(tracks[1].bound[0]), 6),
                "stats": summaries[1][0].stats.to_dict(),
                "temporal": summaries[1][0].curve.to_dict(),
            }
        return manifest

    return _produce(video, out_dir, options, work, info, None, on_stage)


def _contrast_product(
    stem: str, e: _Explained, ka: int, kb: int, track: _TubeTrack, options: CompareOptions
) -> _Product:
    names = (e.names[ka], e.names[kb])
    label = f"why {names[0]} and not {names[1]}"

    def draw(frame: Frame) -> dict[str, np.ndarray]:
        image = compare.contrast_frame(frame.image, track.frame(0, frame.timestamp))
        if options.caption:
            image = render.caption(image, label)
        return {"contrast": _under(image, compare.contrast_legend(image.shape[1], names))}

    return _Product({"contrast": stem}, draw)


def compare_models(
    video: str | Path,
    out_dir: str | Path,
    models: Sequence[LoadedModel],
    options: CompareOptions | None = None,
    *,
    info: VideoInfo | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Several models on one video: a grid with a panel per model, and numbers to compare.

    Each model samples and preprocesses the video with its own preset (frames, size, crop,
    mean/std) and method (``options.method="auto"``: each adapter's default); its tube is
    mapped back through its own geometry onto the same source frames, so panel ``m`` is
    exactly what :func:`explain_video` draws for model ``m``. With several classes per
    model (e.g. ``classes="top2"``) rows are classes and columns models.

    Per model the manifest's ``summary`` gives, for its first class, the tube statistics
    on the source frames (:func:`~saliency_tubes.tube_stats`: the fraction of voxels above
    0.5 and the spatial spread), the numbers that make "deeper networks give tighter
    regions" checkable.

    Args:
        video: a video file or frame folder.
        out_dir: output folder (created if missing).
        models: the loaded models (distinct names), in panel order.
        options: see :class:`CompareOptions` (``frames`` and ``contrast`` are not used).
        info: the video's probe result, if already known.
        on_stage: progress messages.

    Returns:
        The manifest: ``models`` (per model: model entry, classes, clips, tube grid),
        ``tubes``, ``summary``, outputs ``compare_models.mp4``, ``temporal.png`` and
        ``tube_MODEL.npy`` per model with "npy".
    """
    options = options or CompareOptions(method="auto")
    names = [m.name for m in models]
    if not models or len(set(names)) != len(names):
        raise InputError(f"expected one or more distinct models, but got {names}; list each once")

    def work(info: VideoInfo, outputs: _Outputs, say: Callable[[str], None]) -> dict[str, Any]:
        per_model = replace(options, frames=None, contrast=None)
        jobs = [_Job(Path(video), info, m, per_model, say) for m in models]
        explained = _explain(Path(video), info, jobs, options.progress)
        counts = {len(e.classes) for e in explained}
        if len(counts) != 1:
            raise InputError(
                f"expected the same number of classes for every model, but got "
                f"{sorted(counts)}; pass topK or one class list valid for all"
            )
        summaries = _summarise(info, [e.track for e in explained])
        files: dict[str, list[str]] = {}
        npys: list[str | None] = [
            _save_npy(outputs, files, f"tube_{_slug(e.loaded.name)}.npy", e.track)
            if "npy" in options.formats
            else None
            for e in explained
        ]
        if "plot" in options.formats:
            curves = [
                (f"{e.loaded.name}: {e.names[k]}", summaries[i][k].curve)
                for k in range(len(explained[0].classes))
                for i, e in enumerate(explained)
            ]
            files["plot"] = [
                _plot(
                    outputs,
                    "temporal.png",
                    curves,
                    "temporal importance per model",
                    _sampled(explained[0]),
                )
            ]
        formats = [f for f in options.formats if f in _VIDEO_FORMATS]
        if formats:
            say(f"rendering {info.num_frames} frames of {len(explained)} model panels")
            panels = [
                (e.track, k, f"{e.loaded.name}: {e.names[k]}  p={e.scores[k]:.2f}", summaries[i][k])
                for k in range(len(explained[0].classes))
                for i, e in enumerate(explained)
            ]
            grid = replace(options, cols=options.cols or len(explained))
            products = [_grid_product("compare_models", panels, grid)]
            files.update(_encode(Path(video), info, outputs, products, formats, options.progress))
        return {
            **_header("compare-models", info),
            "options": {**_options_entry(options), "style": options.style, "cols": options.cols},
            "models": [
                {
                    "model": _model_entry(e),
                    "classes": _classes_entry(e),
                    "clips": _clips_entry(e),
                    "tube": _tube_entry(e),
                }
                for e in explained
            ],
            "tubes": [
                t
                for e, s, n in zip(explained, summaries, npys, strict=True)
                for t in _tubes_entries(e, s, n)
            ],
            "summary": [
                {
                    "model": e.loaded.name,
                    "class": e.names[0],
                    "score": round(e.scores[0], 6),
                    **s[0].stats.to_dict(),
                }
                for e, s in zip(explained, summaries, strict=True)
            ],
            "definitions": _DEFINITIONS,
            "versions": _versions(),
            "outputs": files,
        }

    return _produce(video, out_dir, options, work, info, None, on_stage)


__all__ = [
    "FORMATS",
    "LAYOUTS",
    "STYLES",
    "CompareOptions",
    "ExplainOptions",
    "compare_classes",
    "compare_models",
    "explain_video",
    "output_folder",
]
