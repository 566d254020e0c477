"""saliency-tubes: where in space and time a video classifier looked.

Saliency Tubes (Stergiou et al., ICIP 2019) and the Grad-CAM family for any PyTorch
video classifier, with spline upsampling to the clip and rendering over the source video.

Example:
    >>> import saliency_tubes as st
    >>> explainer = st.SaliencyTubes(model)          # doctest: +SKIP
    >>> tubes = explainer(clip, classes="top3")      # doctest: +SKIP
    >>> tubes.maps.shape                             # (N, 3, T, H, W)  # doctest: +SKIP
    >>> result = st.explain_video("clip.mp4", "out", st.load_model("tiny-actions"))  # doctest: +SKIP
    >>> result.tubes[0].name, result.files["mp4"]    # doctest: +SKIP

Your own torchvision import fails next to a CPU-only torch with ``operator torchvision::nms
does not exist``? Call :func:`import_torchvision` first (see its docstring).

Every name below is imported from its module when first used, so ``import saliency_tubes``
(and the command line's start, its ``--help`` and a Ctrl-C while starting) costs nothing
until torch is needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .lazy import exports

__version__ = "0.1.0"

#: Public name -> the module (relative to the package) that defines it.
_EXPORTS: dict[str, str] = {
    name: module
    for module, names in {
        ".contrast": "Contrast contrastive_tube",
        ".errors": "ClassSelectionError InputError LayerNotFoundError ModelLoadError "
        "SaliencyTubesError VideoError",
        ".methods": "CAM METHODS EigenCAM Explainer GradCAM GradCAMPlusPlus HiResCAM "
        "IntegratedGradients LayerCAM Occlusion SaliencyTubes ScoreCAM Tubes XGradCAM "
        "normalize_tubes select_classes AttentionRelevancy AttentionRollout "
        "RISE Lime KernelShap",
        ".metrics.concentration": "TubeStats tube_stats",
        ".pyramid": "ClassFeaturePyramid PyramidEdge PyramidNode class_feature_pyramid",
        ".temporal": "TemporalCurve key_frames temporal_curve",
        ".splines": "upsample",
        ".zoo": "LoadedModel import_torchvision load_model",
        ".commands": "CommandResult CompareOptions EvaluateOptions ExplainOptions ModelOptions "
        "PyramidOptions TubeResult benchmark compare_classes compare_models evaluate_video "
        "explain_video model_lines pyramid_video run_demo write_benchmark",
    }.items()
    for name in names.split()
}

__getattr__, __dir__, __all__ = exports(__name__, _EXPORTS, "__version__")


if TYPE_CHECKING:  # what type checkers and editors see
    from .commands import CommandResult as CommandResult
    from .commands import CompareOptions as CompareOptions
    from .commands import EvaluateOptions as EvaluateOptions
    from .commands import ExplainOptions as ExplainOptions
    from .commands import ModelOptions as ModelOptions
    from .commands import PyramidOptions as PyramidOptions
    from .commands import TubeResult as TubeResult
    from .commands import benchmark as benchmark
    from .commands import compare_classes as compare_classes
    from .commands import compare_models as compare_models
    from .commands import evaluate_video as evaluate_video
    from .commands import explain_video as explain_video
    from .commands import model_lines as model_lines
    from .commands import pyramid_video as pyramid_video
    from .commands import run_demo as run_demo
    from .commands import write_benchmark as write_benchmark
    from .contrast import Contrast as Contrast
    from .contrast import contrastive_tube as contrastive_tube
    from .errors import ClassSelectionError as ClassSelectionError
    from .errors import InputError as InputError
    from .errors import LayerNotFoundError as LayerNotFoundError
    from .errors import ModelLoadError as ModelLoadError
    from .errors import SaliencyTubesError as SaliencyTubesError
    from .errors import VideoError as VideoError
    from .methods import CAM as CAM
    from .methods import METHODS as METHODS
    from .methods import RISE as RISE
    from .methods import AttentionRelevancy as AttentionRelevancy
    from .methods import AttentionRollout as AttentionRollout
    from .methods import EigenCAM as EigenCAM
    from .methods import Explainer as Explainer
    from .methods import GradCAM as GradCAM
    from .methods import GradCAMPlusPlus as GradCAMPlusPlus
    from .methods import HiResCAM as HiResCAM
    from .methods import IntegratedGradients as IntegratedGradients
    from .methods import KernelShap as KernelShap
    from .methods import LayerCAM as LayerCAM
    from .methods import Lime as Lime
    from .methods import Occlusion as Occlusion
    from .methods import SaliencyTubes as SaliencyTubes
    from .methods import ScoreCAM as ScoreCAM
    from .methods import Tubes as Tubes
    from .methods import XGradCAM as XGradCAM
    from .methods import normalize_tubes as normalize_tubes
    from .methods import select_classes as select_classes
    from .metrics.concentration import TubeStats as TubeStats
    from .metrics.concentration import tube_stats as tube_stats
    from .pyramid import ClassFeaturePyramid as ClassFeaturePyramid
    from .pyramid import PyramidEdge as PyramidEdge
    from .pyramid import PyramidNode as PyramidNode
    from .pyramid import class_feature_pyramid as class_feature_pyramid
    from .splines import upsample as upsample
    from .temporal import TemporalCurve as TemporalCurve
    from .temporal import key_frames as key_frames
    from .temporal import temporal_curve as temporal_curve
    from .zoo import LoadedModel as LoadedModel
    from .zoo import import_torchvision as import_torchvision
    from .zoo import load_model as load_model
