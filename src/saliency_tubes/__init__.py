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

# The application layer last: it builds on everything above.
from .commands import (  # noqa: E402
    CommandResult,
    CompareOptions,
    EvaluateOptions,
    ExplainOptions,
    ModelOptions,
    PyramidOptions,
    TubeResult,
    compare_classes,
    compare_models,
    evaluate_video,
    explain_video,
    pyramid_video,
    run_demo,
)
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
    "compare_classes",
    "compare_models",
    "evaluate_video",
    "explain_video",
    "load_model",
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
]
