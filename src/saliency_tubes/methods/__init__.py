"""Explanation methods: each decides only how the raw tube is computed."""

from .attention import AttentionRelevancy, AttentionRollout
from .attribution import InputAttribution, IntegratedGradients, Occlusion
from .base import Explainer, ExplainerOptions, ForwardPass, Tubes, normalize_tubes, select_classes
from .cam import CAM, SaliencyTubes
from .eigencam import EigenCAM
from .gradient import GradCAM, GradCAMPlusPlus
from .perturbation import RISE, KernelShap, Lime
from .scorecam import ScoreCAM
from .variants import HiResCAM, LayerCAM, XGradCAM

METHODS: dict[str, type[Explainer]] = {
    "cam": SaliencyTubes,
    "gradcam": GradCAM,
    "gradcam++": GradCAMPlusPlus,
    "layercam": LayerCAM,
    "xgradcam": XGradCAM,
    "hirescam": HiResCAM,
    "scorecam": ScoreCAM,
    "eigencam": EigenCAM,
    "occlusion": Occlusion,
    "integrated-gradients": IntegratedGradients,
    "rollout": AttentionRollout,
    "relevancy": AttentionRelevancy,
    "rise": RISE,
    "lime": Lime,
    "kernelshap": KernelShap,
}

__all__ = [
    "CAM",
    "AttentionRelevancy",
    "AttentionRollout",
    "METHODS",
    "EigenCAM",
    "Explainer",
    "ExplainerOptions",
    "ForwardPass",
    "GradCAM",
    "GradCAMPlusPlus",
    "HiResCAM",
    "InputAttribution",
    "IntegratedGradients",
    "KernelShap",
    "LayerCAM",
    "Lime",
    "Occlusion",
    "RISE",
    "SaliencyTubes",
    "ScoreCAM",
    "Tubes",
    "XGradCAM",
    "normalize_tubes",
    "select_classes",
]
