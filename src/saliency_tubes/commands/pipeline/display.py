"""How the commands' results show themselves in Jupyter (``_repr_html_``).

Only what a result already holds is shown: its manifest's numbers, its tubes' statistics,
and one of the files it wrote (the side-by-side video or the comparison grid, embedded
when small: see :func:`saliency_tubes.display.media_html`). Nothing is decoded, drawn or
computed again.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...display import escape, link_target, media_html, table_html
from ...numbers import probability

if TYPE_CHECKING:
    from ..batch.run import BatchResult
    from .result import CommandResult

__all__ = ["batch_html", "result_html", "shown_media"]

# The file a result shows, by preference: the video that puts the source beside the tubes.
_PREFERRED = ("side_by_side", "grid", "compare", "pyramid", "benchmark", "evaluation")


def shown_media(files: dict[str, list[Path]]) -> Path | None:
    """The one written file a result shows: an mp4 before a gif before a png/plot, and
    among them a side-by-side (or grid, figure) before a single heat or focus video."""
    for kind in ("mp4", "gif", "png", "plot"):
        candidates = [
            p for p in files.get(kind, []) if p.suffix.lower() in (".mp4", ".gif", ".png")
        ]
        for stem in _PREFERRED:
            for path in candidates:
                if path.name.startswith(stem):
                    return path
        if candidates and kind in ("png", "plot"):
            return candidates[0]
    for kind in ("mp4", "gif"):
        if files.get(kind):
            return files[kind][0]
    return None


def _warnings(manifest: dict[str, Any]) -> list[str]:
    """What the reader must not miss: random weights, a model's caveat."""
    models = manifest.get("models") or [manifest.get("model")]
    out = []
    for model in models:
        if not isinstance(model, dict):
            continue
        name = model.get("name", "the model")
        if model.get("random_weights"):
            out.append(f"{name} has random weights (untrained): its tubes explain nothing")
        if model.get("caveat"):
            out.append(f"{name}: {model['caveat']}")
    return out


def result_html(result: CommandResult) -> str:
    """A command's result: what ran, the warnings, its tubes' numbers, one written video."""
    manifest = result.manifest
    head = (
        f"<p><b>saliency-tubes {escape(result.command)}</b> → "
        f"<code>{escape(result.out_dir)}</code>: {result.count} file(s)"
    )
    if "seconds" in manifest:
        head += f" in {float(manifest['seconds']):.1f} s"
    parts = [head + "</p>"]
    parts += [f'<p style="color:#b00"><b>{escape(w)}</b></p>' for w in _warnings(manifest)]
    if result.tubes:
        models = {t.model for t in result.tubes}
        header = (["model"] if len(models) > 1 else []) + [
            "class",
            "index",
            "p",
            "fraction above 0.5",
            "spread",
            "key frames",
        ]
        rows = [
            ([t.model] if len(models) > 1 else [])
            + [
                t.name,
                t.index,
                probability(t.score),
                f"{t.stats.fraction_above:.3f}",
                f"{t.stats.spread:.3f}",
                ", ".join(str(k) for k in t.curve.key_frames),
            ]
            for t in result.tubes
        ]
        numeric = [False] * (len(header) - 5) + [True, True, True, True, False]
        parts.append(table_html(header, rows, numeric=numeric))
    media = shown_media(result.files)
    if media is not None:
        parts.append(media_html(media))
    reports = result.files.get("html", [])
    if reports:  # the player with the tube drawn over the video: its own page, linked
        links = ", ".join(
            f'<a href="{escape(link_target(p))}">{escape(p.name)}</a>' for p in reports
        )
        parts.append(f"<p>Report (opens in the browser): {links}</p>")
    return "<div>" + "".join(parts) + "</div>"


def _number(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def batch_html(result: BatchResult) -> str:
    """A batch's summary: counts and accuracy, per-class means, the failures."""
    s = result.summary
    head = (
        f"<p><b>saliency-tubes batch</b> → <code>{escape(result.out)}</code>: "
        f"{s['videos']} video(s), {s['ok']} ok, {s['failed']} failed "
        f"({result.ran} explained by this run, {result.skipped} done before)"
    )
    if s.get("accuracy") is not None:
        head += f"; accuracy {s['accuracy']:.3f} on {s['labelled']} labelled"
    parts = [head + f". Index: <code>{escape(result.index.name)}</code></p>"]
    if s.get("random_weights"):
        parts.append(
            '<p style="color:#b00"><b>The model had random weights (untrained): '
            "the tubes explain nothing.</b></p>"
        )
    keys = ("accuracy", "score", "fraction_above", "spread", "pointing", "mass", "iou")
    rows = [
        [name, c["videos"], *(_number(c.get(k)) for k in keys)]
        for name, c in s.get("per_class", {}).items()
    ]
    if rows:
        header = ["class", "videos", "accuracy", "score", "fraction above", "spread"]
        header += ["pointing", "mass", "iou"]
        parts.append(table_html(header, rows, numeric=[False] + [True] * 8))
    if s.get("confusions"):
        confused = [[c["label"], c["pred"], c["videos"]] for c in s["confusions"]]
        parts.append("<p>Most confused:</p>")
        parts.append(
            table_html(["label", "predicted", "videos"], confused, numeric=[False, False, True])
        )
    if s.get("failures"):
        items = "".join(
            f"<li><code>{escape(f['path'])}</code>: {escape(f['error'])}</li>"
            for f in s["failures"]
        )
        parts.append(f"<p>Failures:</p><ul>{items}</ul>")
    return "<div>" + "".join(parts) + "</div>"
