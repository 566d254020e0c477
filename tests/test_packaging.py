"""The package's metadata agrees with itself: one version, the licence, the citation, and the
public torchvision import. (The built wheel itself is checked by scripts/check_wheel.sh.)"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import saliency_tubes as st

tomllib = pytest.importorskip("tomllib", reason="tomllib is Python 3.11's")
ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _literal_version() -> str:
    """``__version__`` as written in the package's ``__init__.py`` (what setuptools reads)."""
    tree = ast.parse((ROOT / "src" / "saliency_tubes" / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets
        ):
            assert isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
            return node.value.value
    raise AssertionError("no literal __version__ in saliency_tubes/__init__.py")


def test_the_version_has_one_source() -> None:
    project = PYPROJECT["project"]
    assert "version" not in project, "pyproject.toml writes the version by hand"
    assert "version" in project["dynamic"]
    dynamic = PYPROJECT["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "saliency_tubes.__version__"}
    assert st.__version__ == _literal_version()
    parts = st.__version__.split(".")
    assert len(parts) == 3 and all(p.isdigit() for p in parts), st.__version__


def test_the_installed_distribution_has_the_package_version() -> None:
    try:
        installed = importlib.metadata.version("saliency-tubes")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("saliency-tubes is not installed here (only on the path): nothing to compare")
    assert installed == st.__version__


def test_licence_and_citation_match_the_metadata() -> None:
    assert PYPROJECT["project"]["license"] == "MIT"
    assert PYPROJECT["project"]["license-files"] == ["LICENSE"]
    licence = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert licence.startswith("MIT License") and "WITHOUT WARRANTY OF ANY KIND" in licence
    citation = (ROOT / "CITATION.cff").read_text(encoding="utf-8")
    assert f"\nversion: {st.__version__}\n" in citation
    assert "\nlicense: MIT\n" in citation
    for author in ("Stergiou", "Kapidis", "Kalliatakis", "Chrysoulas", "Veltkamp", "Poppe"):
        assert f"family-names: {author}" in citation
    assert "doi: 10.1109/ICIP.2019.8803153" in citation
    assert "## [Unreleased]" in (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")


def test_import_torchvision_is_public() -> None:
    from saliency_tubes.zoo.sources import _torchvision

    assert "import_torchvision" in st.__all__
    assert st.import_torchvision is _torchvision.import_torchvision
    assert st.zoo.import_torchvision is _torchvision.import_torchvision
    assert "torchvision" in (st.import_torchvision.__doc__ or "")


def test_a_users_torchvision_import_works_after_import_torchvision() -> None:
    if importlib.util.find_spec("torchvision") is None:
        pytest.skip("torchvision is not installed (pip install 'saliency-tubes[torchvision]')")
    # In a process of its own: the workaround changes the process (sys.modules, torch.library).
    code = (
        "import sys, warnings\n"
        "warnings.simplefilter('ignore', RuntimeWarning)\n"
        "import saliency_tubes as st\n"
        "assert 'torchvision' not in sys.modules\n"
        "tv = st.import_torchvision()\n"
        "from torchvision.models.video import r2plus1d_18\n"
        "import torch\n"
        "net = r2plus1d_18(num_classes=3).eval()\n"
        "with torch.no_grad():\n"
        "    print(tuple(net(torch.zeros(1, 3, 2, 16, 16)).shape), sys.modules['torchvision'] is tv)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "(1, 3) True"
