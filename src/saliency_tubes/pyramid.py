r"""Class Feature Pyramids: back-step from a class through the network's kernels.

Stergiou, Kapidis, Kalliatakis, Chrysoulas, Poppe and Veltkamp, "Class Feature Pyramids
for Video Explanation", ICCV Workshops 2019 (arXiv:1909.08611). Where a saliency tube shows
where the last convolutional layer looked for a class, a class feature pyramid shows which
kernels, layer by layer, that decision rests on: a graph from the class down through the
network, one tube per (layer, kernel).

**Level 1** (the final features). With :math:`w = W_{c,:}` the classifier's weights for
class :math:`c`, each feature :math:`k` of the layer feeding the global pool scores

.. math:: s_k = \frac{w_k - \min_j w_j}{\max_j w_j - \min_j w_j},

and the features with :math:`s_k \ge \theta` are kept (at most the ``top_n`` largest when
given; this is the feature selection of :class:`~saliency_tubes.SaliencyTubes` with
``weight_threshold=θ, top_features=n``). Feature :math:`k` becomes the node of the
convolution kernel that produced channel :math:`k`.

**Level l + 1.** For a node, kernel :math:`k` of convolution :math:`L` with weights
:math:`W_L` of shape :math:`(C_{out}, C_{in}/g, t, h, w)` and input :math:`x` (the
activation :math:`L` reads, :math:`C_{in}` channels), the contribution of input channel
:math:`j` is the kernel's weights pooled over :math:`(t, h, w)` times the input channel
pooled over :math:`(T, H, W)`,

.. math::
    c_{kj} = \bar w_{kj}\,\bar a_j, \qquad
    \bar w_{kj} = \operatorname{mean}_{t,h,w} W_L[k, j], \qquad
    \bar a_j = \operatorname{mean}_{T,H,W} x_j,

normalised over the channels the kernel reads, :math:`s_{kj} = (c_{kj} - \min_i c_{ki}) /
(\max_i c_{ki} - \min_i c_{ki})`, and the channels with :math:`s_{kj} \ge \theta` (at most
``top_n``) are kept. Channel :math:`j` becomes the node of the kernel that produced it in
the previous convolution. This repeats for ``depth`` levels. (The authors divide
:math:`c` by :math:`\sum_i c_{ki}` before the min-max step; min-max is invariant to a
positive scale, so the two agree whenever that sum is positive, and for a negative sum
theirs would rank the channels upside down.) A constant :math:`c` (zero range) gives all
scores 0, so nothing passes a positive θ. A grouped convolution's kernel reads only its
group's :math:`C_{in}/g` channels, and only those are scored.

**Which convolution produced a channel** is found from one traced forward pass
(:mod:`saliency_tubes.channels`), not from module names, so any network built from the
zoo's blocks works unchanged: 3D-ResNets with basic or bottleneck blocks, 3D-DenseNets,
torchvision's r3d/mc3/r(2+1)d. Labels follow the channels by index through channel-wise
ops (batch norm, ReLU, pooling, dropout, views). Three cases need a rule:

* **Residual addition** (``out + identity``): a channel fed by several convolutions is
  attributed to the *deepest* one (most convolutions on its longest path from the input),
  i.e. the residual branch's last convolution, not the shortcut: the back-step walks the
  main path of each block.
* **Concatenation along channels** (DenseNet's ``cat([x, new], 1)``): channel :math:`j`
  keeps the label of the input it came from, by its position, so the children of one
  kernel can lie in different layers (the block input's transition conv and each earlier
  dense layer's 3x3x3 conv), and the same layer can reach the input in fewer steps on one
  branch than on another.
* **Factorised (2+1)D convolutions** are two ``Conv3d``, the spatial ``1x3x3`` conv and the
  temporal ``3x1x1`` conv after it: they are two levels, the spatial conv's ``mid``
  channels being the features the temporal kernels read.

``layers=`` gives the levels by name instead (channel :math:`j` of ``layers[i]``'s input is
then kernel :math:`j` of ``layers[i + 1]``).

**Tubes.** The class node's tube is the saliency tube of the selected features,
:math:`\sum_{k \in S_1} w_k A_k` on the pooled layer (equal to
``SaliencyTubes(weight_threshold=θ, top_features=n)``); a kernel node's tube is that
kernel's own response, output channel :math:`k` of its convolution. Both are upsampled to
the clip's ``(T, H, W)`` (:func:`saliency_tubes.upsample`) and min-max normalised
(:func:`saliency_tubes.normalize_tubes`).

Everything runs through hooks and a torch-function mode that live for one call: the model
comes back unchanged (training flags, ``requires_grad``, no hooks), also on error.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .channels import ConvCall, Trace, conv_outputs, trace_channels
from .errors import ClassSelectionError, InputError, LayerNotFoundError
from .hooks import (
    LayerSpec,
    find_layer_and_head,
    head_weight,
    model_device,
    preserved_state,
    resolve_module,
    trace_calls,
)
from .methods import normalize_tubes, select_classes
from .methods.base import check_clip, logits_of
from .upsample import check_mode, upsample

__all__ = [
    "ClassFeaturePyramid",
    "PyramidEdge",
    "PyramidNode",
    "class_feature_pyramid",
]

ROOT = "class"
"""Node id of the class (level 0)."""

DEFAULT_DEPTH = 3

# --------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PyramidEdge:
    """A dependency: the parent's kernel (or the class) reads the child's channel.

    Attributes:
        child: id of the child node.
        channel: index of the channel in the parent's input (for the class: the feature
            index of the pooled layer, i.e. the classifier's input feature).
        contribution: the raw value scored, :math:`c_{kj} = \\bar w_{kj} \\bar a_j` (for the
            class: the class weight :math:`w_k`).
        score: the min-max normalised contribution :math:`s \\in [0, 1]`.
    """

    child: str
    channel: int
    contribution: float
    score: float


@dataclass(frozen=True)
class PyramidNode:
    """One kernel of one convolution (or the class itself at level 0).

    Attributes:
        id: ``"class"`` for the root, else ``"{level}:{layer}:{kernel}"``.
        level: 0 for the class, 1 for the final features, ... ``depth``.
        layer: qualified name of the convolution (the classifier for the root).
        kernel: output channel of ``layer`` (the class index for the root).
        score: 1 for the root; else the largest score of the edges leading to it.
        support: how much of the pyramid rests on the node: 1 for the root, else
            :math:`\\sum_p \\text{support}_p\\, s_{p \\to n}` over its parents :math:`p`,
            divided by the level's largest such sum (the level's best node has 1). Ranks
            nodes for display: a kernel that many strong parents read ranks high.
        children: the channels this kernel depends on, best first.
        parents: ids of the nodes that depend on it.
        grid: ``(T', H', W')`` of the raw tube (the layer's output grid).
    """

    id: str
    level: int
    layer: str
    kernel: int
    score: float
    support: float
    children: tuple[PyramidEdge, ...]
    parents: tuple[str, ...]
    grid: tuple[int, int, int]


@dataclass(frozen=True)
class ClassFeaturePyramid:
    """A class dependency graph with one tube per node.

    Attributes:
        class_index: the explained class.
        class_name: its name, when the categories are known.
        probability: the softmax probability of the class for the clip.
        logit: the class's score.
        depth: levels of kernels below the class that were asked for.
        threshold: θ.
        top_n: the per-step limit (None: no limit).
        feature_layer: the layer feeding the global pool (its channels are level 1).
        classifier: the classifier head.
        features: the level-1 features selected (indices of the pooled layer's channels),
            best first; the class tube sums these.
        nodes: every node by id, the root first, then level by level, best supported
            first (see :attr:`PyramidNode.support`).
        raw: per node id, the ``(T', H', W')`` tube on the layer's grid before upsampling.
        clip_size: the clip's ``(T, H, W)``.
        interpolation: spline mode used by :meth:`tube`.
        align: grid alignment used by :meth:`tube`.
        stops: where the back-step could not go on (a channel that no traced convolution
            produced, e.g. the clip itself), as short notes.
    """

    class_index: int
    class_name: str | None
    probability: float
    logit: float
    depth: int
    threshold: float
    top_n: int | None
    feature_layer: str
    classifier: str
    features: tuple[int, ...]
    nodes: Mapping[str, PyramidNode]
    raw: Mapping[str, torch.Tensor] = field(repr=False)
    clip_size: tuple[int, int, int]
    interpolation: str = "cubic"
    align: str = "corners"
    stops: tuple[str, ...] = ()

    @property
    def root(self) -> PyramidNode:
        """The class node."""
        return self.nodes[ROOT]

    def levels(self) -> list[list[PyramidNode]]:
        """Nodes grouped by level, ``levels()[0] == [root]``, each best supported first."""
        out: list[list[PyramidNode]] = []
        for node in self.nodes.values():
            while len(out) <= node.level:
                out.append([])
            out[node.level].append(node)
        return out

    def tube(self, node: str | PyramidNode) -> torch.Tensor:
        """The node's tube on the clip grid, ``(T, H, W)`` float32 in ``[0, 1]``.

        Args:
            node: a node or its id.
        """
        key = node.id if isinstance(node, PyramidNode) else node
        if key not in self.raw:
            raise InputError(
                f"expected a node id of this pyramid, but got {key!r}; see pyramid.nodes"
            )
        raw = self.raw[key].float()[None, None]
        up = upsample(raw, self.clip_size, mode=self.interpolation, align=self.align)
        return normalize_tubes(up)[0, 0]

    def tubes(self, nodes: Sequence[str | PyramidNode] | None = None) -> dict[str, torch.Tensor]:
        """Tubes of ``nodes`` (default: every node), by id (see :meth:`tube`).

        Nodes on one grid are upsampled together, so this is faster than one :meth:`tube`
        call per node.
        """
        keys = [n.id if isinstance(n, PyramidNode) else n for n in (nodes or list(self.nodes))]
        unknown = [k for k in keys if k not in self.raw]
        if unknown:
            raise InputError(
                f"expected node ids of this pyramid, but got {unknown[0]!r}; see pyramid.nodes"
            )
        groups: dict[tuple[int, ...], list[str]] = {}
        for key in dict.fromkeys(keys):
            groups.setdefault(tuple(self.raw[key].shape), []).append(key)
        out: dict[str, torch.Tensor] = {}
        for members in groups.values():
            raw = torch.stack([self.raw[k].float() for k in members])[None]
            up = upsample(raw, self.clip_size, mode=self.interpolation, align=self.align)
            for key, tube in zip(members, normalize_tubes(up)[0], strict=True):
                out[key] = tube
        return {key: out[key] for key in keys}

    def to_dict(self) -> dict[str, Any]:
        """The dependency graph as plain JSON-ready data (no tubes)."""
        levels = self.levels()
        return {
            "method": "class feature pyramid (Stergiou et al., ICCV Workshops 2019)",
            "class": {
                "index": self.class_index,
                "name": self.class_name,
                "probability": round(self.probability, 6),
                "logit": round(self.logit, 6),
            },
            "depth": self.depth,
            "levels_reached": len(levels) - 1,
            "threshold": self.threshold,
            "top_n": self.top_n,
            "feature_layer": self.feature_layer,
            "classifier": self.classifier,
            "features": list(self.features),
            "clip_size": list(self.clip_size),
            "levels": [
                {
                    "level": i,
                    "layers": sorted({n.layer for n in level}),
                    "nodes": [n.id for n in level],
                }
                for i, level in enumerate(levels)
            ],
            "nodes": [
                {
                    "id": n.id,
                    "level": n.level,
                    "layer": n.layer,
                    "kernel": n.kernel,
                    "score": round(n.score, 6),
                    "support": round(n.support, 6),
                    "grid": list(n.grid),
                    "parents": list(n.parents),
                    "children": [
                        {
                            "id": e.child,
                            "channel": e.channel,
                            "contribution": float(f"{e.contribution:.6g}"),
                            "score": round(e.score, 6),
                        }
                        for e in n.children
                    ],
                }
                for n in self.nodes.values()
            ],
            "stops": list(self.stops),
        }

    def to_json(self, indent: int | None = 2) -> str:
        """:meth:`to_dict` as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)


# --------------------------------------------------------------------------------------
# Back-step
# --------------------------------------------------------------------------------------

Producer = Callable[[int], tuple[str, int] | None]
"""Channel index -> ``(convolution name, kernel)`` that produced it, or None."""


def _minmax(values: torch.Tensor) -> torch.Tensor:
    """``(v - min) / (max - min)``; all zeros when the range is 0."""
    low, high = values.min(), values.max()
    span = high - low
    if not span > 0:
        return torch.zeros_like(values)
    return (values - low) / span


def _select(scores: torch.Tensor, threshold: float, top_n: int | None) -> list[int]:
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


@dataclass
class _Graph:
    """Nodes and edges while the back-step runs (frozen by :meth:`freeze`)."""

    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, level: int, layer: str, kernel: int, grid: tuple[int, int, int]) -> str:
        key = ROOT if level == 0 else f"{level}:{layer}:{kernel}"
        if key not in self.nodes:
            self.nodes[key] = {"level": level, "layer": layer, "kernel": kernel, "grid": grid}
            self.nodes[key].update(children={}, parents=[])
        return key

    def link(
        self, parent: str, child: str, channel: int, contribution: float, score: float
    ) -> None:
        edges: dict[str, PyramidEdge] = self.nodes[parent]["children"]
        old = edges.get(child)
        if old is None or score > old.score:  # one kernel reached through two channels
            edges[child] = PyramidEdge(child, channel, contribution, score)
        if parent not in self.nodes[child]["parents"]:
            self.nodes[child]["parents"].append(parent)

    def freeze(self) -> dict[str, PyramidNode]:
        """Immutable nodes: the root, then level by level, best supported first."""
        score: dict[str, float] = {ROOT: 1.0}
        support: dict[str, float] = {ROOT: 1.0}
        by_level = sorted(self.nodes, key=lambda k: self.nodes[k]["level"])
        for level in sorted({n["level"] for n in self.nodes.values()} - {0}):
            keys = [k for k in by_level if self.nodes[k]["level"] == level]
            sums: dict[str, float] = {}
            for key in keys:
                for parent in self.nodes[key]["parents"]:
                    edge = self.nodes[parent]["children"][key]
                    sums[key] = sums.get(key, 0.0) + support[parent] * edge.score
                    score[key] = max(score.get(key, 0.0), edge.score)
            top = max(sums.values(), default=0.0)
            for key in keys:
                support[key] = sums.get(key, 0.0) / top if top > 0 else 0.0
        order = sorted(
            self.nodes,
            key=lambda k: (self.nodes[k]["level"], -support[k], -score[k], k),
        )
        out: dict[str, PyramidNode] = {}
        for key in order:
            node = self.nodes[key]
            children = sorted(node["children"].values(), key=lambda e: (-e.score, e.child))
            out[key] = PyramidNode(
                id=key,
                level=node["level"],
                layer=node["layer"],
                kernel=node["kernel"],
                score=score[key],
                support=support[key],
                children=tuple(children),
                parents=tuple(node["parents"]),
                grid=node["grid"],
            )
        return out


def _backstep(
    graph: _Graph,
    calls: Mapping[str, ConvCall],
    features: list[int],
    head_row: torch.Tensor,
    feature_producer: Producer,
    input_producer: Callable[[ConvCall], Producer],
    depth: int,
    threshold: float,
    top_n: int | None,
) -> list[str]:
    """Fill ``graph`` level by level from the selected features; return where it stopped."""
    stops: list[str] = []
    weights = head_row.double()
    scores = _minmax(weights)
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
            scores = _minmax(contributions)
            producer = input_producer(call)
            for j in _select(scores, threshold, top_n):
                made = producer(first + j)
                if made is None:
                    stops.append(f"{key}: input channel {first + j} of {call.name} has no producer")
                    continue
                child = graph.add(level, made[0], made[1], calls[made[0]].grid)
                graph.link(key, child, first + j, float(contributions[j]), float(scores[j]))
                next_frontier.append(child)
        frontier = next_frontier
    return stops


# --------------------------------------------------------------------------------------
# Levels: traced, or given by name
# --------------------------------------------------------------------------------------


def _traced_producers(
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


def _named_producers(
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


# --------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------


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
        interpolation: spline mode of the tubes (see :func:`saliency_tubes.upsample`).
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
        if layer is None or classifier is None:
            layer_name, layer_module, head_name, head = find_layer_and_head(
                model, trace_calls(model, clip), layer, classifier
            )
        else:
            layer_name, layer_module = resolve_module(model, layer, "layer")
            head_name, head = resolve_module(model, classifier, "classifier")
        trace = trace_channels(model, clip, {layer_name: layer_module})
        logits = _finite_logits(trace.output)
        activation, feature_channels = trace.watched.get(layer_name, (torch.empty(0), None))
        if activation.dim() != 4:
            raise LayerNotFoundError(
                f"expected layer {layer_name!r} to output (1, C, T', H', W') activations during "
                f"the forward pass, but got shape {tuple(activation.shape)}; pass "
                "layer='<the module feeding the global pool>'"
            )
        weight = head_weight(head).detach().float()
        if weight.shape[1] != activation.shape[0]:
            raise LayerNotFoundError(
                f"expected the classifier to take the layer's {activation.shape[0]} channels, "
                f"but its weight has {weight.shape[1]} input features; pick the layer that "
                "feeds the global pooling"
            )
        index = select_classes(target, logits, names)
        if index.shape[1] != 1:
            raise ClassSelectionError(
                f"expected one class for a pyramid, but got {index.shape[1]} ({target!r}); "
                "pass one index or name, or top1"
            )
        c = int(index[0, 0])
        if layers is not None:
            producers = _named_producers(model, layers, depth, weight.shape[1], trace)
        else:
            producers = _traced_producers(trace, feature_channels, layer_name, depth, model)
        features = _select(_minmax(weight[c].double()), float(threshold), top_n)
        graph = _Graph()
        grid = (int(activation.shape[1]), int(activation.shape[2]), int(activation.shape[3]))
        graph.add(0, head_name, c, grid)
        stops = _backstep(
            graph, trace.by_name(), features, weight[c], *producers, depth, threshold, top_n
        )
        wanted: dict[str, list[int]] = {}
        for key, node in graph.nodes.items():
            kernels = wanted.setdefault(node["layer"], []) if key != ROOT else []
            if key != ROOT and node["kernel"] not in kernels:
                kernels.append(node["kernel"])
        responses = conv_outputs(model, clip, wanted) if wanted else {}

    mask = torch.zeros_like(weight[c])
    mask[features] = 1.0
    raw = {ROOT: torch.einsum("c,cthw->thw", (weight[c] * mask).cpu(), activation.cpu())}
    for key, node in graph.nodes.items():
        if key != ROOT:
            raw[key] = responses[node["layer"]][wanted[node["layer"]].index(node["kernel"])].cpu()
    return ClassFeaturePyramid(
        class_index=c,
        class_name=names[c] if names else None,
        probability=float(torch.softmax(logits, dim=1)[0, c]),
        logit=float(logits[0, c]),
        depth=depth,
        threshold=float(threshold),
        top_n=top_n,
        feature_layer=layer_name,
        classifier=head_name,
        features=tuple(features),
        nodes=graph.freeze(),
        raw=raw,
        clip_size=(int(clip.shape[2]), int(clip.shape[3]), int(clip.shape[4])),
        interpolation=interpolation,
        align=align,
        stops=tuple(stops),
    )
