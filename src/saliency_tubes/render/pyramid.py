"""The class feature pyramid drawn (:mod:`saliency_tubes.pyramid`).

* :func:`draw_pyramid`: the figure. One row per level (the class on top), each node a
  thumbnail of its tube as a heat map over one representative frame of the clip, captioned
  with its kernel and score, and a line from each node to each of its drawn children (the
  darker and thicker, the higher the edge's score).
* :func:`heat_grid_frames`: per clip frame, the drawn nodes' heat frames in a grid (a row
  per level), for a small animated GIF.
* :func:`drawn_nodes` (which nodes a figure shows), :func:`representative_frame` (which
  frame), :func:`display_frames` (the clip's pixels, the preprocessing undone).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..errors import InputError
from ..numbers import probability
from ..pyramid import ROOT, ClassFeaturePyramid, PyramidNode
from ..video import Preprocess
from .frames import heat
from .layout import caption, colorbar, font, grid

__all__ = [
    "display_frames",
    "draw_pyramid",
    "drawn_nodes",
    "heat_grid_frames",
    "representative_frame",
]

_INK = (30, 30, 30)
_MUTED = (110, 110, 110)
_PAPER = (255, 255, 255)


# --------------------------------------------------------------------------------------
# Which nodes, which frame
# --------------------------------------------------------------------------------------


def drawn_nodes(pyramid: ClassFeaturePyramid, per_level: int = 6) -> list[list[PyramidNode]]:
    """The nodes a figure shows, per level, in drawing order (left to right).

    Level 0 is the class. On each deeper level the candidates are the nodes with a drawn
    parent; the ``per_level`` best supported (:attr:`PyramidNode.support`) are drawn,
    ordered by the mean position of their drawn parents (fewer crossing lines), then by
    support.

    Args:
        pyramid: the pyramid.
        per_level: most nodes drawn per level.

    Returns:
        ``rows[level]`` = the drawn nodes.
    """
    if isinstance(per_level, bool) or not isinstance(per_level, int) or per_level < 1:
        raise InputError(f"expected per_level to be an int >= 1, but got {per_level!r}")
    rows: list[list[PyramidNode]] = [[pyramid.root]]
    place: dict[str, float] = {ROOT: 0.0}
    for level in pyramid.levels()[1:]:
        candidates = [n for n in level if any(p in place for p in n.parents)]
        chosen = candidates[:per_level]  # levels() is best supported first
        if not chosen:
            break

        def centre(node: PyramidNode) -> float:
            xs = [place[p] for p in node.parents if p in place]
            return sum(xs) / len(xs)

        rank = {n.id: i for i, n in enumerate(chosen)}
        row = sorted(chosen, key=lambda n: (centre(n), rank[n.id]))
        for i, node in enumerate(row):
            place[node.id] = (i + 0.5) / len(row)
        rows.append(row)
    return rows


def representative_frame(tube: torch.Tensor | np.ndarray) -> int:
    """The clip frame where a ``(T, H, W)`` tube is strongest: ``argmax_t mean_{h,w}``."""
    values = np.asarray(tube.detach().cpu() if isinstance(tube, torch.Tensor) else tube)
    if values.ndim != 3 or values.shape[0] < 1:
        raise InputError(f"expected a (T, H, W) tube, but got shape {values.shape}")
    return int(np.argmax(values.reshape(values.shape[0], -1).mean(axis=1)))


def display_frames(clip: torch.Tensor, preprocess: Preprocess) -> np.ndarray:
    """The ``(T, h, w, 3)`` uint8 frames a clip shows: the preprocessing undone.

    Args:
        clip: ``(1, 3, T, h, w)`` as made by ``preprocess``.
        preprocess: the :class:`~saliency_tubes.video.Preprocess` that made it.
    """
    mean = torch.tensor(preprocess.mean).view(3, 1, 1, 1)
    std = torch.tensor(preprocess.std).view(3, 1, 1, 1)
    pixels = (clip[0].detach().cpu().float() * std + mean) * 255.0
    return pixels.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 3, 0).numpy()


# --------------------------------------------------------------------------------------
# The figure
# --------------------------------------------------------------------------------------


def _short(layer: str, width: int = 22) -> str:
    return layer if len(layer) <= width else "..." + layer[-(width - 3) :]


def _caption(node: PyramidNode, pyramid: ClassFeaturePyramid, mixed: bool) -> tuple[str, str]:
    """Two lines under a thumbnail; ``mixed``: its row holds several layers."""
    if node.id == ROOT:
        name = pyramid.class_name or f"class {pyramid.class_index}"
        return name, f"p={probability(pyramid.probability)}"
    second = _short(node.layer) if mixed else f"support {node.support:.2f}"
    return f"k{node.kernel}  s={node.score:.2f}", second


def _thumbnail(
    frame: np.ndarray, saliency: np.ndarray, size: tuple[int, int], cmap: str
) -> Image.Image:
    image = Image.fromarray(heat(frame, saliency, colormap=cmap))
    return image.resize((size[1], size[0]), Image.Resampling.BILINEAR)


def draw_pyramid(
    pyramid: ClassFeaturePyramid,
    frames: np.ndarray,
    *,
    per_level: int = 6,
    thumb: int = 112,
    frame_index: int | None = None,
    tubes: Mapping[str, torch.Tensor] | None = None,
    colormap: str = "jet",
    title: str | None = None,
    note: str = "",
) -> np.ndarray:
    """Draw the pyramid: levels as rows, nodes as heat thumbnails, edges to the children.

    Every thumbnail shows its node's tube (:meth:`ClassFeaturePyramid.tube`) at one clip
    frame over that frame: by default the frame where the class tube is strongest
    (:func:`representative_frame`). Lines join each drawn node to its drawn children;
    their darkness and width grow with the edge score. Each row is labelled with its level,
    its layers and how many nodes it holds.

    Args:
        pyramid: the pyramid.
        frames: the clip's frames, ``(T, h, w, 3)`` uint8 on the clip grid.
        per_level: most nodes drawn per level (see :func:`drawn_nodes`).
        thumb: size in pixels of a thumbnail's longer side.
        frame_index: the clip frame shown (default: the class tube's strongest).
        tubes: the drawn nodes' tubes, if already computed.
        colormap: matplotlib colour map of the heat maps.
        title: the headline (default: class, probability, θ, depth, frame).
        note: added after the headline (e.g. "(random weights)").

    Returns:
        The figure, ``(H, W, 3)`` uint8 RGB.
    """
    frames = _checked_frames(pyramid, frames, thumb)
    T, H, W = pyramid.clip_size
    rows = drawn_nodes(pyramid, per_level)
    maps = _node_tubes(pyramid, rows, tubes)
    t = representative_frame(maps[ROOT]) if frame_index is None else int(frame_index)
    if not 0 <= t < T:
        raise InputError(f"expected frame_index in [0, {T}), but got {frame_index}")

    tile = (max(1, round(thumb * H / max(H, W))), max(1, round(thumb * W / max(H, W))))
    face = font(12)
    small = font(11)
    label_w, margin, title_h, text_h, gap = 150, 12, 34, 30, 34
    col_w = tile[1] + 16
    cols = max(len(row) for row in rows)
    row_h = tile[0] + text_h + gap
    width = label_w + cols * col_w + margin
    height = title_h + len(rows) * row_h + 26
    canvas = Image.new("RGB", (width, height), _PAPER)
    draw = ImageDraw.Draw(canvas)

    boxes = _boxes(rows, cols, col_w, label_w, title_h, row_h)
    _draw_edges(draw, rows, boxes, tile, text_h)  # under the tiles

    levels = pyramid.levels()
    for r, row in enumerate(rows):
        y = title_h + r * row_h
        layers = sorted({n.layer for n in levels[r]})
        lines = _row_label(pyramid, r, len(levels[r]), layers, len(row))
        for dy, line, colour, size in zip(
            (4, 22, 38), lines, (_INK, _MUTED, _MUTED), (face, small, small), strict=True
        ):
            draw.text((margin, y + dy), line, fill=colour, font=size)
        tiles = [
            (boxes[n.id], maps[n.id][t].cpu().numpy(), _caption(n, pyramid, len(layers) > 1))
            for n in row
        ]
        _draw_tiles(canvas, draw, frames[t], tiles, tile, colormap, small)

    draw.text((margin, 9), _headline(pyramid, title, note), fill=_INK, font=face)
    footer = (
        f"heat maps at clip frame {t + 1}/{T}; s: score of the best edge in; "
        "edge darkness and width grow with s"
    )
    _draw_footer(canvas, draw, footer, colormap, margin, height, small)
    return np.asarray(canvas, dtype=np.uint8)


def _boxes(
    rows: list[list[PyramidNode]], cols: int, col_w: int, label_w: int, title_h: int, row_h: int
) -> dict[str, tuple[int, int]]:
    """Node id -> (x of its tile's left, y of its top): each row centred under the widest."""
    boxes: dict[str, tuple[int, int]] = {}
    for r, row in enumerate(rows):
        y = title_h + r * row_h
        x0 = label_w + (cols - len(row)) * col_w // 2
        for i, node in enumerate(row):
            boxes[node.id] = (x0 + i * col_w + 8, y)
    return boxes


def _draw_tiles(
    canvas: Image.Image,
    draw: ImageDraw.ImageDraw,
    frame: np.ndarray,
    tiles: list[tuple[tuple[int, int], np.ndarray, tuple[str, str]]],
    tile: tuple[int, int],
    colormap: str,
    small: Any,
) -> None:
    """One row's thumbnails: per node, its place, its heat map on ``frame``, its caption."""
    for (x, top), heat_map, (first, second) in tiles:
        image = _thumbnail(frame, heat_map, tile, colormap)
        canvas.paste(image, (x, top))
        draw.rectangle([x - 1, top - 1, x + tile[1], top + tile[0]], outline=_INK)
        draw.text((x, top + tile[0] + 2), first, fill=_INK, font=small)
        draw.text((x, top + tile[0] + 15), second, fill=_MUTED, font=small)


def _checked_frames(pyramid: ClassFeaturePyramid, frames: np.ndarray, thumb: int) -> np.ndarray:
    """:func:`draw_pyramid`'s checks of the frames (the clip's, uint8) and thumbnail size."""
    frames = np.asarray(frames)
    T, H, W = pyramid.clip_size
    if frames.shape != (T, H, W, 3) or frames.dtype != np.uint8:
        raise InputError(
            f"expected the clip's frames as ({T}, {H}, {W}, 3) uint8, but got {frames.shape} "
            f"{frames.dtype}; pass the frames the pyramid's clip was made from"
        )
    if isinstance(thumb, bool) or not isinstance(thumb, int) or thumb < 16:
        raise InputError(f"expected thumb to be an int >= 16 (pixels), but got {thumb!r}")
    return frames


def _node_tubes(
    pyramid: ClassFeaturePyramid,
    rows: list[list[PyramidNode]],
    tubes: Mapping[str, torch.Tensor] | None,
) -> dict[str, torch.Tensor]:
    """The drawn nodes' tubes: those given, the others computed."""
    maps = dict(tubes or {})
    missing = [n.id for row in rows for n in row if n.id not in maps]
    if missing:
        maps.update(pyramid.tubes(missing))
    return maps


def _draw_footer(
    canvas: Image.Image,
    draw: ImageDraw.ImageDraw,
    footer: str,
    colormap: str,
    margin: int,
    height: int,
    small: Any,
) -> None:
    """The colour bar (0 to 1) and the footer's explanation along the figure's bottom."""
    bar = colorbar(120, 8, colormap, vertical=False)
    canvas.paste(Image.fromarray(bar), (margin + 14, height - 18))
    draw.text((margin, height - 21), "0", fill=_MUTED, font=small)
    draw.text((margin + 138, height - 21), "1", fill=_MUTED, font=small)
    draw.text((margin + 152, height - 21), footer, fill=_MUTED, font=small)


def _draw_edges(
    draw: ImageDraw.ImageDraw,
    rows: list[list[PyramidNode]],
    boxes: dict[str, tuple[int, int]],
    tile: tuple[int, int],
    text_h: int,
) -> None:
    """Lines from each drawn node to its drawn children, darker and wider as the edge
    score grows."""
    for row in rows:
        for node in row:
            px, py = boxes[node.id]
            for edge in node.children:
                if edge.child not in boxes:
                    continue
                cx, cy = boxes[edge.child]
                shade = int(round(200 - 170 * edge.score))
                draw.line(
                    [(px + tile[1] // 2, py + tile[0] + text_h - 2), (cx + tile[1] // 2, cy - 2)],
                    fill=(shade, shade, shade),
                    width=1 + int(round(2 * edge.score)),
                )


def _row_label(
    pyramid: ClassFeaturePyramid, r: int, total: int, layers: list[str], drawn: int
) -> tuple[str, str, str]:
    """The three lines left of row ``r``: its level, its layers, its node count."""
    header = "class" if r == 0 else f"level {r}"
    detail = (
        pyramid.classifier
        if r == 0
        else (_short(layers[0], 20) if len(layers) == 1 else f"{len(layers)} layers")
    )
    count = (
        ""
        if r == 0
        else f"{total} node{'s' if total != 1 else ''}"
        + (f", {drawn} drawn" if total > drawn else "")
    )
    return header, detail, count


def _headline(pyramid: ClassFeaturePyramid, title: str | None, note: str) -> str:
    """The figure's title: the given one, or class, probability, θ, depth (and top-n)."""
    name = pyramid.class_name or f"class {pyramid.class_index}"
    headline = title or (
        f"Class feature pyramid: {name} (p={probability(pyramid.probability)}), theta={pyramid.threshold:g}, "
        f"depth {pyramid.depth}" + (f", top-{pyramid.top_n}" if pyramid.top_n else "")
    )
    return headline + (f" {note}" if note else "")


def heat_grid_frames(
    pyramid: ClassFeaturePyramid,
    frames: np.ndarray,
    rows: Sequence[Sequence[PyramidNode]],
    tubes: Mapping[str, torch.Tensor],
    *,
    colormap: str = "jet",
) -> Iterator[np.ndarray]:
    """Per clip frame, the given nodes' heat frames in a grid, one row per level.

    Args:
        pyramid: the pyramid.
        frames: ``(T, h, w, 3)`` uint8 clip frames.
        rows: nodes per row (e.g. :func:`drawn_nodes`).
        tubes: their tubes.
        colormap: matplotlib colour map.

    Yields:
        ``(H, W, 3)`` uint8 grid frames, one per clip frame.
    """
    cols = max(len(row) for row in rows)
    for t in range(frames.shape[0]):
        tiles: list[np.ndarray] = []
        for row in rows:
            for node in row:
                image = heat(frames[t], tubes[node.id][t].cpu().numpy(), colormap=colormap)
                label = f"L{node.level} k{node.kernel}" if node.id != ROOT else "class"
                tiles.append(caption(image, label))
            tiles.extend(np.zeros_like(frames[t]) for _ in range(cols - len(row)))
        yield grid(tiles, cols, gap=2, fill=255)
