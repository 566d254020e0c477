"""Decode once, explain per model: the windows of a video through one or more models.

1. :func:`plan` (pure): which windows of the video a model sees (one uniform clip, or
   sliding windows), with its preprocessing and method.
2. :func:`explain` decodes the video **once** for every plan (:func:`decode_windows`: each
   frame is preprocessed once per model that needs it and kept only while a pending window
   needs it), picks the classes (for ``topK`` with several windows: the mean softmax over
   the windows, :func:`video_scores`), explains every window and keeps its raw tubes on the
   layer's grid.
3. The result, one :class:`Explained` per model: classes, names, scores (the mean over the
   windows) and the :class:`~saliency_tubes.commands.track.TubeTrack` of its tubes.

Memory does not grow with the video's length: a clip holds only one window's frames at the
model's resolution, and each window keeps only its raw tubes (a few kilobytes).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InputError, VideoError
from ..hooks import model_device
from ..methods import Explainer, Tubes, select_classes
from ..methods.base import ClassSpec
from ..resources import check_clip
from ..video import Preprocess, VideoInfo, iter_frames, sample_uniform, sliding_windows
from ..zoo import LoadedModel
from .options import ExplainOptions
from .outputs import Say, progress
from .track import TubeTrack, Window

__all__ = ["Explained", "Plan", "decode_windows", "explain", "plan", "video_scores"]


@dataclass
class Plan:
    """What to explain with one model: its windows, preprocessing, method and classes.

    Attributes:
        loaded: the model.
        method: the explainer's name (``"auto"`` resolved to the adapter's default).
        windows: the clips of the video it sees, in time order.
        preprocess: its preset's preprocessing.
        classes: the class request (``"top1"``, names, indices ...).
        extra: classes explained too (a contrast's), added after the first window.
        interpolation: the upsampling mode.
        align: the upsampling grid.
    """

    loaded: LoadedModel
    method: str
    windows: list[Window]
    preprocess: Preprocess
    classes: ClassSpec
    extra: Sequence[int | str] = ()
    interpolation: str = "cubic"
    align: str = "corners"

    @property
    def clip_size(self) -> tuple[int, int, int]:
        """``(T, h, w)`` of the model's clips."""
        size = self.loaded.preset.size
        return len(self.windows[0].indices), size[0], size[1]


@dataclass
class Explained:
    """One model's explanation of the whole video: raw tubes per window, classes, scores."""

    loaded: LoadedModel
    method: str
    windows: list[Window]
    classes: list[int]
    names: list[str]
    scores: list[float]
    layer: str
    classifier: str
    clip_size: tuple[int, int, int]
    track: TubeTrack

    def position(self, item: int | str) -> int:
        """Where class ``item`` (an index or name) is among :attr:`classes`."""
        for k, (c, n) in enumerate(zip(self.classes, self.names, strict=True)):
            if (isinstance(item, int) and item == c) or str(item).strip().lower() in (
                str(c),
                n.lower(),
            ):
                return k
        raise InputError(f"class {item!r} was not explained; expected one of {self.names}")

    def sampled(self) -> list[int]:
        """Every source frame index a window of the model saw, sorted."""
        return sorted({int(i) for win in self.windows for i in win.indices})


def _is_topk(spec: ClassSpec) -> bool:
    return isinstance(spec, str) and re.fullmatch(r"top\d+", spec.strip().lower()) is not None


def _method(loaded: LoadedModel, method: str) -> str:
    if method != "auto":
        return method
    return loaded.adapter.default_method if loaded.adapter is not None else "cam"


def plan(
    info: VideoInfo,
    loaded: LoadedModel,
    options: ExplainOptions,
    extra: Sequence[int | str] = (),
) -> Plan:
    """The windows, preprocessing and method with which ``loaded`` explains the video."""
    frames = options.frames or loaded.preset.frames
    if options.windows is None:
        index_sets = [sample_uniform(info.num_frames, frames)]
    else:
        index_sets = sliding_windows(info.num_frames, *options.windows)
    size = loaded.preset.size
    length = max(len(ix) for ix in index_sets)
    check_clip(
        length,
        size,
        "explaining",
        f"use fewer --frames (the preset's is {loaded.preset.frames}) or --windows LEN,STRIDE",
        after=f" with {loaded.name}",
    )
    return Plan(
        loaded=loaded,
        method=_method(loaded, options.method),
        windows=[Window(indices=ix, times=info.timestamps[ix]) for ix in index_sets],
        preprocess=loaded.preset.preprocess(),
        classes=options.classes,
        extra=tuple(extra),
        interpolation=options.interpolation,
        align=options.align,
    )


def decode_windows(
    path: Path, plans: Sequence[Plan], info: VideoInfo
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Decode once for every plan, yield ``(plan, window, (1, C, T, h, w) clip)`` as windows complete.

    Each frame is preprocessed once per plan that needs it. Only frames still needed by a
    pending window are kept, at each model's resolution.
    """
    needed: dict[int, list[tuple[int, int]]] = {}
    for j, p in enumerate(plans):
        for w, win in enumerate(p.windows):
            for i in np.unique(win.indices):
                needed.setdefault(int(i), []).append((j, w))
    remaining = {
        (j, w): len(np.unique(win.indices))
        for j, p in enumerate(plans)
        for w, win in enumerate(p.windows)
    }
    last = max(int(i) for i in needed)
    buffer: dict[tuple[int, int], torch.Tensor] = {}
    for frame in iter_frames(path, info=info):
        if frame.index not in needed:
            continue
        for j in dict.fromkeys(j for j, _ in needed[frame.index]):
            buffer[(j, frame.index)] = plans[j].preprocess(frame.image[None])[:, 0]  # (C, h, w)
        for j, w in needed[frame.index]:
            remaining[(j, w)] -= 1
            if remaining[(j, w)] == 0:
                indices = plans[j].windows[w].indices
                clip = torch.stack([buffer[(j, int(i))] for i in indices], dim=1)
                yield j, w, clip.unsqueeze(0)
        # drop frames no pending window of their plan needs
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


def video_scores(
    explainer: Explainer, clips: Iterator[torch.Tensor], n_windows: int, show: bool
) -> torch.Tensor:
    """The video's class probabilities: the mean softmax over the windows, (num_classes,)."""
    total: torch.Tensor | None = None
    bar = progress(n_windows, "scoring windows", show)
    try:
        for clip in clips:
            probs = torch.softmax(explainer.logits(clip).float(), dim=1)[0]
            total = probs if total is None else total + probs
            bar.update(1)
    finally:
        bar.close()
    if total is None:
        raise InputError("expected at least one window to score, but got none")
    return (total / n_windows).cpu()


@dataclass
class _Progress:
    """One plan's explanation under way (the state of :func:`explain`'s loop)."""

    plan: Plan
    explainer: Explainer
    device: torch.device
    classes: ClassSpec
    scores: list[torch.Tensor] = field(default_factory=list)
    chosen: list[int] | None = None
    last: Tubes | None = None

    def feed(self, w: int, clip: torch.Tensor) -> None:
        """Explain window ``w``; the first window fixes the classes for all of them."""
        p = self.plan
        tubes = self.explainer(clip.to(self.device), classes=self.classes)
        if p.extra and self.chosen is None:  # first window: add the extra classes once
            items: list[Any] = list(p.extra)  # indices and names may be mixed
            wanted = select_classes(items, tubes.logits, p.loaded.categories)[0].tolist()
            first = tubes.classes[0].tolist()
            missing = [c for c in dict.fromkeys(wanted) if c not in first]
            if missing:
                tubes = self.explainer(clip.to(self.device), classes=first + missing)
        p.windows[w].raw = tubes.raw[0].cpu()
        self.scores.append(tubes.scores[0].cpu())
        self.chosen = tubes.classes[0].tolist()
        self.classes = [self.chosen]  # the same classes in every window
        self.last = tubes

    def result(self, info: VideoInfo) -> Explained:
        p, tubes, chosen = self.plan, self.last, self.chosen
        if tubes is None or chosen is None:
            raise InputError(f"expected every window of {p.loaded.name} explained, but got none")
        names = p.loaded.categories
        clip_size = p.clip_size
        geometry = p.preprocess.geometry(info.size)
        return Explained(
            loaded=p.loaded,
            method=p.method,
            windows=p.windows,
            classes=chosen,
            names=[names[c] if names else str(c) for c in chosen],
            scores=torch.stack(self.scores).mean(0).tolist(),
            layer=tubes.layer,
            classifier=tubes.classifier,
            clip_size=clip_size,
            track=TubeTrack(p.windows, clip_size, p.interpolation, p.align, geometry),
        )


def _start(video: Path, info: VideoInfo, p: Plan, show: bool, say: Say) -> _Progress:
    """The explainer of a plan and its classes (scoring every window first for ``topK``)."""
    loaded = p.loaded
    explainer = loaded.explainer(p.method, interpolation=p.interpolation, align=p.align)
    classes = p.classes
    if len(p.windows) > 1 and _is_topk(classes):
        say(f"scoring {len(p.windows)} windows of {loaded.name} to pick the video's {classes}")
        clips = (clip for _, _, clip in decode_windows(video, [p], info))
        probs = video_scores(explainer, clips, len(p.windows), show)
        classes = select_classes(classes, probs[None], loaded.categories)[0].tolist()
    say(
        f"explaining {len(p.windows)} clip(s) of {len(p.windows[0].indices)} frames "
        f"with {loaded.name} ({p.method})"
    )
    device = model_device(loaded.model) or torch.device("cpu")
    return _Progress(p, explainer, device, classes)


def explain(
    video: Path, info: VideoInfo, plans: Sequence[Plan], show: bool, say: Say
) -> list[Explained]:
    """Explain every window of every plan (model) from one decode of ``video``.

    Args:
        video: the video file or frame folder.
        info: its probe.
        plans: one per model (see :func:`plan`).
        show: show progress bars.
        say: called with a short message at each stage.
    """
    runs = [_start(video, info, p, show, say) for p in plans]
    bar = progress(sum(len(p.windows) for p in plans), "model", show)
    try:
        for j, w, clip in decode_windows(video, plans, info):
            runs[j].feed(w, clip)
            bar.update(1)
    finally:
        bar.close()
    return [run.result(info) for run in runs]
