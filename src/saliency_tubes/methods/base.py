"""The shared interface of every explainer: one forward, one map per (sample, class).

A method only decides how the raw tube on the layer's grid is computed
(:meth:`Explainer._raw_maps`); validation, layer discovery, class selection, the
model-state guarantees, upsampling and normalisation live here once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass, field
from typing import Any, TypedDict

import torch
from torch import nn

from ..errors import InputError, first_line
from ..hooks import (
    LayerSpec,
    capture_activation,
    find_layer_and_head,
    model_device,
    preserved_state,
    resolve_module,
    trace_calls,
)
from ..normalise import minmax
from ..splines import check_mode, upsample
from ..tokens import Reshape
from .inputs import ClassSpec as ClassSpec  # handed on: imported from here elsewhere
from .inputs import activations, check_outputs
from .inputs import check_batching as check_batching
from .inputs import check_clip as check_clip
from .inputs import logits_of as logits_of
from .inputs import select_classes as select_classes

LayersSpec = LayerSpec | Sequence[str | nn.Module]
Inputs = Callable[[torch.Tensor], Any]
"""``inputs(clip) -> what the model's forward takes`` (e.g. SlowFast's [slow, fast] list)."""


class ExplainerOptions(TypedDict, total=False):
    """The keywords that every explainer takes, typed for ``**options``.

    A method's ``__init__`` names only its own keywords and passes these on unchanged to
    :class:`Explainer`, whose docstring gives their meaning and defaults.
    """

    relu: bool
    interpolation: str
    align: str
    categories: Sequence[str] | None
    eval_mode: bool
    reshape: Reshape | None
    inputs: Inputs | None


@dataclass(frozen=True)
class ForwardPass:
    """What one forward pass gives a method to compute its raw maps from.

    Attributes:
        activations: each target layer's output as captured (a leaf that requires grad
            for the gradient methods; possibly tokens, before ``volume``).
        volume: maps a captured output (or a gradient with respect to it) to
            (N, C, T', H', W').
        logits: (N, num_classes) scores (connected to ``activations`` for gradients).
        classes: (N, K) class indices to explain.
        head: the classifier, when one was found or given.
        clip: the (N, C, T, H, W) clip of this forward, on the model's device (for the
            methods that run the model again on perturbed copies of it: Score-CAM).
    """

    activations: list[torch.Tensor]
    volume: Callable[[torch.Tensor], torch.Tensor]
    logits: torch.Tensor
    classes: torch.Tensor
    head: nn.Module | None
    clip: torch.Tensor | None = None


@dataclass(frozen=True)
class Tubes:
    """Saliency tubes for a batch of clips.

    Attributes:
        maps: (N, K, T, H, W) float32 in [0, 1], on the clip's own space-time grid
            (on the layer's grid when explained with ``upsample=False``).
        raw: (N, K, T', H', W') the class activation on the layer's grid, before
            upsampling and normalisation (after ``relu`` when that option is on).
        classes: (N, K) int64 class indices explained.
        scores: (N, K) softmax probabilities of those classes.
        logits: (N, num_classes) the model's output.
        method: the explainer's name, a key of :data:`saliency_tubes.METHODS` ("cam",
            "gradcam", "gradcam++", "layercam", "xgradcam", "hirescam", "scorecam",
            "eigencam", "occlusion", "integrated-gradients").
        layer: qualified name of the target layer ("input" for the input-space methods,
            occlusion and integrated gradients, whose raw maps are at the clip's grid).
        classifier: qualified name of the classifier head ("" for gradient methods
            when none was needed).
        categories: class names, when known.
        pathways: when several target layers were explained (the pathways of a two-stream
            network such as SlowFast): each layer's normalised tube at the clip's (T, H, W),
            by layer name. ``maps`` is then the fused tube: the layers' raw maps
            upsampled to a common grid and summed before normalisation.
        pathways_raw: each layer's raw map on its own grid, by layer name.
        class_agnostic: True when the method does not look at the class (EigenCAM): every
            class of a sample then has the same map and raw map; ``scores`` are still each
            class's probability.
    """

    maps: torch.Tensor
    raw: torch.Tensor
    classes: torch.Tensor
    scores: torch.Tensor
    logits: torch.Tensor
    method: str
    layer: str
    classifier: str
    categories: tuple[str, ...] | None = field(default=None)
    pathways: dict[str, torch.Tensor] = field(default_factory=dict)
    pathways_raw: dict[str, torch.Tensor] = field(default_factory=dict)
    class_agnostic: bool = False

    def names(self) -> list[list[str]]:
        """Class names of :attr:`classes` (indices as strings where names are unknown)."""
        return [
            [self.categories[c] if self.categories else str(c) for c in row]
            for row in self.classes.tolist()
        ]

    def _repr_html_(self) -> str:
        """Jupyter's view: a few frames of each explained class's tube (nothing recomputed)."""
        from ..display import tubes_html

        return tubes_html(self)

    def to(self, device: torch.device | str) -> Tubes:
        """A copy with every tensor moved to ``device``."""
        return Tubes(
            maps=self.maps.to(device),
            raw=self.raw.to(device),
            classes=self.classes.to(device),
            scores=self.scores.to(device),
            logits=self.logits.to(device),
            method=self.method,
            layer=self.layer,
            classifier=self.classifier,
            categories=self.categories,
            pathways={k: v.to(device) for k, v in self.pathways.items()},
            pathways_raw={k: v.to(device) for k, v in self.pathways_raw.items()},
            class_agnostic=self.class_agnostic,
        )


def normalize_tubes(maps: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each (T, H, W) tube of an (N, K, T, H, W) tensor to [0, 1].

    ``(x - min) / (max - min)`` over the whole tube (space and time together, as in the
    authors' code): :func:`saliency_tubes.normalise.minmax` over every dimension after
    the first two. A constant tube has no salient region and becomes all zeros.
    """
    return minmax(maps.flatten(2), dim=2).reshape(maps.shape)


class Explainer:
    """Base class: computes saliency tubes for a video classifier.

    Threads: a call holds the model's lock (:func:`saliency_tubes.hooks.model_lock`) from
    before the model's training flags are saved until after they are restored, hooks and
    forward included; calls from several threads on one model (through one explainer or
    several) take turns and each gets the tubes it would get alone. Calls on different
    models run in parallel (models that share a module, such as a wrapper and the model
    it wraps, share one lock and take turns).

    Gradient mode: the gradient methods (and CAM with ``pooled_head``) record what they
    need also when called under ``torch.no_grad()`` or ``torch.inference_mode()`` (the
    call leaves inference mode for its duration); a model whose parameters were created
    under inference mode is refused for them with an :class:`~saliency_tubes.InputError`.

    Args:
        model: any ``nn.Module`` mapping an (N, C, T, H, W) clip to (N, num_classes) scores.
        layer: the target layer, by qualified name or as a module; by default the last
            module with a 5-D output feeding the global pooling (found on the first call).
            A list of layers explains them together (the pathways of SlowFast): the class
            weights are split among them in order, each gets its own tube
            (:attr:`Tubes.pathways`) and :attr:`Tubes.maps` is their fused tube.
        classifier: the final ``nn.Linear`` (or 1x1x1 ``nn.Conv3d``) head, by name or module;
            found by default.
        relu: apply ReLU to the raw map (keep only positive evidence) before upsampling
            (``None``: the method's :attr:`relu_by_default`, off for CAM, on for the
            Grad-CAM family, Score-CAM and EigenCAM).
        interpolation: "cubic" (the paper's spline), "quadratic", "linear" or "nearest".
        align: "corners" (scipy.ndimage.zoom's grid, the authors' choice) or "centers"
            (half-pixel centres: what strided feature maps actually sample).
        categories: class names, for captions and for ``classes=["name", ...]``.
        eval_mode: run the model in eval mode during the call (restored afterwards).
        reshape: turns the layer's output into (N, C, T', H', W') when it is not already
            that volume (tokens of a video transformer: :class:`~saliency_tubes.tokens.TokenGrid`;
            Swin3D's channels-last stages: :func:`~saliency_tubes.tokens.channels_last`).
        inputs: builds the model's input from the (N, C, T, H, W) clip when the model takes
            something else (SlowFast's ``[slow, fast]`` pathways).
    """

    method: str = "base"
    needs_gradients: bool = False
    needs_head: bool = True
    class_agnostic: bool = False
    #: ``relu`` when the caller does not say (on for the Grad-CAM family, Score-CAM and
    #: EigenCAM, as their papers clamp the map; off for the paper's CAM).
    relu_by_default: bool = False

    def __init__(
        self,
        model: nn.Module,
        layer: LayersSpec = None,
        classifier: LayerSpec = None,
        *,
        relu: bool | None = None,
        interpolation: str = "cubic",
        align: str = "corners",
        categories: Sequence[str] | None = None,
        eval_mode: bool = True,
        reshape: Reshape | None = None,
        inputs: Inputs | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"expected a torch.nn.Module, but got {type(model).__name__}")
        check_mode(interpolation, align, mode_name="interpolation")
        for name, fn in (("reshape", reshape), ("inputs", inputs)):
            if fn is not None and not callable(fn):
                raise TypeError(
                    f"expected {name} to be callable or None, but got {type(fn).__name__}"
                )
        self.model = model
        self.relu = type(self).relu_by_default if relu is None else relu
        self.interpolation = interpolation
        self.align = align
        self.eval_mode = eval_mode
        self.reshape = reshape
        self.inputs = inputs
        if categories is None:
            categories = getattr(model, "categories", None)
        self.categories: tuple[str, ...] | None = tuple(categories) if categories else None
        self._layer_specs: list[str | nn.Module] | None = _layer_list(layer)
        self._classifier_spec = classifier
        # Resolved on the first call (or now, when both were given).
        self._resolved: tuple[list[tuple[str, nn.Module]], str, nn.Module | None] | None = None
        if self._layer_specs is not None and (classifier is not None or not self.needs_head):
            layers = [resolve_module(model, spec, "layer") for spec in self._layer_specs]
            head_name, head = ("", None)
            if classifier is not None:
                head_name, head = resolve_module(model, classifier, "classifier")
            self._resolved = (layers, head_name, head)

    @property
    def layer_name(self) -> str | None:
        """The target layer's name (names joined by "+" for several), once resolved."""
        return "+".join(name for name, _ in self._resolved[0]) if self._resolved else None

    def _model_input(self, clip: torch.Tensor) -> Any:
        # Built afresh for every forward: some models (pytorchvideo's SlowFast) overwrite
        # the entries of the list they are given.
        return self.inputs(clip) if self.inputs is not None else clip

    def _resolve(
        self, clip: torch.Tensor
    ) -> tuple[list[tuple[str, nn.Module]], str, nn.Module | None]:
        if self._resolved is None:
            specs = self._layer_specs
            try:
                calls = trace_calls(self.model, self._model_input(clip))
            except RuntimeError as exc:
                raise self._forward_error(clip, exc) from exc
            first = specs[0] if specs else None
            name, module, head_name, head = find_layer_and_head(
                self.model, calls, first, self._classifier_spec
            )
            layers = [(name, module)]
            layers += [resolve_module(self.model, spec, "layer") for spec in (specs or [])[1:]]
            self._resolved = (layers, head_name, head)
        return self._resolved

    def __call__(
        self, clip: torch.Tensor, classes: ClassSpec = "top1", *, upsample: bool = True
    ) -> Tubes:
        """Explain ``clip``.

        Args:
            clip: (N, C, T, H, W) float tensor, normalised as the model expects.
            classes: which classes to explain (see :func:`select_classes`); a function of
                the logits picks them from this same forward.
            upsample: extend the maps to the clip's (T, H, W). ``False`` leaves
                :attr:`Tubes.maps` (and the pathways' maps) normalised on the layer's grid,
                which is all a caller that upsamples by itself needs and much cheaper when
                many classes are explained.

        Returns:
            :class:`Tubes` with maps of the clip's own (T, H, W) (or the layer's grid).
        """
        clip = check_clip(clip)
        device = model_device(self.model)
        if device is not None and clip.device != device:
            clip = clip.to(device)
        size = (clip.shape[2], clip.shape[3], clip.shape[4])
        with _outside_inference_mode(), preserved_state(self.model, eval_mode=self.eval_mode):
            if self.uses_autograd:
                self._check_autograd()
            if clip.is_inference():
                clip = clip.clone()  # a normal tensor, which autograd may record
            layers, head_name, head = self._resolve(clip)
            with ExitStack() as stack:
                records = [
                    stack.enter_context(capture_activation(m, with_grad=self.needs_gradients))
                    for _, m in layers
                ]
                with torch.no_grad():
                    output = self._forward(clip)
            logits = logits_of(output, clip.shape[0])
            self._check_categories(logits.shape[1])
            captured = activations(layers, records)

            def volume(x: torch.Tensor) -> torch.Tensor:
                return self.reshape(x, size) if self.reshape is not None else x

            check_outputs(layers, captured, volume, logits)
            index = select_classes(classes, logits.detach(), self.categories)
            raws = self._raw_maps(ForwardPass(captured, volume, logits, index, head, clip))
        raws = [r.detach().float() for r in raws]
        names = [name for name, _ in layers]
        raw, pathways, pathways_raw = self._fused(raws, names, size if upsample else None)
        if self.relu:
            raw = raw.clamp_min(0)
        maps = normalize_tubes(self._upsample(raw, size) if upsample else raw)
        probs = torch.softmax(logits.detach().float(), dim=1)
        return Tubes(
            maps=maps,
            raw=raw,
            classes=index,
            scores=probs.gather(1, index),
            logits=logits.detach(),
            method=self.method,
            layer="+".join(names),
            classifier=head_name,
            categories=self.categories,
            pathways=pathways,
            pathways_raw=pathways_raw,
            class_agnostic=self.class_agnostic,
        )

    def _fused(
        self, raws: list[torch.Tensor], names: list[str], size: tuple[int, int, int] | None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """One layer's raw map as it is; several layers' fused (before the ReLU: a layer's
        negative evidence can cancel another's) with each pathway's raw and normalised
        map (upsampled to ``size`` unless None). Returns ``(raw, pathways, pathways_raw)``."""
        pathways: dict[str, torch.Tensor] = {}
        pathways_raw: dict[str, torch.Tensor] = {}
        if len(raws) == 1:
            return raws[0], pathways, pathways_raw
        t, h, w = (max(r.shape[2 + d] for r in raws) for d in range(3))
        scaled = [self._upsample(r * self._fusion_scale(r), (t, h, w)) for r in raws]
        raw = torch.stack(scaled).sum(0)
        for name, r in zip(names, raws, strict=True):
            r = r.clamp_min(0) if self.relu else r
            pathways_raw[name] = r
            pathways[name] = normalize_tubes(self._upsample(r, size) if size is not None else r)
        return raw, pathways, pathways_raw

    def logits(self, clip: torch.Tensor) -> torch.Tensor:
        """The model's (N, num_classes) scores for ``clip``: one forward, no gradients, the
        model's state restored (eval mode during the call when ``eval_mode``)."""
        clip = check_clip(clip)
        device = model_device(self.model)
        if device is not None and clip.device != device:
            clip = clip.to(device)
        with preserved_state(self.model, eval_mode=self.eval_mode), torch.no_grad():
            return logits_of(self._forward(clip), clip.shape[0])

    def _check_categories(self, num_classes: int) -> None:
        if self.categories is not None and len(self.categories) != num_classes:
            raise InputError(
                f"expected {num_classes} class names, one per class score of the model, but got "
                f"{len(self.categories)}; pass categories with one name per class, in the order "
                "of the model's outputs (or none)"
            )

    def forwards(self, size: tuple[int, int, int], classes: int) -> int | None:
        """Clip forwards one call costs per clip of ``size`` (T, H, W) for ``classes``
        classes, once the layer is known (a first call that finds it traces one more);
        None where it is known only while running (Score-CAM: one per non-constant
        channel). One here: the call's forward (backwards to the layer are not counted)."""
        del size, classes
        return 1

    @property
    def uses_autograd(self) -> bool:
        """Whether this explainer differentiates through part of the model."""
        return self.needs_gradients

    def _check_autograd(self) -> None:
        if any(p.is_inference() for p in self.model.parameters()):
            raise InputError(
                f"expected {type(self.model).__name__}'s parameters to be normal tensors that "
                f"autograd can use ({self.method} needs gradients), but they were created under "
                "torch.inference_mode; build or load the model outside torch.inference_mode"
            )

    def _forward(self, clip: torch.Tensor) -> Any:
        try:
            return self.model(self._model_input(clip))
        except RuntimeError as exc:
            raise self._forward_error(clip, exc) from exc

    def _forward_error(self, clip: torch.Tensor, exc: RuntimeError) -> InputError:
        t, h, w = clip.shape[2:]
        reason = first_line(exc)
        weights = next(iter(self.model.parameters()), None)
        if weights is not None and weights.is_floating_point() and clip.dtype != weights.dtype:
            return InputError(
                f"expected a {weights.dtype} clip (the dtype of {type(self.model).__name__}'s "
                f"weights), but got {clip.dtype}; convert it with clip.to({weights.dtype})"
            )
        if "channels" in reason:
            return InputError(
                f"{type(self.model).__name__} could not run on a clip of {clip.shape[1]} "
                f"channels ({reason}); give (N, 3, T, H, W) RGB clips, as its preset prepares"
            )
        return InputError(
            f"{type(self.model).__name__} could not run on a clip of {t} frames of {h}x{w} "
            f"({reason}); models with fixed pools or position embeddings need the clip size "
            "of their preset: use the preset's frames (drop --frames / --windows) or resize"
        )

    def _fusion_scale(self, raw: torch.Tensor) -> float:
        """Factor on one layer's raw map before the layers' maps are summed into one tube.

        The fused tube counts each layer by its share of the class score: CAM's raw maps
        already do (the score is the sum of their space-time means), so the factor is 1.
        """
        del raw
        return 1.0

    def _upsample(self, raw: torch.Tensor, size: tuple[int, int, int]) -> torch.Tensor:
        if tuple(raw.shape[2:]) == tuple(size):
            return raw
        return upsample(raw, size, mode=self.interpolation, align=self.align)

    def _raw_maps(self, forward: ForwardPass) -> list[torch.Tensor]:
        """Return one (N, K, T', H', W') raw map per target layer. Overridden by each method.

        Args:
            forward: the captured layer outputs, the scores, the classes to explain and
                the head of this call.
        """
        raise NotImplementedError


def _outside_inference_mode() -> AbstractContextManager[object]:
    """Leave ``torch.inference_mode`` for one call (the gradient methods need autograd);
    nothing changes outside it."""
    if torch.is_inference_mode_enabled():
        return torch.inference_mode(False)
    return nullcontext()


def _layer_list(layer: LayersSpec) -> list[str | nn.Module] | None:
    if layer is None:
        return None
    if isinstance(layer, (str, nn.Module)):
        return [layer]
    if isinstance(layer, Sequence) and not isinstance(layer, (str, bytes)) and len(layer) > 0:
        return list(layer)
    raise TypeError(
        f"expected the layer as a name, a module, or a non-empty list of them, but got {layer!r}"
    )
