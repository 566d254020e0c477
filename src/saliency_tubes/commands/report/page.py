"""The page of ``report.html``: hand-written HTML, CSS and JavaScript, no library, no network.

They are package files (``templates/report.html``, ``report.css``, ``report.js``), put
together by :func:`~saliency_tubes.commands.report.templating.fill` in one step that escapes every
value it is given. The page reads its data from one ``<script type="application/json">``
element (written by :mod:`saliency_tubes.commands.report.video`, with ``<``, ``>`` and ``&``
escaped so no string can close it) and builds everything with DOM calls: every class
name, path and manifest string becomes ``textContent``, never HTML. No ``eval``, no inline
event handlers.
"""

from __future__ import annotations

from .templating import Trusted, page, template

__all__ = ["report_page"]


#: What the report may load: its own inline script and style, the video from anywhere.
POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data: blob:; media-src * data: blob:"
)


def report_page(video_src: str, opacity: float, data_json: str) -> str:
    """The page playing ``video_src`` (a URL, escaped here) with the tube at ``opacity``
    and ``data_json`` (JSON made safe for a script element) as its data."""
    return page(
        "report",
        title="saliency-tubes report",
        policy=POLICY,
        values={
            "SCRIPT": Trusted(template("report.js")),
            "VIDEO": video_src,
            "OPACITY": f"{opacity:g}",
            "DATA": Trusted(data_json),
        },
    )
