"""PNG plots of metric curves (deletion, insertion, sanity cascade), drawn off-screen.

Matplotlib's Agg canvas is used directly (no ``pyplot``, no global backend switch), and
the figure comes back as PNG bytes for an atomic write.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Panel", "Series", "figure_png", "png_of"]


@dataclass(frozen=True)
class Series:
    """One line: ``y`` over ``x`` with an optional band ``[low, high]``.

    Attributes:
        label: legend entry.
        x, y: ``(K,)`` values.
        low, high: ``(K,)`` band (e.g. a 95 % confidence interval), or None.
        dashed: draw dashed (baselines).
    """

    label: str
    x: np.ndarray
    y: np.ndarray
    low: np.ndarray | None = None
    high: np.ndarray | None = None
    dashed: bool = False


@dataclass(frozen=True)
class Panel:
    """One set of axes."""

    title: str
    xlabel: str
    ylabel: str
    series: Sequence[Series]
    xticks: Sequence[str] | None = None
    ylim: tuple[float, float] | None = None
    notes: Sequence[str] = field(default_factory=tuple)


def figure_png(
    panels: Sequence[Panel], title: str = "", *, width: float = 5.0, dpi: int = 110
) -> bytes:
    """Draw ``panels`` side by side and return the PNG bytes.

    Series are coloured by their position in a panel, so list the same tubes in the same
    order in every panel.

    Args:
        panels: the axes, left to right.
        title: figure title.
        width: inches per panel.
        dpi: resolution.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * len(panels), 3.9), dpi=dpi)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    previous: list[str] | None = None
    for ax, panel in zip(axes, panels, strict=True):
        labels = [s.label for s in panel.series]
        for i, s in enumerate(panel.series):
            colour = f"C{i % 10}"  # by position: the same tube has the same colour in every panel
            ax.plot(s.x, s.y, color=colour, lw=1.6, ls="--" if s.dashed else "-", label=s.label)
            if s.low is not None and s.high is not None:
                ax.fill_between(s.x, s.low, s.high, color=colour, alpha=0.12, lw=0)
        ax.set_title(panel.title, fontsize=10)
        ax.set_xlabel(panel.xlabel, fontsize=9)
        ax.set_ylabel(panel.ylabel, fontsize=9)
        if panel.xticks is not None:
            ax.set_xticks(np.arange(len(panel.xticks)))
            ax.set_xticklabels(panel.xticks, rotation=30, ha="right", fontsize=8)
        if panel.ylim is not None:
            ax.set_ylim(*panel.ylim)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
        for i, note in enumerate(panel.notes):
            ax.text(0.02, 0.02 + 0.06 * i, note, transform=ax.transAxes, fontsize=7, alpha=0.8)
        if labels != previous:  # a legend where the labels differ from the panel before
            ax.legend(fontsize=7, loc="best")
        previous = labels
    return png_of(fig, title, fontsize=11)


def png_of(fig: Any, title: str = "", *, fontsize: int = 10) -> bytes:
    """A matplotlib figure, titled and laid out, as PNG bytes."""
    if title:
        fig.suptitle(title, fontsize=fontsize)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
