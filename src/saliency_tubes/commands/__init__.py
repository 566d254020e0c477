"""The application layer: video(s) in, files out. The command line calls only this package.

One module per command, and one per shared concern:

==================  ===================================================================
``parse``           option values from text (a command line, a table of videos)
``options``         what each command is asked to do (:class:`ExplainOptions`,
                    :class:`CompareOptions`, :class:`PyramidOptions`,
                    :class:`EvaluateOptions`, :class:`ModelOptions`), validated once
``outputs``         the output folder: claimed names, atomic writes, clean-up on error,
                    progress bars, the run of a command (:func:`~.outputs.produce`)
``explaining``      decode once, explain per model (windows, classes, scores)
``track``           one tube on the video's timeline: windows stitched, mapped to frames
``drawing``         what each output video shows per frame, and the one encode pass
``manifest``        the manifest of every command
``result``          what a command returns (:class:`CommandResult`)
``explain``         :func:`explain_video`
``compare``         :func:`compare_classes`, :func:`compare_models`
``pyramid``         :func:`pyramid_video`
``evaluate``        :func:`evaluate_video`, :func:`benchmark`, :func:`write_benchmark`
``demo``            :func:`run_demo`
``models``          :func:`model_lines`
==================  ===================================================================

Every command function returns a :class:`CommandResult` (manifest, files, per-tube
numbers, timings) and, on any error or interrupt, removes every file it wrote.
"""

from __future__ import annotations

from ..errors import InputError, SaliencyTubesError, first_line
from ..metrics.benchmark import BenchmarkConfig, BenchmarkResult, Protocol
from ..video import probe
from ..zoo import LoadedModel, load_model
from . import parse
from .compare import compare_classes, compare_models
from .demo import DEMO_SEED, run_demo
from .evaluate import benchmark, evaluate_video, write_benchmark
from .explain import explain_video
from .models import model_lines
from .options import (
    ALIGNS,
    BACKGROUNDS,
    FORMATS,
    INTERPOLATIONS,
    LAYOUTS,
    METHOD_CHOICES,
    STYLES,
    CompareOptions,
    DeviceError,
    EvaluateOptions,
    ExplainOptions,
    ModelOptions,
    PyramidOptions,
    check_device,
)
from .pyramid import pyramid_video
from .result import CommandResult, TubeResult

__all__ = [
    "ALIGNS",
    "BACKGROUNDS",
    "DEMO_SEED",
    "FORMATS",
    "INTERPOLATIONS",
    "LAYOUTS",
    "METHOD_CHOICES",
    "STYLES",
    "BenchmarkConfig",
    "BenchmarkResult",
    "CommandResult",
    "CompareOptions",
    "DeviceError",
    "EvaluateOptions",
    "ExplainOptions",
    "InputError",
    "LoadedModel",
    "ModelOptions",
    "Protocol",
    "PyramidOptions",
    "SaliencyTubesError",
    "TubeResult",
    "benchmark",
    "check_device",
    "compare_classes",
    "compare_models",
    "evaluate_video",
    "explain_video",
    "first_line",
    "load_model",
    "model_lines",
    "parse",
    "probe",
    "pyramid_video",
    "run_demo",
    "write_benchmark",
]
