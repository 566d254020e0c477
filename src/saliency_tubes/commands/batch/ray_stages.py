"""``batch --engine ray --batch-size N`` (N > 1): decoding and the model in two stages of Ray
Data, so that the model's actor (a GPU's) never decodes.

* **Decode actors** (``map``, ``num_cpus=1`` each): probe one video, read its sampled frames
  and preprocess them into its clip
  (:meth:`~saliency_tubes.commands.batch.groups.GroupWorker.decode`, the local grouped
  path's), handed on as plain data (:class:`~saliency_tubes.commands.batch.groups.Shipped`,
  pickled: the probe, the clip as a float32 array, or the error). Each loads the model on
  the CPU once, for what decoding needs of it (its preset, its method, whether its videos
  may be batched: :func:`~saliency_tubes.commands.pipeline.grouped.why_alone`).
* **Explain actors** (``map_batches`` with ``batch_size=N``, ``num_gpus=1`` with ``--device
  cuda``, else ``--threads`` CPUs): the clips of N videos in one forward and each video's
  outputs and row (:meth:`~saliency_tubes.commands.batch.groups.GroupWorker.finish`, the
  local grouped path's). Ray Data's streaming executor is the bounded queue between the
  stages (its backpressure stops the decoders when the explain actors fall behind).

Where batching would change the results (:func:`why_alone`: ``--windows``, the methods of
many forwards, ...) the decode actors hand the video on undecoded and the explain actor
explains it alone, as the local workers do.

What differs from the one-stage path (:mod:`~saliency_tubes.commands.batch.ray`):
``--timeout`` bounds each stage on its own (the decode of a video; the explain of a batch,
``timeout`` seconds per video in it), so a video may take up to twice ``--timeout`` in all;
a batch past its time gives all of its videos the timeout's error row (the local workers
retry a timed-out group one video at a time: a Ray actor whose thread still runs cannot).
An explain actor that dies twice leaves out its whole batch (each video then gets the error
row of a dead actor).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...errors import first_line
from .groups import GroupWorker, Shipped
from .inputs import Item
from .worker import BatchSettings, VideoWorker, error_row

__all__ = ["FATAL", "SPENT", "Bounded", "DecodeActor", "ExplainActor", "stage_pools", "task"]

#: Exit status of an actor that leaves after a timed-out video (Ray restarts it).
SPENT = 75

#: The key of the one row an actor that could not load the model gives.
FATAL = "fatal"


def task(item: Item, fp: str) -> str:
    """A video and its fingerprint as plain JSON text (what travels to the actors)."""
    return json.dumps(
        {
            "path": str(item.path),
            "video_id": item.video_id,
            "label": item.label,
            "gt": None if item.gt is None else str(item.gt),
            "fingerprint": fp,
        }
    )


def untask(text: str) -> tuple[Item, str]:
    """:func:`task`'s text as the video and its fingerprint."""
    d = json.loads(text)
    gt = d["gt"]
    item = Item(Path(d["path"]), d["video_id"], d["label"], None if gt is None else Path(gt))
    return item, d["fingerprint"]


def timed_out(timeout: float) -> str:
    """The error of a video past ``--timeout``."""
    return (
        f"timed out after {timeout:g} s (--timeout); the video may hang the decoder: "
        "re-encode it, or raise --timeout"
    )


class Bounded:
    """Work of an actor bounded in time: run on a thread, waited for at most a while. A
    thread past its time cannot be stopped (a hung C decoder ignores Python) and may hold the
    model's lock, so the actor is spent: at its next call it exits and Ray restarts it."""

    def __init__(self) -> None:
        self.stuck: threading.Thread | None = None

    def leave_if_spent(self) -> None:
        if self.stuck is not None and self.stuck.is_alive():
            os._exit(SPENT)  # be replaced; Ray retries this call on the fresh actor

    def run(self, work: Callable[[], Any], seconds: float | None) -> tuple[bool, Any]:
        """``(True, work())``, or ``(False, None)`` past ``seconds`` (None: no limit); what
        ``work`` raises is raised here."""
        if seconds is None:
            return True, work()
        box: list[Any] = []
        failed: list[Exception] = []

        def run() -> None:
            try:
                box.append(work())
            except Exception as exc:  # raised in the caller's thread
                failed.append(exc)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        thread.join(seconds)
        if failed:
            raise failed[0]
        if box:
            return True, box[0]
        self.stuck = thread
        return False, None


def _grouped(settings: BatchSettings, cwd: str) -> tuple[GroupWorker | None, str | None]:
    """The actor's model (a :class:`GroupWorker`), or why it could not be loaded."""
    if os.path.isdir(cwd):  # relative --weights / --categories, as on the driver
        os.chdir(cwd)
    try:
        return GroupWorker(VideoWorker(settings)), None
    except Exception as exc:  # told to the driver, which ends the batch with it
        return None, first_line(exc)


class DecodeActor:
    """The class UDF of the first stage (``map``): one video's row in, its decode out."""

    def __init__(self, settings: BatchSettings, timeout: float | None, cwd: str) -> None:
        cpu = dataclasses.replace(settings.model, device="cpu")  # decoding needs no GPU
        mine = dataclasses.replace(settings, model=cpu, threads=1)  # and one CPU
        self.grouped, self.fatal = _grouped(mine, cwd)
        self.timeout = timeout
        self.bounded = Bounded()

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        self.bounded.leave_if_spent()
        if self.grouped is None:
            return {"task": row["task"], "decoded": pickle.dumps({FATAL: self.fatal})}
        grouped = self.grouped
        item, fp = untask(str(row["task"]))
        began = time.perf_counter()
        done, decoded = self.bounded.run(lambda: grouped.decode((0, item, fp)), self.timeout)
        if done:
            shipped = grouped.ship(decoded)
        else:
            assert self.timeout is not None
            shipped = Shipped(None, None, timed_out(self.timeout), time.perf_counter() - began)
        return {"task": row["task"], "decoded": pickle.dumps(shipped)}


class ExplainActor:
    """The class UDF of the second stage (``map_batches``): a batch of decoded videos in,
    one forward, their rows out (pickled, in the batch's order)."""

    def __init__(self, settings: BatchSettings, timeout: float | None, cwd: str) -> None:
        self.grouped, self.fatal = _grouped(settings, cwd)
        self.timeout = timeout
        self.bounded = Bounded()

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        self.bounded.leave_if_spent()
        tasks = [untask(str(text)) for text in batch["task"]]
        shipped = [pickle.loads(b) for b in batch["decoded"]]
        fatal = self.fatal or next((s[FATAL] for s in shipped if isinstance(s, dict)), None)
        if fatal is not None or self.grouped is None:
            rows = [{FATAL: fatal}] * len(tasks)
        else:
            rows = self._rows(self.grouped, tasks, shipped)
        return {"row": np.array([pickle.dumps(r) for r in rows], dtype=object)}

    def _rows(
        self, grouped: GroupWorker, tasks: list[tuple[Item, str]], shipped: list[Shipped]
    ) -> list[dict[str, Any]]:
        began = time.perf_counter()

        def work() -> list[dict[str, Any]]:
            decoded = [
                grouped.unship((i, item, fp), s)
                for i, ((item, fp), s) in enumerate(zip(tasks, shipped, strict=True))
            ]
            return [row for _, row in grouped.finish(decoded)]

        seconds = None if self.timeout is None else self.timeout * len(tasks)
        try:
            done, rows = self.bounded.run(work, seconds)
        except Exception as exc:  # a bug: these videos' error, not the batch's
            message = f"unexpected {type(exc).__name__}: {first_line(exc)}"
            return [error_row(item, message, fp) for item, fp in tasks]
        if done:
            return list(rows)
        assert self.timeout is not None
        spent = time.perf_counter() - began
        return [error_row(item, timed_out(self.timeout), fp, spent) for item, fp in tasks]


def stage_pools(
    resources: dict[str, float], settings: BatchSettings, videos: int, decoders: int | None
) -> tuple[int, float, int, dict[str, Any], int]:
    """The two stages' actors: decode actors and the CPUs of each, explain actors, an
    explain actor's resources and its torch threads, from the cluster's ``resources``.

    With ``--device cuda``: one explain actor per GPU (one CPU each), the other CPUs decode.
    On CPUs: half of them explain (``--threads`` each), the rest decode. ``decoders``
    (``--decoders``) sets the decode actors, at most as many as the CPUs left."""
    total = max(1, int(resources.get("CPU", 1)))
    if str(settings.model.device or "cpu").startswith("cuda"):
        explainers = max(1, min(videos, int(resources.get("GPU", 0))))
        taken = {"num_gpus": 1, "num_cpus": 1}
        threads = settings.threads or 1
        left = total - explainers
    else:
        threads = min(settings.threads or 1, total)
        explainers = max(1, min(videos, (total // 2) // threads))
        taken = {"num_cpus": threads}
        left = total - explainers * threads
    room = max(1, left)
    count = max(1, min(videos, decoders or room, room))
    # a cluster too small for a CPU per decode actor besides the explain actors: they share
    cpus = 1.0 if left >= count else 0.0
    return count, cpus, explainers, taken, threads
