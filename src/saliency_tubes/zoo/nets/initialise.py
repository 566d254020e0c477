"""The weight initialisation that the zoo's own networks share (3D-ResNet, 3D-DenseNet, tiny)."""

from __future__ import annotations

from torch import nn

__all__ = ["init_weights"]


def init_weights(model: nn.Module, *, zero_linear_bias: bool = False) -> None:
    """Initialise ``model``'s layers in place, in ``model.modules()`` order.

    Each ``nn.Conv3d`` weight is drawn from He et al.'s normal distribution
    (``kaiming_normal_``, fan-out, ReLU gain: "Delving Deep into Rectifiers", ICCV 2015);
    each ``nn.BatchNorm3d`` starts as the identity (weight 1, bias 0). The order of the
    draws is that of ``model.modules()``, so a seeded build is reproducible.

    Args:
        model: the freshly built network.
        zero_linear_bias: also set the bias of each ``nn.Linear`` to 0 (its weight keeps
            PyTorch's default initialisation).
    """
    for m in model.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif zero_linear_bias and isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)
