"""The gradient CAM variants on 5-D activations: LayerCAM, XGradCAM and HiResCAM.

Jiang, Zhang, Hou, Cheng and Wei, "LayerCAM: Exploring Hierarchical Class Activation Maps
for Localization", IEEE TIP 2021. Fu, Hu, Dong, Wang, Chen and Zhang, "Axiom-based
Grad-CAM: Towards Accurate Visualization and Explanation of CNNs", BMVC 2020 (XGradCAM).
Draelos and Carin, "Use HiResCAM instead of Grad-CAM for faithful explanations of
convolutional neural networks", 2020.

Each needs what Grad-CAM needs, and nothing more: one forward (without autograd up to the
target layer) and, per explained class, one gradient from the class score back to that
layer (never further, no parameter gradient). The sums and products below run over the
whole (T', H', W') grid, so time is a dimension like the two of space.
"""

from __future__ import annotations

import torch

from .gradient import GradientExplainer


class _GradientVariant(GradientExplainer):
    """The fusion scale the three share: their raw maps carry the pooling's 1 / (T'H'W')
    (for a pooled linear head each equals CAM / (T'H'W')), undone when layers are fused so
    that each counts by its share of the score, as for Grad-CAM."""

    def _fusion_scale(self, raw: torch.Tensor) -> float:
        return float(raw.shape[2] * raw.shape[3] * raw.shape[4])


class _Elementwise(_GradientVariant):
    """A variant whose weights are per voxel: ``per_frame_weights`` has no meaning."""

    per_frame_weights_apply = False


class LayerCAM(_Elementwise):
    r"""LayerCAM tube (Jiang et al. 2021): every voxel weighted by its own positive gradient.

    .. math::
        M^c = \mathrm{ReLU}\Big(\sum_k \mathrm{ReLU}\big(\tfrac{\partial y^c}{\partial A_k}\big)
        \odot A_k\Big)

    element-wise over (t, h, w). The inner ReLU is part of the method; the outer one is
    the ``relu`` option (on by default). It costs what Grad-CAM costs: one forward and one
    backward to the layer per class.

    Takes the keywords of :class:`~saliency_tubes.Explainer` (``relu`` on by default);
    ``per_frame_weights`` is refused (the weights are per voxel).
    """

    method = "layercam"

    def _combine(self, activation: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        return (grad.clamp_min(0) * activation).sum(dim=1)


class HiResCAM(_Elementwise):
    r"""HiResCAM tube (Draelos and Carin 2020): the gradient times the activation, per voxel.

    .. math::
        M^c = \mathrm{ReLU}\Big(\sum_k \tfrac{\partial y^c}{\partial A_k} \odot A_k\Big)

    (the ReLU is the ``relu`` option, on by default). For a global-average-pool + linear
    head the gradient is :math:`W_{ck} / (T'H'W')` everywhere and the tube is CAM divided by
    :math:`T'H'W'`: normalised, it equals :class:`~saliency_tubes.SaliencyTubes`' (with
    ``relu=False``). For other heads the sum over the grid of :math:`M^c` (before the ReLU)
    is the first-order part of the score that the layer carries. Costs one forward and one
    backward to the layer per class.

    Takes the keywords of :class:`~saliency_tubes.Explainer` (``relu`` on by default);
    ``per_frame_weights`` is refused (the weights are per voxel).
    """

    method = "hirescam"

    def _combine(self, activation: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        return (grad * activation).sum(dim=1)


class XGradCAM(_GradientVariant):
    r"""XGradCAM tube (Fu et al. 2020): the gradient averaged with the activation as weights.

    .. math::
        \alpha^c_k = \sum_x \frac{A_k(x)}{\sum_{x'} A_k(x')}\,
        \frac{\partial y^c}{\partial A_k(x)}, \qquad
        M^c = \mathrm{ReLU}\Big(\sum_k \alpha^c_k A_k\Big)

    where :math:`x` runs over (t, h, w), or over (h, w) per time step with
    ``per_frame_weights=True`` (one weight per channel and time step). A channel whose
    activations sum to zero gets weight 0 (no division by zero, no epsilon). For a
    global-average-pool + linear head :math:`\alpha^c_k = W_{ck} / (T'H'W')`, Grad-CAM's
    weight: the tubes are equal. Costs one forward and one backward to the layer per class.

    Takes ``per_frame_weights`` and the keywords of :class:`~saliency_tubes.Explainer`,
    with ``relu`` on by default.
    """

    method = "xgradcam"

    def _combine(self, activation: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        dims = self._reduce_dims()
        total = activation.sum(dim=dims, keepdim=True)
        nonzero = total != 0
        safe = torch.where(nonzero, total, torch.ones_like(total))
        weights = torch.where(
            nonzero, (activation * grad).sum(dim=dims, keepdim=True) / safe, torch.zeros_like(total)
        )
        return (weights * activation).sum(dim=1)
