"""MkDocs hook: pages and files that live outside docs/ in the repository.

CHANGELOG.md and DEVELOPERS.md are the repository's own files, and the benchmark results
(benchmarks/RESULTS*.md with benchmarks/evaluation/) are written by the benchmark scripts:
they are added to the site as they are, so there is one copy of each.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
# repository path -> path in the site
RENAMED = {"CHANGELOG.md": "changelog.md", "DEVELOPERS.md": "developers.md"}


def _add(files: Files, src: str, dest_uri: str, config: Any) -> None:
    files.append(File.generated(config, dest_uri, abs_src_path=str(ROOT / src)))


def on_files(files: Files, config: Any) -> Files:
    for src, dest in RENAMED.items():
        _add(files, src, dest, config)
    for path in sorted((ROOT / "benchmarks").glob("RESULTS*.md")):
        _add(files, f"benchmarks/{path.name}", f"benchmarks/{path.name}", config)
    for path in sorted((ROOT / "benchmarks" / "evaluation").glob("*")):
        if path.is_file():
            name = f"benchmarks/evaluation/{path.name}"
            _add(files, name, name, config)
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    """Links written for the repository's layout, made to work from the page's place."""
    src = page.file.src_uri
    if src.startswith("benchmarks/"):
        # ../docs/X.png is docs/X.png in the repository: the site's X.png
        markdown = markdown.replace("](../docs/", "](../")
        markdown = re.sub(r"\]\(evaluation/\)", "](evaluation/results.md)", markdown)
    if src == "changelog.md":
        markdown = markdown.replace("](docs/", "](")
    return markdown
