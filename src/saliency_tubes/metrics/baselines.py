r"""Baseline tubes that never look at the model: what a method has to beat.

Each takes the ``(N, C, T, H, W)`` clips the model sees and returns ``(N, T, H, W)``
float32 tubes in [0, 1], so every metric scores them exactly as it scores an explainer's
``tubes.maps[:, k]``. Because they ignore the model, they keep :math:`\rho = 1` in the
sanity check by construction: they show what failing it looks like.

* ``uniform``: :math:`s = 1` everywhere (no preference; every metric then scores chance).
* ``centre``: the centre prior of saliency benchmarks (Judd, Ehinger, Durand and Torralba,
  "Learning to Predict Where Humans Look", ICCV 2009), constant in time,
  :math:`s(t, y, x) = \exp(-\tfrac{(y - c_y)^2}{2 (\sigma H)^2} - \tfrac{(x - c_x)^2}{2 (\sigma W)^2})`
  with :math:`\sigma = 0.25`.
* ``random``: i.i.d. :math:`U(0, 1)` per voxel from a seeded generator (one draw per clip,
  the same clip gets the same tube).
* ``motion``: frame-difference motion energy, :math:`s(t) = \sum_c (x_{c,t} - x_{c,t-1})^2`
  (frame 0 takes frame 1's), divided by its maximum; the differencing form of the
  motion-energy idea (Adelson and Bergen, "Spatiotemporal Energy Models for the
  Perception of Motion", JOSA A 1985). A strong baseline wherever the class is motion.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..errors import InputError
from ..normalise import by_magnitude
from .faithfulness import gaussian_blur

__all__ = ["BASELINES", "baseline_fn", "centre_gaussian", "motion_energy", "random_tube", "uniform"]


def _check(clip: torch.Tensor) -> torch.Tensor:
    if not isinstance(clip, torch.Tensor) or clip.dim() != 5:
        shape = tuple(clip.shape) if isinstance(clip, torch.Tensor) else type(clip).__name__
        raise InputError(f"expected clips of shape (N, C, T, H, W), but got {shape}")
    return clip.detach().float()


def _unit_max(maps: torch.Tensor) -> torch.Tensor:
    high = maps.flatten(1).amax(1).view(-1, 1, 1, 1)
    return by_magnitude(maps, high)


def uniform(clip: torch.Tensor) -> torch.Tensor:
    """All ones: ``(N, T, H, W)``."""
    x = _check(clip)
    n, _, t, h, w = x.shape
    return torch.ones((n, t, h, w), device=x.device)


def centre_gaussian(clip: torch.Tensor, sigma: float = 0.25) -> torch.Tensor:
    """A Gaussian centred on the frame, ``sigma`` times the height and width; same every frame."""
    x = _check(clip)
    if not sigma > 0:
        raise InputError(f"expected sigma > 0, but got {sigma!r}")
    n, _, t, h, w = x.shape
    yy = (torch.arange(h, device=x.device, dtype=torch.float32) - (h - 1) / 2) / (sigma * h)
    xx = (torch.arange(w, device=x.device, dtype=torch.float32) - (w - 1) / 2) / (sigma * w)
    plane = torch.exp(-0.5 * (yy.view(-1, 1) ** 2 + xx.view(1, -1) ** 2))
    return plane.expand(n, t, h, w).contiguous()


def random_tube(clip: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """I.i.d. uniform noise per voxel, seeded: ``seed`` gives the same tubes every time."""
    x = _check(clip)
    n, _, t, h, w = x.shape
    gen = torch.Generator().manual_seed(int(seed))
    return torch.rand((n, t, h, w), generator=gen).to(x.device)


def motion_energy(clip: torch.Tensor, sigma: float = 0.0) -> torch.Tensor:
    """Squared frame difference summed over channels, optionally blurred in space by ``sigma`` px."""
    x = _check(clip)
    if x.shape[2] < 2:
        raise InputError(f"expected at least 2 frames for frame differences, but got {x.shape[2]}")
    diff = (x[:, :, 1:] - x[:, :, :-1]).pow(2).sum(dim=1)  # (N, T-1, H, W)
    energy = torch.cat([diff[:, :1], diff], dim=1)
    if sigma > 0:
        energy = gaussian_blur(energy.unsqueeze(1), (0.0, sigma, sigma))[:, 0]
    return _unit_max(energy)


BASELINES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "uniform": uniform,
    "centre": centre_gaussian,
    "random": random_tube,
    "motion": motion_energy,
}
"""The baselines by name: ``fn(clips) -> (N, T, H, W)`` tubes."""


def baseline_fn(name: str) -> Callable[[nn.Module, torch.Tensor], torch.Tensor]:
    """A baseline as a ``fn(model, clip)`` (the model is ignored), e.g. for the sanity check."""
    if name not in BASELINES:
        raise InputError(f"expected a baseline among {', '.join(BASELINES)}, but got {name!r}")
    fn = BASELINES[name]

    def saliency(_model: nn.Module, clip: torch.Tensor) -> torch.Tensor:
        return fn(clip)

    return saliency
