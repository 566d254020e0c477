r"""Class Feature Pyramids: back-step from a class through the network's kernels.

Stergiou, Kapidis, Kalliatakis, Chrysoulas, Poppe and Veltkamp, "Class Feature Pyramids
for Video Explanation", ICCV Workshops 2019 (arXiv:1909.08611). Where a saliency tube shows
where the last convolutional layer looked for a class, a class feature pyramid shows which
kernels, layer by layer, that decision rests on: a graph from the class down through the
network, one tube per (layer, kernel).

**Level 1** (the final features). With :math:`w = W_{c,:}` the classifier's weights for
class :math:`c`, each feature :math:`k` of the layer feeding the global pool scores

.. math:: s_k = \frac{w_k - \min_j w_j}{\max_j w_j - \min_j w_j},

and the features with :math:`s_k \ge \theta` are kept (at most the ``top_n`` largest when
given; this is the feature selection of :class:`~saliency_tubes.SaliencyTubes` with
``weight_threshold=θ, top_features=n``). Feature :math:`k` becomes the node of the
convolution kernel that produced channel :math:`k`.

**Level l + 1.** For a node, kernel :math:`k` of convolution :math:`L` with weights
:math:`W_L` of shape :math:`(C_{out}, C_{in}/g, t, h, w)` and input :math:`x` (the
activation :math:`L` reads, :math:`C_{in}` channels), the contribution of input channel
:math:`j` is the kernel's weights pooled over :math:`(t, h, w)` times the input channel
pooled over :math:`(T, H, W)`,

.. math::
    c_{kj} = \bar w_{kj}\,\bar a_j, \qquad
    \bar w_{kj} = \operatorname{mean}_{t,h,w} W_L[k, j], \qquad
    \bar a_j = \operatorname{mean}_{T,H,W} x_j,

normalised over the channels the kernel reads, :math:`s_{kj} = (c_{kj} - \min_i c_{ki}) /
(\max_i c_{ki} - \min_i c_{ki})`, and the channels with :math:`s_{kj} \ge \theta` (at most
``top_n``) are kept. Channel :math:`j` becomes the node of the kernel that produced it in
the previous convolution. This repeats for ``depth`` levels. (The authors divide
:math:`c` by :math:`\sum_i c_{ki}` before the min-max step; min-max is invariant to a
positive scale, so the two agree whenever that sum is positive, and for a negative sum
theirs would rank the channels upside down.) A constant :math:`c` (zero range) gives all
scores 0, so nothing passes a positive θ. A grouped convolution's kernel reads only its
group's :math:`C_{in}/g` channels, and only those are scored.

**Which convolution produced a channel** is found from one traced forward pass
(:mod:`saliency_tubes.channels`), not from module names, so any network built from the
zoo's blocks works unchanged: 3D-ResNets with basic or bottleneck blocks, 3D-DenseNets,
torchvision's r3d/mc3/r(2+1)d. Labels follow the channels by index through channel-wise
ops (batch norm, ReLU, pooling, dropout, views). Three cases need a rule:

* **Residual addition** (``out + identity``): a channel fed by several convolutions is
  attributed to the *deepest* one (most convolutions on its longest path from the input),
  i.e. the residual branch's last convolution, not the shortcut: the back-step walks the
  main path of each block.
* **Concatenation along channels** (DenseNet's ``cat([x, new], 1)``): channel :math:`j`
  keeps the label of the input it came from, by its position, so the children of one
  kernel can lie in different layers (the block input's transition conv and each earlier
  dense layer's 3x3x3 conv), and the same layer can reach the input in fewer steps on one
  branch than on another.
* **Factorised (2+1)D convolutions** are two ``Conv3d``, the spatial ``1x3x3`` conv and the
  temporal ``3x1x1`` conv after it: they are two levels, the spatial conv's ``mid``
  channels being the features the temporal kernels read.

``layers=`` gives the levels by name instead (channel :math:`j` of ``layers[i]``'s input is
then kernel :math:`j` of ``layers[i + 1]``).

**Tubes.** The class node's tube is the saliency tube of the selected features,
:math:`\sum_{k \in S_1} w_k A_k` on the pooled layer (equal to
``SaliencyTubes(weight_threshold=θ, top_features=n)``); a kernel node's tube is that
kernel's own response, output channel :math:`k` of its convolution. Both are upsampled to
the clip's ``(T, H, W)`` (:func:`saliency_tubes.splines`) and min-max normalised
(:func:`saliency_tubes.normalize_tubes`).

Everything runs through hooks and a torch-function mode that live for one call: the model
comes back unchanged (training flags, ``requires_grad``, no hooks), also on error.

The package: :mod:`.graph` holds the result (:class:`ClassFeaturePyramid`, its nodes and
edges, their tubes and JSON), :mod:`.backstep` the back-step from level to level and the
two ways of following a channel to its kernel, :mod:`.build` the entry point
:func:`class_feature_pyramid`.
"""

from __future__ import annotations

from .backstep import Producer
from .build import DEFAULT_DEPTH, check_options, class_feature_pyramid
from .graph import ROOT, ClassFeaturePyramid, PyramidEdge, PyramidNode

__all__ = [
    "DEFAULT_DEPTH",
    "ROOT",
    "ClassFeaturePyramid",
    "Producer",
    "PyramidEdge",
    "PyramidNode",
    "check_options",
    "class_feature_pyramid",
]
