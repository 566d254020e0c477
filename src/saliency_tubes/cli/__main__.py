"""``python -m saliency_tubes.cli``: the command line."""

from __future__ import annotations

from . import run

if __name__ == "__main__":
    run()
