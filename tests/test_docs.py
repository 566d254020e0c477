"""The documentation site's sources: the API reference names every public name, and the
pages the navigation lists exist. (scripts/build_docs.sh builds the site strictly in CI.)"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

import saliency_tubes as st

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def test_the_api_reference_names_every_public_name() -> None:
    text = (DOCS / "api.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^::: saliency_tubes\.[\w.]*?\.(\w+)$", text, re.M))
    # Named in the text rather than rendered on their own: an alias, a dict, the version.
    described = {"CAM", "METHODS", "__version__"}
    assert all(name in text for name in described)
    missing = sorted(set(st.__all__) - documented - described)
    assert not missing, f"docs/api.md does not document {missing}"


def test_every_directive_points_at_the_defining_module() -> None:
    """``::: module.Name``: the module is where the object is defined (griffe reads the
    source; a re-export through the lazy package would not resolve)."""
    text = (DOCS / "api.md").read_text(encoding="utf-8")
    for module, name in re.findall(r"^::: (saliency_tubes[\w.]*)\.(\w+)$", text, re.M):
        obj = getattr(st, name, None)
        if obj is None or name == "METHODS":
            continue
        defined = obj.__name__ if name == "upsample" else obj.__module__
        if name == "upsample":
            assert module == "saliency_tubes.splines"
        else:
            assert defined == module, (name, module, defined)


def test_the_navigation_lists_pages_that_exist() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = config[config.index("\nnav:") :]
    pages = re.findall(r":\s+([\w/.-]+\.(?:md|ipynb))\s*$", nav, re.M)
    assert len(pages) >= 15
    generated = {"changelog.md": ROOT / "CHANGELOG.md", "developers.md": ROOT / "DEVELOPERS.md"}
    for page in pages:
        assert generated.get(page, DOCS / page).is_file(), page


def test_sphinx_markup_becomes_markdown_in_the_reference() -> None:
    pytest.importorskip("griffe", reason="the docs extra (mkdocstrings-python) is not installed")
    spec = importlib.util.spec_from_file_location(
        "sphinx_roles", DOCS / "hooks" / "sphinx_roles.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = (
        "For :math:`\\alpha_j` see :class:`~saliency_tubes.methods.Tubes` and\n"
        ":func:`saliency_tubes.splines`:\n\n"
        "    .. math::\n"
        "        z = w \\, a,\n"
        "        y = z\n\n"
        "    then more.\n"
    )
    assert module.markdown(text) == (
        "For `\\alpha_j` see `Tubes` and\n"
        "`saliency_tubes.splines`:\n\n"
        "    ```text\n"
        "    z = w \\, a,\n"
        "    y = z\n"
        "    ```\n\n"
        "    then more.\n"
    )
