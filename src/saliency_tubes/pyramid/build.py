"""The entry point: :func:`class_feature_pyramid`, one step per function.

Find the pooled layer and the head, trace the channels, pick the class and its features,
back-step through the kernels (:mod:`.backstep`), record the selected kernels' responses
and keep one raw tube per node (:mod:`.graph`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..channels import Trace, conv_outputs, trace_channels
from ..errors import ClassSelectionError, InputError, LayerNotFoundError
from ..hooks import (
    LayerSpec,
    find_layer_and_head,
    head_weight,
    model_device,
    preserved_state,
    resolve_module,
    trace_calls,
)
from ..methods import select_classes
from ..methods.base import check_clip, logits_of
from ..normalise import minmax
from ..splines import check_mode
from .backstep import backstep, named_producers, select, traced_producers
from .graph import ROOT, ClassFeaturePyramid, GraphBuilder

DEFAULT_DEPTH = 3
"""Levels of kernels below the class when neither ``depth`` nor ``layers`` is given."""


def check_options(depth: int, threshold: float, top_n: int | None) -> None:
    """Validate ``depth``, ``threshold`` and ``top_n`` (one-line :class:`InputError`)."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise InputError(f"expected depth to be an int >= 1, but got {depth!r}; pass e.g. 3")
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, (int, float))
        or not 0.0 <= float(threshold) <= 1.0
    ):
        raise InputError(
            f"expected threshold in [0, 1] (scores are min-max normalised), but got "
            f"{threshold!r}; pass e.g. 0.6"
        )
    if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1):
        raise InputError(
            f"expected top_n to be None or an int >= 1, but got {top_n!r}; pass e.g. 5"
        )


def _check_call(
    model: Any,
    clip: Any,
    layers: Any,
    interpolation: str,
    align: str,
) -> torch.Tensor:
    """The checked clip, on the model's device (one-line errors for the other arguments)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected a torch.nn.Module, but got {type(model).__name__}")
    clip = check_clip(clip)
    if clip.shape[0] != 1:
        raise InputError(
            f"expected one clip (N = 1) for a class feature pyramid, but got N = {clip.shape[0]}; "
            "pass clip[i:i + 1]"
        )
    if layers is not None and (isinstance(layers, (str, nn.Module)) or len(layers) == 0):
        raise InputError(
            f"expected layers as a non-empty list of convolution names, but got {layers!r}; "
            "pass e.g. ['layer4.1.conv2', 'layer4.1.conv1']"
        )
    check_mode(interpolation, align, mode_name="interpolation")
    device = model_device(model)
    return clip if device is None else clip.to(device)


def _finite_logits(output: Any) -> torch.Tensor:
    """The (1, num_classes) float scores of the model's output, checked finite."""
    logits = logits_of(output, 1).detach().float()
    if not torch.isfinite(logits).all():
        raise InputError(
            "the model produced NaN or inf scores for this clip; check the input "
            "normalisation and the weights"
        )
    return logits


def class_feature_pyramid(
    model: nn.Module,
    clip: torch.Tensor,
    target: int | str = "top1",
    *,
    depth: int | None = None,
    threshold: float = 0.6,
    top_n: int | None = None,
    layers: Sequence[str | nn.Module] | None = None,
    layer: LayerSpec = None,
    classifier: LayerSpec = None,
    categories: Sequence[str] | None = None,
    interpolation: str = "cubic",
    align: str = "corners",
    eval_mode: bool = True,
) -> ClassFeaturePyramid:
    """Back-step from a class through the network's kernels (Stergiou et al., ICCVW 2019).

    See the module documentation for the scores and how channels are followed. Costs three
    forward passes (one fewer with ``layer`` and ``classifier`` given): find the pooled
    layer and the head, trace channels and pooled inputs, record the selected kernels'
    responses.

    Args:
        model: a video classifier mapping ``(1, C, T, H, W)`` to ``(1, num_classes)``.
        clip: one clip, ``(1, C, T, H, W)`` float, normalised as the model expects.
        target: the class: an index, a name (needs categories), or ``"top1"`` (the
            predicted class).
        depth: levels of kernels below the class (1: the final features only). Default 3,
            or ``len(layers)`` when ``layers`` is given.
        threshold: θ in ``[0, 1]``: keep the features / channels whose normalised score is
            at least θ.
        top_n: keep at most the ``n`` best of those at each step (None: all).
        layers: the convolutions of levels 1, 2, ... by name (or module), overriding the
            traced channel correspondence: ``layers[0]`` produces the classifier's input
            features and each ``layers[i + 1]`` the input channels of ``layers[i]``.
        layer: the layer feeding the global pool (found by default, as for
            :class:`~saliency_tubes.SaliencyTubes`).
        classifier: the classifier head (found by default).
        categories: class names (default: ``model.categories`` if present).
        interpolation: spline mode of the tubes (see :func:`saliency_tubes.splines`).
        align: ``"corners"`` or ``"centers"``.
        eval_mode: run the model in eval mode (restored afterwards).

    Returns:
        The :class:`ClassFeaturePyramid`.

    Raises:
        InputError: a bad clip, depth, threshold or top_n, or a depth beyond the network's
            convolutions.
        ClassSelectionError: an unknown class, or more than one.
        LayerNotFoundError: the pooled layer, the head or a listed layer cannot be used.
    """
    clip = _check_call(model, clip, layers, interpolation, align)
    depth = (len(layers) if layers is not None else DEFAULT_DEPTH) if depth is None else depth
    check_options(depth, threshold, top_n)
    if categories is None:
        categories = getattr(model, "categories", None)
    names = tuple(categories) if categories else None

    with preserved_state(model, eval_mode=eval_mode):
        steps = _back_step(
            model, clip, target, names, depth, threshold, top_n, layers, layer, classifier
        )
    return _pyramid(steps, clip, names, depth, threshold, top_n, interpolation, align)


@dataclass
class _Steps:
    """What the forwards of :func:`class_feature_pyramid` found (the model's state is
    restored once they are done)."""

    layer_name: str
    head_name: str
    logits: torch.Tensor
    activation: torch.Tensor
    weight: torch.Tensor
    class_index: int
    features: list[int]
    graph: GraphBuilder
    stops: list[Any]
    wanted: dict[str, list[int]]
    responses: dict[str, torch.Tensor]


def _pyramid(
    steps: _Steps,
    clip: torch.Tensor,
    names: tuple[str, ...] | None,
    depth: int,
    threshold: float,
    top_n: int | None,
    interpolation: str,
    align: str,
) -> ClassFeaturePyramid:
    """The :class:`ClassFeaturePyramid` of what the forwards found: the nodes' raw tubes."""
    c = steps.class_index
    raw = _raw_tubes(
        steps.graph,
        steps.weight[c],
        steps.features,
        steps.activation,
        steps.responses,
        steps.wanted,
    )
    return ClassFeaturePyramid(
        class_index=c,
        class_name=names[c] if names else None,
        probability=float(torch.softmax(steps.logits, dim=1)[0, c]),
        logit=float(steps.logits[0, c]),
        depth=depth,
        threshold=float(threshold),
        top_n=top_n,
        feature_layer=steps.layer_name,
        classifier=steps.head_name,
        features=tuple(steps.features),
        nodes=steps.graph.freeze(),
        raw=raw,
        clip_size=(int(clip.shape[2]), int(clip.shape[3]), int(clip.shape[4])),
        interpolation=interpolation,
        align=align,
        stops=tuple(steps.stops),
    )


def _back_step(
    model: nn.Module,
    clip: torch.Tensor,
    target: int | str,
    names: tuple[str, ...] | None,
    depth: int,
    threshold: float,
    top_n: int | None,
    layers: Sequence[str | nn.Module] | None,
    layer: LayerSpec,
    classifier: LayerSpec,
) -> _Steps:
    """The forwards of :func:`class_feature_pyramid`: find the pooled layer and the head,
    trace channels, back-step from the class, record the selected kernels' responses."""
    layer_name, layer_module, head_name, head = _feature_layer_and_head(
        model, clip, layer, classifier
    )
    trace = trace_channels(model, clip, {layer_name: layer_module})
    logits = _finite_logits(trace.output)
    activation, feature_channels = _feature_activation(trace, layer_name)
    weight = _classifier_weight(head, activation)
    c = _one_class(target, logits, names)
    if layers is not None:
        producers = named_producers(model, layers, depth, weight.shape[1], trace)
    else:
        producers = traced_producers(trace, feature_channels, layer_name, depth, model)
    features = select(minmax(weight[c].double()), float(threshold), top_n)
    graph = GraphBuilder()
    grid = (int(activation.shape[1]), int(activation.shape[2]), int(activation.shape[3]))
    graph.add(0, head_name, c, grid)
    stops = backstep(
        graph, trace.by_name(), features, weight[c], *producers, depth, threshold, top_n
    )
    wanted = _kernels_by_layer(graph)
    responses = conv_outputs(model, clip, wanted) if wanted else {}
    return _Steps(
        layer_name,
        head_name,
        logits,
        activation,
        weight,
        c,
        features,
        graph,
        stops,
        wanted,
        responses,
    )


def _feature_layer_and_head(
    model: nn.Module, clip: torch.Tensor, layer: LayerSpec, classifier: LayerSpec
) -> tuple[str, nn.Module, str, nn.Module]:
    """``(name, module)`` of the layer feeding the global pool and of the classifier.

    Both are resolved by name when given; otherwise one traced forward pass finds them.
    """
    if layer is None or classifier is None:
        return find_layer_and_head(model, trace_calls(model, clip), layer, classifier)
    layer_name, layer_module = resolve_module(model, layer, "layer")
    head_name, head = resolve_module(model, classifier, "classifier")
    return layer_name, layer_module, head_name, head


def _feature_activation(trace: Trace, layer_name: str) -> tuple[torch.Tensor, Any]:
    """The pooled layer's ``(C, T', H', W')`` activation and the labels of its channels."""
    activation, feature_channels = trace.watched.get(layer_name, (torch.empty(0), None))
    if activation.dim() != 4:
        raise LayerNotFoundError(
            f"expected layer {layer_name!r} to output (1, C, T', H', W') activations during "
            f"the forward pass, but got shape {tuple(activation.shape)}; pass "
            "layer='<the module feeding the global pool>'"
        )
    return activation, feature_channels


def _classifier_weight(head: nn.Module, activation: torch.Tensor) -> torch.Tensor:
    """The head's ``(num_classes, C)`` float weight, checked against the layer's C channels."""
    weight = head_weight(head).detach().float()
    if weight.shape[1] != activation.shape[0]:
        raise LayerNotFoundError(
            f"expected the classifier to take the layer's {activation.shape[0]} channels, "
            f"but its weight has {weight.shape[1]} input features; pick the layer that "
            "feeds the global pooling"
        )
    return weight


def _one_class(target: int | str, logits: torch.Tensor, names: Sequence[str] | None) -> int:
    """The index of the one class asked for (see :func:`~saliency_tubes.methods.select_classes`)."""
    index = select_classes(target, logits, names)
    if index.shape[1] != 1:
        raise ClassSelectionError(
            f"expected one class for a pyramid, but got {index.shape[1]} ({target!r}); "
            "pass one index or name, or top1"
        )
    return int(index[0, 0])


def _kernels_by_layer(graph: GraphBuilder) -> dict[str, list[int]]:
    """The kernels of the graph's nodes, by convolution, in the order they were added."""
    wanted: dict[str, list[int]] = {}
    for key, node in graph.nodes.items():
        if key == ROOT:
            continue
        kernels = wanted.setdefault(node["layer"], [])
        if node["kernel"] not in kernels:
            kernels.append(node["kernel"])
    return wanted


def _raw_tubes(
    graph: GraphBuilder,
    class_weights: torch.Tensor,
    features: list[int],
    activation: torch.Tensor,
    responses: dict[str, torch.Tensor],
    wanted: dict[str, list[int]],
) -> dict[str, torch.Tensor]:
    """Per node id, the raw ``(T', H', W')`` tube on the CPU.

    The class node's is :math:`\\sum_{k \\in S_1} w_k A_k` over the selected features; a
    kernel node's is that kernel's response (its convolution's output channel).
    """
    mask = torch.zeros_like(class_weights)
    mask[features] = 1.0
    raw = {ROOT: torch.einsum("c,cthw->thw", (class_weights * mask).cpu(), activation.cpu())}
    for key, node in graph.nodes.items():
        if key != ROOT:
            raw[key] = responses[node["layer"]][wanted[node["layer"]].index(node["kernel"])].cpu()
    return raw
