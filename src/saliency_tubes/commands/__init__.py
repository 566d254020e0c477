"""The application layer: video(s) in, files out. The command line calls only this package.

One module per command, the options, and three packages of what the commands share:

==================  ===================================================================
``options``         what each command is asked to do (:class:`ExplainOptions`,
                    :class:`CompareOptions`, :class:`PyramidOptions`,
                    :class:`EvaluateOptions`, :class:`ModelOptions`), validated once, when
                    made (``plain``: their ``to_dict`` / ``from_dict``)
``explain``         :func:`explain_video`
``compare``         :func:`compare_classes`, :func:`compare_models`
``pyramid``         :func:`pyramid_video`
``evaluate``        :func:`evaluate_video`, :func:`benchmark`, :func:`write_benchmark`
``demo``            :func:`run_demo`, :func:`write_demo_dataset`
``models``          :func:`model_lines`
``pipeline``        the steps every command shares: ``explaining`` (decode once, explain per
                    model), ``grouped`` (several videos in one forward), ``track`` (one
                    tube on the video's timeline), ``drawing`` and ``sizing`` (what each
                    output shows, the one encode pass), ``manifest``, ``outputs`` (the
                    output folder, atomic writes, the run of a command) and ``lock``,
                    ``result`` (:class:`CommandResult`), ``model_line``
``batch``           a data set: ``run`` (:func:`batch_videos`, :func:`merge_batches`),
                    ``inputs`` (videos, ids, fingerprints, shards), ``worker`` and
                    ``groups`` (one video, a group of videos), ``records`` (the row, the
                    journal, ``index.parquet``, the summary), ``local`` and ``ray``
``report``          the pages: ``video`` (report.html), ``index`` (a batch's index.html),
                    filled from ``templates/`` by ``templating``
==================  ===================================================================

Every command function returns a :class:`CommandResult` (manifest, files, per-tube
numbers, timings) and, on any error or interrupt, leaves its output folder as it was.
Names are imported from their modules on first use, so the option vocabulary is available
without importing torch (the command line's ``--help``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import exports

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
    "BatchOptions": ".batch.run",
    "BatchResult": ".batch.run",
    "batch_videos": ".batch.run",
    "merge_batches": ".batch.run",
    "BatchSettings": ".batch.worker",
    "parse_shard": ".batch.inputs",
    "read_inputs": ".batch.inputs",
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
    "BATCH_SIZE": "..vocabulary",
    "FORMATS": "..vocabulary",
    "INTERPOLATIONS": "..vocabulary",
    "LAYOUTS": "..vocabulary",
    "METHOD_CHOICES": "..vocabulary",
    "METHOD_NAMES": "..vocabulary",
    "STYLES": "..vocabulary",
    "VIDEO_FORMATS": "..vocabulary",
    "pyramid_video": ".pyramid",
    "CommandResult": ".pipeline.result",
    "TubeResult": ".pipeline.result",
}

__getattr__, __dir__, __all__ = exports(__name__, _EXPORTS)


if TYPE_CHECKING:
    from ..errors import InputError as InputError
    from ..errors import SaliencyTubesError as SaliencyTubesError
    from ..errors import first_line as first_line
    from ..metrics.benchmark import BenchmarkConfig as BenchmarkConfig
    from ..metrics.benchmark import BenchmarkResult as BenchmarkResult
    from ..metrics.benchmark import Protocol as Protocol
    from ..numbers import probability as probability
    from ..video import probe as probe
    from ..vocabulary import ALIGNS as ALIGNS
    from ..vocabulary import BACKGROUNDS as BACKGROUNDS
    from ..vocabulary import BATCH_SIZE as BATCH_SIZE
    from ..vocabulary import FORMATS as FORMATS
    from ..vocabulary import INTERPOLATIONS as INTERPOLATIONS
    from ..vocabulary import LAYOUTS as LAYOUTS
    from ..vocabulary import METHOD_CHOICES as METHOD_CHOICES
    from ..vocabulary import METHOD_NAMES as METHOD_NAMES
    from ..vocabulary import STYLES as STYLES
    from ..vocabulary import VIDEO_FORMATS as VIDEO_FORMATS
    from ..zoo import LoadedModel as LoadedModel
    from ..zoo import load_model as load_model
    from .batch.inputs import parse_shard as parse_shard
    from .batch.inputs import read_inputs as read_inputs
    from .batch.run import BatchOptions as BatchOptions
    from .batch.run import BatchResult as BatchResult
    from .batch.run import batch_videos as batch_videos
    from .batch.run import merge_batches as merge_batches
    from .batch.worker import BatchSettings as BatchSettings
    from .compare import compare_classes as compare_classes
    from .compare import compare_models as compare_models
    from .demo import DEMO_SEED as DEMO_SEED
    from .demo import run_demo as run_demo
    from .demo import write_demo_dataset as write_demo_dataset
    from .evaluate import benchmark as benchmark
    from .evaluate import evaluate_video as evaluate_video
    from .evaluate import write_benchmark as write_benchmark
    from .explain import explain_video as explain_video
    from .models import model_lines as model_lines
    from .options import CompareOptions as CompareOptions
    from .options import DeviceError as DeviceError
    from .options import EvaluateOptions as EvaluateOptions
    from .options import ExplainOptions as ExplainOptions
    from .options import ModelOptions as ModelOptions
    from .options import PyramidOptions as PyramidOptions
    from .options import check_device as check_device
    from .pipeline.result import CommandResult as CommandResult
    from .pipeline.result import TubeResult as TubeResult
    from .pyramid import pyramid_video as pyramid_video
