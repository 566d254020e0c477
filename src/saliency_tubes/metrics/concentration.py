r"""How concentrated a tube is: numbers to compare tubes (and models) by.

The statistics (:func:`tube_stats`) are taken on a normalised tube ``s`` in ``[0, 1]`` (NaN where
unseen) over frames ``t`` of size ``H x W``:

* ``fraction_above``: the share of seen voxels with ``s > 0.5``;
* ``spread``: how far the salient part lies from its centre, in fractions of the frame
  size: the root-mean-square distance of pixels from their own frame's centroid, weighted
  by the saliency *above* the threshold, :math:`w = \max(s - 0.5, 0)`. With
  ``u = (y + 0.5) / H``, ``v = (x + 0.5) / W`` and frame centroids
  :math:`(\bar u_t, \bar v_t)` weighted by ``w``,

  .. math:: \sigma_y^2 = \frac{\sum_{t, y, x} w\, (u - \bar u_t)^2}{\sum_{t, y, x} w},
            \quad \sigma_x^2 \text{ alike}, \quad \text{spread} = \sqrt{\sigma_y^2 +
            \sigma_x^2}.

  Centroids are per frame so that a moving object does not count as spread. A single
  salient pixel (or blob shrinking to one) gives 0; a tube at 1 over the whole frame gives
  ``sqrt(1/6) = 0.408``. Weighting by ``s`` itself would let the low background dominate:
  min-max normalisation leaves most of the frame at 0.1-0.3, and on the demo clip the
  tiny-actions tube measured 0.34 that way (0.41 is "uniform") whatever its hot spot.

Smaller values of both mean a tighter tube (the slides' "deeper nets give more specific
regions"). Both depend on the min-max normalisation (each tube spans ``[0, 1]``) and on
the pixels the model saw: compare models on the same source frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import InputError

__all__ = ["DEFINITION", "STATS_THRESHOLD", "StatsBuilder", "TubeStats", "tube_stats"]

#: The saliency level of :attr:`TubeStats.fraction_above`.
STATS_THRESHOLD = 0.5

#: One line describing the statistics, stored in manifests.
DEFINITION = (
    "fraction_above: share of seen voxels of the normalised tube above 0.5; spread: RMS "
    "distance of pixels from their frame's centroid weighted by max(s - 0.5, 0), in "
    "fractions of the frame (y / H, x / W), spread = sqrt(spread_y^2 + spread_x^2); "
    "a tube at 1 everywhere gives 0.408, a single pixel 0"
)


@dataclass(frozen=True)
class TubeStats:
    """How concentrated a tube is (definitions in the module docstring).

    Attributes:
        fraction_above: Share of seen voxels with saliency above ``threshold``.
        spread: ``sqrt(spread_y**2 + spread_x**2)``, fractions of the frame.
        spread_y: Standard deviation of ``y / H`` around each frame's centroid, weighted by
            ``max(s - threshold, 0)``.
        spread_x: The same for ``x / W``.
        threshold: The level of ``fraction_above`` (0.5).
        voxels: Seen voxels counted.
    """

    fraction_above: float
    spread: float
    spread_y: float
    spread_x: float
    threshold: float
    voxels: int

    def to_dict(self, decimals: int = 4) -> dict[str, Any]:
        """JSON-ready values, rounded."""
        return {
            "fraction_above": round(self.fraction_above, decimals),
            "threshold": self.threshold,
            "spread": round(self.spread, decimals),
            "spread_y": round(self.spread_y, decimals),
            "spread_x": round(self.spread_x, decimals),
            "voxels": self.voxels,
        }


class StatsBuilder:
    """Accumulates :class:`TubeStats` one frame at a time (for streamed videos)."""

    def __init__(self, threshold: float = STATS_THRESHOLD) -> None:
        self.threshold = float(threshold)
        self._seen = 0
        self._above = 0
        self._mass = 0.0
        self._var_y = 0.0  # sum over frames of the s-weighted squared deviations
        self._var_x = 0.0
        self._grids: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def add(self, saliency: np.ndarray | torch.Tensor) -> None:
        """Add the next frame's ``(H, W)`` map (NaN where unseen)."""
        if isinstance(saliency, torch.Tensor):
            saliency = saliency.detach().cpu().numpy()
        s = np.asarray(saliency)
        if s.ndim != 2:
            raise InputError(f"expected one (H, W) saliency map, but got shape {s.shape}")
        self.add_frames(s[None])

    def add_frames(self, saliency: np.ndarray) -> None:
        """Add the next frames' ``(n, H, W)`` maps at once (NaN where unseen)."""
        s = np.asarray(saliency)
        if s.dtype != np.float32:
            s = s.astype(np.float64)
        if s.ndim != 3:
            raise InputError(f"expected (n, H, W) saliency maps, but got shape {s.shape}")
        # exact in float32 too: s - 0.5 is exact for s in [0.25, 1], and clipped below
        w = s - s.dtype.type(self.threshold)
        np.maximum(w, 0, out=w)  # NaN where unseen
        # marginals: weights per row and per column, summed in float64
        wy = w.sum(axis=2, dtype=np.float64)
        if np.isfinite(wy).all():  # no NaN (maps on a clip's grid: every cell seen)
            self._seen += s.size
            self._above += int(np.count_nonzero(w))
        else:  # a NaN (or an infinity) makes its row's sum NaN (or infinite)
            seen = ~np.isnan(s)
            self._seen += int(seen.sum())
            self._above += int((s[seen] > self.threshold).sum())
            w[~seen] = 0.0
            wy = w.sum(axis=2, dtype=np.float64)
        wx = w.sum(axis=1, dtype=np.float64)
        mass = wy.sum(axis=1)
        keep = mass > 0
        if not keep.any():
            return
        u, v = self._grid(s.shape[1:])
        wy, wx, mass = wy[keep], wx[keep], mass[keep]
        for marginal, coord, attr in ((wy, u, "_var_y"), (wx, v, "_var_x")):
            centre = (marginal * coord).sum(axis=1) / mass
            spread = (marginal * (coord[None] - centre[:, None]) ** 2).sum(axis=1)
            setattr(self, attr, getattr(self, attr) + float(spread.sum()))
        self._mass += float(mass.sum())

    def _grid(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        h, w = int(shape[0]), int(shape[1])
        if (h, w) not in self._grids:
            self._grids[(h, w)] = ((np.arange(h) + 0.5) / h, (np.arange(w) + 0.5) / w)
        return self._grids[(h, w)]

    def build(self) -> TubeStats:
        """The statistics of the frames added so far."""
        sy = float(np.sqrt(self._var_y / self._mass)) if self._mass > 0 else 0.0
        sx = float(np.sqrt(self._var_x / self._mass)) if self._mass > 0 else 0.0
        return TubeStats(
            fraction_above=self._above / self._seen if self._seen else 0.0,
            spread=float(np.hypot(sy, sx)),
            spread_y=sy,
            spread_x=sx,
            threshold=self.threshold,
            voxels=self._seen,
        )


def tube_stats(tube: np.ndarray | torch.Tensor, threshold: float = STATS_THRESHOLD) -> TubeStats:
    """:class:`TubeStats` of one ``(T, H, W)`` normalised tube (NaN where unseen).

    Args:
        tube: e.g. ``tubes.maps[n, k]`` or a tube mapped onto source frames.
        threshold: The level of ``fraction_above``.

    Raises:
        InputError: ``tube`` is not 3-D.
    """
    t = tube.detach().cpu().numpy() if isinstance(tube, torch.Tensor) else np.asarray(tube)
    if t.ndim != 3:
        raise InputError(
            f"expected a (T, H, W) tube, but got shape {t.shape}; pass one class's "
            "tube, e.g. tubes.maps[0, 0]"
        )
    builder = StatsBuilder(threshold)
    for frame in t:
        builder.add(frame)
    return builder.build()
