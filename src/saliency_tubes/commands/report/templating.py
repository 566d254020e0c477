"""Pages made from the package's templates in one safe step.

The HTML, CSS and JavaScript of a page live in ``commands/report/templates/`` (package data);
:func:`fill` puts values into a template's ``{{NAME}}`` slots in one pass, so that a value
holding ``{{...}}`` is never filled again. A value is HTML-escaped (quotes too) unless it
is :class:`Trusted`: the package's own CSS and JavaScript, and JSON made safe for a
``<script>`` element by :func:`~saliency_tubes.commands.report.video.json_for_script`. Every
user-given string (file names, class names, errors) therefore reaches the page either
escaped or inside that JSON, where the page's script shows it with ``textContent``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from importlib.resources import files

__all__ = ["Trusted", "fill", "page", "template"]

_SLOT = re.compile(r"\{\{([A-Z_]+)\}\}")


class Trusted(str):
    """Text put into a page as it is: the package's own files, or script-safe JSON."""


def template(name: str) -> str:
    """The text of ``templates/<name>`` (a file of the package)."""
    return (
        files("saliency_tubes.commands.report")
        .joinpath("templates")
        .joinpath(name)
        .read_text("utf-8")
    )


def fill(page: str, values: Mapping[str, str]) -> str:
    """``page`` with each ``{{NAME}}`` replaced by ``values[NAME]``, escaped unless
    :class:`Trusted`, in one pass.

    Raises:
        KeyError: a slot without a value, or a value without a slot (a template and its
            caller out of step).
    """
    slots = set(_SLOT.findall(page))
    if slots != set(values):
        raise KeyError(f"expected values for the slots {sorted(slots)}, but got {sorted(values)}")

    def put(match: re.Match[str]) -> str:
        value = values[match.group(1)]
        return value if isinstance(value, Trusted) else html.escape(str(value), quote=True)

    return _SLOT.sub(put, page)


def page(name: str, *, title: str, policy: str, values: Mapping[str, str]) -> str:
    """The page ``templates/<name>.html`` after the one head every page shares
    (``head.html``: the doctype, the content security ``policy``, the viewport, the
    ``title`` and the page's own ``<name>.css``), filled with ``values`` in one pass."""
    shared = {"TITLE": title, "POLICY": Trusted(policy), "STYLE": Trusted(template(f"{name}.css"))}
    return fill(template("head.html") + template(f"{name}.html"), {**shared, **values})
