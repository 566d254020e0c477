"""Several videos' clips explained in one forward (``batch --batch-size``).

A video of a batch is one clip when it is sampled uniformly (no ``--windows``):
:func:`prepare` decodes and preprocesses it, :func:`explain_clips` runs the clips of several
videos through one call of the explainer (one forward; for the gradient methods one
backward per class for the whole batch) and gives each video the
:class:`~saliency_tubes.commands.pipeline.explaining.Explained` that
:func:`~saliency_tubes.commands.pipeline.explaining.explain` gives it alone.

Why the results are the same: each method here computes a sample's raw map from that
sample's activations and scores only (CAM: its activations and the class weights; the
gradient methods: the gradient of the batch's summed picked scores with respect to sample
n's activations is sample n's own gradient; EigenCAM: one SVD per sample), and the model
runs in eval mode (BatchNorm uses its running statistics, not the batch's). A batched
convolution may add in another order than a single clip's: the raw maps then differ in the
last bits (the tests allow 1e-6 relative to the map's range). :func:`why_alone` says where
batching across videos would change results or save nothing; those videos are explained
one by one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...hooks import model_device
from ...methods import Explainer
from ...video import VideoInfo
from ...vocabulary import ATTENTION_METHODS
from ...zoo import LoadedModel
from ..options import ExplainOptions
from .explaining import Explained, Plan, decode_windows, explanation, method_of, plan, source_info

__all__ = ["GROUPED_METHODS", "Prepared", "explain_clips", "prepare", "received", "why_alone"]

#: The methods whose tube of a clip is the same whatever else is in its batch.
GROUPED_METHODS = ("cam", "gradcam", "gradcam++", "layercam", "xgradcam", "hirescam", "eigencam")


@dataclass
class Prepared:
    """One video decoded for its one clip.

    Attributes:
        plan: its plan (one window).
        info: the explained frames' facts (the segment's with ``--start``/``--end``).
        clip: ``(1, C, T, h, w)``, preprocessed.
    """

    plan: Plan
    info: VideoInfo
    clip: torch.Tensor


def why_alone(loaded: LoadedModel, options: ExplainOptions, explainer: Explainer) -> str | None:
    """Why the videos must be explained one by one with these options (None: they may be
    batched), said as the end of a sentence."""
    method = method_of(loaded, options.method)
    if options.windows is not None:
        return "--windows gives each video several clips, explained per video"
    if method in ATTENTION_METHODS:
        return (
            f"--method {method} records each clip's attention maps in its own call: it is not "
            "batched across videos yet"
        )
    if method not in GROUPED_METHODS:
        return (
            f"--method {method} is not one forward per clip (or runs the model on perturbed "
            "copies of each clip): batching videos would not save its forwards"
        )
    if callable(options.classes):
        return "a class function would see the scores of the whole batch"
    if not explainer.eval_mode and any(m.training for m in loaded.model.modules()):
        return "the model runs in training mode (BatchNorm would mix the clips of a batch)"
    return None


def prepare(
    video: str | Path, info: VideoInfo, loaded: LoadedModel, options: ExplainOptions
) -> Prepared:
    """Decode ``video``'s one clip (``info``: its probe) for :func:`explain_clips`."""
    part = source_info(video, info, options) or info
    todo = plan(part, loaded, options)
    ((_, _, clip),) = list(decode_windows(Path(video), [todo], part))
    return Prepared(todo, part, clip)


def received(
    video: str | Path,
    info: VideoInfo,
    clip: np.ndarray,
    loaded: LoadedModel,
    options: ExplainOptions,
) -> Prepared:
    """What :func:`prepare` gave in another process (Ray's decode actors), here with this
    process's model: ``clip`` is its clip as an array, ``info`` the video's probe. The plan
    is made again from them (a function of the probe, the preset and the options: the same
    windows, nothing decoded)."""
    part = source_info(video, info, options) or info
    return Prepared(plan(part, loaded, options), part, torch.from_numpy(clip))


def explain_clips(explainer: Explainer, videos: list[Prepared]) -> list[Explained]:
    """Each video's explanation, from one call of ``explainer`` on all their clips (they
    must have one size)."""
    first = videos[0].plan
    device = model_device(first.loaded.model) or torch.device("cpu")
    clips = torch.cat([v.clip for v in videos]).to(device)
    tubes = explainer(clips, classes=first.classes, upsample=False)
    out = []
    for i, v in enumerate(videos):
        v.plan.windows[0].raw = tubes.raw[i].cpu().clone()
        chosen = tubes.classes[i].tolist()
        scores = tubes.scores[i].cpu().tolist()
        out.append(
            explanation(v.plan, v.info, chosen, scores, tubes.layer, tubes.classifier, device)
        )
    return out
