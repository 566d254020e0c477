"""The tests' colour model: ``TinyActionNet(motion=False)`` trained by
``scripts/train_default_model.py --task colour`` on the colour clips of
:mod:`saliency_tubes.synthetic_colours` (its record: ``zoo/weights/tiny_colours.json`` in the package, where it ships as ``tiny-colours``)."""

from __future__ import annotations

import json
from typing import Any

import saliency_tubes as st
from saliency_tubes.synthetic_colours import COLOURS
from saliency_tubes.video import Preprocess
from saliency_tubes.zoo import Preset
from saliency_tubes.zoo.nets.tiny import COLOUR_PRESET
from saliency_tubes.zoo.nets.tiny_vit import CNN_WEIGHTS

COLOUR_WEIGHTS = CNN_WEIGHTS
FACTORY = "saliency_tubes.zoo.nets.tiny:tiny_colour_net"


def colour_record() -> dict[str, Any]:
    """The training record written next to the weights."""
    return json.loads(COLOUR_WEIGHTS.with_suffix(".json").read_text())


def load_colour_model() -> st.LoadedModel:
    """The colour model through the normal loading path (a factory and a weights file)."""
    return st.load_model(
        FACTORY,
        weights=COLOUR_WEIGHTS,
        layer=COLOUR_PRESET["layer"],
        classifier=COLOUR_PRESET["classifier"],
        categories=COLOURS,
    )


def colour_preprocess() -> Preprocess:
    """Frames (T, H, W, 3) uint8 at the preset's size -> the model's normalised clip."""
    preset = Preset(
        frames=COLOUR_PRESET["frames"],
        size=COLOUR_PRESET["size"],
        resize="full",
        mean=COLOUR_PRESET["mean"],
        std=COLOUR_PRESET["std"],
    )
    return preset.preprocess()
