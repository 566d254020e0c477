"""The back-step: from the class's selected features down through the kernels, level by level.

How a channel maps to the kernel that produced it comes from a *producer*: either the
labels of the traced forward pass (:func:`traced_producers`) or the convolutions given by
name (:func:`named_producers`). See :mod:`saliency_tubes.pyramid` for the scores.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..channels import ConvCall, Trace
from ..errors import InputError, LayerNotFoundError
from ..hooks import resolve_module
from ..normalise import minmax
from .graph import ROOT, GraphBuilder

Producer = Callable[[int], tuple[str, int] | None]
"""Channel index -> ``(convolution name, kernel)`` that produced it, or None."""


def select(scores: torch.Tensor, threshold: float, top_n: int | None) -> list[int]:
    """Indices with ``score >= threshold``, best first, at most ``top_n`` (ties: lower index)."""
    values = scores.tolist()
    order = sorted(range(len(values)), key=lambda j: (-values[j], j))
    kept = [j for j in order if values[j] >= threshold]
    return kept if top_n is None else kept[:top_n]


def _pooled_kernel(module: nn.Conv3d, kernel: int) -> tuple[torch.Tensor, int]:
    """``(W[kernel] averaged over (t, h, w), the first input channel the kernel reads)``."""
    groups = module.groups
    first = (kernel // (module.out_channels // groups)) * (module.in_channels // groups)
    pooled = module.weight[kernel].detach().flatten(1).mean(dim=1, dtype=torch.float64)
    return pooled, first


def backstep(
    graph: GraphBuilder,
    calls: Mapping[str, ConvCall],
    features: list[int],
    head_row: torch.Tensor,
    feature_producer: Producer,
    input_producer: Callable[[ConvCall], Producer],
    depth: int,
    threshold: float,
    top_n: int | None,
) -> list[str]:
    """Fill ``graph`` level by level from the selected features; return where it stopped.

    Args:
        graph: holds the class node (level 0); gets the kernel nodes and their edges.
        calls: the traced convolutions by name (their module, grid and pooled input).
        features: the level-1 features kept (indices of the pooled layer's channels).
        head_row: the classifier's weights of the class, ``(C,)``.
        feature_producer: feature index -> the kernel that produced it.
        input_producer: a convolution -> its input channel index -> the kernel that
            produced that channel.
        depth: the number of kernel levels below the class.
        threshold: θ, the least normalised contribution of a channel that is followed.
        top_n: at most this many channels followed per kernel (None: no limit).

    Returns:
        Short notes on the channels that no traced convolution produced.
    """
    stops: list[str] = []
    weights = head_row.double()
    scores = minmax(weights)
    frontier: list[str] = []
    for k in features:
        made = feature_producer(k)
        if made is None:
            stops.append(f"feature {k}: no traced convolution produced it")
            continue
        child = graph.add(1, made[0], made[1], calls[made[0]].grid)
        graph.link(ROOT, child, k, float(weights[k]), float(scores[k]))
        frontier.append(child)
    for level in range(2, depth + 1):
        next_frontier: list[str] = []
        for key in dict.fromkeys(frontier):
            node = graph.nodes[key]
            call = calls[node["layer"]]
            pooled_w, first = _pooled_kernel(call.module, node["kernel"])
            contributions = pooled_w * call.pooled[first : first + pooled_w.numel()]
            scores = minmax(contributions)
            producer = input_producer(call)
            for j in select(scores, threshold, top_n):
                made = producer(first + j)
                if made is None:
                    stops.append(f"{key}: input channel {first + j} of {call.name} has no producer")
                    continue
                child = graph.add(level, made[0], made[1], calls[made[0]].grid)
                graph.link(key, child, first + j, float(contributions[j]), float(scores[j]))
                next_frontier.append(child)
        frontier = next_frontier
    return stops


def traced_producers(
    trace: Trace, feature_channels: Any, layer_name: str, depth: int, model: nn.Module
) -> tuple[Producer, Callable[[ConvCall], Producer]]:
    """Channel correspondence from the labels of the traced pass (depth checked)."""

    def lookup(channels: Any, j: int) -> tuple[str, int] | None:
        if channels is None or j >= len(channels) or channels[j] is None:
            return None
        return trace.source_name(channels[j]), channels[j][2]

    reach = max((s[0] for s in feature_channels or () if s is not None), default=0)
    if reach == 0:
        lost = ", ".join(dict.fromkeys(trace.lost))
        raise LayerNotFoundError(
            f"could not follow the channels of layer {layer_name!r} back to an nn.Conv3d"
            + (f" (channels lost at: {lost})" if lost else "")
            + "; pass layers=[...] naming the convolutions level by level"
        )
    if depth > reach:
        raise InputError(
            f"expected depth between 1 and {reach} for {type(model).__name__} (the "
            f"convolutions on its longest path to the classifier), but got {depth}; "
            "pass a smaller depth"
        )
    return (lambda k: lookup(feature_channels, k)), (lambda call: lambda j: lookup(call.inputs, j))


def named_producers(
    model: nn.Module, layers: Sequence[str | nn.Module], depth: int, features: int, trace: Trace
) -> tuple[Producer, Callable[[ConvCall], Producer]]:
    """Channel correspondence by index along the given convolutions (checked)."""
    names: list[str] = []
    convs: list[nn.Conv3d] = []
    for spec in layers:
        name, module = resolve_module(model, spec, "layer")
        if not isinstance(module, nn.Conv3d):
            raise LayerNotFoundError(
                f"expected every pyramid layer to be an nn.Conv3d, but {name!r} is a "
                f"{type(module).__name__}; list convolutions, e.g. 'layer4.1.conv2'"
            )
        names.append(name)
        convs.append(module)
    if depth > len(names):
        raise InputError(
            f"expected depth <= {len(names)} (the number of layers given), but got {depth}; "
            "pass a smaller depth or more layers"
        )
    names, convs = names[:depth], convs[:depth]
    if convs[0].out_channels != features:
        raise LayerNotFoundError(
            f"expected layers[0] {names[0]!r} to have {features} output channels (the "
            f"classifier's input features), but it has {convs[0].out_channels}; start the "
            "list with the last convolution before the pool"
        )
    for i in range(1, len(convs)):
        if convs[i].out_channels != convs[i - 1].in_channels:
            raise LayerNotFoundError(
                f"expected layers[{i}] {names[i]!r} to have {convs[i - 1].in_channels} output "
                f"channels (the input channels of {names[i - 1]!r}), but it has "
                f"{convs[i].out_channels}; list convolutions each feeding the one before it"
            )
    called = trace.by_name()
    missing = [n for n in names if n not in called]
    if missing:
        raise LayerNotFoundError(
            f"layer {missing[0]!r} was not called during the forward pass; "
            "list convolutions that the model uses"
        )
    position = {n: i for i, n in enumerate(names)}

    def input_producer(call: ConvCall) -> Producer:
        i = position[call.name] + 1
        return lambda j: (names[i], j) if i < len(names) else None

    return (lambda k: (names[0], k)), input_producer
