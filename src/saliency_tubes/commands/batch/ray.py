"""``batch --engine ray``: the same per-video work as the local workers, on Ray.

:func:`run_ray` has the contract of :func:`~saliency_tubes.commands.batch.local.run_local`: every
video of ``todo`` gets exactly one row, handed to ``finished`` on the driver as it arrives
(so the caller's journal records progress, and a Ctrl-C keeps what finished).

How it runs, and why so (``--batch-size 1``; with more, decoding and the model run in two
stages: :mod:`~saliency_tubes.commands.batch.ray_stages`, whose Ray and paths are as here):

* **Ray Data**: ``from_items`` (one block per video: the block is Ray Data's unit of retry
  and of failure, so one video never takes others down with it) -> ``map_batches`` with a
  class UDF on an actor pool (``batch_size=1``, one task in flight per actor). Each actor
  builds one :class:`~saliency_tubes.commands.batch.worker.VideoWorker` in its constructor:
  the model is loaded once per actor, then video after video is explained with it. The rows
  stream back with ``iter_rows`` in the order they finish. Videos go in as plain JSON text
  (paths as strings) and rows come back pickled, so a row is exactly the row the local
  engine gives.
* **Resources**: with ``--device cuda`` each actor takes ``num_gpus=1`` (and one CPU) and
  loads the model on the one GPU Ray shows it (``cuda``, whatever index was asked for); the
  pool has one actor per GPU of the cluster. Otherwise each actor takes
  ``settings.threads or 1`` CPUs and uses as many torch threads; the pool has one actor per
  that many CPUs of the cluster (never more actors than videos).
* **Paths**: the actors work in the driver's folder where it exists on their machine
  (relative ``--weights`` and ``--categories`` mean what they mean on the driver); the
  videos and the output folder travel as absolute paths, which on a cluster must name the
  same shared storage on every machine.
* **Ray itself**: with no address, a private local Ray is started with
  ``num_cpus=os.cpu_count()``, no dashboard and the workers' logs kept off the terminal, and
  shut down at the end; with an address (``auto``, ``HOST:PORT``) the running cluster is
  joined, and left (still running) at the end. A Ray this process had already started is
  used and kept. Ray Data's progress bars and log lines are off (the batch has its own
  bar); Ray itself still says a line when an actor dies, and Ray 2.60 one line per run that
  the actors' arguments live in the object store.
* **--timeout** is enforced inside each actor: the video runs on a thread of the actor and
  the actor waits for it at most ``timeout`` seconds; past that the video gets its error row
  at once. The thread cannot be stopped (a hung C decoder ignores Python), and it holds the
  model's lock, so that actor is spent: at its next video it exits, Ray restarts it (a fresh
  process, the model loaded again) and retries that next video on it.
* **Failures**: a video's own failure is an error row (:meth:`VideoWorker.run`); an
  unexpected exception in the UDF too. An actor that dies (a crash in a decoder, the
  out-of-memory killer, a lost node) is restarted by Ray (``max_restarts=-1``) and its video
  retried once (``max_task_retries=1``); a video that kills its actor twice is left out by
  Ray Data (``max_errored_blocks``: unlimited) and gets an error row when the run ends. A
  model that cannot be loaded ends the batch with one :class:`~saliency_tubes.InputError`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pickle
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ...errors import InputError, first_line
from .inputs import Item
from .ray_stages import (
    FATAL,
    Bounded,
    DecodeActor,
    ExplainActor,
    stage_pools,
    task,
    timed_out,
    untask,
)
from .worker import BatchSettings, VideoWorker, error_row

__all__ = ["MISSING_RAY", "run_ray"]

#: The error when ``--engine ray`` is asked for without Ray installed.
MISSING_RAY = (
    "expected the ray extra (pip install 'saliency-tubes[ray]') for --engine ray, "
    "but ray is not installed"
)

#: Retries of a video whose actor died under it (the second death makes it an error row).
_RETRIES = 1


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401  (the extra is ray[data])
    except ImportError as exc:
        raise InputError(MISSING_RAY) from exc
    return ray


class _VideoActor:
    """The class UDF of ``map_batches``: one :class:`VideoWorker` (one model) per actor."""

    def __init__(self, settings: BatchSettings, timeout: float | None, cwd: str) -> None:
        if os.path.isdir(cwd):  # relative --weights / --categories, as on the driver
            os.chdir(cwd)
        self.timeout = timeout
        self.bounded = Bounded()
        self.fatal: str | None = None
        try:
            self.worker = VideoWorker(settings)
        except Exception as exc:  # told to the driver, which ends the batch with it
            self.fatal = first_line(exc)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        self.bounded.leave_if_spent()  # a timed-out video still runs here: be replaced
        if self.fatal is not None:
            rows = [pickle.dumps({FATAL: self.fatal})] * len(batch["task"])
        else:
            rows = [pickle.dumps(self._one(*untask(str(text)))) for text in batch["task"]]
        return {"row": np.array(rows, dtype=object)}

    def _one(self, item: Item, fp: str) -> dict[str, Any]:
        began = time.perf_counter()
        done, row = self.bounded.run(lambda: self._guarded(item, fp), self.timeout)
        if done:
            return dict(row)
        assert self.timeout is not None
        return error_row(item, timed_out(self.timeout), fp, time.perf_counter() - began)

    def _guarded(self, item: Item, fp: str) -> dict[str, Any]:
        try:
            return self.worker.run(item, fp)
        except Exception as exc:  # an unexpected bug: this video's error, not the batch's
            return error_row(item, f"unexpected {type(exc).__name__}: {first_line(exc)}", fp)


@contextmanager
def _quiet_ray_data(ray: Any) -> Iterator[None]:
    """Ray Data without its progress bars and its log lines on the terminal (our own bar
    and rows say what happens); the context and the logger are put back afterwards."""
    ctx = ray.data.DataContext.get_current()
    saved = {
        name: getattr(ctx, name)
        for name in ("enable_progress_bars", "print_on_execution_start", "max_errored_blocks")
        if hasattr(ctx, name)
    }
    logger = logging.getLogger("ray.data")
    level = logger.level
    try:
        for name, value in (
            ("enable_progress_bars", False),
            ("print_on_execution_start", False),
            ("max_errored_blocks", -1),  # a video that kills its actor twice: left out
        ):
            if name in saved:
                setattr(ctx, name, value)
        logger.setLevel(logging.CRITICAL)
        yield
    finally:
        for name, value in saved.items():
            setattr(ctx, name, value)
        logger.setLevel(level)


def _start(ray: Any, address: str | None) -> bool:
    """Start or join Ray; whether this call started it (and so shuts it down)."""
    if ray.is_initialized():
        return False
    quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
    try:
        if address is None:
            ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, **quiet)
        else:
            ray.init(address=address, **quiet)
    except Exception as exc:  # ConnectionError, RuntimeError, ValueError, depending on why
        where = "a local Ray" if address is None else f"the Ray cluster at {address}"
        raise InputError(
            f"expected to start {where}, but got {first_line(exc)}; "
            + (
                "check that `ray status` works on this machine"
                if address is not None
                else "check /tmp/ray's free space and that no other Ray is half-started"
            )
        ) from exc
    return True


def _gpus(resources: dict[str, float], settings: BatchSettings) -> int:
    """The cluster's GPUs with ``--device cuda`` (at least one, or one error); 0 otherwise."""
    if not str(settings.model.device or "cpu").startswith("cuda"):
        return 0
    gpus = int(resources.get("GPU", 0))
    if gpus < 1:
        raise InputError(
            "expected a GPU in the Ray cluster for --device cuda, but it has none; "
            "start the workers with GPUs (ray start --num-gpus N) or use --device cpu"
        )
    return gpus


def _pool(ray: Any, settings: BatchSettings, videos: int) -> tuple[int, dict[str, Any], int]:
    """The actor pool: its size, each actor's resources, and its torch threads."""
    resources = ray.cluster_resources()
    gpus = _gpus(resources, settings)
    if gpus:
        return min(videos, gpus), {"num_gpus": 1, "num_cpus": 1}, settings.threads or 1
    total = max(1, int(resources.get("CPU", 1)))
    cpus = min(settings.threads or 1, total)  # more than the cluster has would never start
    size = max(1, min(videos, total // cpus))
    return size, {"num_cpus": cpus}, cpus


def _collect(
    records: Iterator[Any], came: set[str], finished: Callable[[dict[str, Any]], None]
) -> None:
    """Hand each row to ``finished`` as it arrives; Ray's own errors as one line."""
    while True:
        try:
            record = next(records)
        except StopIteration:
            return
        except Exception as exc:  # Ray's own errors: actors that cannot start, mostly
            raise InputError(
                f"expected the Ray actors to load the model and run, but got "
                f"{type(exc).__name__}: {first_line(exc)}; run saliency-tubes explain "
                "on one video to see why"
            ) from exc
        row = pickle.loads(record["row"])
        if FATAL in row:
            raise InputError(f"{row[FATAL]} (on the Ray actors)")
        came.add(row["video_id"])
        finished(row)


#: Ray's handling of an actor that dies: restarted, its call retried once (Ray 2.60 takes
#: these as ray_remote_args, which warns that 2.64 drops them: the extra pins 2.60).
_RESTARTS = {"max_restarts": -1, "max_task_retries": _RETRIES}


def _shipped(settings: BatchSettings, resources: dict[str, Any], threads: int) -> BatchSettings:
    """The settings as the actors get them (on a GPU actor: ``cuda``, the one Ray shows it)."""
    model = settings.model
    if "num_gpus" in resources:
        model = dataclasses.replace(model, device="cuda")
    return BatchSettings(model, settings.explain, Path(settings.videos).resolve(), threads)


def _one_stage(
    ray: Any, ds: Any, settings: BatchSettings, timeout: float | None, videos: int
) -> Any:
    """Each actor decodes and explains one video at a time (``--batch-size 1``)."""
    size, resources, threads = _pool(ray, settings, videos)
    return ds.map_batches(
        _VideoActor,
        fn_constructor_args=(_shipped(settings, resources, threads), timeout, os.getcwd()),
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=size, max_tasks_in_flight_per_actor=1),
        **_RESTARTS,
        **resources,
    )


def _two_stages(
    ray: Any,
    ds: Any,
    settings: BatchSettings,
    timeout: float | None,
    batch: int,
    decoders: int | None,
    videos: int,
) -> Any:
    """Decode actors, then explain actors taking ``batch`` clips per forward
    (:mod:`~saliency_tubes.commands.batch.ray_stages`)."""
    resources = ray.cluster_resources()
    _gpus(resources, settings)
    count, cpus, size, taken, threads = stage_pools(resources, settings, videos, decoders)
    shipped = _shipped(settings, taken, threads)
    where = (shipped, timeout, os.getcwd())
    decoded = ds.map(
        DecodeActor,
        fn_constructor_args=where,
        # one call in flight per actor: a spent actor's exit then fails (and retries) only it
        compute=ray.data.ActorPoolStrategy(size=count, max_tasks_in_flight_per_actor=1),
        num_cpus=cpus,
        **_RESTARTS,
    )
    return decoded.map_batches(
        ExplainActor,
        fn_constructor_args=where,
        batch_size=batch,
        compute=ray.data.ActorPoolStrategy(size=size, max_tasks_in_flight_per_actor=1),
        **_RESTARTS,
        **taken,
    )


def run_ray(
    settings: BatchSettings,
    todo: Sequence[tuple[Item, str]],
    address: str | None,
    timeout: float | None,
    finished: Callable[[dict[str, Any]], None],
    batch_size: int = 1,
    decoders: int | None = None,
) -> None:
    """Explain ``todo`` on Ray (see the module's description); ``finished`` gets each row.
    ``batch_size`` > 1: in two stages, decode actors then explain actors with that many
    clips per forward (:mod:`~saliency_tubes.commands.batch.ray_stages`; ``decoders``: the
    decode actors, None: the CPUs the explain actors leave).

    Raises:
        InputError: Ray is not installed or cannot be started or joined, the cluster lacks
            the GPUs ``--device cuda`` needs, or the model cannot be loaded in the actors.
    """
    if not todo:
        return
    ray = _import_ray()
    started = _start(ray, address)
    try:
        came: set[str] = set()
        with _quiet_ray_data(ray):
            ds = ray.data.from_items(
                [{"task": task(item, fp)} for item, fp in todo], override_num_blocks=len(todo)
            )
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
                if batch_size > 1:
                    ds = _two_stages(ray, ds, settings, timeout, batch_size, decoders, len(todo))
                else:
                    ds = _one_stage(ray, ds, settings, timeout, len(todo))
            records = iter(ds.iter_rows())
            try:
                _collect(records, came, finished)
            finally:  # stop the execution while Ray runs and Ray Data is quiet
                close = getattr(records, "close", None)
                if close is not None:
                    close()
        for item, fp in todo:
            if item.video_id not in came:
                finished(
                    error_row(
                        item,
                        f"the Ray actor died on this video {_RETRIES + 1} times (a crash in "
                        "the decoder, or out of memory), or on a batch holding it; check it "
                        "alone with saliency-tubes explain",
                        fp,
                    )
                )
    finally:
        if started:
            ray.shutdown()
