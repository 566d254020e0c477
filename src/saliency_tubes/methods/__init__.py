"""Explanation methods: each decides only how the raw tube is computed."""

from .base import Explainer, ExplainerOptions, ForwardPass, Tubes, normalize_tubes, select_classes
from .cam import CAM, SaliencyTubes
from .gradient import GradCAM, GradCAMPlusPlus

METHODS: dict[str, type[Explainer]] = {
    "cam": SaliencyTubes,
    "gradcam": GradCAM,
    "gradcam++": GradCAMPlusPlus,
}

__all__ = [
    "CAM",
    "METHODS",
    "Explainer",
    "ExplainerOptions",
    "ForwardPass",
    "GradCAM",
    "GradCAMPlusPlus",
    "SaliencyTubes",
    "Tubes",
    "normalize_tubes",
    "select_classes",
]
