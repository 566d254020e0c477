"""The rules the package's layout keeps (read from the source, so they cannot drift).

* no module imports another module's ``_private`` name (or reaches for one as
  ``module._name``): what two files share is public in one of them;
* no file in ``src/`` is longer than 700 lines;
* the command line (``cli/``) imports only the application layer (``saliency_tubes.commands``);
* the library (everything but ``commands/`` and ``cli/``) never imports the application
  layer and prints nothing.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "saliency_tubes"
FILES = sorted(PACKAGE.rglob("*.py"))
MAX_LINES = 700


def _module(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(path: Path, node: ast.ImportFrom, root: Path = PACKAGE) -> str:
    """The module an ``ImportFrom`` names, made absolute."""
    if node.level == 0:
        return node.module or ""
    package = _module(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(path: Path, root: Path = PACKAGE) -> list[tuple[str, str | None, int]]:
    """``(module, imported name or None, line)`` for every import of the file."""
    out: list[tuple[str, str | None, int]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            source = _absolute(path, node, root)
            out.extend((source, alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.Import):
            out.extend((alias.name, None, node.lineno) for alias in node.names)
    return out


def test_the_package_is_found() -> None:
    assert len(FILES) > 40 and (PACKAGE / "commands" / "__init__.py") in FILES


def _private_uses(path: Path, root: Path = PACKAGE) -> list[str]:
    """Where ``path`` imports a ``_private`` name of the package or uses ``module._name``."""
    found = [
        f"{path.name}:{line} imports {name} from {source}"
        for source, name, line in _imports(path, root)
        if source.startswith("saliency_tubes") and name and name.startswith("_")
    ]
    tree = ast.parse(path.read_text())
    modules = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        and _absolute(path, node, root).startswith("saliency_tubes")
        for alias in node.names
    }
    found += [
        f"{path.name}:{node.lineno} uses {node.value.id}.{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in modules
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
    ]
    return found


def test_no_private_name_crosses_a_file() -> None:
    assert [use for path in FILES for use in _private_uses(path)] == []


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_file_is_over_700_lines(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.name} has {lines} lines; split it"


def test_the_cli_imports_only_the_commands() -> None:
    ours = [
        (source, name)
        for path in sorted((PACKAGE / "cli").glob("*.py"))
        for source, name, _ in _imports(path)
        if source.startswith("saliency_tubes")
    ]
    allowed = ("saliency_tubes.commands", "saliency_tubes.cli")
    assert ours and all(source.startswith(allowed) for source, _ in ours), ours


def test_the_library_does_not_reach_up_nor_print() -> None:
    library = [p for p in FILES if not {"commands", "cli"} & set(p.relative_to(PACKAGE).parts)]
    upward = [
        f"{p.relative_to(PACKAGE)}:{line} imports {source}"
        for p in library
        for source, _, line in _imports(p)
        if source.startswith(("saliency_tubes.commands", "saliency_tubes.cli"))
        and p != PACKAGE / "__init__.py"  # the package's front door re-exports the commands
    ]
    prints = [
        f"{p.relative_to(PACKAGE)}:{node.lineno}"
        for p in library
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "print"
    ]
    assert upward == [] and prints == []


def test_the_rules_would_catch_a_breach(tmp_path: Path) -> None:
    """The scan reads what it claims to: a planted private import and access are found."""
    root = tmp_path / "saliency_tubes"
    (root / "render").mkdir(parents=True)
    planted = root / "render" / "x.py"
    planted.write_text(
        "from ..video.reader import _to_rgb\nfrom . import frames\nframes._check_frame(1)\n"
    )
    assert _private_uses(planted, root) == [
        "x.py:1 imports _to_rgb from saliency_tubes.video.reader",
        "x.py:3 uses frames._check_frame",
    ]


def test_the_front_door_is_light_and_complete() -> None:
    """``import saliency_tubes`` imports no torch; every public name resolves."""
    import subprocess
    import sys

    probe = (
        "import sys, saliency_tubes as st; heavy = [m for m in ('torch', 'av', 'matplotlib') "
        "if m in sys.modules]; names = [n for n in st.__all__ if getattr(st, n, None) is None]; "
        "print(heavy, names, sorted(set(st.__all__) - {'__version__'}) == sorted(st._EXPORTS))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] [] True", out.stdout + out.stderr


def test_upsample_is_a_function_of_the_splines_module() -> None:
    """``st.upsample`` is the function; its module is ``saliency_tubes.splines`` (one name,
    one thing: the module is no longer made callable)."""
    import torch

    import saliency_tubes as st
    from saliency_tubes import splines

    raw = torch.arange(8.0).reshape(1, 1, 2, 2, 2)
    assert st.upsample is splines.upsample
    assert torch.equal(st.upsample(raw, (3, 3, 3)), splines.upsample(raw, (3, 3, 3), mode="cubic"))
    assert not callable(splines)


def test_help_imports_no_torch() -> None:
    """Every ``--help`` answers without importing torch (the commands import it when run)."""
    import subprocess
    import sys

    probe = (
        "import sys\nfrom saliency_tubes.cli.app import main\n"
        "for c in ([], ['explain'], ['demo'], ['models'], ['compare-classes'],"
        " ['compare-models'], ['pyramid'], ['evaluate']):\n"
        "    try:\n        main([*c, '--help'])\n    except SystemExit:\n        pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'LIGHT')"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "LIGHT", out.stderr
    assert "cam | gradcam | gradcam++" in out.stdout and "Usage: " in out.stdout


def test_the_vocabulary_is_the_implementations() -> None:
    from saliency_tubes import render, splines, vocabulary
    from saliency_tubes.methods import METHODS

    assert tuple(METHODS) == vocabulary.METHOD_NAMES
    assert splines.MODES is vocabulary.MODES and splines.ALIGNS is vocabulary.ALIGNS
    assert render.BACKGROUNDS is vocabulary.BACKGROUNDS


@pytest.mark.parametrize("package", ["saliency_tubes", "saliency_tubes.commands"])
def test_the_typed_imports_are_the_lazy_exports(package: str) -> None:
    """A package's ``if TYPE_CHECKING:`` imports (what type checkers read) name exactly the
    names of its one export table, from the same modules (saliency_tubes.lazy)."""
    import ast
    import importlib

    module = importlib.import_module(package)
    tree = ast.parse(Path(str(module.__file__)).read_text(encoding="utf-8"))
    typed: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom)
                for alias in imp.names:
                    assert alias.asname == alias.name  # an explicit re-export
                    source = "." * imp.level + (imp.module or "")
                    typed[alias.name] = source if imp.module else source + alias.name
    assert typed == module._EXPORTS
    own = ["__version__"] if package == "saliency_tubes" else []
    assert module.__all__ == sorted([*module._EXPORTS, *own])
