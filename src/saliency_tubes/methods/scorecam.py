"""Score-CAM on 5-D activations: each channel weighted by the score of the clip it masks.

Wang, Wang, Du, Yang, Zhang, Ding, Mardziel and Hu, "Score-CAM: Score-Weighted Visual
Explanations for Convolutional Neural Networks", CVPR workshops 2020.

No gradient is taken: every channel of the target layer is upsampled to the clip's
(T, H, W), min-max normalised to [0, 1] and multiplied into the clip, and the model scores
each masked clip. That is one forward per channel and sample (C forwards for one clip),
batched; the classes only pick columns of those forwards' scores, so explaining every
class costs the same forwards as explaining one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..errors import InputError
from ..hooks import LayerSpec
from ..normalise import minmax
from ..resources import ACTIVATION_FACTOR
from .base import (
    Explainer,
    ExplainerOptions,
    ForwardPass,
    LayersSpec,
    check_batching,
    logits_of,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

DEFAULT_MAX_BYTES = 512 * 2**20
"""Default bound on the memory of one batch of masked clips (see :class:`ScoreCAM`)."""

Progress = Callable[[int, int], None]
"""``progress(done, total)``: masked clips scored so far, of how many (after each batch)."""


class ScoreCAM(Explainer):
    r"""Score-CAM tube (Wang et al. 2020): channels weighted by the scores of masked clips.

    For sample :math:`X` and channel :math:`k` of the target layer, :math:`H_k` is
    :math:`A_k` upsampled to the clip's (T, H, W) (the explainer's own ``interpolation``
    and ``align``) and min-max normalised to [0, 1] over the whole tube; then

    .. math::
        \alpha^c_k = \mathrm{softmax}\big(f(X \odot H_k)\big)_c, \qquad
        M^c = \mathrm{ReLU}\Big(\sum_k \alpha^c_k A_k\Big)

    with :math:`H_k` multiplied into every colour channel of the (normalised) clip, so a
    masked-out voxel becomes 0, the data set's mean colour. This is the authors' released
    code: the weight is the class's softmax probability on the masked clip, and a channel
    whose map is constant masks nothing and is skipped (weight 0, no forward). The paper's
    "increase of confidence" subtracts the probability of a baseline clip,
    :math:`f(X \odot H_k)_c - f(X_b)_c`: ``subtract_baseline=True`` does that with the
    all-zeros baseline (one more forward per sample); it lowers every weight of a class by
    the same amount, which adds :math:`-f(X_b)_c \sum_k A_k` to the map.

    Cost: the forward of the call plus one forward per non-constant channel and sample
    (C forwards at most for one clip), no backward; the same for one class or all of them
    (``classes="all"`` reads every class's weights from the same masked forwards). The
    masked clips are scored in batches of ``batch_size`` clips, or as many as fit in
    ``max_bytes`` (each masked clip counted with its mask and with
    :data:`~saliency_tubes.resources.ACTIVATION_FACTOR` times its bytes for the model's
    activations); ``progress(done, total)`` is called after each batch. The head is not
    needed (``classifier`` is accepted and ignored). With several layers (pathways) every
    channel of every layer masks the clip.

    Args:
        model: the video classifier.
        layer: target layer (name or module), or a list of them; found by default.
        classifier: accepted for a common call; not used.
        batch_size: masked clips per forward; None derives it from ``max_bytes``.
        max_bytes: bound on one batch's masked clips, masks and activations, in bytes.
        subtract_baseline: weights as the increase over the all-zeros clip's probability
            (the paper's formula) instead of the probability itself (the authors' code).
        progress: called as ``progress(done, total)`` after each batch.
        **options: ``relu`` (on by default), ``interpolation``, ``align``, ``categories``,
            ``eval_mode``, ``reshape``, ``inputs``: see :class:`Explainer`.
    """

    method = "scorecam"
    needs_head = False
    relu_by_default = True

    def __init__(
        self,
        model: nn.Module,
        layer: LayersSpec = None,
        classifier: LayerSpec = None,
        *,
        batch_size: int | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        subtract_baseline: bool = False,
        progress: Progress | None = None,
        **options: Unpack[ExplainerOptions],
    ) -> None:
        super().__init__(model, layer, classifier, **options)
        check_batching(batch_size, max_bytes, progress)
        self.batch_size = batch_size
        self.max_bytes = max_bytes
        self.subtract_baseline = bool(subtract_baseline)
        self.progress = progress

    def forwards(self, size: tuple[int, int, int], classes: int) -> int | None:
        """None: 1 + one forward per non-constant channel, known only from the activations."""
        del size, classes
        return None

    def _batch(self, clip: torch.Tensor) -> int:
        if self.batch_size is not None:
            return self.batch_size
        one = clip[0].numel() * clip.element_size()
        per_clip = one + one // clip.shape[1] + one * ACTIVATION_FACTOR
        return max(1, self.max_bytes // per_clip)

    def _probabilities(self, clips: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            logits = logits_of(self._forward(clips), clips.shape[0])
        return torch.softmax(logits.detach().float(), dim=1)

    def _raw_maps(self, forward: ForwardPass) -> list[torch.Tensor]:
        clip = forward.clip
        if clip is None:
            raise InputError(
                "expected the clip in the forward pass for Score-CAM, but got none; call the "
                "explainer on a clip"
            )
        size = (clip.shape[2], clip.shape[3], clip.shape[4])
        alphas = [forward.volume(a.detach()) for a in forward.activations]
        n = clip.shape[0]
        # Every (sample, channel) of every layer whose map is not constant masks the clip once;
        # a batch holds one layer's maps (the layers' grids may differ).
        jobs: list[list[tuple[int, int]]] = []
        for alpha in alphas:
            flat = alpha.flatten(2)
            jobs.append(
                [(s, c) for s, c in (flat.amax(dim=2) > flat.amin(dim=2)).nonzero().tolist()]
            )
        total = sum(len(j) for j in jobs)
        num_classes = forward.logits.shape[1]
        weights = [torch.zeros(n, a.shape[1], num_classes, device=clip.device) for a in alphas]
        chunk = self._batch(clip)
        done = 0
        for layer_jobs, alpha, w in zip(jobs, alphas, weights, strict=True):
            for start in range(0, len(layer_jobs), chunk):
                part = layer_jobs[start : start + chunk]
                maps = torch.stack([alpha[s, c] for s, c in part])
                masks = minmax(self._upsample(maps, size), dim=(1, 2, 3)).to(clip.dtype)
                samples = torch.tensor([s for s, _ in part], device=clip.device)
                scores = self._probabilities(clip[samples] * masks[:, None])
                for (s, c), row in zip(part, scores, strict=True):
                    w[s, c] = row
                done += len(part)
                if self.progress is not None:
                    self.progress(done, total)
        if self.subtract_baseline:
            base = self._probabilities(torch.zeros_like(clip))  # (N, num_classes)
            for layer, w in enumerate(weights):
                varies = alphas[layer].flatten(2).amax(dim=2) > alphas[layer].flatten(2).amin(dim=2)
                weights[layer] = torch.where(varies[..., None], w - base[:, None], w)
        index = forward.classes
        raws = []
        for w, alpha in zip(weights, alphas, strict=True):
            picked = w.gather(2, index[:, None, :].expand(-1, w.shape[1], -1))  # (N, C, K)
            raws.append(torch.einsum("nck,ncthw->nkthw", picked.to(alpha.dtype), alpha))
        return raws
