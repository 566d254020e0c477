"""Decode once, explain per model: the windows of a video through one or more models.

1. :func:`plan` (pure): which windows of the video a model sees (one uniform clip, or
   sliding windows), with its preprocessing and method.
2. :func:`explain` decodes the video **once** for every plan (:func:`decode_windows`: each
   frame is preprocessed once per model that needs it and kept only while a pending window
   needs it) and explains every window from its one forward, keeping its raw tubes on the
   layer's grid. The classes: for ``topK`` with several windows the K highest mean softmax
   probabilities over the windows (every class is explained per window until they are
   known); otherwise those of the first window. The input-space methods (occlusion,
   integrated gradients), whose cost grows with the classes or whose every-class tubes are
   each a whole clip, find the video's top-K first from one plain forward per window (a
   first decode), then explain only those classes.
3. The result, one :class:`Explained` per model: classes, names, scores (the mean over the
   windows) and the :class:`~saliency_tubes.commands.pipeline.track.TubeTrack` of its tubes.

Memory: a clip holds only one window's frames at the model's resolution, and each window
keeps its raw tubes: a few kilobytes on a layer's grid, so the layer methods' memory does
not grow with the video's length; for the input-space methods a whole clip per class
(K x T x h x w floats: 0.8 MB per class and window at 16 x 112 x 112), which does grow with
the number of windows (1000 windows of top-3: 2.4 GB).

The methods that run the model many times per clip (Score-CAM, occlusion, integrated
gradients) say their forwards per clip up front, where they are known before running, and
report each forward to a second progress bar.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from ...errors import InputError, VideoError
from ...hooks import model_device
from ...methods import Explainer, select_classes
from ...methods.base import ClassSpec
from ...resources import check_clip
from ...video import (
    Preprocess,
    VideoInfo,
    iter_frames,
    probe,
    sample_uniform,
    segment,
    sliding_windows,
)
from ...zoo import LoadedModel
from ..options import ExplainOptions
from .outputs import Say, progress
from .track import TubeTrack, Window

__all__ = ["Explained", "Plan", "decode_windows", "explain", "explanation", "plan", "source_info"]


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


def source_info(
    video: str | Path, info: VideoInfo | None, options: ExplainOptions
) -> VideoInfo | None:
    """``info``, or the segment ``options.start`` to ``options.end`` of the video."""
    if options.start is None and options.end is None:
        return info
    whole = info if info is not None else probe(video, min_frames=2)
    return segment(whole, options.start, options.end)


def _is_topk(spec: ClassSpec) -> bool:
    return isinstance(spec, str) and re.fullmatch(r"top\d+", spec.strip().lower()) is not None


def method_of(loaded: LoadedModel, method: str) -> str:
    """The method ``--method`` names for ``loaded`` (``auto``: the adapter's choice)."""
    if method != "auto":
        return method
    return loaded.default_method


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
        method=method_of(loaded, options.method),
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
    for frame in iter_frames(path, info=info, wanted=needed):
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


#: Bytes of every-class window tubes kept in memory before the rest go to a temporary file.
_IN_MEMORY = 64 * 2**20


class _EveryClass:
    """Each window's raw tubes of every class, until the video's top-K classes are known.

    The first :data:`_IN_MEMORY` bytes stay in memory, the rest go to an anonymous
    temporary file (removed by the system when closed, also after a crash), so memory does
    not grow with the video.
    """

    def __init__(self) -> None:
        self._kept: list[torch.Tensor] = []
        self._file: IO[bytes] | None = None
        self._offsets: list[int] = []
        self._shape: tuple[int, ...] = ()
        self._bytes = 0

    def add(self, raw: torch.Tensor) -> None:
        """Keep one window's ``(num_classes, T', H', W')`` raw tubes."""
        raw = raw.detach().float().cpu().contiguous()
        self._shape = tuple(raw.shape)
        size = raw.numel() * 4
        if self._file is None and self._bytes + size <= _IN_MEMORY:  # once spilled, all are
            self._kept.append(raw)
            self._bytes += size
            return
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="saliency-tubes-")
        self._offsets.append(self._file.tell())
        self._file.write(raw.numpy().tobytes())

    def rows(self, w: int, classes: Sequence[int]) -> torch.Tensor:
        """Window ``w``'s raw tubes of ``classes``: ``(K, T', H', W')``."""
        if w < len(self._kept):
            return self._kept[w][list(classes)].clone()
        if self._file is None:
            raise InputError(f"expected window {w} to have been explained, but it was not")
        grid = self._shape[1:]
        row = int(np.prod(grid)) * 4
        out = []
        for c in classes:
            self._file.seek(self._offsets[w - len(self._kept)] + c * row)
            out.append(np.frombuffer(self._file.read(row), dtype=np.float32).reshape(grid))
        self._file.seek(0, 2)
        return torch.from_numpy(np.stack(out))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._kept = []


@dataclass
class _Progress:
    """One plan's explanation under way (the state of :func:`explain`'s loop).

    Every window is explained from its one forward. With explicit classes, or top-K of a
    single clip, the first window's scores fix the classes for all of them. With top-K over
    several windows the video's classes are the K highest mean probabilities over the
    windows, known only after the last one: each window's forward then explains every class
    on the layer's grid (one matrix product for CAM, a backward through the head per class
    for the gradient methods), and :meth:`result` keeps the chosen ones.
    """

    plan: Plan
    explainer: Explainer
    device: torch.device
    every_class: _EveryClass | None = None
    scores: list[torch.Tensor] = field(default_factory=list)
    chosen: list[int] | None = None
    layer: str = ""
    classifier: str = ""
    scores_first: bool = False

    def fix_classes(self) -> None:
        """After the first pass's plain forwards (:attr:`scores`, every class's probability
        per window): the video's classes, chosen as the every-class pass would choose them;
        the explaining pass then records only their scores."""
        mean = torch.stack(self.scores).mean(0)[None]
        first = select_classes(self.plan.classes, mean, self.plan.loaded.categories)[0]
        self.chosen = self._with_extra(first, mean)
        self.scores = []

    def _request(self) -> ClassSpec:
        """The classes to explain in the next window."""
        p = self.plan
        if self.chosen is not None:
            return self.chosen
        if not p.extra:
            return p.classes

        def with_extra(logits: torch.Tensor) -> list[int]:
            return self._with_extra(
                select_classes(p.classes, logits, p.loaded.categories)[0], logits
            )

        return with_extra

    def _with_extra(self, first: torch.Tensor, logits: torch.Tensor) -> list[int]:
        """``first`` and then the extra classes (a contrast's) not among them."""
        chosen = first.tolist()
        if self.plan.extra:
            items: list[Any] = list(self.plan.extra)  # indices and names may be mixed
            wanted = select_classes(items, logits, self.plan.loaded.categories)[0].tolist()
            chosen += [c for c in dict.fromkeys(wanted) if c not in chosen]
        return chosen

    def feed(self, w: int, clip: torch.Tensor) -> None:
        """Explain window ``w`` from one forward."""
        p = self.plan
        if self.every_class is not None:
            tubes = self.explainer(clip.to(self.device), classes="all", upsample=False)
            self.every_class.add(tubes.raw[0])
            self.scores.append(tubes.scores[0].cpu())  # every class's probability
        else:
            tubes = self.explainer(clip.to(self.device), classes=self._request(), upsample=False)
            p.windows[w].raw = tubes.raw[0].cpu()
            self.scores.append(tubes.scores[0].cpu())
            self.chosen = tubes.classes[0].tolist()
        self.layer, self.classifier = tubes.layer, tubes.classifier

    def _choose(self) -> tuple[list[int], list[float]]:
        """The explained classes and their mean probabilities over the windows."""
        if not self.scores:
            raise InputError(
                f"expected every window of {self.plan.loaded.name} explained, but got none"
            )
        mean = torch.stack(self.scores).mean(0)
        if self.every_class is None:
            return list(self.chosen or []), mean.tolist()
        try:
            first = select_classes(self.plan.classes, mean[None], self.plan.loaded.categories)[0]
            chosen = self._with_extra(first, mean[None])
            for w, win in enumerate(self.plan.windows):
                win.raw = self.every_class.rows(w, chosen)
        finally:
            self.every_class.close()
        return chosen, mean[chosen].tolist()

    def result(self, info: VideoInfo) -> Explained:
        chosen, scores = self._choose()
        return explanation(
            self.plan, info, chosen, scores, self.layer, self.classifier, self.device
        )


def explanation(
    p: Plan, info: VideoInfo, chosen: list[int], scores: list[float], layer: str, head: str,
    device: torch.device,
) -> Explained:  # fmt: skip
    """``p``'s :class:`Explained` once its windows' raw tubes and classes are known."""
    names, size = p.loaded.categories, p.clip_size
    geometry = p.preprocess.geometry(info.size)
    return Explained(
        p.loaded, p.method, p.windows, chosen, [names[c] if names else str(c) for c in chosen],
        scores, layer, head, size,
        TubeTrack(p.windows, size, p.interpolation, p.align, geometry, device=device),
    )  # fmt: skip


def _class_count(p: Plan) -> int | None:
    """How many classes each window of ``p`` explains (before the names are looked up;
    None for "all" of a model whose classes are not named)."""
    spec = p.classes
    if isinstance(spec, str) and spec.strip().lower() == "all":
        names = p.loaded.categories
        return len(names) if names else None
    if isinstance(spec, str) and _is_topk(spec):
        count = int(spec.strip()[3:])
    elif isinstance(spec, (list, tuple)):
        count = len(spec)
    else:
        count = 1
    return count + len(p.extra)


def _cost(explainer: Explainer, p: Plan) -> str:
    """The forwards one clip costs, said before the long part (where it is known)."""
    classes = _class_count(p)
    if classes is None:
        return ""
    count = explainer.forwards(p.clip_size, classes)
    if count is None:  # Score-CAM
        return ", 1 + one forward per channel of its layer per clip"
    return f", {count} forwards per clip" if count > 1 else ""


def _start(p: Plan, say: Say) -> _Progress:
    """The explainer of a plan, set to explain every class when its top-K spans windows
    (or, for the input-space methods, to find the top-K from plain forwards first)."""
    loaded = p.loaded
    explainer = loaded.explainer(p.method, interpolation=p.interpolation, align=p.align)
    every = len(p.windows) > 1 and _is_topk(p.classes)
    input_space = bool(getattr(explainer, "input_space", False))
    if input_space:
        explainer.check_available()  # type: ignore[attr-defined]  # captum, before decoding
    first = every and input_space
    if first:
        how = f"; one plain forward per clip first, to pick the video's {p.classes}"
    elif every:
        how = f"; every class, to pick the video's {p.classes} from the mean over the clips"
    else:
        how = ""
    say(
        f"explaining {len(p.windows)} clip(s) of {len(p.windows[0].indices)} frames "
        f"with {loaded.name} ({p.method}{_cost(explainer, p)}){how}"
    )
    device = model_device(loaded.model) or torch.device("cpu")
    every_class = _EveryClass() if every and not first else None
    return _Progress(p, explainer, device, every_class, scores_first=first)


def _bar_callback(bar: Any) -> Any:
    """``progress(done, total)`` for an explainer, drawn on ``bar`` (restarted per clip)."""

    def tell(done: int, total: int) -> None:
        if total != bar.total or done < bar.n:
            bar.reset(total=total)
        bar.update(done - bar.n)

    return tell


def _scores_first(video: Path, info: VideoInfo, runs: Sequence[_Progress], show: bool) -> None:
    """The first pass of the runs that pick their classes from plain forwards."""
    first = [run for run in runs if run.scores_first]
    if not first:
        return
    bar = progress(sum(len(run.plan.windows) for run in first), "scores", show)
    try:
        for j, _, clip in decode_windows(video, [run.plan for run in first], info):
            run = first[j]
            logits = run.explainer.logits(clip.to(run.device))
            run.scores.append(torch.softmax(logits.detach().float(), 1)[0].cpu())
            bar.update(1)
    finally:
        bar.close()
    for run in first:
        run.fix_classes()


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
    runs = [_start(p, say) for p in plans]
    _scores_first(video, info, runs, show)
    bar = progress(sum(len(p.windows) for p in plans), "model", show)
    # A second bar only for the methods that run the model many times per clip.
    many = any(hasattr(run.explainer, "progress") for run in runs)
    inner = progress(0, "forwards", show and many)
    if not inner.disable:
        for run in runs:
            if hasattr(run.explainer, "progress"):  # Score-CAM, occlusion, integrated gradients
                run.explainer.progress = _bar_callback(inner)
    try:
        for j, w, clip in decode_windows(video, plans, info):
            runs[j].feed(w, clip)
            bar.update(1)
    except BaseException:
        for run in runs:
            if run.every_class is not None:
                run.every_class.close()
        raise
    finally:
        inner.close()
        bar.close()
    return [run.result(info) for run in runs]
