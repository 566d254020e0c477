"""What each output video shows per source frame, and the one encode pass that writes them.

A :class:`Product` is a set of output videos drawn together from each source frame
(``draw(frame) -> {key: image}``): :func:`explain_product` (one class's heat, focus and
side-by-side frames), :func:`grid_product` (a panel per class or model),
:func:`contrast_product` (a contrastive tube with its colour bar). :func:`encode` decodes
the source once and encodes every product's frames in every format as it goes: decoding
and each output's encoder run on threads of their own (:mod:`saliency_tubes.video.threads`),
overlapping the drawing.
:func:`plot` writes the temporal curves' PNG. The pixels themselves are drawn by
:mod:`saliency_tubes.render`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ... import render
from ...numbers import probability
from ...render.device import DEVICE_BACKGROUNDS, focus_tensor, heat_tensor
from ...temporal import TemporalCurve
from ...video import BackgroundWriter, Frame, VideoInfo, iter_frames, prefetch
from ...vocabulary import VIDEO_FORMATS
from ...zoo import LoadedModel
from ..options import CompareOptions, ExplainOptions
from .explaining import Explained
from .model_line import ModelFacts, corner_text
from .outputs import OutputFolder, Run, progress
from .sizing import fit, sized
from .track import Summariser, Summary, TubeTrack, summarise, summarise_on_grid

__all__ = [
    "GAP",
    "Look",
    "caption_of",
    "Product",
    "contrast_product",
    "encode",
    "explain_product",
    "grid_product",
    "labelled",
    "panel",
    "plot",
    "saliency_of",
    "slug",
    "Summaries",
    "summaries_first",
]

#: Pixels between the panels of a comparison grid.
GAP = 4


def slug(text: str) -> str:
    """``text`` as a safe piece of a file name (runs of other characters become ``-``); a
    long one is cut to 80 characters plus a hash of the whole (file systems refuse names
    over 255 bytes; the manifest keeps the full name)."""
    import hashlib
    import re

    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "class"
    if len(safe) <= 80:
        return safe
    return f"{safe[:80]}-{hashlib.sha1(text.encode('utf-8')).hexdigest()[:8]}"


@dataclass
class Product:
    """Output videos drawn together from each source frame: ``draw(frame) -> {key: image}``.

    ``size`` is the largest picture size it draws from (the source's, or smaller with
    ``--max-side``): the frames are decoded at the largest size any product needs and
    each product resizes them further where it draws smaller (:func:`~.sizing.sized`).
    """

    stems: dict[str, str]  # key -> file stem
    draw: Callable[[Frame], dict[str, np.ndarray]]
    size: tuple[int, int] | None = None


def encode(
    video: Path,
    info: VideoInfo,
    outputs: OutputFolder,
    products: Sequence[Product],
    formats: Sequence[str],
    options: ExplainOptions,
) -> dict[str, list[str]]:
    """One pass over the source: draw every product's frames and encode them in ``formats``
    (H.264 at the options' ``crf`` and libx264 ``preset``; a progress bar with ``progress``).

    Returns:
        The written files by format, relative to the output folder.
    """
    files: dict[str, list[str]] = {f: [] for f in formats}
    with ExitStack() as stack:
        writers: dict[tuple[int, str], list[BackgroundWriter]] = {}
        for p, product in enumerate(products):
            for key, stem in product.stems.items():
                for fmt in formats:
                    name = stem if fmt == "png" else f"{stem}.{fmt}"
                    writer, rel = outputs.video(
                        name, info.rate, kind=fmt, crf=options.crf, preset=options.preset
                    )
                    background = stack.enter_context(BackgroundWriter(writer))
                    writers.setdefault((p, key), []).append(background)
                    files[fmt].append(rel)
        bar = stack.enter_context(
            progress(info.num_frames, "render+encode", options.progress, unit="frame")
        )
        # Closed by the stack on any way out, so the decoding thread stops at once.
        sizes = [p.size for p in products if p.size is not None]
        size = max(sizes, key=lambda hw: hw[0] * hw[1]) if sizes else None
        frames = stack.enter_context(closing(prefetch(iter_frames(video, info=info, size=size))))
        for frame in frames:
            for p, product in enumerate(products):
                for key, image in product.draw(frame).items():
                    for sink in writers[(p, key)]:
                        sink.write(image)
            bar.update(1)
    return files


@dataclass(frozen=True)
class Summaries:
    """The video formats to draw, and where the tubes' curves and statistics come from
    (:func:`summaries_first`): ``known`` before any drawing, or ``summariser`` fed by it.

    Attributes:
        formats: the video formats to draw (none: nothing is drawn).
        known: per track and tube, the summaries computed first; None: the drawing gives
            them (:meth:`result`).
        summariser: the drawing's ``look``, which summarises what it draws (with ``known``
            None).
    """

    formats: list[str]
    known: list[list[Summary]] | None
    summariser: Summariser | None = None

    @property
    def look(self) -> Look:
        """How the drawing gets a tube on a frame (summarised as drawn, or not)."""
        return self.summariser.look if self.summariser is not None else saliency_of

    def shown(self) -> list[list[Summary | None]]:
        """What the drawing can show of each tube's numbers (the timeline): the known
        summaries, or None for each tube when they come out of the drawing itself."""
        if self.known is not None:
            return [list(row) for row in self.known]
        assert self.summariser is not None
        return [[None] * t.count for t in self.summariser.tracks]

    def result(self) -> list[list[Summary]]:
        """Per track and tube, the curve and statistics over every source frame: the known
        ones, or those of the drawing (after :func:`encode`)."""
        if self.known is not None:
            return self.known
        assert self.summariser is not None
        return self.summariser.build()


def summaries_first(
    run: Run, info: VideoInfo, tracks: Sequence[TubeTrack], options: ExplainOptions
) -> Summaries:
    """The video formats to draw, and where the tubes' curves and statistics come from.

    Drawn videos give them as they are drawn (each frame's tube mapped onto its pixels
    once): a :class:`~saliency_tubes.commands.pipeline.track.Summariser` for the drawing's
    ``look``, whose summaries :meth:`Summaries.result` returns after the encode pass.
    ``--timeline`` needs them before the first frame: then they are computed here, in a
    pass of their own (the "summarise" stage). Without videos nothing needs the tubes on
    the source pixels: they are summarised on the clip's grid (:func:`summarise_on_grid`,
    a cost that does not grow with the source's size).
    """
    formats = [f for f in options.formats if f in VIDEO_FORMATS]
    if formats and not options.timeline:
        return Summaries(formats, None, Summariser(info, tracks))
    with run.stage("summarise"):
        if not formats:
            return Summaries(formats, list(summarise_on_grid(info, tracks)))
        return Summaries(formats, list(summarise(info, tracks)))


def saliency_of(track: TubeTrack, k: int, frame: Frame) -> np.ndarray | torch.Tensor:
    """Tube ``k`` of ``track`` on ``frame``: numpy on the CPU, a tensor on the track's
    device otherwise (the drawing then happens there, see :func:`panel`)."""
    return track.on(k, frame)


#: How a product gets a tube on a frame: :func:`saliency_of`, or a
#: :meth:`~saliency_tubes.commands.pipeline.track.Summariser.look` that summarises what is drawn.
Look = Callable[[TubeTrack, int, Frame], "np.ndarray | torch.Tensor"]


_local = threading.local()


def _on_device(image: np.ndarray, device: torch.device) -> torch.Tensor:
    """``image`` on ``device``, uploaded once for all the panels of one frame (per thread)."""
    held = getattr(_local, "held", None)
    if held is None or held[0] is not image or held[1] != device:
        held = (image, device, torch.from_numpy(np.ascontiguousarray(image)).to(device))
        _local.held = held
    return held[2]


def panel(
    image: np.ndarray,
    saliency: np.ndarray | torch.Tensor,
    style: str,
    label: str,
    options: ExplainOptions,
) -> np.ndarray:
    """A heat or focus tube frame at the source size, nothing drawn over the picture (see
    :func:`labelled` for its caption); drawn on the saliency's device when it is a tensor
    (the ``blur`` background always with numpy); with ``--normalise frame`` the tube
    stretched to the frame's own range first. ``label`` is unused (kept for callers)."""
    if options.normalise == "frame":
        saliency = render.stretch(saliency)
    if isinstance(saliency, torch.Tensor):
        if style == "heat" or options.background in DEVICE_BACKGROUNDS:
            frame = _on_device(image, saliency.device)
            if style == "heat":
                drawn = heat_tensor(frame, saliency, options.colormap, options.opacity)
            else:
                drawn = focus_tensor(frame, saliency, options.floor, options.background)
            return drawn.cpu().numpy()
        saliency = saliency.cpu().numpy()
    if style == "heat":
        return render.heat(image, saliency, colormap=options.colormap, opacity=options.opacity)
    return render.focus(image, saliency, floor=options.floor, background=options.background)


def labelled(
    images: Sequence[np.ndarray], labels: Sequence[str], caption: bool
) -> list[np.ndarray]:
    """Each image with its label in a strip above it (all strips as high as the highest, so
    the pictures stay aligned), or the images as they are without ``caption``."""
    if not caption:
        return list(images)
    strips = [
        render.label_strip(text, img.shape[1], img.shape[0])
        for img, text in zip(images, labels, strict=True)
    ]
    high = max(s.shape[0] for s in strips)
    out = []
    for img, strip in zip(images, strips, strict=True):
        if strip.shape[0] < high:
            pad = np.full((high - strip.shape[0], *strip.shape[1:]), render.STRIP_GREY, np.uint8)
            strip = np.concatenate([strip, pad], axis=0)
        out.append(np.concatenate([strip, img], axis=0))
    return out


def caption_of(loaded: LoadedModel, label: str) -> str:
    """``label`` as a caption of ``loaded``'s tubes, with what the numbers do not mean on
    lines of their own (never cut off by a narrow frame): "random weights (untrained)" for
    a network without trained weights, and the model's caveat (tiny-actions: it knows only
    its 8 synthetic motion classes)."""
    lines = [label]
    if loaded.random_weights:
        lines.append("random weights (untrained)")
    if loaded.caveat:
        lines.append(loaded.caveat)
    return "\n".join(lines)


def _scale_note(options: ExplainOptions) -> str:
    """The caption line of ``--normalise frame`` (nothing for the video's scale)."""
    return "\nper-frame scale" if options.normalise == "frame" else ""


def _drawn(
    frame: Frame,
    hw: tuple[int, int],
    saliency_at: Callable[[Frame], Any],
    label: str,
    options: ExplainOptions,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The picture, its heat and its focus panel at size ``hw``."""
    at = sized(frame, hw)
    saliency = saliency_at(at)
    heat = panel(at.image, saliency, "heat", label, options)
    return at.image, heat, panel(at.image, saliency, "focus", label, options)


def _layouts(
    frame: Frame,
    saliency_at: Callable[[Frame], Any],
    label: str,
    options: ExplainOptions,
    sizes: tuple[tuple[int, int], tuple[int, int]],
    corner: str = "",
) -> dict[str, np.ndarray]:
    """What ``explain`` draws of one class on one frame, by layout: the heat and focus
    videos are the source picture with the tube and, unless ``--no-caption``, a small
    ``corner`` label (model and caveats), at ``sizes[0]``; the side-by-side one has the
    captions in strips above its three panels (at ``sizes[1]``), a small gap between them."""
    drawn: dict[str, np.ndarray] = {}
    single = [layout for layout in ("heat", "focus") if layout in options.layouts]
    if single:
        image, heat, focus = _drawn(frame, sizes[0], saliency_at, label, options)
        for key, img in (("heat", heat), ("focus", focus)):
            if key in single:
                drawn[key] = render.corner_label(img, corner) if options.caption else img
    if "side_by_side" in options.layouts:
        if not single or sizes[1] != sizes[0]:
            image, heat, focus = _drawn(frame, sizes[1], saliency_at, label, options)
        panels = labelled(
            [image, heat, focus], ["original", f"heat: {label}", f"focus: {label}"], options.caption
        )
        drawn["side_by_side"] = render.side_by_side(panels, gap=GAP)
    return drawn


def _timeline_high(height: int) -> int:
    """Rows of the timeline bar under an image ``height`` rows high."""
    return int(np.clip(height // 10, 12, 40))


def _with_timeline(hw: tuple[int, int], options: ExplainOptions) -> tuple[int, int]:
    return (hw[0] + _timeline_high(hw[0]), hw[1]) if options.timeline else hw


def _explain_sizes(
    src_hw: tuple[int, int], label: str, options: ExplainOptions
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Panel sizes of the heat/focus videos and of the side-by-side one (``--max-side``)."""

    def three(hw: tuple[int, int]) -> tuple[int, int]:
        blank = np.zeros((*hw, 3), np.uint8)
        labels = ["original", f"heat: {label}", f"focus: {label}"]
        out = render.side_by_side(labelled([blank] * 3, labels, options.caption), gap=GAP)
        return _with_timeline(out.shape[:2], options)

    one = fit(src_hw, options.max_side, lambda hw: _with_timeline(hw, options))
    return one, fit(src_hw, options.max_side, three)


def _under(image: np.ndarray, strip: np.ndarray) -> np.ndarray:
    return np.concatenate([image, strip], axis=0)


def _timeline(image: np.ndarray, curve: TemporalCurve, frame: Frame, scale: float) -> np.ndarray:
    """``image`` with the curve's timeline bar (cursor at ``frame``) underneath."""
    height = _timeline_high(image.shape[0])
    current = min(frame.index, len(curve) - 1)
    strip = render.timeline_bar(curve, image.shape[1], height, current, scale=scale)
    return _under(image, strip)


def _timeline_of(summaries: Sequence[Summary | None], options: ExplainOptions) -> float:
    """The timeline bars' common scale (0 without ``--timeline``, which needs summaries)."""
    if not options.timeline:
        return 0.0
    if any(s is None for s in summaries):
        raise ValueError("a timeline is drawn from summaries made before the drawing")
    return max(float(s.curve.mean.max(initial=0.0)) for s in summaries if s is not None)


def explain_product(
    e: Explained,
    k: int,
    summary: Summary | None,
    options: ExplainOptions,
    look: Look = saliency_of,
) -> Product:
    """Class ``k``'s heat, focus and side-by-side videos (``LAYOUT_K_NAME``); ``summary``
    is needed only for the timeline."""
    name, score = e.names[k], e.scores[k]
    label = caption_of(e.loaded, f"{name}  p={probability(score)}") + _scale_note(options)
    corner = corner_text(ModelFacts.of(e.loaded, e.method)) + _scale_note(options)
    stems = {layout: f"{layout}_{k + 1}_{slug(name)}" for layout in options.layouts}
    scale = _timeline_of([summary], options)
    sizes = _explain_sizes(e.track.geometry.src_hw, label, options)

    def draw(frame: Frame) -> dict[str, np.ndarray]:
        drawn = _layouts(frame, lambda at: look(e.track, k, at), label, options, sizes, corner)
        if options.timeline and summary is not None:
            drawn = {key: _timeline(img, summary.curve, frame, scale) for key, img in drawn.items()}
        return drawn

    single = any(layout in options.layouts for layout in ("heat", "focus"))
    return Product(stems, draw, sizes[0] if single else sizes[1])


def grid_product(
    stem: str,
    panels: Sequence[tuple[TubeTrack, int, str, Summary | None]],
    options: CompareOptions,
    look: Look = saliency_of,
) -> Product:
    """One video: a grid of panels ``(track, tube index, caption, summary)`` (the summaries
    are needed only for the timeline)."""
    cols = options.cols if options.cols is not None else render.grid_columns(len(panels))
    scale = _timeline_of([s for _, _, _, s in panels], options)
    labels = [label + _scale_note(options) for _, _, label, _ in panels]

    def compose(hw: tuple[int, int]) -> tuple[int, int]:
        blank = np.zeros((*_with_timeline(hw, options), 3), np.uint8)
        out = render.grid(labelled([blank] * len(panels), labels, options.caption), cols, gap=GAP)
        return out.shape[0], out.shape[1]

    size = fit(panels[0][0].geometry.src_hw, options.max_side, compose)

    def draw(frame: Frame) -> dict[str, np.ndarray]:
        images = []
        frame = sized(frame, size)
        for track, k, label, summary in panels:
            image = panel(frame.image, look(track, k, frame), options.style, label, options)
            if options.timeline and summary is not None:
                image = _timeline(image, summary.curve, frame, scale)
            images.append(image)
        images = labelled(images, labels, options.caption)
        return {"grid": render.grid(images, cols, gap=GAP)}

    return Product({"grid": stem}, draw, size)


def contrast_product(
    stem: str,
    names: tuple[str, str],
    track: TubeTrack,
    options: CompareOptions,
    label: str,
    look: Look = saliency_of,
) -> Product:
    """The contrastive tube over the frame, captioned ``label``, with its colour bar under it."""

    def compose(hw: tuple[int, int]) -> tuple[int, int]:
        (image,) = labelled([np.zeros((*hw, 3), np.uint8)], [label], options.caption)
        out = _under(image, render.contrast_legend(image.shape[1], names))
        return out.shape[0], out.shape[1]

    size = fit(track.geometry.src_hw, options.max_side, compose)

    def draw(frame: Frame) -> dict[str, np.ndarray]:
        frame = sized(frame, size)
        saliency = look(track, 0, frame)
        if isinstance(saliency, torch.Tensor):
            saliency = saliency.cpu().numpy()
        image = render.contrast_frame(frame.image, saliency)
        (image,) = labelled([image], [label], options.caption)
        return {"contrast": _under(image, render.contrast_legend(image.shape[1], names))}

    return Product({"contrast": stem}, draw, size)


def plot(
    outputs: OutputFolder,
    name: str,
    curves: Sequence[tuple[str, TemporalCurve]],
    title: str,
    sampled: Sequence[int],
) -> str:
    """Write the temporal curves' plot as ``name`` (PNG); return its relative name."""
    return outputs.write_bytes(name, render.curves_png(curves, title=title, sampled=sampled))
