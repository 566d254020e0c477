"""Everything that draws pixels: pure functions from arrays to images (or PNG bytes).

* :mod:`.frames`: heat and focus tubes over one frame (the paper's *heat tubes* and
  *focus tubes*), colour maps;
* :mod:`.layout`: captions, label strips, side-by-side and grid layouts, colour bars;
* :mod:`.unseen`: the mark of pixels the model never saw (outside its crop);
* :mod:`.contrast`: contrastive tubes in a diverging colour map, and their legend;
* :mod:`.timeline`: the temporal importance bar under a frame, and the curves' plot;
* :mod:`.pyramid`: the class feature pyramid figure and its animated grid;
* :mod:`.plots`: metric curves (deletion, insertion, sanity) with confidence bands.

Nothing here reads or writes files; the commands (:mod:`saliency_tubes.commands`) do.
"""

from __future__ import annotations

from .contrast import DIVERGING, contrast_frame, contrast_legend
from .corner import corner_label
from .frames import (
    BACKGROUNDS,
    DEFAULT_FLOOR,
    Background,
    colormap,
    focus,
    gaussian_blur,
    heat,
    luma,
)
from .layout import (
    STRIP_GREY,
    caption,
    colorbar,
    font,
    grid,
    grid_columns,
    label_strip,
    png_bytes,
    side_by_side,
)
from .plots import Panel, Series, figure_png
from .pyramid import (
    display_frames,
    draw_pyramid,
    drawn_nodes,
    heat_grid_frames,
    representative_frame,
)
from .stretch import FRAME_NOTE, stretch
from .timeline import curves_png, timeline_bar
from .unseen import (
    HATCH_GREY,
    HATCH_PERIOD,
    HATCH_WEIGHT,
    UNSEEN_DIM,
    hatch_weights,
    mark_unseen,
)

__all__ = [
    "FRAME_NOTE",
    "stretch",
    "corner_label",
    "DEFAULT_FLOOR",
    "DIVERGING",
    "HATCH_GREY",
    "HATCH_PERIOD",
    "HATCH_WEIGHT",
    "STRIP_GREY",
    "UNSEEN_DIM",
    "BACKGROUNDS",
    "Background",
    "Panel",
    "Series",
    "caption",
    "colorbar",
    "colormap",
    "contrast_frame",
    "contrast_legend",
    "curves_png",
    "display_frames",
    "draw_pyramid",
    "drawn_nodes",
    "figure_png",
    "focus",
    "font",
    "gaussian_blur",
    "grid",
    "grid_columns",
    "hatch_weights",
    "heat",
    "heat_grid_frames",
    "label_strip",
    "luma",
    "mark_unseen",
    "png_bytes",
    "representative_frame",
    "side_by_side",
    "timeline_bar",
]
