"""TinyActionNet: the small 3D CNN shipped with saliency-tubes so the tool works offline.

The model classifies the synthetic clips of :mod:`saliency_tubes.synthetic` by how their
target object moves (see :data:`saliency_tubes.synthetic.CLASSES`). It is small enough to
train in minutes on two CPU cores and its weights (``weights/tiny_actions.safetensors``,
loaded without pickle) ship inside the package.

Input: ``(N, 3, 16, 96, 96)`` float, i.e. ``uint8 / 255`` normalised per channel with
``PRESET["mean"]`` and ``PRESET["std"]``. 96x96 keeps every object at least ~9 pixels
across while costing (96/112)^2 = 73 % of the compute of 112x112, so training fits in
about ten minutes on two CPU cores; 16 frames give the target enough travel to read its
direction. Longer or larger clips work when 16 frames are sampled uniformly over the
clip and resized to 96x96 (the generator defines each motion over the whole clip).

Architecture (output sizes for the preset input)::

    motion    frame differences x[t] - x[t-1] (fixed)      3 x 16 x 96 x 96
    stem      Conv3d 1x5x5 /(1,2,2) + BN + ReLU          16 x 16 x 48 x 48
    layer1    Conv3d 3x3x3 /(1,2,2) + BN + ReLU          24 x 16 x 24 x 24
    layer2    Conv3d 3x3x3 /(2,2,2) + BN + ReLU          48 x  8 x 12 x 12
    features  residual block (2 x Conv3d 3x3x3 + BN)     48 x  8 x 12 x 12  <- CAM layer
    pool      AdaptiveAvgPool3d(1) -> flatten -> dropout
    fc        Linear(48, 8)                                                   <- classifier

Saliency Tubes use ``features`` (the last convolutional block) and ``fc``.

``TinyActionNet(motion=False)`` drops the frame-difference layer (the network then sees the
frames themselves): :func:`tiny_colour_net` builds it for the colour clips of
:mod:`saliency_tubes.synthetic_colours` (:data:`COLOUR_PRESET`; the weights, trained by
``scripts/train_default_model.py --task colour``, ship in the package as the registered
``tiny-colours``, :mod:`saliency_tubes.zoo.nets.tiny_vit`; they are the tests' planted-evidence
model).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from saliency_tubes.errors import InputError, ModelLoadError
from saliency_tubes.synthetic import CLASSES
from saliency_tubes.synthetic_colours import COLOURS
from saliency_tubes.zoo.nets.initialise import init_weights

__all__ = [
    "COLOUR_PRESET",
    "PRESET",
    "WEIGHTS_PATH",
    "ResidualBlock3d",
    "TinyActionNet",
    "tiny_action_net",
    "tiny_colour_net",
]

WEIGHTS_PATH: Path = Path(__file__).resolve().parent.parent / "weights" / "tiny_actions.safetensors"
"""Location of the shipped weights."""

PRESET: dict[str, Any] = {
    "frames": 16,
    "size": (96, 96),
    "mean": (0.494, 0.500, 0.500),
    "std": (0.245, 0.245, 0.240),
    "categories": CLASSES,
    "layer": "features",
    "classifier": "fc",
    "val_accuracy": 0.9922,
    "seed": 0,
}
"""How to feed and explain the shipped model.

Keys: ``frames`` and ``size`` ``(H, W)`` of the input clip; per-channel ``mean`` and
``std`` on the 0..1 scale; ``categories`` (the class names, by output index); ``layer``
(the module whose 5-D output Saliency Tubes weight) and ``classifier`` (the final linear
layer); ``val_accuracy`` measured on the held-out synthetic validation set after
training; ``seed`` the training seed (see ``scripts/train_default_model.py`` and
``weights/tiny_actions.json``).
"""

COLOUR_PRESET: dict[str, Any] = {
    **{k: PRESET[k] for k in ("frames", "mean", "std", "layer", "classifier")},
    "size": (64, 64),
    "categories": COLOURS,
}
"""How to feed and explain :func:`tiny_colour_net` (the keys of :data:`PRESET` that apply;
its validation accuracy and seed are in the weights' JSON record)."""


class ConvBNReLU3d(nn.Sequential):
    """``Conv3d`` (no bias) followed by ``BatchNorm3d`` and ``ReLU``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: tuple[int, int, int],
        stride: tuple[int, int, int] = (1, 1, 1),
    ) -> None:
        """Build the block; padding keeps ``size / stride`` (``kernel // 2`` per axis).

        Args:
            in_channels: Input channels.
            out_channels: Output channels.
            kernel_size: ``(kt, kh, kw)``, odd sizes.
            stride: ``(st, sh, sw)``.
        """
        padding = (kernel_size[0] // 2, kernel_size[1] // 2, kernel_size[2] // 2)
        super().__init__(
            nn.Conv3d(in_channels, out_channels, kernel_size, stride, padding, bias=False),
            nn.BatchNorm3d(out_channels),
            nn.ReLU(inplace=True),
        )


class TemporalDifference(nn.Module):
    """Frame differences: ``y[:, :, t] = x[:, :, t] - x[:, :, t - 1]``, zero at ``t = 0``.

    A fixed (parameter-free) motion front end, like the motion stream of two-stream
    networks: everything static (background texture, static distractors) cancels, so the
    network sees only what changes. On the synthetic data this is what lets a small 3D
    CNN learn the motion classes in minutes on a CPU; with raw frames the static texture
    hides the small moving target for a long time.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the difference.

        Args:
            x: ``(N, C, T, H, W)``.

        Returns:
            ``(N, C, T, H, W)``.
        """
        return torch.diff(x, dim=2, prepend=x[:, :, :1])


class ResidualBlock3d(nn.Module):
    """Two 3x3x3 convolutions with batch norm and an identity shortcut, then ReLU."""

    def __init__(self, channels: int) -> None:
        """Build the block.

        Args:
            channels: Input and output channels.
        """
        super().__init__()
        self.conv1 = ConvBNReLU3d(channels, channels, (3, 3, 3))
        self.conv2 = nn.Conv3d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block.

        Args:
            x: ``(N, C, T, H, W)``.

        Returns:
            ``(N, C, T, H, W)``, non-negative.
        """
        return self.relu(x + self.bn2(self.conv2(self.conv1(x))))


class TinyActionNet(nn.Module):
    """A small 3D CNN for the synthetic motion classes.

    Attributes:
        motion: Fixed frame-difference front end (:class:`TemporalDifference`), or
            ``nn.Identity`` when built with ``motion=False``.
        stem: Spatial 1x5x5 convolution, stride 2 in space.
        layer1: 3x3x3 convolution, stride 2 in space.
        layer2: 3x3x3 convolution, stride 2 in time and space.
        features: Residual block; its ``(N, C, T/2, H/8, W/8)`` output is the CAM layer.
        pool: Global average pooling over time and space.
        dropout: Dropout before the classifier (inactive in eval mode).
        fc: The linear classifier.
    """

    def __init__(
        self,
        num_classes: int = len(CLASSES),
        widths: tuple[int, int, int] = (16, 24, 48),
        dropout: float = 0.2,
        motion: bool = True,
    ) -> None:
        """Build the network with freshly initialised weights.

        Args:
            num_classes: Number of output logits.
            widths: Channels of ``stem``, ``layer1`` and ``layer2``/``features``.
            dropout: Dropout probability before ``fc``.
            motion: Start with the fixed frame differences; ``False`` reads the frames
                themselves (same parameters, same state-dict keys).
        """
        super().__init__()
        c1, c2, c3 = widths
        self.motion: nn.Module = TemporalDifference() if motion else nn.Identity()
        self.stem = ConvBNReLU3d(3, c1, (1, 5, 5), (1, 2, 2))
        self.layer1 = ConvBNReLU3d(c1, c2, (3, 3, 3), (1, 2, 2))
        self.layer2 = ConvBNReLU3d(c2, c3, (3, 3, 3), (2, 2, 2))
        self.features = ResidualBlock3d(c3)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(c3, num_classes)
        init_weights(self)
        # Start each residual branch as (almost) the identity: stabler early training.
        nn.init.zeros_(self.features.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Classify clips.

        Args:
            x: ``(N, 3, T, H, W)`` normalised clips.

        Returns:
            ``(N, num_classes)`` logits.
        """
        x = self.features(self.layer2(self.layer1(self.stem(self.motion(x)))))
        return self.fc(self.dropout(torch.flatten(self.pool(x), 1)))


def tiny_action_net(*, pretrained: bool = True, num_classes: int | None = None) -> TinyActionNet:
    """Build :class:`TinyActionNet`, by default with the shipped weights, in eval mode.

    Args:
        pretrained: Load ``weights/tiny_actions.safetensors``.
        num_classes: Number of outputs; ``None`` means ``len(PRESET["categories"])``. With
            ``pretrained`` and a different number, every layer except ``fc`` is loaded and
            ``fc`` stays freshly initialised (for fine-tuning).

    Returns:
        The model, in eval mode.

    Raises:
        InputError: If ``num_classes`` is not a positive int.
        ModelLoadError: If the weights file is missing, unreadable or does not match.
    """
    n_default = len(PRESET["categories"])
    if num_classes is None:
        num_classes = n_default
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise InputError(f"expected num_classes to be None or an int >= 1, but got {num_classes!r}")
    model = TinyActionNet(num_classes=num_classes)
    if pretrained:
        state = _load_weights(WEIGHTS_PATH)
        if num_classes != n_default:
            state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except RuntimeError as exc:  # shape mismatches
            raise ModelLoadError(
                f"expected the weights in {WEIGHTS_PATH} to match TinyActionNet, but got: "
                f"{exc}; reinstall saliency-tubes or retrain with scripts/train_default_model.py"
            ) from exc
        missing = [k for k in missing if num_classes == n_default or not k.startswith("fc.")]
        if missing or unexpected:
            raise ModelLoadError(
                f"expected the weights in {WEIGHTS_PATH} to match TinyActionNet, but got "
                f"missing keys {missing} and unexpected keys {unexpected}; "
                "reinstall saliency-tubes or retrain with scripts/train_default_model.py"
            )
    return model.eval()


def tiny_colour_net(num_classes: int = len(COLOURS)) -> TinyActionNet:
    """:class:`TinyActionNet` without its motion layer, freshly initialised, in eval mode: the
    architecture of the colour-task model (load its weights with
    ``load_model("saliency_tubes.zoo.nets.tiny:tiny_colour_net", weights=PATH)``).

    Args:
        num_classes: Number of outputs (the colours of :data:`COLOUR_PRESET`).

    Raises:
        InputError: If ``num_classes`` is not a positive int.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise InputError(f"expected num_classes to be an int >= 1, but got {num_classes!r}")
    return TinyActionNet(num_classes=num_classes, motion=False).eval()


def _load_weights(path: Path) -> dict[str, torch.Tensor]:
    """Read a safetensors state dict, turning every failure into ``ModelLoadError``."""
    if not path.is_file():
        raise ModelLoadError(
            f"expected the TinyActionNet weights at {path}, but the file is missing; "
            "reinstall saliency-tubes or regenerate them with scripts/train_default_model.py"
        )
    try:
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises several unrelated types
        raise ModelLoadError(
            f"expected {path} to be a readable safetensors file, but loading failed: {exc}"
        ) from exc
