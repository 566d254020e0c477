"""Griffe extension for the API reference: the docstrings' Sphinx markup made Markdown.

The docstrings are Google style with a little reStructuredText: roles such as
``:class:`~saliency_tubes.Tubes``` or ``:math:`\\alpha_j``` and ``.. math::`` blocks, which
mkdocstrings would show as they are. Roles become code (the last name with ``~``, as Sphinx
shows it), ``.. math::`` blocks become plain-text code blocks. The sources stay as they are.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:math|class|func|meth|mod|data|attr|exc|obj|ref):`(~?)([^`]+)`")


def _role(match: re.Match[str]) -> str:
    short, target = match.group(1), match.group(2)
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


def _math_blocks(text: str) -> str:
    """``.. math::`` and its indented body as a fenced ``text`` block at the same indent."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.lstrip()
        if stripped.startswith(".. math::"):
            indent = line[: len(line) - len(stripped)]
            body: list[str] = []
            first = stripped[len(".. math::") :].strip()
            if first:
                body.append(first)
            i += 1
            while i < len(lines) and (
                not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > len(indent)
            ):
                body.append(lines[i].strip())
                i += 1
            while body and not body[-1]:
                body.pop()
            while body and not body[0]:
                body.pop(0)
            out += [f"{indent}```text", *(f"{indent}{b}" for b in body), f"{indent}```", ""]
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


def markdown(text: str) -> str:
    return ROLE.sub(_role, _math_blocks(text))


class SphinxRoles(griffe.Extension):
    """Rewrite every docstring as it is loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
