"""Model factories for the batch tests' faults (imported by batch worker processes)."""

from __future__ import annotations

import os
import time

import torch
from torch import nn


class _Tiny(nn.Module):
    def __init__(self, fault: str) -> None:
        super().__init__()
        self.fault = fault
        self.conv = nn.Conv3d(3, 4, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fault == "hang":
            time.sleep(600)
        if self.fault == "crash":
            os._exit(3)  # a crash in native code, as far as the parent can tell
        return self.fc(self.pool(self.conv(x)).flatten(1))


def hanging() -> nn.Module:
    return _Tiny("hang")


def crashing() -> nn.Module:
    return _Tiny("crash")
