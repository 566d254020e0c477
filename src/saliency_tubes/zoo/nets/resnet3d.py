"""3D-ResNets as in the widely used 3D-ResNets-PyTorch family (Hara et al., CVPR 2018).

Hara, Kataoka and Satoh, "Can Spatiotemporal 3D CNNs Retrace the History of 2D CNNs and
ImageNet?", CVPR 2018. The module names (``conv1``, ``bn1``, ``layer1`` ... ``layer4``,
``avgpool``, ``fc``; ``downsample.0``/``downsample.1`` shortcuts) follow that family so its
released state dicts load unchanged. Written here from the paper's description.
"""

from __future__ import annotations

from torch import Tensor, nn

from .initialise import init_weights


def _conv3(cin: int, cout: int, stride: int = 1) -> nn.Conv3d:
    return nn.Conv3d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1(cin: int, cout: int, stride: int = 1) -> nn.Conv3d:
    return nn.Conv3d(cin, cout, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3x3 convolutions with a residual connection."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv3(cin, planes, stride)
        self.bn1 = nn.BatchNorm3d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3(planes, planes)
        self.bn2 = nn.BatchNorm3d(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1x1 reduce, 3x3x3, 1x1x1 expand (x4), with a residual connection."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv1(cin, planes)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = _conv3(planes, planes, stride)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = _conv1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm3d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet3D(nn.Module):
    """3D-ResNet: 7x7x7 stem (stride 1x2x2), max-pool, four stages, global pool, linear.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        layers: blocks per stage.
        num_classes: size of the linear head.
        in_channels: input channels (3 for RGB).
        widths: channels of the four stages before expansion.
        conv1_t_size: temporal size of the stem kernel (7 in the released models).
        conv1_t_stride: temporal stride of the stem.
        no_max_pool: skip the stem's max-pool.
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: tuple[int, int, int, int],
        *,
        num_classes: int = 400,
        in_channels: int = 3,
        widths: tuple[int, int, int, int] = (64, 128, 256, 512),
        conv1_t_size: int = 7,
        conv1_t_stride: int = 1,
        no_max_pool: bool = False,
    ) -> None:
        super().__init__()
        self._cin = widths[0]
        self.conv1 = nn.Conv3d(
            in_channels,
            widths[0],
            kernel_size=(conv1_t_size, 7, 7),
            stride=(conv1_t_stride, 2, 2),
            padding=(conv1_t_size // 2, 3, 3),
            bias=False,
        )
        self.bn1 = nn.BatchNorm3d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool: nn.Module = (
            nn.Identity() if no_max_pool else nn.MaxPool3d(kernel_size=3, stride=2, padding=1)
        )
        self.layer1 = self._stage(block, widths[0], layers[0], 1)
        self.layer2 = self._stage(block, widths[1], layers[1], 2)
        self.layer3 = self._stage(block, widths[2], layers[2], 2)
        self.layer4 = self._stage(block, widths[3], layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(widths[3] * block.expansion, num_classes)
        init_weights(self)

    def _stage(
        self, block: type[BasicBlock] | type[Bottleneck], planes: int, blocks: int, stride: int
    ) -> nn.Sequential:
        downsample = None
        if stride != 1 or self._cin != planes * block.expansion:
            downsample = nn.Sequential(
                _conv1(self._cin, planes * block.expansion, stride),
                nn.BatchNorm3d(planes * block.expansion),
            )
        stage = [block(self._cin, planes, stride, downsample)]
        self._cin = planes * block.expansion
        stage += [block(self._cin, planes) for _ in range(1, blocks)]
        return nn.Sequential(*stage)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


_DEPTHS: dict[int, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    10: (BasicBlock, (1, 1, 1, 1)),
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


def resnet3d(depth: int, *, num_classes: int = 400, **kwargs: int | bool) -> ResNet3D:
    """Build a 3D-ResNet of the given depth (10, 18, 34, 50, 101 or 152)."""
    if depth not in _DEPTHS:
        raise ValueError(f"expected a 3D-ResNet depth in {sorted(_DEPTHS)}, but got {depth}")
    block, layers = _DEPTHS[depth]
    return ResNet3D(block, layers, num_classes=num_classes, **kwargs)  # type: ignore[arg-type]
