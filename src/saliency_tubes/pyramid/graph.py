"""The result of a class feature pyramid: nodes, edges, tubes and their JSON.

:class:`ClassFeaturePyramid` is what :func:`~saliency_tubes.pyramid.class_feature_pyramid`
returns; :class:`GraphBuilder` collects its nodes and edges while the back-step runs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import InputError
from ..methods import normalize_tubes
from ..splines import upsample

ROOT = "class"
"""Node id of the class (level 0)."""


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


@dataclass
class GraphBuilder:
    """Nodes and edges while the back-step runs (frozen by :meth:`freeze`)."""

    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, level: int, layer: str, kernel: int, grid: tuple[int, int, int]) -> str:
        """Add the node of ``layer``'s ``kernel`` at ``level`` (once); return its id."""
        key = ROOT if level == 0 else f"{level}:{layer}:{kernel}"
        if key not in self.nodes:
            self.nodes[key] = {"level": level, "layer": layer, "kernel": kernel, "grid": grid}
            self.nodes[key].update(children={}, parents=[])
        return key

    def link(
        self, parent: str, child: str, channel: int, contribution: float, score: float
    ) -> None:
        """Record that ``parent`` reads ``child`` through ``channel`` (the best edge kept)."""
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
