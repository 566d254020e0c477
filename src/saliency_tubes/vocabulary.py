"""The names options take, in one place with no imports (so that a command line can list
them in ``--help`` without importing torch).

The modules that implement them re-export these: :data:`MODES` and :data:`ALIGNS` are
:mod:`saliency_tubes.splines`'s, :data:`BACKGROUNDS` :mod:`saliency_tubes.render`'s,
:data:`METHOD_NAMES` the keys of :data:`saliency_tubes.METHODS` (a test checks it).
"""

from __future__ import annotations

__all__ = [
    "ALIGNS",
    "ATTENTION_METHODS",
    "BACKGROUNDS",
    "BATCH_SIZE",
    "BLACKBOX_METHODS",
    "FORMATS",
    "INPUT_METHODS",
    "INTERPOLATIONS",
    "LAYOUTS",
    "METHOD_CHOICES",
    "METHOD_NAMES",
    "MODES",
    "STYLES",
    "VIDEO_FORMATS",
    "X264_PRESETS",
]

METHOD_NAMES: tuple[str, ...] = (
    "cam",
    "gradcam",
    "gradcam++",
    "layercam",
    "xgradcam",
    "hirescam",
    "scorecam",
    "eigencam",
    "occlusion",
    "integrated-gradients",
    "rollout",
    "relevancy",
    "rise",
    "lime",
    "kernelshap",
)

"""The explainers by name: the paper's Saliency Tubes (CAM), Grad-CAM, Grad-CAM++, LayerCAM,
XGradCAM, HiResCAM, Score-CAM (one forward per channel), EigenCAM (class-agnostic), and the
input-space attributions through captum: occlusion (one forward per window) and integrated
gradients (a forward and a backward per path step and class); the attention methods of
video transformers; and the black-box methods that only run the model: RISE (one forward per
random mask), LIME and Kernel SHAP (captum's, one forward per sample and class, over
space-time supervoxels)."""
ATTENTION_METHODS: tuple[str, ...] = ("rollout", "relevancy")
"""The methods that follow a video transformer's attention through every block: attention
rollout (class-agnostic) and gradient-weighted attention relevancy."""
INPUT_METHODS: tuple[str, ...] = (
    "occlusion",
    "integrated-gradients",
    "rise",
    "lime",
    "kernelshap",
)
"""The methods that attribute the clip's voxels (no target layer, no upsampling)."""
BLACKBOX_METHODS: tuple[str, ...] = ("rise", "lime", "kernelshap")
"""The methods that only run the model (RISE, LIME, Kernel SHAP): any callable will do."""
METHOD_CHOICES: tuple[str, ...] = (*METHOD_NAMES, "auto")
"""Explainers by name, or ``auto``: the model adapter's default method."""
MODES: dict[str, int] = {"nearest": 0, "linear": 1, "quadratic": 2, "cubic": 3}
"""Interpolation modes and their B-spline orders."""
INTERPOLATIONS: tuple[str, ...] = tuple(MODES)
"""Spline modes of the upsampling."""
ALIGNS: tuple[str, ...] = ("corners", "centers")
"""Grid alignments: scipy's default grid (``corners``) or half-pixel centres."""
BACKGROUNDS: tuple[str, ...] = ("black", "dark", "blur", "gray")
"""What focus tubes show where the model did not look."""
LAYOUTS: tuple[str, ...] = ("heat", "focus", "side_by_side")
#: What the pictures' colours span (``--normalise``): the whole video's range, or each frame's.
NORMALISATIONS: tuple[str, ...] = ("video", "frame")
"""What ``explain`` draws per class: the heat tube, the focus tube, and both beside the frame."""
FORMATS: tuple[str, ...] = ("mp4", "gif", "png", "npy", "plot", "html")
"""Output formats: videos (mp4, gif, png frame folders), the tube (npy), the curves (plot),
the interactive page (html)."""
VIDEO_FORMATS: tuple[str, ...] = ("mp4", "gif", "png")
"""The formats that are videos."""
X264_PRESETS: tuple[str, ...] = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)
"""libx264's speed presets, fastest first (the mp4 outputs' ``--x264-preset``)."""
STYLES: tuple[str, ...] = ("focus", "heat")
"""What each panel of a comparison grid shows."""

#: ``batch --batch-size``'s default: videos per forward of a local worker (chosen by
#: benchmarks/bench_batch_floor.py; see docs/tasks/batch.md).
BATCH_SIZE: int = 4
