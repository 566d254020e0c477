"""Make the documentation pages that come from README sections.

``python scripts/readme_to_docs.py ROOT`` reads ROOT/README.md and writes ROOT/docs/<page>.md
for the pages in :data:`PAGES`: each page is one or more README sections, its headings
shifted so that the first is the page's title, its links rewritten for the page's place
(``docs/X.png`` -> ``X.png`` relative to the page, ``#anchor`` -> the page that holds it,
DEVELOPERS.md -> developers.md; ``benchmarks/...`` stay: the site's hook adds them).

The docs pages were made this way from the long README, then edited (titles, intros, the
methods page's "Which method when", the torchvision section of Troubleshooting). To take
README text added later into the pages before the README is cut to its short form: run this
on a copy of the old README (A) and on one of the new README (B), diff A's pages against
docs/ (that diff is the page edits), and apply it to B's pages.
"""

from __future__ import annotations

import posixpath
import re
import sys
from pathlib import Path

HEADING = re.compile(r"^(#+) (.*)$")
LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]+)\)")

#: page -> the README sections it is made of: (title, a sub-heading that ends it early)
PAGES: dict[str, list[tuple[str, str | None]]] = {
    "tasks/explain.md": [("Command line", "Methods"), ("Python API", "Methods")],
    "methods.md": [("Methods", None)],
    "troubleshooting.md": [("When things go wrong", None)],
    "models.md": [("Models", None), ("The embedded default model", None)],
    "tasks/pyramids.md": [("Class feature pyramids", None)],
    "tasks/compare.md": [("Comparing classes and models", None)],
    "tasks/reports.md": [("Reports in the browser", None)],
    "tasks/batch.md": [("Datasets", None)],
    "tasks/evaluate.md": [("Evaluation", "Results on held-out synthetic clips")],
    "evaluation-results.md": [("Results on held-out synthetic clips", None)],
    "benchmarks.md": [("Benchmarks", None)],
    "layout.md": [("Layout", None)],
}


def slug(title: str) -> str:
    """Python-Markdown's heading id (what MkDocs' toc makes)."""
    return re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", title).strip().lower())


def headings(lines: list[str]) -> list[tuple[int, int, str]]:
    """``(line, level, title)`` of every heading outside code fences."""
    found, fenced = [], False
    for number, line in enumerate(lines):
        if line.startswith("```"):
            fenced = not fenced
        match = HEADING.match(line)
        if match and not fenced:
            found.append((number, len(match.group(1)), match.group(2)))
    return found


def section(lines: list[str], title: str, until: str | None) -> tuple[list[str], int]:
    """The lines of the section called ``title`` (to the next heading of its level or
    higher, or to ``until``) and its level."""
    heads = headings(lines)
    start = next(k for k, head in enumerate(heads) if head[2] == title)
    first, level, _ = heads[start]
    end = len(lines)
    for number, other, name in heads[start + 1 :]:
        if other <= level or name == until:
            end = number
            break
    return lines[first:end], level


def fix_links(text: str, page: str, anchors: dict[str, str]) -> str:
    here = posixpath.dirname(page) or "."

    def replace(match: re.Match[str]) -> str:
        label, url = match.group(1), match.group(2)
        if url.startswith(("http://", "https://", "mailto:")):
            return match.group(0)
        if url.startswith("#"):
            target = anchors.get(url[1:])
            if target is None:
                raise SystemExit(f"unknown anchor {url} in {page}")
            where = "" if target == page else posixpath.relpath(target, here)
            return f"[{label}]({where}{url})"
        path, _, fragment = url.partition("#")
        path = {"DEVELOPERS.md": "developers.md", "CHANGELOG.md": "changelog.md"}.get(path, path)
        path = path.removeprefix("docs/")
        tail = f"#{fragment}" if fragment else ""
        return f"[{label}]({posixpath.relpath(path, here)}{tail})"

    return LINK.sub(replace, text)


def page_text(lines: list[str], parts: list[tuple[str, str | None]]) -> list[str]:
    out: list[str] = []
    shift: int | None = None
    for title, until in parts:
        body, level = section(lines, title, until)
        shift = level - 1 if shift is None else shift
        fenced = False
        for line in body:
            if line.startswith("```"):
                fenced = not fenced
            match = HEADING.match(line)
            if match and not fenced:
                new = max(1, len(match.group(1)) - shift)
                if out and new == 1:  # a later part is a section of the page
                    new = 2
                line = "#" * new + " " + match.group(2)
            out.append(line)
        out.append("")
    return out


def main(root: Path) -> None:
    lines = (root / "README.md").read_text(encoding="utf-8").splitlines()
    anchors: dict[str, str] = {}
    for page, parts in PAGES.items():
        for title, until in parts:
            body, _ = section(lines, title, until)
            for _, _, name in headings(body):
                anchors.setdefault(slug(name), page)
    for page, parts in PAGES.items():
        text = "\n".join(page_text(lines, parts)).rstrip() + "\n"
        dest = root / "docs" / page
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(fix_links(text, page, anchors), encoding="utf-8")
        print(f"wrote {dest}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "."))
