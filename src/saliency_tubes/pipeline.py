"""Video in, explained video out: decode, sample, explain, map back, render, encode.

Memory does not grow with the video's length: frames are decoded one at a time, a clip
holds only the frames of one window (at the model's resolution), each window keeps only
its raw tube on the layer's grid (a few kilobytes), and the render pass maps, draws and
encodes one source frame at a time.
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
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from . import render
from .errors import InputError, VideoError
from .hooks import preserved_state
from .methods import METHODS, Explainer, normalize_tubes
from .methods.base import ClassSpec
from .upsample import upsample
from .video import (
    Preprocess,
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
FORMATS = ("mp4", "gif", "png", "npy")


@dataclass
class ExplainOptions:
    """Options of :func:`explain_video` (the CLI's flags).

    Attributes:
        method: "cam" (the paper's Saliency Tubes), "gradcam" or "gradcam++".
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
        formats: any of "mp4", "gif", "png" (frame folders) and "npy" (the tube).
        layouts: any of "heat", "focus", "side_by_side".
        caption: draw class name and probability on each frame.
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
    formats: tuple[str, ...] = ("mp4",)
    layouts: tuple[str, ...] = LAYOUTS
    caption: bool = True
    device: str = "cpu"
    progress: bool = True

    def check(self) -> None:
        """Validate the options (one-line errors)."""
        if self.method not in METHODS:
            raise InputError(
                f"expected method one of {', '.join(METHODS)}, but got {self.method!r}"
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
    path: Path, windows: Sequence[_Window], preprocess: Preprocess, info: VideoInfo
) -> Iterator[tuple[int, torch.Tensor]]:
    """Decode once, yield ``(window index, (1, C, T, h, w) clip)`` as each window completes.

    Only frames still needed by a pending window are kept, at the model's resolution.
    """
    needed: dict[int, list[int]] = {}
    for w, win in enumerate(windows):
        for i in np.unique(win.indices):
            needed.setdefault(int(i), []).append(w)
    last = {w: int(win.indices.max()) for w, win in enumerate(windows)}
    remaining = {w: len(np.unique(win.indices)) for w, win in enumerate(windows)}
    buffer: dict[int, torch.Tensor] = {}
    for frame in iter_frames(path, info=info):
        if frame.index not in needed:
            continue
        buffer[frame.index] = preprocess(frame.image[None])[:, 0]  # (C, h, w)
        for w in needed[frame.index]:
            remaining[w] -= 1
            if remaining[w] == 0:
                clip = torch.stack([buffer[int(i)] for i in windows[w].indices], dim=1)
                yield w, clip.unsqueeze(0)
        # drop frames no pending window needs
        for i in [i for i in buffer if all(remaining[w] == 0 for w in needed[i])]:
            del buffer[i]
        if all(v == 0 for v in remaining.values()) and frame.index >= max(last.values()):
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
    """Per-class whole-video tubes from per-window raw tubes, normalised on one scale."""

    def __init__(
        self,
        windows: Sequence[_Window],
        clip_size: tuple[int, int, int],
        mode: str,
        align: str,
        preprocess: Preprocess,
        info: VideoInfo,
    ) -> None:
        self.windows = windows
        self.size = clip_size
        self.mode = mode
        self.align = align
        self.geometry = preprocess.geometry(info.size)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._mappers: OrderedDict[tuple[int, ...], list[TubeMapper]] = OrderedDict()
        if len(windows) > 1:  # one window is normalised on its own (normalize_tubes)
            ups = [self._upsampled(win).flatten(1) for win in windows]
            self.low = torch.stack([u.amin(1) for u in ups]).amin(0)  # (K,)
            self.high = torch.stack([u.amax(1) for u in ups]).amax(0)
        self._starts = np.array([float(w.times.min()) for w in windows])
        self._ends = np.array([float(w.times.max()) for w in windows])

    def _upsampled(self, win: _Window) -> torch.Tensor:
        assert win.raw is not None  # set by the explain pass before tracks are built
        return upsample(win.raw.unsqueeze(0), self.size, mode=self.mode, align=self.align)[0]

    def normalised(self, w: int) -> np.ndarray:
        """(K, T, h, w) float32 in [0, 1] for window ``w`` on the video-wide scale."""
        if w in self._cache:
            self._cache.move_to_end(w)
            return self._cache[w]
        up = self._upsampled(self.windows[w])
        if len(self.windows) == 1:
            maps = normalize_tubes(up.unsqueeze(0))[0]
        else:
            low = self.low.view(-1, 1, 1, 1)
            span = (self.high - self.low).view(-1, 1, 1, 1)
            maps = torch.where(span > 0, (up - low) / span.clamp_min(1e-30), torch.zeros_like(up))
        out = maps.clamp(0, 1).cpu().numpy().astype(np.float32)
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
            k_count = tubes[0].shape[0]
            self._mappers[key] = [
                stitch_windows([tube[k] for tube in tubes], times, self.geometry)
                for k in range(k_count)
            ]
            if len(self._mappers) > 4:
                self._mappers.popitem(last=False)
        else:
            self._mappers.move_to_end(key)
        return self._mappers[key]


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


def _video_level_classes(
    explainer: Explainer,
    clips: Iterator[tuple[int, torch.Tensor]],
    spec: str,
    n_windows: int,
    progress: bool,
) -> list[int]:
    """Top-K classes of the whole video: mean softmax over the windows."""
    k = int(spec[3:])
    total: torch.Tensor | None = None
    bar = _progress(n_windows, "scoring windows", progress)
    model = explainer.model
    try:
        with preserved_state(model, eval_mode=True), torch.no_grad():
            for _, clip in clips:
                probs = torch.softmax(model(clip.to(_device_of(model))).float(), dim=1)[0]
                total = probs if total is None else total + probs
                bar.update(1)
    finally:
        bar.close()
    assert total is not None  # at least one window exists
    if not 1 <= k <= total.numel():
        raise InputError(f"expected top-K with 1 <= K <= {total.numel()}, but got {spec!r}")
    return total.topk(k).indices.tolist()


def _device_of(model: torch.nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


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
        classes and scores, source video facts, package versions and every output file
        relative to ``out_dir``.

    On any error every file this call wrote is removed (and ``out_dir`` too, if this call
    created it); outputs appear under their final names only once complete.
    """
    options = options or ExplainOptions()
    options.check()
    say = on_stage or (lambda _msg: None)
    started = time.perf_counter()
    video = Path(video)
    info = probe(video, min_frames=2) if info is None else check_min_frames(info, 2)
    out = Path(out_dir)
    created = _prepare_out_dir(out)
    outputs = _Outputs(out)
    try:
        manifest = _run(video, info, out, loaded, options, outputs, say)
        manifest.update(manifest_extra or {})
        manifest["seconds"] = round(time.perf_counter() - started, 3)
        manifest_path = out / "manifest.json"
        outputs.files.append(manifest_path)
        atomic_write_json(manifest_path, manifest)
        return manifest
    except BaseException:
        outputs.cleanup()
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise


def _run(
    video: Path,
    info: VideoInfo,
    out: Path,
    loaded: LoadedModel,
    options: ExplainOptions,
    outputs: _Outputs,
    say: Callable[[str], None],
) -> dict[str, Any]:
    preset = loaded.preset
    frames = options.frames or preset.frames
    preprocess = preset.preprocess()
    if options.windows is None:
        index_sets = [sample_uniform(info.num_frames, frames)]
    else:
        index_sets = sliding_windows(info.num_frames, *options.windows)
    windows = [_Window(indices=ix, times=info.timestamps[ix]) for ix in index_sets]
    device = torch.device(options.device)
    model = loaded.model.to(device)
    loaded.model = model
    explainer = loaded.explainer(
        options.method, interpolation=options.interpolation, align=options.align
    )
    classes: ClassSpec = options.classes
    if (
        len(windows) > 1
        and isinstance(classes, str)
        and re.fullmatch(r"top\d+", classes.strip().lower())
    ):
        say(f"scoring {len(windows)} windows to pick the video's {classes}")
        classes = _video_level_classes(
            explainer,
            _window_clips(video, windows, preprocess, info),
            classes.strip().lower(),
            len(windows),
            options.progress,
        )

    say(
        f"explaining {len(windows)} clip(s) of {len(windows[0].indices)} frames with {options.method}"
    )
    scores: list[torch.Tensor] = []
    chosen: list[int] | None = None
    tubes = None
    bar = _progress(len(windows), "model", options.progress)
    try:
        for w, clip in _window_clips(video, windows, preprocess, info):
            tubes = explainer(clip.to(device), classes=classes)
            windows[w].raw = tubes.raw[0].cpu()
            scores.append(tubes.scores[0].cpu())
            chosen = tubes.classes[0].tolist()
            classes = [chosen]  # the same classes in every window
            bar.update(1)
    finally:
        bar.close()
    assert tubes is not None and chosen is not None  # at least one window was explained
    names = [loaded.categories[c] if loaded.categories else str(c) for c in chosen]
    mean_scores = torch.stack(scores).mean(0).tolist()
    clip_size = (len(windows[0].indices), preset.size[0], preset.size[1])
    track = _TubeTrack(windows, clip_size, options.interpolation, options.align, preprocess, info)

    files: dict[str, list[str]] = {}
    if "npy" in options.formats:
        path = out / "tube.npy"
        outputs.files.append(path)
        _save_tube_npy(path, track)
        files["npy"] = [outputs.rel(path)]

    video_formats = [f for f in options.formats if f in ("mp4", "gif", "png")]
    if video_formats:
        say(
            f"rendering {info.num_frames} frames ({', '.join(options.layouts)}) to {', '.join(video_formats)}"
        )
        files.update(
            _render(video, info, out, track, names, mean_scores, options, outputs, video_formats)
        )

    return {
        "tool": "saliency-tubes",
        "model": {
            "name": loaded.name,
            "weights": loaded.weights,
            "layer": tubes.layer,
            "classifier": tubes.classifier,
            "preset": asdict(preset),
        },
        "method": options.method,
        "options": {
            "frames": clip_size[0],
            "windows": list(options.windows) if options.windows else None,
            "interpolation": options.interpolation,
            "align": options.align,
            "colormap": options.colormap,
            "opacity": options.opacity,
            "floor": options.floor,
            "background": options.background,
            "formats": list(options.formats),
            "layouts": list(options.layouts),
            "device": options.device,
        },
        "classes": [
            {"index": c, "name": n, "score": round(float(s), 6)}
            for c, n, s in zip(chosen, names, mean_scores, strict=True)
        ],
        "source": _video_facts(info),
        "clips": [
            {
                "frame_indices": win.indices.tolist(),
                "timestamps": [round(float(t), 6) for t in win.times],
            }
            for win in windows
        ],
        "tube": {
            "grid": list(clip_size),
            "layer_grid": list(windows[0].raw.shape[1:]) if windows[0].raw is not None else None,
            "normalisation": "min-max over the whole tube"
            if len(windows) == 1
            else "min-max over all windows",
        },
        "versions": _versions(),
        "outputs": files,
    }


def _save_tube_npy(path: Path, track: _TubeTrack) -> None:
    """(K, T, h, w) for one clip, (num_windows, K, T, h, w) for windows; float32, streamed."""
    first = track.normalised(0)
    shape = first.shape if len(track.windows) == 1 else (len(track.windows), *first.shape)
    partial = path.with_name(f".{path.name}.partial")
    try:
        array = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32, shape=shape)
        if len(track.windows) == 1:
            array[...] = first
        else:
            for w in range(len(track.windows)):
                array[w] = track.normalised(w)
        array.flush()
        del array
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _render(
    video: Path,
    info: VideoInfo,
    out: Path,
    track: _TubeTrack,
    names: list[str],
    scores: list[float],
    options: ExplainOptions,
    outputs: _Outputs,
    formats: list[str],
) -> dict[str, list[str]]:
    files: dict[str, list[str]] = {f: [] for f in formats}
    with ExitStack() as stack:
        writers: dict[tuple[str, int], list[VideoWriter]] = {}
        for k, name in enumerate(names):
            for layout in options.layouts:
                for fmt in formats:
                    stem = f"{layout}_{k + 1}_{_slug(name)}"
                    path = out / (stem if fmt == "png" else f"{stem}.{fmt}")
                    writer = VideoWriter(path, fps=info.rate)
                    outputs.writers.append(writer)
                    outputs.files.append(path)
                    stack.enter_context(writer)
                    writers.setdefault((layout, k), []).append(writer)
                    files[fmt].append(outputs.rel(path))
        bar = stack.enter_context(_progress(info.num_frames, "render+encode", options.progress))
        for frame in iter_frames(video, info=info):
            mappers = track.mappers(frame.timestamp)
            for k, mapper in enumerate(mappers):
                saliency = mapper.frame(frame.timestamp)
                drawn = _draw(frame.image, saliency, names[k], scores[k], options)
                for layout, image in drawn.items():
                    for writer in writers[(layout, k)]:
                        writer.write(image)
            bar.update(1)
    return files


def _draw(
    image: np.ndarray, saliency: np.ndarray, name: str, score: float, options: ExplainOptions
) -> dict[str, np.ndarray]:
    heat = render.heat(image, saliency, colormap=options.colormap, opacity=options.opacity)
    focus = render.focus(image, saliency, floor=options.floor, background=options.background)
    label = f"{name}  p={score:.2f}"
    if options.caption:
        heat = render.caption(heat, f"heat: {label}")
        focus = render.caption(focus, f"focus: {label}")
    drawn: dict[str, np.ndarray] = {}
    if "heat" in options.layouts:
        drawn["heat"] = heat
    if "focus" in options.layouts:
        drawn["focus"] = focus
    if "side_by_side" in options.layouts:
        original = render.caption(image, "original") if options.caption else image
        drawn["side_by_side"] = render.side_by_side([original, heat, focus])
    return drawn
