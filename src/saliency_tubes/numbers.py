"""How numbers are written for people: probabilities with the digits that matter."""

from __future__ import annotations

import math

__all__ = ["probability"]


def probability(p: float, digits: int = 2) -> str:
    """``p`` with ``digits`` decimals from 0.1 up (``0.62``), and ``digits`` significant
    digits below (``0.0043``, not ``0.00``); manifests keep full precision."""
    value = float(p)
    if not math.isfinite(value) or value == 0.0:
        return f"{value:.{digits}f}" if value == 0.0 else str(value)
    return f"{value:.{digits}g}" if abs(value) < 0.1 else f"{value:.{digits}f}"
