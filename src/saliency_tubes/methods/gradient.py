"""Gradient-weighted class activation tubes: Grad-CAM and Grad-CAM++ on 5-D activations.

Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
Localization", ICCV 2017. Chattopadhay et al., "Grad-CAM++: Generalized Gradient-Based
Visual Explanations for Deep Convolutional Networks", WACV 2018.

Only the gradient from the class score back to the target layer is computed: the
forward runs without autograd up to the layer, whose output becomes a fresh leaf, and
``torch.autograd.grad`` is asked for that leaf alone (no parameter gradients).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from ..errors import InputError
from ..hooks import LayerSpec
from .base import Explainer, ExplainerOptions, ForwardPass, LayersSpec

if TYPE_CHECKING:
    from typing_extensions import Unpack


class GradientExplainer(Explainer):
    """What the gradient methods share: the gradient of each class score at the layer.

    Args:
        model: the video classifier.
        layer: target layer (name or module), or a list of them; found by default.
        classifier: the head, by name or module; not needed (the scores' gradient is used).
        per_frame_weights: pool the gradient over (H', W') only, giving one weight per
            channel and time step, instead of over (T', H', W').
        **options: ``relu`` (clamp the raw tube at 0; **on** by default here, as in
            Grad-CAM), ``interpolation``, ``align``, ``categories``, ``eval_mode``,
            ``reshape``, ``inputs``: see :class:`Explainer`.
    """

    needs_gradients = True
    needs_head = False
    relu_by_default = True
    #: whether ``per_frame_weights`` means anything (not for per-voxel weights)
    per_frame_weights_apply = True

    def __init__(
        self,
        model: nn.Module,
        layer: LayersSpec = None,
        classifier: LayerSpec = None,
        *,
        per_frame_weights: bool = False,
        **options: Unpack[ExplainerOptions],
    ) -> None:
        if per_frame_weights and not self.per_frame_weights_apply:
            raise InputError(
                f"expected per_frame_weights=False for {type(self).__name__}, but got True; drop it, "
                "the weights are per voxel already (per_frame_weights is for gradcam, gradcam++ "
                "and xgradcam)"
            )
        super().__init__(model, layer, classifier, **options)
        self.per_frame_weights = per_frame_weights

    def _raw_maps(self, forward: ForwardPass) -> list[torch.Tensor]:
        activations, logits, classes = forward.activations, forward.logits, forward.classes
        if logits.grad_fn is None or not all(a.requires_grad for a in activations):
            raise InputError(
                "the class scores do not depend on the target layer's output through autograd; "
                "pick a layer on the path to the scores"
            )
        alphas = [forward.volume(a.detach()) for a in activations]
        maps: list[list[torch.Tensor]] = [[] for _ in activations]
        k_total = classes.shape[1]
        # Under the caller's torch.no_grad() the picked score must still be recorded.
        with torch.enable_grad():
            for k in range(k_total):
                score = logits.gather(1, classes[:, k : k + 1]).sum()
                grads = torch.autograd.grad(
                    score, activations, retain_graph=k < k_total - 1, allow_unused=True
                )
                for i, (alpha, grad) in enumerate(zip(alphas, grads, strict=True)):
                    g = torch.zeros_like(alpha) if grad is None else forward.volume(grad.detach())
                    maps[i].append(self._combine(alpha, g))
        return [torch.stack(m, dim=1) for m in maps]

    def _reduce_dims(self) -> tuple[int, ...]:
        """Dimensions of an (N, C, T', H', W') tensor pooled into channel weights."""
        return (3, 4) if self.per_frame_weights else (2, 3, 4)

    def _combine(self, activation: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class GradCAM(GradientExplainer):
    r"""Grad-CAM tube.

    .. math::
        w^c_j = \frac{1}{T'H'W'} \sum_{t,h,w} \frac{\partial y^c}{\partial A_j(t,h,w)},
        \qquad M^c = \mathrm{ReLU}\Big(\sum_j w^c_j A_j\Big)

    With ``per_frame_weights=True`` the gradient is averaged over (H', W') only, giving
    one weight per channel and time step (as SlowFast / mmaction2 do), so that a channel
    can count in some frames and not in others.

    For a global-average-pool + linear head, :math:`w^c_j = W_{cj} / (T'H'W')` and the
    normalised tube equals :class:`~saliency_tubes.SaliencyTubes`' (with ``relu=False``).

    Takes ``per_frame_weights`` and the keywords of :class:`~saliency_tubes.Explainer`,
    with ``relu`` on by default.
    """

    method = "gradcam"

    def _fusion_scale(self, raw: torch.Tensor) -> float:
        # Grad-CAM's weights average the gradient, which carries the pooling's 1 / (T'H'W'):
        # undo it so that each layer of a fused tube counts by its share of the score (for
        # a pooled linear head the fused tube then equals CAM's).
        return float(raw.shape[2] * raw.shape[3] * raw.shape[4])

    def _combine(self, activation: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        weights = grad.mean(dim=self._reduce_dims(), keepdim=True)
        return (weights * activation).sum(dim=1)


class GradCAMPlusPlus(GradientExplainer):
    r"""Grad-CAM++ tube.

    With :math:`g = \partial y^c / \partial A` (the usual closed form that takes the
    exponential of the score, so that higher derivatives are powers of :math:`g`):

    .. math::
        a_j(x) = \frac{g_j(x)^2}{2 g_j(x)^2 + \sum_{x'} A_j(x')\, g_j(x)^3}, \qquad
        w^c_j = \sum_x a_j(x)\, \mathrm{ReLU}(g_j(x)), \qquad
        M^c = \mathrm{ReLU}\Big(\sum_j w^c_j A_j\Big)

    where :math:`x` runs over (t, h, w), or over (h, w) per time step with
    ``per_frame_weights=True``. A zero denominator gives :math:`a = 0`.

    Takes ``per_frame_weights`` and the keywords of :class:`~saliency_tubes.Explainer`,
    with ``relu`` on by default.
    """

    method = "gradcam++"

    def _combine(self, activation: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        dims = self._reduce_dims()
        g2 = grad.pow(2)
        g3 = grad.pow(3)
        denom = 2 * g2 + activation.sum(dim=dims, keepdim=True) * g3
        safe = torch.where(denom != 0, denom, torch.ones_like(denom))
        a = torch.where(denom != 0, g2 / safe, torch.zeros_like(g2))
        weights = (a * grad.clamp_min(0)).sum(dim=dims, keepdim=True)
        return (weights * activation).sum(dim=1)
