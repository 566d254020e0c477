"""Helpers of the command tests (their fixtures, the demo clip ``clip_path`` and the embedded
model ``tiny``, are in the root ``tests/conftest.py``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from saliency_tubes.video import Preprocess, probe, read_frames, sample_uniform
from saliency_tubes.zoo import LoadedModel


def model_input(path: Path, loaded: LoadedModel, frames: int | None = None) -> torch.Tensor:
    """The ``(1, 3, T, h, w)`` clip the commands feed ``loaded``: one uniform clip."""
    info = probe(path)
    indices = sample_uniform(info.num_frames, frames or loaded.preset.frames)
    prep: Preprocess = loaded.preset.preprocess()
    return prep(read_frames(path, indices, info=info))[None]


def state(model: torch.nn.Module) -> tuple[bool, list[bool], int]:
    """What a command must give back unchanged: training mode, requires_grad, hook count."""
    hooks = sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        for m in model.modules()
    )
    return model.training, [p.requires_grad for p in model.parameters()], hooks


def assert_close(a: np.ndarray, b: np.ndarray, atol: float = 1e-5) -> None:
    np.testing.assert_allclose(
        np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), atol=atol
    )
