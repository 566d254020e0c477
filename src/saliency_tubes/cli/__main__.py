"""``python -m saliency_tubes.cli``: the command line."""

from __future__ import annotations

from .app import main

if __name__ == "__main__":
    main()
