"""Saliency Tubes: class activation mapping for spatio-temporal convolutions.

Stergiou, Kapidis, Kalliatakis, Chrysoulas, Veltkamp and Poppe, "Saliency Tubes: Visual
Explanations for Spatio-Temporal Convolutions", ICIP 2019.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..errors import InputError, LayerNotFoundError
from ..hooks import LayerSpec, head_weight
from ..normalise import minmax
from .base import Explainer, ExplainerOptions, ForwardPass, LayersSpec

if TYPE_CHECKING:
    from typing_extensions import Unpack


class SaliencyTubes(Explainer):
    r"""The paper's tube: class weights times the last conv layer's activations.

    For class :math:`i` and feature (channel) :math:`j` of the target layer's activation
    :math:`\alpha_j(t, h, w)`, with :math:`w_{ij}` the classifier's weight,

    .. math::
        z_{ij}(t, h, w) = w_{ij}\,\alpha_j(t, h, w), \qquad
        \text{tube}_i = \sum_{j \in D} z_{ij},

    then upsampled by spline interpolation to the clip's (T, H, W) and min-max
    normalised over the whole tube. For a global-average-pool + linear head this is
    exact: the class score is the space-time mean of the tube plus the bias.

    Feature selection (the slides' thresholding, at the cost of *global information
    bias*: small but class-specific contributions are dropped):

    * ``top_features=D``: keep the D features with the largest class weights;
    * ``weight_threshold=θ``: keep features whose class weight, min-max normalised over
      the features, is at least θ;
    * ``activation_threshold=θ``: per sample and feature, zero the activations whose
      value, min-max normalised over (T', H', W'), is below θ.

    Args:
        model: the video classifier.
        layer: target layer (name or module); found automatically by default.
        classifier: the head (``nn.Linear`` or 1x1x1 ``nn.Conv3d``); found by default.
        top_features: keep only the D largest-weight features (None: all).
        weight_threshold: θ in [0, 1] for the class weights (None: off).
        activation_threshold: θ in [0, 1] for the activations (None: off).
        pooled_head: for heads that are more than one linear layer after the global pooling
            (X3D: 1x1x1 conv, ReLU, linear): a function from the pooled features (N, C) to
            the scores. The class weights are then its Jacobian at the clip's pooled
            features, which is exact for piecewise-linear heads: the class score is the
            tube's space-time mean plus a constant.
        **options: ``relu`` (clamp the raw tube at 0; off by default, as in the authors'
            code), ``interpolation``, ``align``, ``categories``, ``eval_mode``, ``reshape``,
            ``inputs``: see :class:`Explainer`.
    """

    method = "cam"

    def __init__(
        self,
        model: nn.Module,
        layer: LayersSpec = None,
        classifier: LayerSpec = None,
        *,
        top_features: int | None = None,
        weight_threshold: float | None = None,
        activation_threshold: float | None = None,
        pooled_head: Callable[[torch.Tensor], torch.Tensor] | None = None,
        **options: Unpack[ExplainerOptions],
    ) -> None:
        if pooled_head is not None:
            self.needs_head = False  # the scores come from pooled_head, not a head's weights
        super().__init__(model, layer, classifier, **options)
        if pooled_head is not None and not callable(pooled_head):
            raise TypeError(
                f"expected pooled_head to be callable or None, but got {type(pooled_head).__name__}"
            )
        self.pooled_head = pooled_head
        if top_features is not None and (
            isinstance(top_features, bool) or not isinstance(top_features, int) or top_features < 1
        ):
            raise InputError(
                f"expected top_features to be a positive int or None, but got {top_features!r}"
            )
        for name, value in (
            ("weight_threshold", weight_threshold),
            ("activation_threshold", activation_threshold),
        ):
            if value is not None and not 0.0 <= float(value) <= 1.0:
                raise InputError(f"expected {name} in [0, 1] or None, but got {value!r}")
        self.top_features = top_features
        self.weight_threshold = weight_threshold
        self.activation_threshold = activation_threshold

    @property
    def uses_autograd(self) -> bool:
        """Whether the class weights come from autograd (the Jacobian of ``pooled_head``)."""
        return self.pooled_head is not None

    def _raw_maps(self, forward: ForwardPass) -> list[torch.Tensor]:
        alphas = [forward.volume(a.detach()) for a in forward.activations]
        channels = [a.shape[1] for a in alphas]
        w = self._class_weights(alphas, forward.classes, forward.head)  # (N, K, sum C)
        if w.shape[2] != sum(channels):
            layers = "the layer's" if len(channels) == 1 else "the layers' (together)"
            raise LayerNotFoundError(
                f"expected the classifier to take {layers} {sum(channels)} channels, but its weight "
                f"has {w.shape[2]} input features; pick the layer that feeds the global pooling"
            )
        w = w * self._feature_mask(w)
        raws = []
        for part, alpha in zip(w.split(channels, dim=2), alphas, strict=True):
            if self.activation_threshold is not None:
                alpha = alpha * self._activation_mask(alpha)
            raws.append(torch.einsum("nkc,ncthw->nkthw", part, alpha))
        return raws

    def _class_weights(
        self, alphas: list[torch.Tensor], classes: torch.Tensor, head: nn.Module | None
    ) -> torch.Tensor:
        """(N, K, C) class weights of the target features, C summed over the layers."""
        dtype = alphas[0].dtype
        if self.pooled_head is None:
            if head is None:
                raise LayerNotFoundError(
                    "CAM needs the classifier head's weights, but no classifier was given or found; "
                    "pass classifier='<name of the final nn.Linear>' or use GradCAM"
                )
            return head_weight(head).detach().to(dtype)[classes]
        # The exact local linear map of the head at this clip's pooled features: for a
        # piecewise-linear head (conv - ReLU - linear) the score is J p + b on the piece
        # that holds p, so the tube's space-time mean is the score minus that offset.
        pooled = torch.cat([a.mean(dim=(2, 3, 4)) for a in alphas], dim=1).detach()
        with torch.enable_grad():
            point = pooled.clone().requires_grad_(True)
            scores = self.pooled_head(point)
            if not isinstance(scores, torch.Tensor) or scores.shape[:1] != pooled.shape[:1]:
                raise InputError(
                    f"expected pooled_head to map (N, C) features to (N, num_classes) scores, but got "
                    f"{tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__}"
                )
            rows = []
            for k in range(classes.shape[1]):
                picked = scores.gather(1, classes[:, k : k + 1]).sum()
                (grad,) = torch.autograd.grad(picked, point, retain_graph=k < classes.shape[1] - 1)
                rows.append(grad)
        return torch.stack(rows, dim=1).to(dtype)

    def _feature_mask(self, w: torch.Tensor) -> torch.Tensor:
        """(N, K, C) 0/1 mask of the features D kept for each class."""
        keep = torch.ones_like(w, dtype=torch.bool)
        if self.top_features is not None and self.top_features < w.shape[2]:
            top = w.topk(self.top_features, dim=2).indices
            keep = torch.zeros_like(keep).scatter_(2, top, True)
        if self.weight_threshold is not None:
            keep = keep & (minmax(w, dim=2) >= self.weight_threshold)
        return keep.to(w.dtype)

    def _activation_mask(self, alpha: torch.Tensor) -> torch.Tensor:
        """(N, C, T', H', W') 0/1 mask of the activations kept by ``activation_threshold``."""
        keep = minmax(alpha, dim=(2, 3, 4)) >= float(self.activation_threshold or 0.0)
        return keep.to(alpha.dtype)


CAM = SaliencyTubes
