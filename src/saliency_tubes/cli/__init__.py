"""The ``saliency-tubes`` command line: parses, calls :mod:`saliency_tubes.commands`, reports.

* :mod:`.app`: the commands (``explain``, ``demo``, ``models``, ``compare-classes``,
  ``compare-models``, ``pyramid``, ``evaluate``);
* :mod:`.flags`: the flags several commands share, defined once;
* :mod:`.running`: one-line failures (exit 2; ``interrupted`` and exit 130 on Ctrl-C),
  progress messages, the closing report.

:func:`run` is the installed ``saliency-tubes`` program: it imports the commands (torch
and all) inside the same Ctrl-C guard as the run itself, so an interrupt while starting is
one line too. ``main`` is the click group (for tests and embedding).
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["main", "run"]


def run() -> None:
    """The ``saliency-tubes`` console program."""
    try:
        from . import running  # light: click only

        running.watch_interrupts()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        raise SystemExit(130) from None
    try:
        from .app import main as group
    except BaseException:
        # An interrupt inside an import can surface as another error (a half-imported
        # module): whatever the exception, a Ctrl-C seen means "interrupted".
        if running.was_interrupted():
            running.interrupted()
        raise
    if running.was_interrupted():  # swallowed by a library's import
        running.interrupted()
    group()


def __getattr__(name: str) -> Any:
    if name == "main":
        from .app import main

        return main
    raise AttributeError(f"module 'saliency_tubes.cli' has no attribute {name!r}")
