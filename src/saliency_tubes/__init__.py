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
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .contrast import Contrast, contrastive_tube
from .errors import (
    ClassSelectionError,
    InputError,
    LayerNotFoundError,
    ModelLoadError,
    SaliencyTubesError,
    VideoError,
)
from .methods import (
    CAM,
    METHODS,
    Explainer,
    GradCAM,
    GradCAMPlusPlus,
    SaliencyTubes,
    Tubes,
    normalize_tubes,
    select_classes,
)
from .metrics.concentration import TubeStats, tube_stats
from .pyramid import ClassFeaturePyramid, PyramidEdge, PyramidNode, class_feature_pyramid
from .temporal import TemporalCurve, key_frames, temporal_curve
from .upsample import upsample
from .zoo import LoadedModel, load_model

__version__ = "0.1.0"

__all__ = [
    "CAM",
    "CommandResult",
    "CompareOptions",
    "EvaluateOptions",
    "ExplainOptions",
    "LoadedModel",
    "ModelOptions",
    "PyramidOptions",
    "TubeResult",
    "benchmark",
    "compare_classes",
    "compare_models",
    "evaluate_video",
    "explain_video",
    "load_model",
    "model_lines",
    "pyramid_video",
    "run_demo",
    "METHODS",
    "ClassFeaturePyramid",
    "ClassSelectionError",
    "Contrast",
    "Explainer",
    "GradCAM",
    "GradCAMPlusPlus",
    "InputError",
    "LayerNotFoundError",
    "ModelLoadError",
    "PyramidEdge",
    "PyramidNode",
    "SaliencyTubes",
    "SaliencyTubesError",
    "TemporalCurve",
    "TubeStats",
    "Tubes",
    "VideoError",
    "__version__",
    "class_feature_pyramid",
    "contrastive_tube",
    "key_frames",
    "normalize_tubes",
    "select_classes",
    "temporal_curve",
    "tube_stats",
    "upsample",
    "write_benchmark",
]

if TYPE_CHECKING:  # the application layer is imported when first used (see __getattr__)
    from .commands import (
        CommandResult,
        CompareOptions,
        EvaluateOptions,
        ExplainOptions,
        ModelOptions,
        PyramidOptions,
        TubeResult,
        benchmark,
        compare_classes,
        compare_models,
        evaluate_video,
        explain_video,
        model_lines,
        pyramid_video,
        run_demo,
        write_benchmark,
    )

_COMMANDS = (
    "CommandResult",
    "CompareOptions",
    "EvaluateOptions",
    "ExplainOptions",
    "ModelOptions",
    "PyramidOptions",
    "TubeResult",
    "benchmark",
    "compare_classes",
    "compare_models",
    "evaluate_video",
    "explain_video",
    "model_lines",
    "pyramid_video",
    "run_demo",
    "write_benchmark",
)


def __getattr__(name: str) -> Any:
    """The command functions and their options, from :mod:`saliency_tubes.commands` (which
    needs video decoding and plotting, so ``import saliency_tubes`` alone stays light)."""
    if name in _COMMANDS:
        from . import commands

        return getattr(commands, name)
    raise AttributeError(f"module 'saliency_tubes' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
