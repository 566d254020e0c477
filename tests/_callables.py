"""Factories for ``--model module:factory`` that return plain callables (no ``nn.Module``):
the embedded tiny-actions network behind a function, as a scripted, exported or remote
model would be."""

from __future__ import annotations

from collections.abc import Callable

import torch

from saliency_tubes.zoo import load_model


def tiny_function(num_classes: int | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """tiny-actions' scores behind a function (the network in eval mode, no gradients)."""
    net = load_model("tiny-actions").model.eval()

    def scores(clip: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return net(clip)

    return scores


def not_a_model(num_classes: int | None = None) -> int:
    """A factory that returns something that is neither a module nor callable."""
    return 42


def quadrants(num_classes: int | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """A cheap model of known evidence: class k's score is 20 times the mean |value| of the
    clip's k-th spatial quadrant (top-left, top-right, bottom-left, bottom-right) over all
    channels and frames. Hiding a quadrant (the zeros substrate) can only lower its class's
    score, so a black-box tube of class k must be highest on quadrant k."""
    del num_classes

    def scores(clip: torch.Tensor) -> torch.Tensor:
        h, w = clip.shape[-2] // 2, clip.shape[-1] // 2
        parts = [clip[..., :h, :w], clip[..., :h, w:], clip[..., h:, :w], clip[..., h:, w:]]
        return 20 * torch.stack([p.abs().mean(dim=(1, 2, 3, 4)) for p in parts], dim=1)

    return scores
