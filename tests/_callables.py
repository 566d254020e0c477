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
