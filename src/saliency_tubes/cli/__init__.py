"""The ``saliency-tubes`` command line: parses, calls :mod:`saliency_tubes.commands`, reports.

* :mod:`.app`: the commands (``explain``, ``demo``, ``models``, ``compare-classes``,
  ``compare-models``, ``pyramid``, ``evaluate``);
* :mod:`.flags`: the flags several commands share, defined once;
* :mod:`.running`: one-line failures (exit 2; ``interrupted`` and exit 130 on Ctrl-C),
  progress messages, the closing report.
"""

from __future__ import annotations

from .app import main

__all__ = ["main"]
