"""The rules the package's layout keeps (read from the source, so they cannot drift).

* no module imports another module's ``_private`` name (or reaches for one as
  ``module._name``): what two files share is public in one of them;
* no file in ``src/`` is longer than 500 lines, and no function longer than 80;
* no two modules import each other, directly or through others (the imports form no cycle,
  counting imports made inside functions; not those only a type checker reads);
* the command line (``cli/``) imports only the application layer (``saliency_tubes.commands``),
  and the errors and option vocabulary every layer shares;
* the library (everything but ``commands/`` and ``cli/``) never imports the application
  layer and prints nothing.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "saliency_tubes"
FILES = sorted(PACKAGE.rglob("*.py"))
MAX_LINES = 500
MAX_FUNCTION_LINES = 80


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
def test_no_file_is_over_500_lines(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.name} has {lines} lines; split it"


def _long_functions(path: Path) -> list[str]:
    """``file:line name (N lines)`` for every function of ``path`` longer than the limit
    (from its ``def`` line to its last line; nested functions count in their parent too)."""
    return [
        f"{path.name}:{node.lineno} {node.name} ({length} lines)"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and (length := (node.end_lineno or node.lineno) - node.lineno + 1) > MAX_FUNCTION_LINES
    ]


def test_no_function_is_over_80_lines() -> None:
    assert [long for path in FILES for long in _long_functions(path)] == []


def _runtime_imports(path: Path, root: Path = PACKAGE) -> set[str]:
    """The package's modules ``path`` imports when it runs (at the top or inside a function;
    not under ``if TYPE_CHECKING:``): ``from pkg import name`` is the module ``pkg.name`` when
    there is one, else ``pkg``."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for inner in ast.walk(node)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom):
            source = _absolute(path, node, root)
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                found.add(sub if _file_of(sub, root) else source)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m.startswith(root.name) and _file_of(m, root)}


def _file_of(module: str, root: Path) -> Path | None:
    base = root.parent.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _cycles(root: Path = PACKAGE) -> list[list[str]]:
    """Every strongly connected set of two or more modules in the import graph (Tarjan)."""
    graph = {_module(p, root): _runtime_imports(p, root) for p in sorted(root.rglob("*.py"))}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_the_imports_form_no_cycle() -> None:
    assert _cycles() == []


def test_the_cli_imports_only_the_commands() -> None:
    ours = [
        (source, name)
        for path in sorted((PACKAGE / "cli").glob("*.py"))
        for source, name, _ in _imports(path)
        if source.startswith("saliency_tubes")
    ]
    # and the two light modules every layer shares: the errors and the option vocabulary
    allowed = (
        "saliency_tubes.commands",
        "saliency_tubes.cli",
        "saliency_tubes.errors",
        "saliency_tubes.vocabulary",
    )
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


def test_the_cycle_and_length_rules_would_catch_a_breach(tmp_path: Path) -> None:
    """A cycle closed by an import inside a function is found; one that only a type checker
    reads is not; a function of 81 lines is named."""
    root = tmp_path / "saliency_tubes"
    (root / "zoo").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "zoo" / "__init__.py").write_text("")
    (root / "zoo" / "registry.py").write_text("from ..methods import METHODS\n")
    (root / "methods.py").write_text("def f():\n    from .zoo import registry\n")
    (root / "typed.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import other\n"
    )
    (root / "other.py").write_text("from . import typed\n")
    assert _cycles(root) == [["saliency_tubes.methods", "saliency_tubes.zoo.registry"]]
    long = root / "long.py"
    long.write_text("def g():\n" + "    x = 1\n" * 80)
    assert _long_functions(long) == ["long.py:1 g (81 lines)"]
    long.write_text("def g():\n" + "    x = 1\n" * 79)
    assert _long_functions(long) == []
