"""``--normalise frame``: a drawn frame's tube stretched to its own range.

Tubes are normalised once per video (moments compare: a quiet stretch is dim); with
``--normalise frame`` each frame is shown on its own scale instead, as single-image CAM
tools do. Only the pictures change: the curves, statistics and saved tubes keep the
video's scale.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["FRAME_NOTE", "stretch"]

#: What captions and reports say of a per-frame scale.
FRAME_NOTE = "per-frame scale: each frame stretched to its own peak"


def stretch(saliency: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """``(s - lo) / (hi - lo)`` with ``lo``, ``hi`` the frame's smallest and largest finite
    values; NaN (unseen) stays NaN and a frame without span (constant, or all unseen)
    becomes 0 where seen. numpy in, numpy out (float32); a tensor stays on its device."""
    if isinstance(saliency, torch.Tensor):
        seen = torch.isfinite(saliency)
        if not bool(seen.any()):
            return saliency
        values = saliency[seen]
        lo, hi = values.min(), values.max()
        span = hi - lo
        if float(span) <= 0:
            return torch.where(seen, torch.zeros_like(saliency), saliency)
        return (saliency - lo) / span
    s = np.asarray(saliency, dtype=np.float32)
    known = np.isfinite(s)
    if not known.any():
        return s
    low, high = float(s[known].min()), float(s[known].max())
    if high - low <= 0:
        return np.where(known, np.float32(0.0), s)
    return ((s - low) / np.float32(high - low)).astype(np.float32)
