"""EigenCAM on 5-D activations: the activations' first principal component, in space-time.

Muhammad and Yeasin, "Eigen-CAM: Class Activation Map using Principal Components", IJCNN
2020. The method never looks at a class: it is one forward and a singular value
decomposition per sample, and the same tube for every class.
"""

from __future__ import annotations

import torch

from .base import Explainer, ForwardPass


def principal_projection(volume: torch.Tensor) -> torch.Tensor:
    r"""Project each sample's activations on their first principal component.

    For one sample, :math:`X` is the (T'H'W', C) matrix of the activations (a row per voxel,
    a column per channel) with each channel's mean over the voxels subtracted; with
    :math:`X = U S V^\top` its singular value decomposition and :math:`v_1` the first right
    singular vector (the direction of largest variance across the voxels), the map is
    :math:`X v_1`, reshaped to (T', H', W'). A singular vector's sign is arbitrary: it is
    chosen so that the map correlates positively with the activations' channel mean
    :math:`\frac{1}{C}\sum_k A_k` (kept as found when that correlation is 0). Constant
    activations give zeros.

    Args:
        volume: (N, C, T', H', W') activations.

    Returns:
        (N, T', H', W') maps, in the activations' dtype.
    """
    n, c = volume.shape[:2]
    grid = volume.shape[2:]
    x = volume.reshape(n, c, -1).transpose(1, 2)  # (N, L, C)
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()  # the SVD needs single precision at least
    centred = x - x.mean(dim=1, keepdim=True)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    projection = centred @ vh[:, 0, :, None]  # (N, L, 1)
    mean = x.mean(dim=2, keepdim=True)  # the channel mean at each voxel, (N, L, 1)
    agreement = (projection * (mean - mean.mean(dim=1, keepdim=True))).sum(dim=(1, 2))
    sign = torch.where(agreement < 0, -1.0, 1.0).to(projection.dtype)
    return (projection[..., 0] * sign[:, None]).reshape(n, *grid).to(volume.dtype)


class EigenCAM(Explainer):
    r"""EigenCAM tube (Muhammad and Yeasin 2020): **class-agnostic**.

    The tube is the target layer's activations projected on their first principal
    component (:func:`principal_projection`): the dominant pattern of the layer over
    space and time, whatever the class. Every explained class of a sample gets the **same**
    tube (:attr:`Tubes.class_agnostic` is True; :attr:`Tubes.scores` are still each class's
    probability), so it cannot tell two classes apart, nor answer "where is the evidence
    for class c"; it shows what the layer responds to most. The sign is chosen so that the
    tube correlates positively with the activations' channel mean; the ``relu`` option
    (on by default, as in the usual implementations) keeps the positive side.

    Costs one forward, no backward, one SVD of a (T'H'W', C) matrix per sample; the head is
    not needed (``classifier`` is accepted and ignored). Several layers are each projected
    and their maps summed on a common grid (as they come: each is in its own layer's units).

    Takes the keywords of :class:`~saliency_tubes.Explainer`, with ``relu`` on by default.
    """

    method = "eigencam"
    needs_head = False
    class_agnostic = True
    relu_by_default = True

    def _raw_maps(self, forward: ForwardPass) -> list[torch.Tensor]:
        k = forward.classes.shape[1]
        raws = []
        for activation in forward.activations:
            projection = principal_projection(forward.volume(activation.detach()))
            raws.append(projection[:, None].expand(-1, k, *projection.shape[1:]))
        return raws
