"""How results show themselves in Jupyter (``_repr_html_``): small HTML, nothing heavy.

A notebook calls ``_repr_html_`` whenever a result is the last expression of a cell, so
what is here only reads what a result already holds: numbers it carries, a few frames of a
tube already computed (sampled, not resampled), files already written (embedded when
small, linked otherwise). Nothing runs a model, decodes a video or draws a frame.

* :func:`tubes_html`: a :class:`~saliency_tubes.methods.Tubes` as a grid, one row per
  explained class (of the first sample), a few evenly spaced frames of its tube in the
  colour map.
* :func:`media_html`: a written video or image inline (a data URI) when it is at most
  :data:`EMBED_LIMIT` bytes, else a link to it.
* :func:`table_html`: a plain table with escaped cells.
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .numbers import probability

__all__ = [
    "EMBED_LIMIT",
    "escape",
    "link_target",
    "media_html",
    "png_data_uri",
    "table_html",
    "tubes_html",
]

EMBED_LIMIT = 8 * 1024 * 1024
"""Files up to this many bytes are embedded in the notebook; larger ones are linked."""

_MEDIA = {
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".gif": "image/gif",
    ".png": "image/png",
    ".jpg": "image/jpeg",
}


def escape(value: Any) -> str:
    """``value`` as text safe inside HTML (element content and quoted attributes)."""
    return html.escape(str(value), quote=True)


def table_html(
    header: Sequence[str], rows: Sequence[Sequence[Any]], *, numeric: Sequence[bool] = ()
) -> str:
    """A table; ``numeric[i]`` right-aligns column ``i``. Every cell is escaped."""
    align = [
        ' style="text-align:right"' if i < len(numeric) and numeric[i] else ""
        for i in range(len(header))
    ]
    head = "".join(f"<th{a}>{escape(h)}</th>" for h, a in zip(header, align, strict=True))
    body = "".join(
        "<tr>"
        + "".join(f"<td{a}>{escape(c)}</td>" for c, a in zip(row, align, strict=True))
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def png_data_uri(image: np.ndarray) -> str:
    """An ``(H, W, 3)`` uint8 image as a ``data:image/png`` URI."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def media_html(path: str | Path, *, width: int = 640, limit: int = EMBED_LIMIT) -> str:
    """A written file inline: ``<video>`` for mp4/webm, ``<img>`` for gif/png/jpg, embedded
    as a data URI when at most ``limit`` bytes; a link (its path) otherwise or when the file
    is gone or of another kind."""
    path = Path(path)
    kind = _MEDIA.get(path.suffix.lower())
    try:
        size = path.stat().st_size
    except OSError:
        return f"<p><code>{escape(path)}</code> (not found)</p>"
    if kind is None or size > limit:
        note = f" ({size / 1e6:.1f} MB, not embedded)" if kind is not None else ""
        return f'<p><a href="{escape(link_target(path))}">{escape(path.name)}</a>{escape(note)}</p>'
    data = "data:" + kind + ";base64," + base64.b64encode(path.read_bytes()).decode("ascii")
    if kind.startswith("video/"):
        return (
            f'<video src="{data}" width="{width}" controls loop muted autoplay playsinline>'
            f"{escape(path.name)}</video>"
        )
    return f'<img src="{data}" width="{width}" alt="{escape(path.name)}">'


def link_target(path: Path) -> str:
    """A link to ``path`` relative to the working folder (where a notebook usually is)."""
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive
        return str(path)


def _pick(count: int, most: int) -> list[int]:
    """At most ``most`` evenly spaced indices of ``range(count)``, first and last included."""
    if count <= most:
        return list(range(count))
    return sorted({round(i * (count - 1) / (most - 1)) for i in range(most)})


def _thumbnail(saliency: np.ndarray, lut: np.ndarray, size: int) -> np.ndarray:
    """One frame of a tube, every s-th pixel kept so that its long side is at most ``size``
    (a subsample: no interpolation), through the colour map."""
    step = max(1, -(-max(saliency.shape) // size))
    small = np.nan_to_num(saliency[::step, ::step], nan=0.0)
    levels = np.clip(np.rint(small * 255.0), 0, 255).astype(np.intp)
    return np.asarray(lut[levels])


def tubes_html(
    tubes: Any, *, sample: int = 0, classes: int = 3, frames: int = 6, size: int = 96
) -> str:
    """A small grid of a ``Tubes``: for the first ``classes`` explained classes of
    ``sample``, ``frames`` evenly spaced frames of the tube (jet colour map, at most ``size``
    pixels a side), captioned with the class, its probability and the method."""
    from .render.frames import colormap

    maps = tubes.maps.detach()
    n, k, t = (int(s) for s in maps.shape[:3])
    names = tubes.names() if tubes.categories else None
    shown = _pick(t, frames)
    lut = colormap("jet")
    rows = []
    for j in range(min(k, classes)):
        index = int(tubes.classes[sample, j])
        name = names[sample][j] if names else f"class {index}"
        p = probability(float(tubes.scores[sample, j]))
        volume = maps[sample, j, shown].float().cpu().numpy()
        cells = "".join(
            f'<td style="padding:1px"><img src="{png_data_uri(_thumbnail(volume[i], lut, size))}"'
            f' alt="frame {f}" title="frame {f}"></td>'
            for i, f in enumerate(shown)
        )
        rows.append(f'<tr><th style="text-align:left">{escape(name)}<br>p={p}</th>{cells}</tr>')
    frame_row = "".join(f'<td style="text-align:center">t={f}</td>' for f in shown)
    what = f"{escape(tubes.method)} on {escape(tubes.layer)}"
    more = []
    if k > classes:
        more.append(f"{k - classes} more class(es) not shown")
    if n > 1:
        more.append(f"sample {sample} of {n}")
    if tubes.class_agnostic:
        more.append("class-agnostic: the same tube for every class")
    note = f" ({escape('; '.join(more))})" if more else ""
    shape = "×".join(str(int(s)) for s in maps.shape)
    return (
        f"<div><p><b>Tubes</b>: {what}, maps {shape}{note}</p>"
        f"<table>{''.join(rows)}<tr><td></td>{frame_row}</tr></table></div>"
    )
