"""Loading a model by name, factory or checkpoint: :func:`load_model` builds it from its adapter
(or a ``module:factory``), loads the weights it is given, says where they came from, and
returns a :class:`LoadedModel` (the model with its preset, classes and explainer)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..callables import FunctionModel
from ..errors import ModelLoadError, first_line
from ..hooks import head_out_features, is_head
from ..vocabulary import ATTENTION_METHODS, INPUT_METHODS
from .checkpoints import load_weights, read_categories
from .registry import ModelAdapter, Preset, get_adapter, names_a_factory

if TYPE_CHECKING:
    from ..methods import Explainer

WEIGHTS_SOURCES = ("shipped", "file", "download", "random", "factory")
"""Where a :class:`LoadedModel`'s weights came from (:attr:`LoadedModel.weights_source`)."""


@dataclass
class LoadedModel:
    """A ready network with what is known about it.

    Attributes:
        model: the network, in eval mode.
        name: the registered name or the ``"module:factory"`` it was built from.
        layer, classifier: the target layer and the head (None: found on the first call).
        preset: how clips are sampled and preprocessed for it.
        categories: class names, when known.
        weights: the weights as the manifests record them (a path, a weights name, the
            shipped weights' description, or None).
        adapter: the registered adapter (None for a factory).
        weights_source: where the weights came from, one of :data:`WEIGHTS_SOURCES`:
            "shipped" (the package's own trained weights), "file" (a checkpoint given),
            "download" (named weights such as "kinetics400"), "random" (a registered
            architecture built without weights: its explanations mean nothing) or
            "factory" (a model built by the caller's own code: its weights are the
            factory's business).
    """

    model: nn.Module
    name: str
    layer: str | tuple[str, ...] | None
    classifier: str | None
    preset: Preset
    categories: tuple[str, ...] | None
    weights: str | None
    adapter: ModelAdapter | None = None
    weights_source: str = "factory"

    def __post_init__(self) -> None:
        if self.weights_source not in WEIGHTS_SOURCES:
            raise ModelLoadError(
                f"expected weights_source one of {', '.join(WEIGHTS_SOURCES)}, but got "
                f"{self.weights_source!r}"
            )

    @property
    def caveat(self) -> str | None:
        """The adapter's caveat (see :attr:`ModelAdapter.caveat`), if any."""
        return self.adapter.caveat if self.adapter is not None else None

    @property
    def plain_callable(self) -> bool:
        """Whether the model is a plain callable (a factory returned no ``nn.Module``): only
        the methods that just run it apply (:data:`~saliency_tubes.vocabulary.INPUT_METHODS`)."""
        return isinstance(self.model, FunctionModel)

    @property
    def default_method(self) -> str:
        """The method ``auto`` stands for: the adapter's, RISE for a plain callable, else CAM."""
        if self.adapter is not None:
            return self.adapter.default_method
        return "rise" if self.plain_callable else "cam"

    @property
    def inputs(self) -> Callable[[torch.Tensor], Any] | None:
        """The adapter's ``inputs`` (see :attr:`ModelAdapter.inputs`), or None: what a
        forward of :attr:`model` on a clip goes through
        (:func:`~saliency_tubes.methods.inputs.class_scores`)."""
        return self.adapter.inputs if self.adapter is not None else None

    def explainer_options(self, method: str) -> dict[str, Any]:
        """The options of ``method``'s explainer that hold for any copy of :attr:`model` (the
        sanity check's randomised ones): the layer and head by name, and the adapter's
        ``reshape`` (the layer's; the attention methods report on the embeddings' tokens and
        know their grid: MViT's differs from its last stage's) and ``inputs``."""
        options: dict[str, Any] = {"layer": self.layer, "classifier": self.classifier}
        adapter = self.adapter
        if adapter is not None and adapter.reshape is not None and method not in ATTENTION_METHODS:
            options["reshape"] = adapter.reshape
        if self.inputs is not None:
            options["inputs"] = self.inputs
        return options

    def check_method(self, method: str) -> None:
        """One :class:`ModelLoadError` line when ``method`` needs layers that the model lacks
        (a plain callable takes only :data:`~saliency_tubes.vocabulary.INPUT_METHODS`)."""
        if self.plain_callable and method not in INPUT_METHODS:
            raise ModelLoadError(
                f"expected --method {' | '.join(INPUT_METHODS)} for {self.name} (a plain "
                f"callable: no layers to read), but got --method {method}; use --method rise"
            )

    @property
    def random_weights(self) -> bool:
        """Whether the model has freshly initialised (untrained) weights: a registered
        architecture built without any weights."""
        return self.weights_source == "random"

    def explainer(self, method: str = "cam", **options: Any) -> Explainer:
        """An explainer for this model with the adapter's layer, head and class names.

        Args:
            method: a key of :data:`saliency_tubes.METHODS` ("cam", "gradcam", ...,
                "occlusion", "integrated-gradients"; the last two ignore the layer and head).
            **options: passed on to the explainer (``interpolation=``, ``align=``,
                ``top_features=`` ...); they override the adapter's choices.
        """
        from ..methods import METHODS

        if method not in METHODS:
            raise ModelLoadError(f"expected method one of {', '.join(METHODS)}, but got {method!r}")
        self.check_method(method)
        kwargs: dict[str, Any] = {**self.explainer_options(method), "categories": self.categories}
        adapter = self.adapter
        if (
            adapter is not None
            and method == "cam"
            and adapter.default_method != "cam"
            and not adapter.cam_exact
            and adapter.pooled_head is None  # VideoMAE's mean-pooled head: CAM through it
        ):
            raise ModelLoadError(
                f"CAM does not apply to {adapter.name}: its classifier does not read the target "
                f"layer's pooled features; use method {adapter.default_method!r} "
                f"(--method {adapter.default_method})"
            )
        if adapter is not None and adapter.pooled_head is not None and method == "cam":
            kwargs["pooled_head"] = adapter.pooled_head(self.model)
        kwargs.update(options)
        return METHODS[method](self.model, **kwargs)


@dataclass
class _Built:
    """What :func:`load_model` built: the model, its adapter (None for a factory), its
    preset, where its weights came from, the weights name a builder downloaded, and the
    weights file still to load (None once a folder's builder has loaded them)."""

    model: nn.Module
    adapter: ModelAdapter | None
    preset: Preset
    source: str
    named: str | None
    weights: str | Path | None


def _build(name: str, weights: str | Path | None, num_classes: int | None) -> _Built:
    """Build the model of :func:`load_model` from a factory or a registered adapter."""
    if names_a_factory(name):
        model = _from_factory(name, num_classes)
        source = "factory" if weights is None else "file"
        return _Built(model, None, Preset(), source, None, weights)
    adapter = get_adapter(name)
    if adapter.from_folder is not None and weights is not None and Path(weights).is_dir():
        adapter = adapter.from_folder(Path(weights))
        weights = None  # the folder's builder loads them
    kwargs: dict[str, Any] = {"num_classes": num_classes} if num_classes is not None else {}
    named = _weights_name(adapter, weights)
    if named is not None:
        kwargs["weights"] = named
    shipped = weights is None and adapter.default_weights is not None
    model = adapter.builder(pretrained=shipped, **kwargs)
    folder = adapter.extra.get("folder")
    if named is not None:
        source = "download"
    elif weights is not None or folder is not None:
        source = "file"
    else:
        source = "shipped" if shipped else "random"
    return _Built(model, adapter, adapter.preset, source, named, weights)


def load_model(
    name: str,
    *,
    weights: str | Path | None = None,
    num_classes: int | None = None,
    categories: str | Path | tuple[str, ...] | list[str] | None = None,
    allow_pickle: bool = False,
    device: str | torch.device = "cpu",
    layer: str | None = None,
    classifier: str | None = None,
    mean: tuple[float, float, float] | None = None,
    std: tuple[float, float, float] | None = None,
) -> LoadedModel:
    """Build a model by registered name or as ``"module.path:factory"``, load weights.

    Args:
        name: a registered name (see :func:`available_models`), ``"pkg.module:fn"``,
            a function returning an ``nn.Module`` (called with ``num_classes=`` when given),
            or ``"hf:DIR"``, a Hugging Face ``save_pretrained`` folder of a VideoMAE,
            TimeSformer or ViViT video classifier (see :mod:`saliency_tubes.zoo.sources.huggingface`).
        weights: a checkpoint path (.pth/.pt/.safetensors); for registered models that ship
            weights, None means the shipped weights; for adapters with ``weight_names``, a
            weights name such as ``"kinetics400"`` (downloaded by the builder); for adapters
            with ``from_folder`` (the Hugging Face ones), a ``save_pretrained`` folder.
        num_classes: the head's size, when it differs from the adapter's default.
        categories: class names, or a .txt/.json file of them.
        allow_pickle: allow full-pickle checkpoints (only for files you trust).
        device: where the model goes.
        layer, classifier: override the adapter's target layer and head.
        mean, std: override the preset's per-channel normalisation (pixels on the [0, 1]
            scale), for checkpoints trained with other statistics.

    Returns:
        The :class:`LoadedModel`; its ``weights_source`` says where the weights came from
        (``random_weights`` is True for a registered architecture built without any).

    Raises:
        ModelLoadError: an unknown name; a factory that cannot be imported, raises, or
            returns no ``nn.Module``; a checkpoint that cannot be read or does not fit;
            a class-name file that cannot be read, or whose names are not one per class
            of the model's classifier.
    """
    names = _categories(categories)
    built = _build(name, weights, num_classes)
    model, adapter, preset, source = built.model, built.adapter, built.preset, built.source
    named, weights = built.named, built.weights
    if mean is not None or std is not None:
        preset = replace(preset, mean=mean or preset.mean, std=std or preset.std)
        preset.preprocess()  # checks the values: three finite numbers, std > 0
    if weights is not None and isinstance(model, FunctionModel):
        raise ModelLoadError(
            f"expected no weights for {name} (a plain callable has no parameters to load), "
            f"but got {weights}; load them inside the factory"
        )
    if weights is not None and named is None:
        load_weights(model, weights, allow_pickle=allow_pickle)
    model = model.to(device).eval()
    head = classifier or (adapter.classifier if adapter else None)
    if names is not None:
        _check_class_count(names, categories, model, head, num_classes)
    if (
        names is None
        and adapter is not None
        and (num_classes is None or num_classes == adapter.num_classes)
    ):
        names = adapter.categories or getattr(model, "categories", None)
    return LoadedModel(
        model=model,
        name=name,
        layer=layer or (adapter.layer if adapter else None),
        classifier=head,
        preset=preset,
        categories=names,
        weights=_weights_used(adapter, weights, named),
        adapter=adapter,
        weights_source=source,
    )


def _weights_used(
    adapter: ModelAdapter | None, weights: str | Path | None, named: str | None
) -> str | None:
    """What :attr:`LoadedModel.weights` records: the weights name downloaded, the file or
    folder given, the adapter's folder, or its shipped weights (None: random or a factory's)."""
    used = str(weights) if weights is not None else (adapter.default_weights if adapter else None)
    used = named or used
    if adapter is not None and weights is None and adapter.extra.get("folder") is not None:
        used = str(adapter.extra["folder"])
    return used


def _weights_name(adapter: ModelAdapter, weights: str | Path | None) -> str | None:
    if weights is None or adapter.weight_names is None or Path(weights).exists():
        return None
    return adapter.weight_names(str(weights))


def _categories(spec: str | Path | tuple[str, ...] | list[str] | None) -> tuple[str, ...] | None:
    if spec is None:
        return None
    if isinstance(spec, (list, tuple)):
        return tuple(str(s) for s in spec)
    return read_categories(spec)


def _class_count(
    model: nn.Module, classifier: str | None, num_classes: int | None
) -> tuple[int, str] | None:
    """The model's class count and where it was read, when it is known without a forward:
    the named classifier's outputs, else the ``num_classes`` asked for."""
    if classifier is not None:
        head = dict(model.named_modules()).get(classifier)
        if head is not None and is_head(head):
            return head_out_features(head), f"its classifier {classifier!r} has"
    if num_classes is not None:
        return num_classes, "num_classes is"
    return None


def _check_class_count(
    names: tuple[str, ...],
    spec: str | Path | tuple[str, ...] | list[str] | None,
    model: nn.Module,
    classifier: str | None,
    num_classes: int | None,
) -> None:
    """Refuse class names that are not one per class of the model (one line)."""
    known = _class_count(model, classifier, num_classes)
    if known is None or known[0] == len(names):
        return
    count, where = known
    given = f"{spec}" if isinstance(spec, (str, Path)) else "the class names given"
    raise ModelLoadError(
        f"expected {count} class names in {given} (the model has {count} classes: {where} "
        f"{count} outputs), but got {len(names)}; give one name per class, in the order "
        "of the model's outputs"
    )


def _from_factory(spec: str, num_classes: int | None) -> nn.Module:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - an import that fails in any way is one line
        raise ModelLoadError(
            f"could not import {module_name!r} for model factory {spec!r}: "
            f"{type(exc).__name__}: {first_line(exc)}; "
            "expected 'package.module:function' importable from the current environment"
        ) from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ModelLoadError(
            f"expected a callable {attr!r} in module {module_name!r}, but found none"
        )
    try:
        model = factory(num_classes=num_classes) if num_classes is not None else factory()
    except Exception as exc:  # noqa: BLE001 - the user's factory failing is one line
        raise ModelLoadError(
            f"expected factory {spec!r} to build a model, but it raised "
            f"{type(exc).__name__}: {first_line(exc)}; fix the factory or its arguments"
        ) from None
    if not isinstance(model, nn.Module):
        if not callable(model):
            raise ModelLoadError(
                f"expected factory {spec!r} to return an nn.Module or a callable clip -> scores, "
                f"but got {type(model).__name__}; return the model from the factory"
            )
        # Any callable: the black-box methods only run it (saliency_tubes.callables).
        model = FunctionModel(model, num_classes)
    return model
