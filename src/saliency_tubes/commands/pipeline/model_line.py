"""The one line that says what made a page's tubes: model, weights, method and caveats.

Every page and terminal shows it the same way (``index.html``, ``summary.md``,
``report.html``, the stderr of a run): :class:`ModelFacts` holds the facts of a
loaded model (or of a manifest's ``model`` entry) and :func:`model_line` words them, so an
untrained network or the synthetic-only embedded model never passes for a trained one.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

__all__ = [
    "WEIGHTS_WORDS",
    "ModelFacts",
    "caveats",
    "corner_text",
    "model_line",
    "model_words",
]

#: How each weights source (:data:`saliency_tubes.zoo.loading.WEIGHTS_SOURCES`) is said.
WEIGHTS_WORDS = {
    "shipped": "trained weights shipped with the package",
    "file": "weights from a checkpoint file",
    "download": "named pretrained weights",
    "random": "random weights (untrained)",
    "factory": "weights of the caller's own factory",
}


@dataclass(frozen=True)
class ModelFacts:
    """What a page says about the model that made its tubes: a manifest's ``model`` entry
    (its first six keys), a batch summary's ``model``.

    Attributes:
        name: the model's name (None: no explained video).
        weights: its weights file or release, if any.
        weights_source: where they came from (:data:`WEIGHTS_WORDS`'s keys).
        random_weights: the model had random (untrained) weights.
        caveat: what its outputs do not mean (the embedded model's 8 synthetic classes).
        method: the explanation method.
    """

    name: str | None = None
    weights: Any = None
    weights_source: str | None = None
    random_weights: bool = False
    caveat: str | None = None
    method: str | None = None

    @classmethod
    def of(cls, loaded: Any, method: str | None) -> ModelFacts:
        """The facts of ``loaded`` (a :class:`~saliency_tubes.zoo.LoadedModel`) explained
        with ``method``."""
        return cls(
            loaded.name,
            loaded.weights,
            loaded.weights_source,
            bool(loaded.random_weights),
            loaded.caveat,
            method,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ModelFacts:
        """The facts in a manifest's or summary's ``model`` entry (its other keys, the layer
        or preset, are not facts of the line and left out; missing ones are unknown)."""
        known = {f.name for f in fields(cls)}
        given = {k: v for k, v in (data or {}).items() if k in known}
        return cls(**{**given, "random_weights": bool(given.get("random_weights"))})

    def to_dict(self) -> dict[str, Any]:
        """The facts as a JSON entry (a manifest's and a summary's ``model`` keys)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def caveats(facts: ModelFacts) -> list[str]:
    """What the tubes do not mean: random weights, the model's own caveat."""
    said = []
    if facts.random_weights:
        said.append("random weights (untrained): the tubes explain an untrained network")
    if facts.caveat:
        said.append(
            f"{facts.name} {facts.caveat}: its classes and tubes mean nothing on other videos"
        )
    return said


def model_line(facts: ModelFacts) -> str:
    """``facts`` in one line, e.g. ``model r3d_18, random weights (untrained), method cam;
    caveat: ...``; facts without a name give ``model unknown``."""
    notes = caveats(facts)
    return model_words(facts) + ("; caveat: " + "; ".join(notes) if notes else "")


def model_words(facts: ModelFacts) -> str:
    """:func:`model_line` without its caveats (pages show those in their warning colour)."""
    if not facts.name:
        return "model unknown (no explained video)"
    source = facts.weights_source
    words = WEIGHTS_WORDS.get(str(source), f"weights {source}" if source else "weights unknown")
    if facts.weights and source in ("file", "download"):
        words = f"{words} ({facts.weights})"
    parts = [f"model {facts.name}", words]
    if facts.method:
        parts.append(f"method {facts.method}")
    return ", ".join(parts)


def corner_text(facts: ModelFacts) -> str:
    """The corner label of a standalone heat or focus video: the model and method, then
    "random weights (untrained)" and the model's caveat on lines of their own."""
    method = f" ({facts.method})" if facts.method else ""
    lines = [f"{facts.name}{method}"]
    if facts.random_weights:
        lines.append("random weights (untrained)")
    if facts.caveat:
        lines.append(str(facts.caveat))
    return "\n".join(lines)
