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
``demo``            :func:`run_demo`, :func:`write_demo_dataset`
``dataset``         the videos of a batch: inputs, ids, fingerprints, shards
``batch_video``     one video of a batch: its explain and its index row
``pool``            local worker processes (timeouts, crashed workers)
``batch_index``     the journal, ``index.parquet`` and the summary
``batch``           :func:`batch_videos`, :func:`merge_batches`
``models``          :func:`model_lines`
==================  ===================================================================

Every command function returns a :class:`CommandResult` (manifest, files, per-tube
numbers, timings) and, on any error or interrupt, leaves its output folder as it was.
Names are imported from their modules on first use, so ``parse`` and the option
vocabulary are available without importing torch (the command line's ``--help``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: Public name -> the module (relative to this package) that defines it.
_EXPORTS: dict[str, str] = {
    "InputError": "..errors",
    "SaliencyTubesError": "..errors",
    "first_line": "..errors",
    "BenchmarkConfig": "..metrics.benchmark",
    "BenchmarkResult": "..metrics.benchmark",
    "Protocol": "..metrics.benchmark",
    "probe": "..video",
    "probability": "..numbers",
    "LoadedModel": "..zoo",
    "load_model": "..zoo",
    "BatchOptions": ".batch",
    "BatchResult": ".batch",
    "batch_videos": ".batch",
    "merge_batches": ".batch",
    "BatchSettings": ".batch_video",
    "parse_shard": ".dataset",
    "read_inputs": ".dataset",
    "write_demo_dataset": ".demo",
    "compare_classes": ".compare",
    "compare_models": ".compare",
    "DEMO_SEED": ".demo",
    "run_demo": ".demo",
    "benchmark": ".evaluate",
    "evaluate_video": ".evaluate",
    "write_benchmark": ".evaluate",
    "explain_video": ".explain",
    "model_lines": ".models",
    "CompareOptions": ".options",
    "DeviceError": ".options",
    "EvaluateOptions": ".options",
    "ExplainOptions": ".options",
    "ModelOptions": ".options",
    "PyramidOptions": ".options",
    "check_device": ".options",
    "ALIGNS": "..vocabulary",
    "BACKGROUNDS": "..vocabulary",
    "FORMATS": "..vocabulary",
    "INTERPOLATIONS": "..vocabulary",
    "LAYOUTS": "..vocabulary",
    "METHOD_CHOICES": "..vocabulary",
    "METHOD_NAMES": "..vocabulary",
    "STYLES": "..vocabulary",
    "VIDEO_FORMATS": "..vocabulary",
    "pyramid_video": ".pyramid",
    "CommandResult": ".result",
    "TubeResult": ".result",
}

__all__ = [
    "ALIGNS",
    "BACKGROUNDS",
    "BatchOptions",
    "BatchResult",
    "BatchSettings",
    "BenchmarkConfig",
    "BenchmarkResult",
    "CommandResult",
    "CompareOptions",
    "DEMO_SEED",
    "DeviceError",
    "EvaluateOptions",
    "ExplainOptions",
    "FORMATS",
    "INTERPOLATIONS",
    "InputError",
    "LAYOUTS",
    "LoadedModel",
    "METHOD_CHOICES",
    "METHOD_NAMES",
    "ModelOptions",
    "Protocol",
    "PyramidOptions",
    "STYLES",
    "SaliencyTubesError",
    "TubeResult",
    "VIDEO_FORMATS",
    "batch_videos",
    "benchmark",
    "check_device",
    "compare_classes",
    "compare_models",
    "evaluate_video",
    "explain_video",
    "first_line",
    "load_model",
    "merge_batches",
    "model_lines",
    "parse",
    "parse_shard",
    "probability",
    "probe",
    "pyramid_video",
    "read_inputs",
    "run_demo",
    "write_benchmark",
    "write_demo_dataset",
]


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use (PEP 562)."""
    if name == "parse":
        return importlib.import_module(".parse", __name__)
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'saliency_tubes.commands' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from ..errors import InputError, SaliencyTubesError, first_line
    from ..metrics.benchmark import BenchmarkConfig, BenchmarkResult, Protocol
    from ..numbers import probability
    from ..video import probe
    from ..vocabulary import (
        ALIGNS,
        BACKGROUNDS,
        FORMATS,
        INTERPOLATIONS,
        LAYOUTS,
        METHOD_CHOICES,
        METHOD_NAMES,
        STYLES,
        VIDEO_FORMATS,
    )
    from ..zoo import LoadedModel, load_model
    from . import parse
    from .batch import BatchOptions, BatchResult, batch_videos, merge_batches
    from .batch_video import BatchSettings
    from .compare import compare_classes, compare_models
    from .dataset import parse_shard, read_inputs
    from .demo import DEMO_SEED, run_demo, write_demo_dataset
    from .evaluate import benchmark, evaluate_video, write_benchmark
    from .explain import explain_video
    from .models import model_lines
    from .options import (
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
