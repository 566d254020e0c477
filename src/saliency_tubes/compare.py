r"""Comparing tubes: contrastive tubes between classes, and numbers to compare tubes by.

**Contrastive tube** ("why A and not B"). Taken on the **raw** class activations by
default: for the paper's tube (CAM) with a global-average-pool + linear head the raw map of
class ``i`` is :math:`M_i = \sum_j w_{ij} \alpha_j` (Stergiou et al., ICIP 2019), so

.. math:: M_A - M_B = \sum_j (w_{Aj} - w_{Bj})\, \alpha_j

is exactly the tube of the logit difference :math:`z_A - z_B`, i.e. of the log-odds
:math:`\log(p_A / p_B)` that softmax assigns: its space-time mean is
:math:`(z_A - b_A) - (z_B - b_B)`. Every voxel reads as evidence for A over B (positive) or
for B over A (negative) on one common scale. The difference of the *normalised* maps has no
such meaning: min-max normalisation stretches each class's tube to ``[0, 1]`` on its own,
so a class with weak, flat evidence looks as strong as a confident one, and zero is not
"no preference". The raw difference is upsampled like a tube and divided by its largest
magnitude, giving ``[-1, 1]`` with 0 kept at "no preference" (shown with a diverging colour
map, white at 0). ``on="maps"`` gives the plain difference of the normalised maps when
only the *places* each class attends to matter. With Grad-CAM (ReLU on by default) the raw
maps are positive evidence only, and the difference compares those.

**Tube statistics** (:func:`tube_stats`), on a normalised tube ``s`` in ``[0, 1]`` (NaN where
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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from . import render
from .errors import ClassSelectionError, InputError
from .methods import Tubes
from .upsample import upsample

__all__ = [
    "DIVERGING",
    "STATS_THRESHOLD",
    "Contrast",
    "StatsBuilder",
    "TubeStats",
    "contrast_frame",
    "contrast_legend",
    "contrastive_tube",
    "tube_stats",
]

#: Diverging colour map of contrastive tubes: blue (B) - white (0) - red (A).
DIVERGING = "RdBu_r"

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
class Contrast:
    """A contrastive tube: where the model prefers class A over class B.

    Attributes:
        maps: ``(N, T, H, W)`` in ``[-1, 1]``: positive where the evidence favours A,
            negative where it favours B.
        raw: ``(N, T', H', W')`` the raw difference ``raw_A - raw_B`` on the layer's grid.
        scale: ``(N,)`` what ``maps`` was divided by (the largest ``|difference|`` after
            upsampling for ``on="raw"``; 1 for ``on="maps"``).
        a: ``(N,)`` class index of A; ``b`` likewise.
        b: ``(N,)`` class index of B.
        names: ``(name of A, name of B)`` (indices as strings when names are unknown).
        on: ``"raw"`` or ``"maps"``.
    """

    maps: torch.Tensor
    raw: torch.Tensor
    scale: torch.Tensor
    a: torch.Tensor
    b: torch.Tensor
    names: tuple[str, str]
    on: str


def _position(tubes: Tubes, item: int | str) -> tuple[torch.Tensor, str]:
    """Per sample, the position among ``tubes.classes`` of a class given by index or name."""
    categories = tubes.categories
    if isinstance(item, bool):
        raise ClassSelectionError(f"expected a class index or name, but got {item!r}")
    if isinstance(item, str) and item.strip().lstrip("-").isdigit():
        item = int(item)
    if isinstance(item, str):
        lookup = {n.lower(): i for i, n in enumerate(categories or ())}
        if item.strip().lower() not in lookup:
            known = ", ".join(repr(n) for n in (categories or ())[:8]) or "none (no categories)"
            raise ClassSelectionError(
                f"unknown class name {item!r}; expected one of the model's names ({known})"
            )
        index = lookup[item.strip().lower()]
    elif isinstance(item, int):
        index = item
    else:
        raise ClassSelectionError(
            f"expected a class index (int) or name (str), but got {type(item).__name__}"
        )
    match = tubes.classes == index  # (N, K)
    if not bool(match.any(dim=1).all()):
        have = sorted({int(c) for c in tubes.classes.flatten().tolist()})
        raise ClassSelectionError(
            f"class {item!r} (index {index}) was not explained in every sample (explained: "
            f"{have}); expected it among the classes: explain it too, e.g. classes=[..., {index}]"
        )
    name = categories[index] if categories and 0 <= index < len(categories) else str(index)
    return match.int().argmax(dim=1), name


def contrastive_tube(
    tubes: Tubes,
    a: int | str,
    b: int | str,
    *,
    on: Literal["raw", "maps"] = "raw",
    interpolation: str = "cubic",
    align: str = "corners",
) -> Contrast:
    """The contrastive tube of class ``a`` against class ``b`` ("why A and not B").

    ``on="raw"`` (default, see the module docstring for why):

    .. math:: D = \\operatorname{up}(\\text{raw}_A - \\text{raw}_B), \\qquad
              \\text{maps} = D / \\max |D|

    (all zeros when ``D`` is). ``on="maps"``: ``maps = maps_A - maps_B``, each already
    min-max normalised, so in ``[-1, 1]`` with no rescaling.

    Args:
        tubes: An explainer's output that explained both classes (e.g.
            ``explainer(clip, classes=["take", "wash"])``).
        a: Class A, by index (into the model's classes) or name.
        b: Class B, likewise; must differ from A.
        on: ``"raw"`` or ``"maps"``.
        interpolation: Spline mode used to upsample the raw difference (use the
            explainer's: ``"cubic"`` by default).
        align: ``"corners"`` or ``"centers"`` (the explainer's).

    Returns:
        The :class:`Contrast`.

    Raises:
        ClassSelectionError: A class is unknown or was not explained.
        InputError: ``a`` and ``b`` are the same class, or ``on`` is unknown.
    """
    if on not in ("raw", "maps"):
        raise InputError(f"expected on='raw' or on='maps', but got {on!r}; pick one")
    ka, name_a = _position(tubes, a)
    kb, name_b = _position(tubes, b)
    rows = torch.arange(tubes.classes.shape[0], device=tubes.classes.device)
    index_a, index_b = tubes.classes[rows, ka], tubes.classes[rows, kb]
    if bool((index_a == index_b).any()):
        raise InputError(
            f"expected two different classes for a contrast, but got {a!r} and {b!r} "
            f"(both class {int(index_a[0])}); pick a second class"
        )
    raw = tubes.raw[rows, ka] - tubes.raw[rows, kb]  # (N, T', H', W')
    if on == "maps":
        maps = tubes.maps[rows, ka] - tubes.maps[rows, kb]
        scale = torch.ones(maps.shape[0], dtype=maps.dtype, device=maps.device)
    else:
        t, h, w = (int(v) for v in tubes.maps.shape[-3:])
        size = (t, h, w)
        up = raw
        if tuple(raw.shape[-3:]) != size:
            up = upsample(raw.unsqueeze(1), size, mode=interpolation, align=align)[:, 0]
        scale = up.abs().flatten(1).amax(dim=1)
        safe = torch.where(scale > 0, scale, torch.ones_like(scale)).view(-1, 1, 1, 1)
        maps = torch.where(scale.view(-1, 1, 1, 1) > 0, up / safe, torch.zeros_like(up))
    return Contrast(
        maps=maps,
        raw=raw,
        scale=scale,
        a=index_a,
        b=index_b,
        names=(name_a, name_b),
        on=on,
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
        s = np.asarray(saliency, dtype=np.float64)
        if s.ndim != 2:
            raise InputError(f"expected one (H, W) saliency map, but got shape {s.shape}")
        seen = ~np.isnan(s)
        self._seen += int(seen.sum())
        self._above += int((s[seen] > self.threshold).sum())
        w = np.where(seen, np.clip(s - self.threshold, 0.0, None), 0.0)
        mass = float(w.sum())
        if mass <= 0:
            return
        u, v = self._grid(s.shape)
        wy, wx = w.sum(axis=1), w.sum(axis=0)  # marginals: weights per row and per column
        for marginal, coord, attr in ((wy, u, "_var_y"), (wx, v, "_var_x")):
            centre = float((marginal * coord).sum() / mass)
            setattr(
                self, attr, getattr(self, attr) + float((marginal * (coord - centre) ** 2).sum())
            )
        self._mass += mass

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


# --------------------------------------------------------------------------------------
# Drawing contrastive tubes
# --------------------------------------------------------------------------------------


def contrast_frame(
    frame: np.ndarray,
    contrast: np.ndarray,
    *,
    colormap: str = DIVERGING,
    opacity: float = 0.7,
) -> np.ndarray:
    """Draw a signed contrast map over a frame with a diverging colour map.

    .. math:: a = \\alpha\\,|c|, \\qquad \\text{out} = \\operatorname{round}\\big((1 - a)\\,F
              + a\\, C[\\operatorname{round}(255 (c + 1) / 2)]\\big)

    so "no preference" (``c = 0``) leaves the frame as it is and the colour grows with the
    preference (red for A, blue for B with the default ``RdBu_r``). Unseen pixels (NaN) are
    marked as in :func:`saliency_tubes.render.mark_unseen` over the greyscale frame.

    Args:
        frame: ``(H, W, 3)`` uint8 RGB.
        contrast: ``(H, W)`` in ``[-1, 1]``, NaN where unseen.
        colormap: A diverging matplotlib colour map.
        opacity: ``alpha``, the colour's weight at ``|c| = 1``.

    Returns:
        ``(H, W, 3)`` uint8.
    """
    f = np.asarray(frame)
    c = np.asarray(contrast, dtype=np.float32)
    if f.ndim != 3 or f.shape[2] != 3 or f.dtype != np.uint8 or c.shape != f.shape[:2]:
        raise InputError(
            f"expected an (H, W, 3) uint8 frame and an (H, W) contrast, but got "
            f"{f.shape} {f.dtype} and {c.shape}; map the tube onto the frame first"
        )
    if not 0.0 <= opacity <= 1.0:
        raise InputError(f"expected opacity in [0, 1], but got {opacity!r}")
    unseen = np.isnan(c)
    c = np.clip(np.nan_to_num(c, nan=0.0), -1.0, 1.0)
    lut = render.colormap(colormap)
    colour = lut[np.rint((c + 1.0) * 127.5).astype(np.intp)].astype(np.float32)
    a = (opacity * np.abs(c))[..., None]
    out = f.astype(np.float32) * (1.0 - a) + colour * a
    if unseen.any():
        grey = np.repeat(render.luma(f)[..., None], 3, axis=2)
        out[unseen] = render.mark_unseen(grey, unseen)[unseen]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def contrast_legend(
    width: int, names: Sequence[str], *, colormap: str = DIVERGING, height: int | None = None
) -> np.ndarray:
    """The colour bar of a contrastive tube with its labels, to put under the frame.

    A horizontal bar from -1 (left, class B) through 0 (white) to +1 (right, class A),
    above a text row ``"-1  B"``, ``"0"``, ``"A  +1"``.

    Args:
        width: Pixels (the frame's width).
        names: ``(A, B)``.
        colormap: The map used by :func:`contrast_frame`.
        height: Total pixels; default ``clip(width / 12, 24, 48)``.

    Returns:
        ``(height, width, 3)`` uint8.
    """
    a, b = names
    total = int(height) if height is not None else int(np.clip(width // 12, 24, 48))
    bar_h = max(4, total // 3)
    bar = render.colorbar(width, bar_h, colormap, vertical=False)
    text_h = total - bar_h
    size = max(8, int(text_h * 0.7))
    try:
        font: ImageFont.FreeTypeFont | ImageFont.ImageFont = ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # old Pillow or no FreeType
        font = ImageFont.load_default()
    label = Image.new("RGB", (width, max(text_h, 1)), (0, 0, 0))
    draw = ImageDraw.Draw(label)
    y = max(0, (text_h - size) // 2 - 1)
    right = f"{a}  +1"
    draw.text((2, y), f"-1  {b}", font=font, fill=(255, 255, 255))
    draw.text(
        ((width - draw.textlength("0", font=font)) / 2, y), "0", font=font, fill=(255, 255, 255)
    )
    draw.text(
        (width - 2 - draw.textlength(right, font=font), y), right, font=font, fill=(255, 255, 255)
    )
    return np.concatenate([bar, np.asarray(label, dtype=np.uint8)], axis=0)
