"""Option values from text: what a command line (or a table of a dataset's rows) gives.

Importing this module costs nothing (no torch): the command line parses with it before
any command runs.

Each function turns one string into the value an option object takes, or raises one
:class:`~saliency_tubes.InputError` line that says what was expected.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from ..vocabulary import INPUT_METHODS

if TYPE_CHECKING:
    from ..commands.options import ModelOptions

__all__ = [
    "class_spec",
    "model_options",
    "names",
    "pair",
    "per_model",
    "positive",
    "render_settings",
    "rgb",
    "windows",
]


def class_spec(text: str) -> Any:
    """``"top3"``, or a list of indices and names from ``"12"`` / ``"take,wash,3"``."""
    text = text.strip()
    if text.lower().startswith("top"):
        return text.lower()
    items = [s.strip() for s in text.split(",") if s.strip()]
    if not items:
        raise InputError("expected top3, an index, a name, or a comma-separated list")
    return [int(s) if re.fullmatch(r"-?[0-9]+", s) else s for s in items]


def windows(text: str | None) -> tuple[int, int] | None:
    """``(length, stride)`` from ``"16,8"``; None for None."""
    if text is None:
        return None
    try:
        length, stride = (int(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"expected LEN,STRIDE such as 16,8, but got {text!r}") from None
    return length, stride


def rgb(text: str | None, option: str) -> tuple[float, float, float] | None:
    """Three numbers from ``"0.45,0.45,0.45"`` (``option`` names the flag in the message)."""
    if text is None:
        return None
    try:
        r, g, b = (float(v) for v in text.split(","))
    except ValueError:
        raise InputError(
            f"expected {option} R,G,B (three numbers on the [0, 1] scale, e.g. 0.45,0.45,0.45), "
            f"but got {text!r}"
        ) from None
    return r, g, b


def names(text: str) -> tuple[str, ...]:
    """Lower-case names from a comma-separated list (``"mp4,NPY"`` -> ``("mp4", "npy")``)."""
    return tuple(s.strip().lower() for s in text.split(",") if s.strip())


def pair(text: str | None) -> tuple[str, str] | None:
    """``(A, B)`` from ``"take,wash"``; None for None."""
    if text is None:
        return None
    items = [s.strip() for s in text.split(",") if s.strip()]
    if len(items) != 2:
        raise InputError(
            f"expected --contrast A,B with two different classes (e.g. take,wash), but got "
            f"{text!r}; name a second class"
        )
    return items[0], items[1]


def per_model(text: str | None, models: list[str], option: str, value: str) -> dict[str, str]:
    """``{model: value}`` from ``"a=ckpt.pth,b=other.pth"`` for models among ``models``."""
    out: dict[str, str] = {}
    for item in [s.strip() for s in (text or "").split(",") if s.strip()]:
        name, sep, given = item.partition("=")
        if not sep or name.strip() not in models or not given.strip():
            raise InputError(
                f"expected {option} MODEL={value} for models of --models ({', '.join(models)}), "
                f"but got {item!r}"
            )
        out[name.strip()] = given.strip()
    return out


def positive(text: str, option: str) -> int:
    """A positive integer from ``"101"``."""
    if not text.isdigit() or int(text) < 1:
        raise InputError(f"expected {option} MODEL=N with a positive integer N, but got {text!r}")
    return int(text)


def model_options(params: Mapping[str, Any], **override: Any) -> ModelOptions:
    """The model options of a command's flags (``model_name``, ``weights``, ``device`` ...).

    ``params`` holds the flags by their Python names, as a command line parses them;
    ``override`` replaces some (one model of several).
    """
    from ..commands.options import ModelOptions  # imported here: parsing text needs no torch

    given = {
        "name": params.get("model_name", "tiny-actions"),
        "weights": params.get("weights"),
        "num_classes": params.get("num_classes"),
        "categories": params.get("categories"),
        "allow_pickle": params.get("allow_pickle", False),
        "device": params.get("device", "cpu"),
        "layer": params.get("layer"),
        "classifier": params.get("classifier"),
        "mean": rgb(params.get("mean"), "--mean"),
        "std": rgb(params.get("std"), "--std"),
    }
    given.update(override)
    method = params.get("method")
    if method in INPUT_METHODS:
        for flag, key in (("--layer", "layer"), ("--classifier", "classifier")):
            if given[key] is not None:
                raise InputError(
                    f"expected no {flag} with --method {method} (it attributes the clip's own "
                    f"pixels: there is no target layer nor head), but got {flag} {given[key]}; "
                    f"drop {flag}"
                )
    return ModelOptions(**given)


def render_settings(params: Mapping[str, Any]) -> dict[str, Any]:
    """:class:`ExplainOptions` keywords from the drawing and sampling flags shared by
    ``explain`` and the comparisons (``classes``, ``windows``, ``formats`` ... as text)."""
    return {
        "classes": class_spec(params["classes"]),
        "windows": windows(params["windows"]),
        "interpolation": params["interpolation"],
        "align": params["align"],
        "colormap": params["colormap"],
        "opacity": params["opacity"],
        "background": params["background"],
        "formats": names(params["formats"]),
        "caption": not params["no_caption"],
        "normalise": params.get("normalise") or "video",
        "timeline": params["timeline"],
        "progress": not params["quiet"],
        "embed": bool(params.get("embed", False)),
        "crf": params["crf"],
        "preset": params["x264_preset"],
        "max_side": params.get("max_side"),
        "start": params.get("start"),
        "end": params.get("end"),
    }
