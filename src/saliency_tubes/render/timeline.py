"""Drawing temporal importance curves (:mod:`saliency_tubes.temporal`): a bar under each
frame, and a plot of the curves against the source frames."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import InputError
from ..temporal import TemporalCurve
from .frames import colormap as colormap_lut
from .plots import png_of

__all__ = ["curves_png", "timeline_bar"]


def timeline_bar(
    curve: TemporalCurve,
    width: int,
    height: int,
    current: int | None = None,
    *,
    scale: float | None = None,
    colormap: str = "jet",
) -> np.ndarray:
    """A strip showing the ``mean`` curve over the whole video, to draw under each frame.

    Column ``x`` shows frame ``f = floor(x * F / width)``: a bar of height
    ``round(v * (height - 3))`` pixels from the bottom, ``v = clip(mean_f / scale, 0, 1)``,
    coloured by the colour map at ``v``, on a dark grey (32) background. Key frames are
    white ticks along the top 3 rows; the ``current`` frame's columns are drawn light grey
    (200) over the full height.

    Args:
        curve: The tube's :class:`TemporalCurve` (on the source frames).
        width: Strip width in pixels (the frame's width).
        height: Strip height in pixels (at least 4).
        current: Index of the frame being shown, or None.
        scale: The value drawn at full height; default the curve's own maximum (pass a
            shared value so the bars of several panels compare).
        colormap: Matplotlib colour map for the bars.

    Returns:
        ``(height, width, 3)`` uint8 RGB.

    Raises:
        InputError: Sizes too small, or ``current`` outside the curve.
    """
    if width < 1 or height < 4:
        raise InputError(
            f"expected width >= 1 and height >= 4, but got {width}x{height}; "
            "pass the frame width and a bar height"
        )
    frames = len(curve)
    if current is not None and not 0 <= current < frames:
        raise InputError(
            f"expected current in [0, {frames}), but got {current}; pass the shown frame's index"
        )
    top = float(scale) if scale is not None else float(curve.mean.max(initial=0.0))
    values = curve.mean / top if top > 0 else np.zeros_like(curve.mean)
    values = np.clip(values, 0.0, 1.0)
    column_frame = np.minimum((np.arange(width) * frames) // width, frames - 1)
    v = values[column_frame]
    area = height - 3
    bar_h = np.rint(v * area).astype(np.int64)
    out = np.full((height, width, 3), 32, dtype=np.uint8)
    lut = colormap_lut(colormap)
    colours = lut[np.rint(v * 255).astype(np.intp)]
    rows = np.arange(height)[:, None]
    filled = rows >= height - bar_h[None, :]
    out[filled] = np.broadcast_to(colours[None], (height, width, 3))[filled]
    ticks = np.isin(column_frame, curve.key_frames)
    out[:3, ticks] = 255
    if current is not None:
        out[:, column_frame == current] = 200
    return out


def curves_png(
    curves: Sequence[tuple[str, TemporalCurve]],
    *,
    title: str = "",
    sampled: Sequence[int] | None = None,
    dpi: int = 100,
) -> bytes:
    """Plot curves (mean above, max below) against the source frame index, as PNG bytes.

    Each curve is one line, labelled (the class, or model and class); its key frames are
    marked with triangles on the mean curve. ``sampled`` frames (the ones the model saw)
    are ticked along the bottom axis. With timestamps, a second axis on top shows seconds.
    Drawn with matplotlib's Agg renderer (no display).

    Args:
        curves: ``(label, curve)`` pairs, all over the same frames.
        title: Figure title.
        sampled: Frame indices to tick (e.g. the clip's sampled frames).
        dpi: Resolution (the figure is 8 x 4.5 inches).

    Returns:
        The PNG file's bytes.

    Raises:
        InputError: No curves, or curves of different lengths.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not curves:
        raise InputError("expected at least one (label, curve) pair, but got none")
    lengths = {len(c) for _, c in curves}
    if len(lengths) != 1:
        raise InputError(f"expected curves over the same frames, but got lengths {sorted(lengths)}")
    fig = Figure(figsize=(8, 4.5), dpi=dpi)
    FigureCanvasAgg(fig)
    ax_mean, ax_max = fig.subplots(2, 1, sharex=True)
    for label, curve in curves:
        x = np.arange(len(curve))
        (line,) = ax_mean.plot(x, curve.mean, label=label, linewidth=1.5)
        ax_max.plot(x, curve.max, color=line.get_color(), linewidth=1.2)
        if curve.key_frames.size:
            ax_mean.plot(
                curve.key_frames,
                curve.mean[curve.key_frames],
                "v",
                color=line.get_color(),
                markersize=7,
            )
    ax_mean.set_ylabel("mean saliency")
    ax_max.set_ylabel("max saliency")
    ax_max.set_xlabel("source frame")
    for ax in (ax_mean, ax_max):
        ax.grid(alpha=0.3)
        if sampled is not None and len(sampled):
            ax.plot(
                sampled,
                np.full(len(sampled), 0.0),
                "|",
                color="0.4",
                markersize=8,
                transform=ax.get_xaxis_transform(),
                clip_on=False,
            )
    ax_mean.legend(loc="best", fontsize=8, title="v: key frame", title_fontsize=8)
    times = curves[0][1].times
    if times is not None and times.size > 1 and np.all(np.diff(times) > 0):
        index = np.arange(times.size, dtype=np.float64)
        top = ax_mean.secondary_xaxis(
            "top",
            functions=(lambda f: _interp(f, index, times), lambda t: _interp(t, times, index)),
        )
        top.set_xlabel("time (s)")
    return png_of(fig, title)


def _interp(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Piecewise-linear ``np.interp``, extended beyond the ends along the end segments
    (so an axis margin maps to times before the first and after the last frame)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.interp(x, xp, fp)
    lo, hi = x < xp[0], x > xp[-1]
    y[lo] = fp[0] + (x[lo] - xp[0]) * (fp[1] - fp[0]) / (xp[1] - xp[0])
    y[hi] = fp[-1] + (x[hi] - xp[-1]) * (fp[-1] - fp[-2]) / (xp[-1] - xp[-2])
    return y
