"""A plain callable as a model: for the methods that only run the model (RISE, LIME,
Kernel SHAP, occlusion), which need no layer, no head and no gradient.

A scripted or exported model, an ensemble or a model behind a function is given as any
``fn(clip) -> scores`` with ``clip`` an (N, C, T, H, W) float tensor and ``scores`` an
(N, num_classes) tensor (or what :func:`~saliency_tubes.methods.base.logits_of` reads: the
first of a tuple, a dict's ``"logits"``). :class:`FunctionModel` wraps it in an
``nn.Module`` with no parameters, so that everything built for modules (the model's lock,
the state guarantees, the forward counters) applies unchanged; the function itself is
never changed. The library cannot put a plain function in eval mode: a function that
wraps a network should call it in eval mode itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .errors import InputError

__all__ = ["FunctionModel", "as_module", "check_class_count"]


class FunctionModel(nn.Module):
    """``fn`` as an ``nn.Module``: ``forward(x)`` returns ``fn(x)``.

    Attributes:
        fn: the callable.
        num_classes: the number of class scores ``fn`` returns, when given (checked on
            every call by the explainers, see :func:`check_class_count`).
    """

    def __init__(self, fn: Callable[[torch.Tensor], Any], num_classes: int | None = None) -> None:
        super().__init__()
        if isinstance(fn, nn.Module) or not callable(fn):
            raise TypeError(
                f"expected a plain callable (not an nn.Module), but got {type(fn).__name__}"
            )
        self.fn = fn
        self.num_classes = _count(num_classes)

    def forward(self, x: torch.Tensor) -> Any:
        return self.fn(x)

    def extra_repr(self) -> str:
        name = getattr(self.fn, "__qualname__", type(self.fn).__name__)
        return f"fn={name}, num_classes={self.num_classes}"


def _count(num_classes: Any) -> int | None:
    if num_classes is None:
        return None
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise InputError(
            f"expected classes (the model's number of class scores) as a positive int, but "
            f"got {num_classes!r}"
        )
    return num_classes


def as_module(model: Any, num_classes: int | None = None) -> nn.Module:
    """``model`` itself when it is an ``nn.Module``, else the callable wrapped in a
    :class:`FunctionModel` (told ``num_classes``); a :class:`TypeError` for anything else."""
    if isinstance(model, nn.Module):
        return model
    if not callable(model):
        raise TypeError(
            f"expected a torch.nn.Module or a callable clip -> scores, but got "
            f"{type(model).__name__}"
        )
    return FunctionModel(model, num_classes)


def check_class_count(expected: int | None, logits: torch.Tensor, what: str = "the model") -> None:
    """One :class:`InputError` line when ``logits`` has not ``expected`` class scores."""
    if expected is not None and logits.shape[1] != expected:
        raise InputError(
            f"expected {what} to return {expected} class scores per clip (classes={expected}), "
            f"but got {logits.shape[1]}; give classes= the model's number of classes"
        )
