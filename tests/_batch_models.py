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
            hanging_in = os.environ.get("SALIENCY_TUBES_TEST_HANGING")
            if hanging_in:  # a file per process that reached the forward (it hangs there)
                open(os.path.join(hanging_in, str(os.getpid())), "w").close()
            time.sleep(600)
        if self.fault == "crash":
            os._exit(3)  # a crash in native code, as far as the parent can tell
        return self.fc(self.pool(self.conv(x)).flatten(1))


def hanging() -> nn.Module:
    return _Tiny("hang")


def crashing() -> nn.Module:
    return _Tiny("crash")


def loading_forever() -> nn.Module:
    time.sleep(600)  # a factory that waits on something that never comes
    return _Tiny("")


def first_one_loading_forever() -> nn.Module:
    """The first process to build it hangs (it wins the marker file); the others load."""
    try:
        os.close(os.open(os.environ["SALIENCY_TUBES_TEST_MARKER"], os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return _Tiny("")
    time.sleep(600)
    return _Tiny("")
