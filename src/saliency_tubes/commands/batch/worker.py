"""One video of a batch: ``explain`` into its folder, reduced to one row of the index.

A :class:`VideoWorker` loads the model once and explains video after video
(:meth:`VideoWorker.run`); every failure of one video (unreadable, empty, a bad ground
truth, a full disk) becomes an ``error`` row with its one-line message, never an exception.
The row's columns are :data:`COLUMNS` (:class:`~.records.IndexRow`).
"""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InputError, SaliencyTubesError, first_line
from ...video import VideoInfo
from ...zoo import LoadedModel
from ..options import ExplainOptions, ModelOptions
from ..pipeline.explaining import Explained, source_info
from ..pipeline.lock import folder_lock
from ..pipeline.outputs import recover_staging
from ..plain import Plain
from ..report.thumbs import write_thumbnails
from .inputs import Item
from .records import COLUMNS, IndexRow

__all__ = ["COLUMNS", "BatchSettings", "VideoWorker", "error_row", "label_index"]


@dataclass(frozen=True)
class BatchSettings(Plain):
    """What every video of a batch is explained with (picklable, for worker processes).

    Attributes:
        model: the model to load (once per worker).
        explain: the explain options of every video (``progress`` off in workers).
        videos: the folder that holds one output folder per video.
        threads: torch CPU threads per worker (None: torch's default).
    """

    model: ModelOptions
    explain: ExplainOptions
    videos: Path
    threads: int | None = None

    def __post_init__(self) -> None:
        threads = self.threads
        if threads is not None and (
            isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
        ):
            raise InputError(
                f"expected --threads >= 1 (torch threads per worker), but got {threads!r}"
            )

    def describe(self) -> dict[str, Any]:
        """The settings as JSON-able data (for fingerprints and the summary): the options'
        ``to_dict``, less the progress bar and the device (they do not change what is
        written). Its JSON text is what ``dataclasses.asdict`` gave before ``to_dict``
        existed, so fingerprints of earlier runs still match."""
        options = self.explain.to_dict()
        options.pop("progress", None)
        model = self.model.to_dict()
        model.pop("device", None)
        return {"model": model, "explain": options}


def label_index(label: str | None, loaded: LoadedModel) -> int | None:
    """A label (a class name, any case, or an index: ASCII digits) as the model's class
    index; None when unlabelled or unknown to the model (a name it lacks, an index past
    its classes, ``--5``, ``²``): such a video counts as not labelled (the summary lists
    these labels)."""
    if label is None:
        return None
    text = str(label).strip()
    names = [n.lower() for n in (loaded.categories or [])]
    if text.lower() in names:
        return names.index(text.lower())
    count = len(names) if names else 2**62  # unnamed classes: any index an int64 holds
    if re.fullmatch(r"[0-9]+", text) and int(text) < count:
        return int(text)
    return None


def error_row(item: Item, message: str, fingerprint: str, seconds: float = 0.0) -> dict[str, Any]:
    """The row of a video that failed."""
    return IndexRow(
        video_id=item.video_id,
        path=str(item.path),
        status="error",
        error=message,
        label=item.label,
        seconds=round(seconds, 3),
        fingerprint=fingerprint,
    ).to_dict()


def _localisation(e: Explained, gt: Path, info: Any, first: int = 0) -> dict[str, float]:
    """Pointing, mass and IoU of the top-1 tube against ``gt`` on the clip grid (the mean
    over the windows with ground truth in them), as ``evaluate`` scores a clip (the same
    pointing tolerances). ``info`` is the whole file's; ``first`` the file's index of the
    explained segment's frame 0 (``--start``)."""
    from ...metrics.groundtruth import load_ground_truth
    from ...metrics.protocol import Protocol

    protocol = Protocol()

    truth = load_ground_truth(gt, info.num_frames, info.size)
    prep = e.loaded.preset.preprocess()
    scores: list[dict[str, float]] = []
    for w, win in enumerate(e.windows):
        mask = truth.on_clip(np.asarray(win.indices) + first, prep)
        if bool(mask.any()):
            scores.append(protocol.localisation(e.track.normalised(w)[0], mask))
    if not scores:
        return {}
    return {key: float(np.mean([s[key] for s in scores])) for key in ("pointing", "mass", "iou")}


def check_against(loaded: LoadedModel, options: ExplainOptions) -> None:
    """Check the options a model may refuse before any video runs: the method (it must
    apply to the model) and the classes (names and indices among the model's categories,
    top-K at most their count), as one :class:`~saliency_tubes.InputError`."""
    import torch

    from ...methods.base import select_classes
    from ..pipeline.explaining import method_of

    method = method_of(loaded, options.method)
    try:
        explainer = loaded.explainer(
            method, interpolation=options.interpolation, align=options.align
        )
    except SaliencyTubesError as exc:
        said = first_line(exc)
        if said.startswith("expected --method"):  # already names the method and the model
            raise InputError(f"{said}; nothing was written") from exc
        raise InputError(
            f"expected --method {options.method} to apply to {loaded.name}, but got: "
            f"{said}; nothing was written"
        ) from exc
    _check_gradients(loaded, options, explainer)
    names = loaded.categories
    if not names or callable(options.classes):
        return  # the class count is known only from a forward: checked per video
    spec = options.classes
    try:
        select_classes(
            list(spec) if isinstance(spec, tuple) else spec, torch.zeros(1, len(names)), names
        )
    except SaliencyTubesError as exc:
        raise InputError(
            f"expected --classes among the {len(names)} classes of {loaded.name}, but got: "
            f"{first_line(exc)}; nothing was written"
        ) from exc


def _check_gradients(loaded: LoadedModel, options: ExplainOptions, explainer: Any) -> None:
    """Integrated gradients needs the scores' gradients: one forward of a blank clip of the
    model's size asks for them, so that a model without them (a function under
    ``torch.no_grad``) is refused before the first video, not in every video's row."""
    import torch

    from ...hooks import model_device
    from ...methods.attribution import IntegratedGradients

    if not isinstance(explainer, IntegratedGradients):
        return
    preset = loaded.preset
    frames = options.frames or preset.frames
    clip = torch.zeros(1, 3, frames, *preset.size, device=model_device(loaded.model))
    try:
        explainer.check_gradients(clip)
    except SaliencyTubesError as exc:
        raise InputError(f"{first_line(exc)}; nothing was written") from exc


class VideoWorker:
    """Explains the videos of a batch one at a time with one loaded model."""

    def __init__(self, settings: BatchSettings, loaded: LoadedModel | None = None) -> None:
        if settings.threads is not None:
            import torch

            torch.set_num_threads(settings.threads)
        self.settings = settings
        if loaded is None:
            try:
                loaded = settings.model.load()
            except Exception as exc:
                raise InputError(
                    f"the model could not be loaded in a batch worker: {first_line(exc)}"
                ) from exc
        self.loaded = loaded
        check_against(loaded, settings.explain)
        self.thumbs = settings.videos.parent / "thumbs"

    def run(
        self,
        item: Item,
        fingerprint: str,
        *,
        prepared: tuple[VideoInfo, Explained, float] | None = None,
    ) -> dict[str, Any]:
        """Explain ``item`` into ``videos/<video_id>/``; its row (never raises for the video).

        ``prepared``: its probe, its explanation already made (``--batch-size``) and when its
        work began (its decode)."""
        from ...video import probe
        from ..explain import explained_video

        started = time.perf_counter() if prepared is None else prepared[2]
        out = self.settings.videos / item.video_id
        local: dict[str, float] = {}
        try:
            if out.is_dir():  # what a killed worker left, once no live run holds the folder
                with folder_lock(out):
                    recover_staging(out)
            info = probe(item.path, min_frames=2) if prepared is None else prepared[0]
            options = dataclasses.replace(self.settings.explain, progress=False)
            part = source_info(item.path, info, options) or info  # --start/--end
            given = None if prepared is None else prepared[1]
            result, explained = explained_video(item.path, out, self.loaded, options, info, given)
            if item.gt is not None:
                local = _localisation(explained, item.gt, info, part.first)
            if "html" in options.formats:
                write_thumbnails(  # the curve counts the segment's frames (--start/--end)
                    explained, result.tubes[0].curve, part, options, self.thumbs, item.video_id
                )
        except (SaliencyTubesError, OSError, ValueError, RuntimeError) as exc:
            return error_row(item, first_line(exc), fingerprint, time.perf_counter() - started)
        top = result.tubes[0]
        target = label_index(item.label, self.loaded)
        return IndexRow(
            video_id=item.video_id,
            path=str(item.path),
            status="ok",
            label=item.label,
            label_index=target,
            pred=top.index,
            pred_name=top.name,
            score=top.score,
            correct=None if target is None else bool(top.index == target),
            topk=[t.index for t in result.tubes],
            topk_names=[t.name for t in result.tubes],
            topk_scores=[t.score for t in result.tubes],
            fraction_above=top.stats.fraction_above,
            spread=top.stats.spread,
            key_times=[]
            if top.curve.times is None
            else top.curve.times[top.curve.key_frames].tolist(),
            curve=_resampled(top.curve.mean),
            frames=part.num_frames,
            fps=float(info.fps),
            duration=float(part.duration),
            seconds=round(time.perf_counter() - started, 3),
            output=f"videos/{item.video_id}",
            random_weights=bool(self.loaded.random_weights),
            model=self.loaded.name,
            method=explained.method,
            weights_source=self.loaded.weights_source,
            caveat=self.loaded.caveat,
            fingerprint=fingerprint,
            pointing=local.get("pointing"),
            mass=local.get("mass"),
            iou=local.get("iou"),
        ).to_dict()


def _resampled(values: np.ndarray, points: int = 20) -> list[float]:
    """``values`` linearly interpolated at ``points`` evenly spaced positions."""
    v = np.nan_to_num(np.asarray(values, dtype=np.float64))
    if v.size == 0:
        return []
    grid = np.linspace(0.0, 1.0, points)
    return np.interp(grid, np.linspace(0.0, 1.0, v.size), v).round(4).tolist()
