"""Tiny fixed-weight video networks shared by the tests, and torchvision or a skip."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
from torch import nn

import saliency_tubes as st


def torchvision_or_skip() -> Any:
    """torchvision, through :func:`saliency_tubes.import_torchvision` with its workaround's
    note silenced; where it cannot be imported, the calling test module is skipped, saying
    why (called at a module's top)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # torchvision's import workaround note
        try:
            return st.import_torchvision()
        except (st.SaliencyTubesError, ImportError) as exc:  # pragma: no cover - optional extra
            pytest.skip(f"torchvision is not importable ({exc})", allow_module_level=True)


class HandNet(nn.Module):
    """1x1x1 conv (2 -> 2 channels, weights diag(2, 1)) -> global average pool -> linear (2 -> 3)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(2, 2, kernel_size=1, bias=False)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(2, 3)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([[2.0, 0.0], [0.0, 1.0]]).reshape(2, 2, 1, 1, 1))
            self.fc.weight.copy_(torch.tensor([[1.0, -1.0], [0.5, 0.5], [0.0, 1.0]]))
            self.fc.bias.copy_(torch.tensor([0.1, 0.0, 0.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.conv(x)).flatten(1))


class LinearNet(nn.Module):
    """A linear model of the clip, y = <W_c, X> + b: integrated gradients are (X - X') * W_c
    exactly, and RISE's expectation with logit scores has a closed form."""

    def __init__(self, shape: tuple[int, ...], classes: int = 3) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(4)
        self.weight = nn.Parameter(torch.randn(classes, *shape, generator=g))
        self.bias = nn.Parameter(torch.randn(classes, generator=g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("nctwh,kctwh->nk", x, self.weight) + self.bias


def hand_clip() -> torch.Tensor:
    """(1, 2, 2, 2, 2): channel 0 holds 0..7, channel 1 holds 3 everywhere."""
    x0 = torch.arange(8, dtype=torch.float32).reshape(2, 2, 2)
    x1 = torch.full((2, 2, 2), 3.0)
    return torch.stack([x0, x1]).unsqueeze(0)


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: tuple[int, int, int]) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm3d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv3d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(cout)
        self.down = nn.Sequential(
            nn.Conv3d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm3d(cout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.down(x))


class SmallResNet3D(nn.Module):
    """A two-stage 3D ResNet with BN, in-place ReLU, dropout, global pool and a linear head."""

    def __init__(self, num_classes: int = 5, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.stem = nn.Sequential(
            nn.Conv3d(3, 8, 3, stride=(1, 2, 2), padding=1, bias=False),
            nn.BatchNorm3d(8),
            nn.ReLU(inplace=True),
        )
        self.layer1 = nn.Sequential(Block(8, 8, (1, 1, 1)))
        self.layer2 = nn.Sequential(Block(8, 16, (2, 2, 2)))
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(0.5)
        self.fc = nn.Linear(16, num_classes)
        # Non-trivial batch-norm statistics so eval mode differs from train mode.
        for m in self.modules():
            if isinstance(m, nn.BatchNorm3d):
                with torch.no_grad():
                    m.running_mean.uniform_(-0.2, 0.2)
                    m.running_var.uniform_(0.5, 1.5)
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.2, 0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer2(self.layer1(self.stem(x)))
        return self.fc(self.dropout(self.avgpool(x).flatten(1)))


class ConvHeadNet(nn.Module):
    """Features -> 1x1x1 Conv3d class head on the grid -> global average pool (I3D-style logits)."""

    def __init__(self, num_classes: int = 4, seed: int = 1) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.features = nn.Sequential(nn.Conv3d(3, 6, 3, stride=2, padding=1), nn.ReLU())
        self.logits = nn.Conv3d(6, num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(self.features(x)).mean(dim=(2, 3, 4))


class MLPHeadNet(nn.Module):
    """Features -> pool -> linear -> ReLU -> linear: not CAM-exact, fine for Grad-CAM."""

    def __init__(self, num_classes: int = 3, seed: int = 2) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.features = nn.Sequential(nn.Conv3d(3, 6, 3, stride=2, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.hidden = nn.Linear(6, 8)
        self.out = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(self.pool(self.features(x)).flatten(1))))


class FlattenHeadNet(nn.Module):
    """Features -> flatten -> linear (C3D-style): no global pooling, so no CAM layer exists."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Conv3d(3, 2, 3, stride=2, padding=1)
        self.fc = nn.Linear(2 * 2 * 4 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).flatten(1))


class NoHeadNet(nn.Module):
    """Features -> mean over channels and space-time: no linear head at all."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Conv3d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean(dim=(2, 3, 4))


def hooks_left(model: nn.Module) -> int:
    """Number of hooks of any kind attached to any module of ``model``."""
    total = 0
    for m in model.modules():
        for attr in (
            "_forward_hooks",
            "_forward_pre_hooks",
            "_backward_hooks",
            "_backward_pre_hooks",
            "_forward_hooks_with_kwargs",
            "_state_dict_hooks",
        ):
            total += len(getattr(m, attr, {}) or {})
    return total


def passes(explainer: nn.Module | object, clip: torch.Tensor, classes: object) -> tuple[int, int]:
    """(clips forwarded, backwards through ``model.fc``) of one call of ``explainer`` on
    ``clip``: counted by a forward pre-hook on its model and a tensor hook on the head."""
    model = explainer.model  # type: ignore[attr-defined]
    counts = {"forward": 0, "backward": 0}

    def on_forward(_m: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        counts["forward"] += args[0].shape[0]

    def on_head(_m: nn.Module, _i: object, out: torch.Tensor) -> None:
        if out.requires_grad:
            out.register_hook(lambda g: counts.__setitem__("backward", counts["backward"] + 1))

    handles = [model.register_forward_pre_hook(on_forward), model.fc.register_forward_hook(on_head)]
    try:
        explainer(clip, classes=classes)  # type: ignore[operator]
    finally:
        for h in handles:
            h.remove()
    return counts["forward"], counts["backward"]
