"""What a command returns: its manifest, its files, its tubes' numbers and its timings."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...metrics.concentration import TubeStats
from ...temporal import TemporalCurve
from .explaining import Explained
from .outputs import Run
from .track import Summary

__all__ = ["CommandResult", "TubeResult"]


@dataclass(frozen=True)
class TubeResult:
    """One explained tube, reduced to numbers.

    Attributes:
        model: the model's name.
        index: the class index.
        name: the class name.
        score: its probability (the mean softmax over the windows).
        stats: how concentrated the tube is on the source frames.
        curve: its temporal importance curve on the source frames (with key frames).
        measured_on: each frame's tube measured on the source pixels (``"source
            frames"``) or on the clip's grid (``"clip grid"``, when no video was drawn).
    """

    model: str
    index: int
    name: str
    score: float
    stats: TubeStats
    curve: TemporalCurve
    measured_on: str = "source frames"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data, every number as it is (the manifest's are rounded)."""
        c = self.curve
        return {
            "model": self.model,
            "index": self.index,
            "name": self.name,
            "score": self.score,
            "stats": dataclasses.asdict(self.stats),
            "curve": {
                "mean": c.mean.tolist(),
                "max": c.max.tolist(),
                "times": None if c.times is None else c.times.tolist(),
                "key_frames": c.key_frames.tolist(),
                "prominence": c.prominence.tolist(),
            },
            "measured_on": self.measured_on,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TubeResult:
        """The tube of :meth:`to_dict`'s data."""
        c = data["curve"]
        curve = TemporalCurve(
            mean=np.asarray(c["mean"], dtype=np.float64),
            max=np.asarray(c["max"], dtype=np.float64),
            times=None if c["times"] is None else np.asarray(c["times"], dtype=np.float64),
            key_frames=np.asarray(c["key_frames"], dtype=np.int64),
            prominence=np.asarray(c["prominence"], dtype=np.float64),
        )
        fields = ("model", "index", "name", "score", "measured_on")
        return cls(stats=TubeStats(**data["stats"]), curve=curve, **{k: data[k] for k in fields})


@dataclass(frozen=True)
class CommandResult:
    """What a command did (returned by every command function).

    Attributes:
        command: ``"explain"``, ``"compare-classes"``, ``"compare-models"``, ``"pyramid"``,
            ``"evaluate"`` or ``"demo"``.
        out_dir: the output folder.
        manifest: the record written as ``manifest.json`` (``report.json`` for
            ``evaluate``).
        files: every output file by kind (``"mp4"``, ``"npy"``, ``"plot"`` ...), as paths.
        tubes: the explained tubes' classes, scores, statistics and curves, in manifest order.
        timings: seconds per stage (``"explain"``, ``"summarise"``, ``"write"``, ``"total"``).
    """

    command: str
    out_dir: Path
    manifest: dict[str, Any]
    files: dict[str, list[Path]]
    tubes: list[TubeResult] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        """Wall-clock seconds of the run, as the manifest records them."""
        return float(self.manifest["seconds"])

    @property
    def count(self) -> int:
        """How many output files were written, the manifest (or report) not counted."""
        return sum(len(v) for kind, v in self.files.items() if kind != "report")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data: paths as text, the tubes as :meth:`TubeResult.to_dict`."""
        return {
            "command": self.command,
            "out_dir": str(self.out_dir),
            "manifest": self.manifest,
            "files": {kind: [str(p) for p in paths] for kind, paths in self.files.items()},
            "tubes": [t.to_dict() for t in self.tubes],
            "timings": dict(self.timings),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CommandResult:
        """The result of :meth:`to_dict`'s data."""
        return cls(
            command=data["command"],
            out_dir=Path(data["out_dir"]),
            manifest=data["manifest"],
            files={kind: [Path(p) for p in paths] for kind, paths in data["files"].items()},
            tubes=[TubeResult.from_dict(t) for t in data["tubes"]],
            timings=dict(data["timings"]),
        )

    def _repr_html_(self) -> str:
        """Jupyter's view: the classes and their numbers, and the side-by-side video (or the
        figure) already written, embedded when small (nothing recomputed)."""
        from .display import result_html

        return result_html(self)

    @classmethod
    def of(
        cls,
        command: str,
        manifest: dict[str, Any],
        run: Run,
        explained: Sequence[tuple[Explained, Sequence[Summary]]] = (),
    ) -> CommandResult:
        """The result of a run from its manifest and (for the video commands) its tubes."""
        root = run.outputs.root
        files: dict[str, list[Path]] = {}
        for kind, names in manifest.get("outputs", {}).items():
            listed = [names] if isinstance(names, str) else list(names)
            files[kind] = [root / name for name in listed]
        tubes = [
            TubeResult(
                e.loaded.name, c, n, float(s), summary.stats, summary.curve, summary.measured_on
            )
            for e, summaries in explained
            for c, n, s, summary in zip(e.classes, e.names, e.scores, summaries, strict=True)
        ]
        return cls(command, root, manifest, files, tubes, dict(run.timings))
