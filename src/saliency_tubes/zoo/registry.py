"""A registry of model adapters: what an explainer needs to know about a network.

An adapter names the builder, the target layer and the classifier, the preprocessing
preset (frames, input size, resize mode, mean/std) and the class names. Names are
unique: registering one twice is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from ..errors import ModelLoadError
from ..tokens import Reshape
from ..video import Preprocess


@dataclass(frozen=True)
class Preset:
    """How clips are sampled and preprocessed for a model.

    Attributes:
        frames: clip length T the model expects.
        size: (H, W) of the model's input.
        resize: "short_side" (short-side resize to min(size), centre crop) or "full"
            (whole frame resized to ``size``).
        mean, std: per-channel normalisation of pixels scaled to [0, 1].
        resize_to: for "short_side", the short side before the centre crop (torchvision's
            "resize 128, crop 112"); None: just large enough to cover ``size``.
    """

    frames: int = 16
    size: tuple[int, int] = (112, 112)
    resize: Literal["short_side", "full"] = "short_side"
    mean: tuple[float, float, float] = (0.43216, 0.394666, 0.37645)
    std: tuple[float, float, float] = (0.22803, 0.22145, 0.216989)
    resize_to: int | None = None

    @classmethod
    def centre_crop(
        cls,
        frames: int,
        crop: int,
        short_side: int,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
    ) -> Preset:
        """``frames`` frames, resized to a short side of ``short_side``, centre-cropped to
        ``crop`` x ``crop`` and normalised with ``mean`` and ``std`` (the torchvision and
        pytorchvideo training recipe)."""
        return cls(
            frames=frames,
            size=(crop, crop),
            resize="short_side",
            resize_to=short_side,
            mean=mean,
            std=std,
        )

    def preprocess(self) -> Preprocess:
        """The :class:`~saliency_tubes.video.Preprocess` that turns frames into this model's clips."""
        return Preprocess(
            size=self.size,
            resize=self.resize,
            mean=self.mean,
            std=self.std,
            resize_to=self.resize_to,
        )


@dataclass(frozen=True)
class ModelAdapter:
    """Everything the explainers and the CLI need to use a model by name."""

    name: str
    builder: Callable[..., nn.Module]
    """Builds the model: ``builder(pretrained=..., num_classes=..., weights=...)``, where
    ``pretrained`` asks for the adapter's ``default_weights``, ``num_classes`` for the
    head's size (None: the weights' or the architecture's own) and ``weights`` (only
    with ``weight_names``) for named weights to fetch."""
    layer: str | tuple[str, ...] | None
    classifier: str | None
    preset: Preset
    categories: tuple[str, ...] | None = None
    description: str = ""
    caveat: str | None = None
    """What the model's outputs do not mean, said in every caption and the manifest (the
    embedded model knows only its 8 synthetic motion classes)."""
    default_weights: str | None = None
    num_classes: int | None = None
    extra: dict[str, object] = field(default_factory=dict)
    reshape: Reshape | None = None
    """Turns the layer's output into (N, C, T', H', W') (tokens, channels-last stages)."""
    inputs: Callable[[torch.Tensor], Any] | None = None
    """Builds the model's input from the (N, C, T, H, W) clip (SlowFast's pathways)."""
    pooled_head: Callable[[nn.Module], Callable[[torch.Tensor], torch.Tensor]] | None = None
    """Given the built model, the map from pooled layer features to scores (X3D)."""
    default_method: str = "cam"
    """The method this model is explained with by default ("gradcam" without a linear head)."""
    cam_exact: bool = True
    """Whether the class score is exactly the CAM tube's mean plus a constant (then CAM
    equals normalised Grad-CAM): global average pooling and a linear (or piecewise-linear)
    head after the target layer."""
    weight_names: Callable[[str], str | None] | None = None
    """Resolves a weights *name* given instead of a path (torchvision's "kinetics400") to
    the canonical name passed to ``builder(weights=...)``, which fetches them; None for a
    string that is no such name. An existing file of that name is always a checkpoint."""
    from_folder: Callable[[Path], ModelAdapter] | None = None
    """For weights given as a *folder* (a Hugging Face ``save_pretrained`` folder): the
    adapter of the model in that folder (its own config decides the sizes, the token grid,
    the preset and the class names; its builder loads the folder). None: folders are not
    weights for this adapter."""


_REGISTRY: dict[str, ModelAdapter] = {}


def register(adapter: ModelAdapter) -> ModelAdapter:
    """Add an adapter; a name that is already taken is refused."""
    if adapter.name in _REGISTRY:
        raise ValueError(f"a model named {adapter.name!r} is already registered; pick another name")
    _REGISTRY[adapter.name] = adapter
    return adapter


def available_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_REGISTRY)


#: A name's prefix -> what makes the adapter of such a name (``hf:DIR``: the Hugging Face
#: model saved in folder DIR; registered by :mod:`saliency_tubes.zoo` at import).
_PREFIXES: dict[str, Callable[[str], ModelAdapter]] = {}


def register_prefix(prefix: str, make: Callable[[str], ModelAdapter]) -> None:
    """Names that start with ``prefix`` (and are not registered themselves) get their adapter
    from ``make(name)`` (``"hf:"``: a Hugging Face model folder read from its JSON files)."""
    _PREFIXES[prefix] = make


def get_adapter(name: str) -> ModelAdapter:
    """The adapter registered under ``name``; for a name with a registered prefix
    (``"hf:DIR"``), the adapter made for it (the Hugging Face model saved in DIR, read from its
    ``config.json``; transformers is imported only when the model is built)."""
    for prefix, make in _PREFIXES.items():
        if name.startswith(prefix) and name not in _REGISTRY:
            return make(name)
    if name not in _REGISTRY:
        import difflib

        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
        hint = (
            f"did you mean {', '.join(close)}?"
            if close
            else f"known: {', '.join(available_models())}"
        )
        raise ModelLoadError(
            f"unknown model {name!r}; {hint} (or pass a factory as 'module.path:function')"
        )
    return _REGISTRY[name]


def names_a_factory(name: str) -> bool:
    """Whether ``name`` is a ``module:factory`` spec rather than a registered model or a
    registered prefix's name (``hf:DIR``)."""
    return ":" in name and name not in _REGISTRY and not name.startswith(tuple(_PREFIXES))
