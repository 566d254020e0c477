"""Lazy exports of a package (PEP 562): a public name is imported from its module on first use.

A package's ``__init__`` keeps ONE table, public name -> module (relative to the package),
and hands it to :func:`exports`, which makes the package's ``__getattr__``, ``__dir__`` and
``__all__`` from it. The package's ``if TYPE_CHECKING:`` imports (what type checkers and
editors read) name the same things; ``tests/test_layout.py`` checks that they agree.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def exports(
    package: str, table: Mapping[str, str], *extra: str
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` of ``package`` from its export ``table``.

    Args:
        package: the package's ``__name__``.
        table: public name -> module, relative to the package (``".methods"``,
            ``"..errors"``). A name that is its module's own name (``"upsample":
            ".upsample"``) is the module itself (a module may make itself callable).
        extra: names the package defines itself (``__version__``), listed in ``__all__``.
    """
    names = sorted([*table, *extra])

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        imported = importlib.import_module(module, package)
        if module.rpartition(".")[2] == name:  # the submodule (importing set the attribute)
            return imported
        value = getattr(imported, name)
        setattr(sys.modules[package], name, value)  # later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return list(names)

    return __getattr__, __dir__, names
