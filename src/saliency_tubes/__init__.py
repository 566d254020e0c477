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

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> the module (relative to the package) that defines it.
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(("Contrast", "contrastive_tube"), "contrast"),
    **dict.fromkeys(
        (
            "ClassSelectionError",
            "InputError",
            "LayerNotFoundError",
            "ModelLoadError",
            "SaliencyTubesError",
            "VideoError",
        ),
        "errors",
    ),
    **dict.fromkeys(
        "CAM METHODS EigenCAM Explainer GradCAM GradCAMPlusPlus HiResCAM IntegratedGradients LayerCAM "
        "Occlusion SaliencyTubes ScoreCAM Tubes XGradCAM normalize_tubes select_classes".split(),
        "methods",
    ),
    **dict.fromkeys(("AttentionRelevancy", "AttentionRollout"), "methods"),
    **dict.fromkeys(("TubeStats", "tube_stats"), "metrics.concentration"),
    **dict.fromkeys(
        ("ClassFeaturePyramid", "PyramidEdge", "PyramidNode", "class_feature_pyramid"), "pyramid"
    ),
    **dict.fromkeys(("TemporalCurve", "key_frames", "temporal_curve"), "temporal"),
    "upsample": "upsample",
    **dict.fromkeys(("LoadedModel", "import_torchvision", "load_model"), "zoo"),
    **dict.fromkeys(
        (
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
        ),
        "commands",
    ),
}

__all__ = [
    "CAM",
    "AttentionRelevancy",
    "AttentionRollout",
    "ClassFeaturePyramid",
    "ClassSelectionError",
    "CommandResult",
    "CompareOptions",
    "Contrast",
    "EigenCAM",
    "EvaluateOptions",
    "ExplainOptions",
    "Explainer",
    "GradCAM",
    "GradCAMPlusPlus",
    "HiResCAM",
    "InputError",
    "IntegratedGradients",
    "LayerCAM",
    "LayerNotFoundError",
    "LoadedModel",
    "METHODS",
    "ModelLoadError",
    "ModelOptions",
    "Occlusion",
    "PyramidEdge",
    "PyramidNode",
    "PyramidOptions",
    "SaliencyTubes",
    "SaliencyTubesError",
    "ScoreCAM",
    "TemporalCurve",
    "TubeResult",
    "TubeStats",
    "Tubes",
    "VideoError",
    "XGradCAM",
    "__version__",
    "benchmark",
    "class_feature_pyramid",
    "compare_classes",
    "compare_models",
    "contrastive_tube",
    "evaluate_video",
    "explain_video",
    "import_torchvision",
    "key_frames",
    "load_model",
    "model_lines",
    "normalize_tubes",
    "pyramid_video",
    "run_demo",
    "select_classes",
    "temporal_curve",
    "tube_stats",
    "upsample",
    "write_benchmark",
]


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'saliency_tubes' has no attribute {name!r}")
    imported = importlib.import_module(f".{module}", __name__)
    if module == name:  # the module itself, made callable as its function (see _Package)
        return imported
    value = getattr(imported, name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return __all__


class _CallableModule(types.ModuleType):
    """A module that is also its namesake function: ``saliency_tubes.upsample(...)`` calls
    ``saliency_tubes.upsample.upsample``, and ``saliency_tubes.upsample.MODES`` still works."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self, self.__name__.rpartition(".")[2])(*args, **kwargs)


class _Package(types.ModuleType):
    """The package module. Importing a submodule sets it as an attribute of its package;
    where a public function has its module's name (``upsample``), that module is made
    callable, so the attribute serves both as the module and as the function."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _EXPORTS.get(name) == name:
            value.__class__ = _CallableModule
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


if TYPE_CHECKING:  # what type checkers and editors see
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
        AttentionRelevancy,
        AttentionRollout,
        EigenCAM,
        Explainer,
        GradCAM,
        GradCAMPlusPlus,
        HiResCAM,
        IntegratedGradients,
        LayerCAM,
        Occlusion,
        SaliencyTubes,
        ScoreCAM,
        Tubes,
        XGradCAM,
        normalize_tubes,
        select_classes,
    )
    from .metrics.concentration import TubeStats, tube_stats
    from .pyramid import ClassFeaturePyramid, PyramidEdge, PyramidNode, class_feature_pyramid
    from .temporal import TemporalCurve, key_frames, temporal_curve
    from .upsample import upsample
    from .zoo import LoadedModel, import_torchvision, load_model
