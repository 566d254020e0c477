r"""3D-DenseNets as in the widely used 3D-ResNets-PyTorch family (Hara et al., CVPR 2018).

Hara, Kataoka and Satoh, "Can Spatiotemporal 3D CNNs Retrace the History of 2D CNNs and
ImageNet?", CVPR 2018, inflate DenseNet-BC (Huang, Liu, van der Maaten and Weinberger,
"Densely Connected Convolutional Networks", CVPR 2017) to 3D: a 7x7x7 stem, four dense
blocks whose layers each add ``growth_rate`` channels,

.. math::
    x_\ell = [x_{\ell-1},\; H_\ell(x_{\ell-1})], \qquad
    H_\ell = \text{conv}_{3^3}\circ\text{ReLU}\circ\text{BN}\circ
             \text{conv}_{1^3}\circ\text{ReLU}\circ\text{BN},

transitions (BN, ReLU, 1x1x1 conv halving the channels, 2x2x2 average pool) between
them, and a final BN, ReLU, global average pool and linear classifier.

The module names follow the family's current code so its state dicts load unchanged:
``features.conv1``/``norm1``/``pool1`` (stem), ``features.denseblock{b}.denselayer{l}.
{norm1,conv1,norm2,conv2}``, ``features.transition{b}.{norm,conv}``, ``features.norm5``
and ``classifier``. The older layout of the released CVPR 2018 checkpoints
(``features.conv0``/``norm0``, dense layers ``norm.1``/``conv.1``..., no
``num_batches_tracked``) is converted on loading by :meth:`DenseNet3D.convert_state_dict`.
Written here from the papers' description.

Two parameter-free modules are added after ``features`` (they change no state-dict key):
``relu5``, the final ReLU that the family applies functionally, and ``avgpool``. ``relu5``
is the Saliency Tubes target layer: its output is exactly what the global pool averages,
so the class score is the space-time mean of the CAM tube plus the bias.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .initialise import init_weights


class _DenseLayer(nn.Module):
    """BN-ReLU-conv1x1x1 (to ``bn_size * growth_rate``), BN-ReLU-conv3x3x3 (to ``growth_rate``).

    The output is the input with the ``growth_rate`` new channels appended:
    (N, C, T, H, W) -> (N, C + growth_rate, T, H, W).
    """

    def __init__(self, cin: int, growth_rate: int, bn_size: int, drop_rate: float) -> None:
        super().__init__()
        width = bn_size * growth_rate
        self.norm1 = nn.BatchNorm3d(cin)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv3d(cin, width, kernel_size=1, bias=False)
        self.norm2 = nn.BatchNorm3d(width)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv3d(width, growth_rate, kernel_size=3, padding=1, bias=False)
        self.drop_rate = drop_rate

    def forward(self, x: Tensor) -> Tensor:
        new = self.conv1(self.relu1(self.norm1(x)))
        new = self.conv2(self.relu2(self.norm2(new)))
        if self.drop_rate > 0:
            new = F.dropout(new, p=self.drop_rate, training=self.training)
        return torch.cat([x, new], dim=1)


class _DenseBlock(nn.Sequential):
    """``num_layers`` dense layers ``denselayer1`` ... ``denselayer{num_layers}``."""

    def __init__(
        self, num_layers: int, cin: int, growth_rate: int, bn_size: int, drop_rate: float
    ) -> None:
        super().__init__()
        for i in range(num_layers):
            layer = _DenseLayer(cin + i * growth_rate, growth_rate, bn_size, drop_rate)
            self.add_module(f"denselayer{i + 1}", layer)


class HalvingAvgPool3d(nn.Module):
    """2x2x2 average pool, stride 2, that leaves a dimension of size 1 as it is.

    Equal to ``nn.AvgPool3d(2, 2)`` (the family's transition pool) whenever every
    dimension has size >= 2; on a dimension already reduced to 1 (short clips, small
    frames) the kernel is 1 there instead of failing with an empty output, so any clip
    length and frame size work.
    """

    def forward(self, x: Tensor) -> Tensor:
        kernel = tuple(2 if size >= 2 else 1 for size in x.shape[2:])
        return F.avg_pool3d(x, kernel_size=kernel, stride=kernel)


class _Transition(nn.Sequential):
    """BN, ReLU, 1x1x1 conv (``cin`` -> ``cout``), 2x2x2 average pool."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.add_module("norm", nn.BatchNorm3d(cin))
        self.add_module("relu", nn.ReLU(inplace=True))
        self.add_module("conv", nn.Conv3d(cin, cout, kernel_size=1, bias=False))
        self.add_module("pool", HalvingAvgPool3d())


class DenseNet3D(nn.Module):
    """3D DenseNet-BC: stem, four dense blocks with transitions, BN, ReLU, pool, linear.

    Input (N, in_channels, T, H, W) of any T, H, W; output (N, num_classes). With the
    default stem the grid of ``relu5`` (the CAM layer) is about (T/8, H/32, W/32).

    Args:
        block_config: dense layers per block, e.g. (6, 12, 24, 16) for DenseNet-121.
        num_classes: size of the linear head.
        in_channels: input channels (3 for RGB).
        growth_rate: channels each dense layer adds (k in the DenseNet paper).
        num_init_features: channels of the stem convolution.
        bn_size: the bottleneck 1x1x1 conv has ``bn_size * growth_rate`` channels.
        drop_rate: dropout after each dense layer (training only).
        conv1_t_size: temporal size of the stem kernel (7 in the released models).
        conv1_t_stride: temporal stride of the stem.
        no_max_pool: skip the stem's max-pool.
    """

    def __init__(
        self,
        block_config: tuple[int, ...] = (6, 12, 24, 16),
        *,
        num_classes: int = 400,
        in_channels: int = 3,
        growth_rate: int = 32,
        num_init_features: int = 64,
        bn_size: int = 4,
        drop_rate: float = 0.0,
        conv1_t_size: int = 7,
        conv1_t_stride: int = 1,
        no_max_pool: bool = False,
    ) -> None:
        super().__init__()
        self.features = nn.Sequential()
        self.features.add_module(
            "conv1",
            nn.Conv3d(
                in_channels,
                num_init_features,
                kernel_size=(conv1_t_size, 7, 7),
                stride=(conv1_t_stride, 2, 2),
                padding=(conv1_t_size // 2, 3, 3),
                bias=False,
            ),
        )
        self.features.add_module("norm1", nn.BatchNorm3d(num_init_features))
        self.features.add_module("relu1", nn.ReLU(inplace=True))
        if not no_max_pool:
            self.features.add_module("pool1", nn.MaxPool3d(kernel_size=3, stride=2, padding=1))
        channels = num_init_features
        for b, num_layers in enumerate(block_config, start=1):
            block = _DenseBlock(num_layers, channels, growth_rate, bn_size, drop_rate)
            self.features.add_module(f"denseblock{b}", block)
            channels += num_layers * growth_rate
            if b < len(block_config):
                self.features.add_module(f"transition{b}", _Transition(channels, channels // 2))
                channels //= 2
        self.features.add_module("norm5", nn.BatchNorm3d(channels))
        self.relu5 = nn.ReLU()
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.classifier = nn.Linear(channels, num_classes)
        init_weights(self, zero_linear_bias=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.avgpool(self.relu5(self.features(x))).flatten(1))

    def convert_state_dict(self, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Rename the older layouts of the family's checkpoints to this model's keys.

        The released CVPR 2018 checkpoints (``densenet-121-kinetics.pth`` ...) name the stem
        ``features.conv0``/``norm0`` and the dense-layer modules ``norm.1``, ``conv.1``,
        ``norm.2``, ``conv.2``, and predate batch norm's ``num_batches_tracked`` counter.
        Keys already in this model's layout pass unchanged; a counter missing for a batch
        norm whose statistics are present is set to 0, as ``nn.BatchNorm3d`` itself does
        for such state dicts. :func:`saliency_tubes.zoo.load_weights` calls this before
        comparing keys.

        Args:
            state: a state dict (``module.`` prefix already removed).

        Returns:
            The state dict with renamed keys (tensors are shared, not copied).
        """
        converted = {_modern_key(key): value for key, value in state.items()}
        for key, value in self.state_dict().items():
            if key.endswith(".num_batches_tracked") and key not in converted:
                stem = key[: -len("num_batches_tracked")]
                if f"{stem}running_mean" in converted:
                    converted[key] = torch.zeros_like(value)
        return converted


_LEGACY_STEM = re.compile(r"^features\.(conv|norm)0\.")
_LEGACY_DENSE = re.compile(r"(\.denselayer\d+\.(?:norm|conv))\.([12])\.")


def _modern_key(key: str) -> str:
    """``features.conv0.weight`` -> ``features.conv1.weight``; ``norm.1`` -> ``norm1``."""
    key = _LEGACY_STEM.sub(r"features.\g<1>1.", key)
    return _LEGACY_DENSE.sub(r"\1\2.", key)


# Dense layers per block of the family's depths (growth rate 32, 64 stem channels).
DEPTHS: dict[int, tuple[int, int, int, int]] = {
    121: (6, 12, 24, 16),
    169: (6, 12, 32, 32),
    201: (6, 12, 48, 32),
    264: (6, 12, 64, 48),
}


def densenet3d(depth: int, *, num_classes: int = 400, **kwargs: int | float | bool) -> DenseNet3D:
    """Build a 3D-DenseNet of the given depth (121, 169, 201 or 264).

    Args:
        depth: 121, 169, 201 or 264 (blocks as in :data:`DEPTHS`).
        num_classes: size of the linear head.
        **kwargs: passed to :class:`DenseNet3D` (``in_channels``, ``drop_rate``,
            ``conv1_t_size``, ``conv1_t_stride``, ``no_max_pool`` ...).
    """
    if depth not in DEPTHS:
        raise ValueError(f"expected a 3D-DenseNet depth in {sorted(DEPTHS)}, but got {depth}")
    return DenseNet3D(DEPTHS[depth], num_classes=num_classes, **kwargs)  # type: ignore[arg-type]
