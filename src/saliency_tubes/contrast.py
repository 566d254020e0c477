r"""Contrastive tubes between classes: "why A and not B" (drawn by :func:`saliency_tubes.render.contrast_frame`).

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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from .errors import ClassSelectionError, InputError
from .methods import Tubes
from .normalise import by_magnitude
from .splines import upsample

__all__ = ["Contrast", "contrastive_tube"]


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
        maps = by_magnitude(up, scale.view(-1, 1, 1, 1))
    return Contrast(
        maps=maps,
        raw=raw,
        scale=scale,
        a=index_a,
        b=index_b,
        names=(name_a, name_b),
        on=on,
    )
