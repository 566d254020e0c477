"""Space-time supervoxels: the features that LIME and Kernel SHAP switch on and off.

* ``"slic"``: scikit-image's SLIC (Achanta, Shaji, Smith, Lucchi, Fua and Suesstrunk,
  "SLIC Superpixels Compared to State-of-the-Art Superpixel Methods", TPAMI 2012) run on
  the clip as **one 3-D volume** (``skimage.segmentation.slic`` with ``channel_axis``):
  a supervoxel follows an object through the frames as long as its colour and position
  stay close. The normalised clip is mapped to [0, 1] by its own minimum and maximum
  (one affine map for every channel) and, when it has 3 channels, taken to CIELAB by
  scikit-image (its default for colour images, on which its default compactness of 10 is
  calibrated). The extra ``saliency-tubes[blackbox]`` installs scikit-image.
* ``"grid"``: a regular space-time grid of ``cells`` (t, h, w) cells, the cell of voxel
  ``i`` along an axis of length ``n`` being ``floor(i g / n)`` (the deletion metric's grid:
  :func:`saliency_tubes.metrics.faithfulness.grid_cells`). Needs nothing beyond torch.

Labels are (T, H, W) int64, numbered 0 .. M-1 with every number used (captum's features).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import InputError, missing_extra

__all__ = ["SEGMENTATIONS", "check_segmentation", "missing_skimage", "supervoxels"]

SEGMENTATIONS: tuple[str, ...] = ("slic", "grid")
"""How a clip is cut into features: SLIC supervoxels, or a regular space-time grid."""


def missing_skimage(method: str) -> InputError:
    """The one line that says how to install scikit-image."""
    return missing_extra(
        f"--method {method} with segments='slic'",
        "scikit-image",
        "blackbox",
        "or use segments='grid'",
    )


def _slic(method: str) -> Any:
    try:
        from skimage.segmentation import slic
    except ImportError:
        raise missing_skimage(method) from None
    return slic


def check_segmentation(segments: Any, n_segments: Any, compactness: Any) -> None:
    """One line per wrong option of :func:`supervoxels`."""
    if segments not in SEGMENTATIONS:
        raise InputError(
            f"expected segments one of {', '.join(SEGMENTATIONS)}, but got {segments!r}"
        )
    if isinstance(n_segments, bool) or not isinstance(n_segments, int) or n_segments < 1:
        raise InputError(f"expected n_segments to be a positive int, but got {n_segments!r}")
    if (
        isinstance(compactness, bool)
        or not isinstance(compactness, (int, float))
        or not np.isfinite(compactness)
        or compactness <= 0
    ):
        raise InputError(f"expected compactness to be a positive number, but got {compactness!r}")


def _consecutive(labels: np.ndarray) -> torch.Tensor:
    _, inverse = np.unique(labels, return_inverse=True)
    return torch.from_numpy(inverse.reshape(labels.shape).astype(np.int64))


def supervoxels(
    clip: torch.Tensor,
    segments: str = "slic",
    *,
    n_segments: int = 100,
    compactness: float = 10.0,
    cells: tuple[int, int, int] = (4, 7, 7),
    method: str = "lime",
) -> torch.Tensor:
    """The (T, H, W) int64 feature labels of one (C, T, H, W) clip.

    Args:
        clip: one normalised clip (any device; segmented on the CPU).
        segments: ``"slic"`` or ``"grid"`` (see the module docstring).
        n_segments: SLIC's number of segments asked for (it returns about that many).
        compactness: SLIC's balance of colour against position (higher: more cubic).
        cells: the grid's cells along (T, H, W), each at most the clip's length.
        method: the method's name, for the error line when scikit-image is missing.

    Returns:
        Labels 0 .. M-1, every one used, on the clip's device.
    """
    check_segmentation(segments, n_segments, compactness)
    size = tuple(int(s) for s in clip.shape[1:])
    if segments == "grid":
        from ..metrics.faithfulness import grid_cells  # not at import: metrics imports methods

        grid = tuple(min(c, s) for c, s in zip(cells, size, strict=True))
        labels = grid_cells(size, grid)  # type: ignore[arg-type]
        return _consecutive(labels.numpy()).to(clip.device)
    slic = _slic(method)
    volume = clip.detach().float().cpu().permute(1, 2, 3, 0).numpy().astype(np.float64)
    low, high = volume.min(), volume.max()
    volume = (volume - low) / (high - low) if high > low else np.zeros_like(volume)
    labels = slic(
        volume,
        n_segments=n_segments,
        compactness=float(compactness),
        channel_axis=-1,
        convert2lab=volume.shape[-1] == 3,
        start_label=0,
    )
    found = _consecutive(np.asarray(labels))
    if int(found.max()) < 1:
        raise InputError(
            f"expected SLIC to cut the clip into several supervoxels, but it found one (asked "
            f"for {n_segments}: the clip is noise-like or flat); raise n_segments, lower "
            "compactness or use segments='grid'"
        )
    return found.to(clip.device)
