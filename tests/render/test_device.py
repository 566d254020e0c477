"""Heat and focus drawn with torch (the GPU path) give the pixels numpy draws."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from saliency_tubes import render
from saliency_tubes.commands import ExplainOptions
from saliency_tubes.commands.pipeline.drawing import panel
from saliency_tubes.errors import InputError
from saliency_tubes.render.device import focus_tensor, heat_tensor
from saliency_tubes.video import Geometry, SourceSampler


def _inputs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    sal = rng.random((37, 53)).astype(np.float32) * 1.2 - 0.1  # also outside [0, 1]
    sal[:5] = np.nan  # unseen rows and columns
    sal[:, -7:] = np.nan
    sal[10, 10], sal[11, 11] = np.inf, -np.inf
    return frame, sal


@pytest.mark.parametrize(("cmap", "opacity"), [("jet", 0.5), ("viridis", 0.3), ("turbo", 1.0)])
def test_heat_on_torch_is_numpy_heat(cmap: str, opacity: float) -> None:
    frame, sal = _inputs()
    got = heat_tensor(torch.from_numpy(frame), torch.from_numpy(sal), cmap, opacity)
    np.testing.assert_array_equal(got.numpy(), render.heat(frame, sal, cmap, opacity))


@pytest.mark.parametrize("background", ["black", "dark", "gray"])
@pytest.mark.parametrize("floor", [20 / 255, 0.0, 0.4])
def test_focus_on_torch_is_numpy_focus(background: str, floor: float) -> None:
    frame, sal = _inputs(1)
    got = focus_tensor(torch.from_numpy(frame), torch.from_numpy(sal), floor, background)
    want = render.focus(frame, sal, floor=floor, background=background)  # type: ignore[arg-type]
    np.testing.assert_array_equal(got.numpy(), want)


def test_blur_has_no_device_version_and_panels_fall_back_to_numpy() -> None:
    frame, sal = _inputs(2)
    with pytest.raises(InputError, match="blur"):
        focus_tensor(torch.from_numpy(frame), torch.from_numpy(sal), 0.1, "blur")
    for background in ("blur", "gray"):
        options = ExplainOptions(background=background)
        for style in ("heat", "focus"):
            on_torch = panel(frame, torch.from_numpy(sal), style, "label", options)
            np.testing.assert_array_equal(on_torch, panel(frame, sal, style, "label", options))


def test_the_source_sampler_on_torch_is_the_numpy_one() -> None:
    geometry = Geometry(3.5, 10.25, 40.0, 60.5, src_hw=(48, 80), clip_hw=(28, 36))
    sampler = SourceSampler(geometry, (7, 9))
    grid = np.random.default_rng(3).random((7, 9)).astype(np.float32)
    got = sampler.frame_tensor(torch.from_numpy(grid)).numpy()
    np.testing.assert_array_equal(got, sampler.frame(grid))  # NaN where unseen, both


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_on_cuda_the_pixels_are_the_cpu_ones_within_one_level() -> None:
    frame, sal = _inputs(4)
    f, s = torch.from_numpy(frame).cuda(), torch.from_numpy(sal).cuda()
    for got, want in (
        (heat_tensor(f, s), render.heat(frame, sal)),
        (focus_tensor(f, s, 0.1, "gray"), render.focus(frame, sal, floor=0.1, background="gray")),
    ):
        diff = np.abs(got.cpu().numpy().astype(int) - want.astype(int))
        assert diff.max() <= 1  # fused multiply-adds may round the other way
