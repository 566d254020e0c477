"""Bounds on an untrusted Hugging Face ``config.json``, checked before a model is built.

A ``config.json`` sizes what transformers allocates: ``num_frames`` and ``image_size`` set
the token count (and with it the position embeddings and the attention matrices),
``hidden_size`` and its kin the weights. A value of 100000 made ``hf:DIR`` allocate for
minutes; a negative one surfaced as "could not load ... weights (IndexError)".
:func:`check_sizes` makes both one :class:`~saliency_tubes.ModelLoadError` line naming the
key: each size a positive whole number, and the model's weights plus one forward's
activations checked against the memory available now (as ``--frames`` is).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ...errors import InputError, ModelLoadError
from ...resources import check_fits

__all__ = ["check_sizes"]

#: Sizes a ViT-style config holds (with the base size where the config leaves one out).
_SIZES = {
    "num_frames": None,
    "image_size": None,
    "patch_size": None,
    "tubelet_size": None,
    "num_hidden_layers": None,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_attention_heads": 12,
}


def _whole(key: str, value: Any, where: str) -> list[int]:
    """``value`` (a number or a list of them) as positive ints, or one line naming ``key``."""
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    ok = bool(items) and all(
        not isinstance(v, bool)
        and isinstance(v, (int, float))
        and math.isfinite(v)
        and v == int(v)
        and v >= 1
        for v in items
    )
    if not ok:
        raise ModelLoadError(
            f"expected {key} in {where} to be a positive whole number, but got {value!r}; "
            "fix that key (or save the model again with save_pretrained)"
        )
    return [int(v) for v in items]


def check_sizes(get: Callable[[str], Any], where: str, family: str) -> None:
    """Check a config's sizes before anything is built from them.

    Args:
        get: the config's value of a key (with the family's defaults).
        where: the config file, as the message names it.
        family: ``videomae``, ``timesformer`` or ``vivit`` (how a token is sized).

    Raises:
        ModelLoadError: a size that is not a positive whole number, fewer frames or pixels
            than one token, or a model that cannot fit in the memory available now.
    """
    sizes = {}
    for key, default in _SIZES.items():
        value = get(key)
        if value is None:
            value = default
        if value is not None:
            sizes[key] = _whole(key, value, where)
    if family == "vivit":
        tubelet, *rest = (sizes["tubelet_size"] * 3)[:3]
        patch = (rest[0], rest[1])
    else:
        tubelet = sizes["tubelet_size"][0] if family == "videomae" else 1
        patch = (sizes["patch_size"][0], sizes["patch_size"][-1])
    frames = sizes["num_frames"][0]
    h, w = sizes["image_size"][0], sizes["image_size"][-1]
    for key, have, need in (
        ("num_frames", frames, tubelet),
        ("image_size", min(h, w), max(patch)),
    ):
        if have < need:
            raise ModelLoadError(
                f"expected {key} in {where} to be at least one token ({need}), but got {have}; "
                "fix that key"
            )
    tokens = (frames // tubelet) * (h // patch[0]) * (w // patch[1]) + 1
    hidden, inner = sizes["hidden_size"][0], sizes["intermediate_size"][0]
    heads, layers = sizes["num_attention_heads"][0], sizes["num_hidden_layers"][0]
    weights = layers * (4 * hidden * hidden + 2 * hidden * inner) + tokens * hidden
    # One layer's activations kept for the gradient: its token states and attention matrix.
    activations = 2 * tokens * (12 * hidden + heads * tokens)
    try:
        check_fits(
            4 * (weights + activations),
            f"the model of {where} (num_frames {frames}, image_size {h}x{w}, hidden_size "
            f"{hidden}, num_hidden_layers {layers}: {tokens} tokens)",
            "fix those keys of the config (or save the model again with save_pretrained)",
        )
    except InputError as exc:
        raise ModelLoadError(str(exc)) from None
