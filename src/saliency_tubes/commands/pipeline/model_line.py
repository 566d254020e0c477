"""The one line that says what made a page's tubes: model, weights, method and caveats.

Every page and terminal shows it the same way (``index.html``, ``summary.md``,
``report.html``, the stderr of a run): :func:`model_facts` gathers the facts from a
loaded model (or a manifest's ``model`` entry) and :func:`model_line` words them, so an
untrained network or the synthetic-only embedded model never passes for a trained one.
"""

from __future__ import annotations

from typing import Any

__all__ = ["WEIGHTS_WORDS", "caveats", "corner_text", "model_facts", "model_line", "model_words"]

#: How each weights source (:data:`saliency_tubes.zoo.registry.WEIGHTS_SOURCES`) is said.
WEIGHTS_WORDS = {
    "shipped": "trained weights shipped with the package",
    "file": "weights from a checkpoint file",
    "download": "named pretrained weights",
    "random": "random weights (untrained)",
    "factory": "weights of the caller's own factory",
}


def model_facts(loaded: Any, method: str | None) -> dict[str, Any]:
    """What a page says about ``loaded`` (a :class:`~saliency_tubes.zoo.LoadedModel`)
    explained with ``method``: the keys of a manifest's ``model`` entry."""
    return {
        "name": loaded.name,
        "weights": loaded.weights,
        "weights_source": loaded.weights_source,
        "random_weights": bool(loaded.random_weights),
        "caveat": loaded.caveat,
        "method": method,
    }


def caveats(facts: dict[str, Any]) -> list[str]:
    """What the tubes do not mean: random weights, the model's own caveat."""
    said = []
    if facts.get("random_weights"):
        said.append("random weights (untrained): the tubes explain an untrained network")
    if facts.get("caveat"):
        said.append(
            f"{facts.get('name')} {facts['caveat']}: its classes and tubes mean "
            "nothing on other videos"
        )
    return said


def model_line(facts: dict[str, Any]) -> str:
    """``facts`` (see :func:`model_facts`) in one line, e.g. ``model r3d_18, random weights
    (untrained), method cam; caveat: ...``; empty facts give ``model unknown``."""
    notes = caveats(facts)
    return model_words(facts) + ("; caveat: " + "; ".join(notes) if notes else "")


def model_words(facts: dict[str, Any]) -> str:
    """:func:`model_line` without its caveats (pages show those in their warning colour)."""
    if not facts or not facts.get("name"):
        return "model unknown (no explained video)"
    source = facts.get("weights_source")
    words = WEIGHTS_WORDS.get(str(source), f"weights {source}" if source else "weights unknown")
    weights = facts.get("weights")
    if weights and source in ("file", "download"):
        words = f"{words} ({weights})"
    parts = [f"model {facts['name']}", words]
    if facts.get("method"):
        parts.append(f"method {facts['method']}")
    return ", ".join(parts)


def corner_text(facts: dict[str, Any]) -> str:
    """The corner label of a standalone heat or focus video: the model and method, then
    "random weights (untrained)" and the model's caveat on lines of their own."""
    method = f" ({facts['method']})" if facts.get("method") else ""
    lines = [f"{facts.get('name')}{method}"]
    if facts.get("random_weights"):
        lines.append("random weights (untrained)")
    if facts.get("caveat"):
        lines.append(str(facts["caveat"]))
    return "\n".join(lines)
