"""Tests for saliency_tubes.splines: values against scipy.ndimage.zoom, shapes, errors."""

from __future__ import annotations

import warnings
from types import ModuleType

import numpy as np
import pytest
import torch

from saliency_tubes.errors import InputError
from saliency_tubes.splines import upsample

ORDERS = {"nearest": 0, "linear": 1, "quadratic": 2, "cubic": 3}

# (T', H', W') -> (T, H, W): integer and non-integer factors, unchanged and size-1 axes.
CASES = [
    ((5, 7, 7), (16, 112, 112)),
    ((4, 7, 7), (13, 50, 61)),
    ((3, 5, 6), (7, 11, 17)),
    ((2, 4, 3), (2, 9, 1)),
    ((1, 5, 5), (4, 10, 10)),
    ((6, 2, 3), (3, 5, 4)),
]


@pytest.fixture(scope="module")
def ndi() -> ModuleType:
    return pytest.importorskip(
        "scipy.ndimage", reason="scipy is needed for the reference values (pip install scipy)"
    )


def _rand(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def _zoom(
    ndi: ModuleType, x: np.ndarray, size: tuple[int, ...], order: int, align: str
) -> np.ndarray:
    """The scipy reference for one (T', H', W') map."""
    factors = tuple(o / i for i, o in zip(x.shape, size, strict=True))
    if align == "corners":
        ref = ndi.zoom(x, factors, order=order)
    else:
        ref = ndi.zoom(x, factors, order=order, grid_mode=True, mode="nearest")
    assert ref.shape == tuple(size)
    return np.asarray(ref)


def _rel_err(ours: np.ndarray, ref: np.ndarray, raw: np.ndarray) -> float:
    span = float(raw.max() - raw.min()) or 1.0
    return float(np.abs(ours.astype(np.float64) - ref).max()) / span


@pytest.mark.parametrize("align", ["corners", "centers"])
@pytest.mark.parametrize("mode", list(ORDERS))
@pytest.mark.parametrize(("shape", "size"), CASES)
def test_matches_scipy_zoom(
    ndi: ModuleType,
    shape: tuple[int, int, int],
    size: tuple[int, int, int],
    mode: str,
    align: str,
) -> None:
    raw = _rand(shape, seed=sum(shape))
    ref = _zoom(ndi, raw, size, ORDERS[mode], align)
    out64 = upsample(torch.from_numpy(raw), size, mode=mode, align=align, clip=False)
    out32 = upsample(torch.from_numpy(raw).float(), size, mode=mode, align=align, clip=False)
    assert out64.shape == size and out64.dtype == torch.float64
    assert out32.shape == size and out32.dtype == torch.float32
    assert _rel_err(out64.numpy(), ref, raw) < 1e-9
    assert _rel_err(out32.numpy(), ref, raw) < 1e-4


@pytest.mark.parametrize("align", ["corners", "centers"])
def test_nearest_rounding_matches_scipy_exactly(ndi: ModuleType, align: str) -> None:
    # Ties (x + 0.5 landing on an integer, e.g. 3 -> 5 corners, 2 -> 49 centers) must
    # round the way scipy's float64 arithmetic does.
    for n_in in range(1, 8):
        raw = np.arange(1.0, n_in + 1.0)
        for n_out in range(1, 60):
            ref = _zoom(ndi, raw[None, None, :], (1, 1, n_out), 0, align)
            out = upsample(torch.from_numpy(raw)[None, None, :], (1, 1, n_out), "nearest", align)
            np.testing.assert_array_equal(out.numpy(), ref, err_msg=f"{n_in}->{n_out}")


@pytest.mark.parametrize("mode", ["linear", "cubic"])
def test_last_sample_not_dropped_where_scipy_gives_cval(ndi: ModuleType, mode: str) -> None:
    # 4 -> 352: float64 3/351*351 > 3, so scipy's mode='constant' zoom returns cval=0 for
    # the last sample (scipy #4922). We clamp onto the last sample, i.e. match
    # mode='mirror' (same prefilter and coefficient extension inside the domain).
    raw = _rand((4,), seed=3) + 5.0
    x = raw[None, None, :]
    size = (1, 1, 352)
    assert 351 * (3 / 351) > 3  # the premise of this test
    scipy_constant = ndi.zoom(x, (1, 1, 88), order=ORDERS[mode])
    scipy_mirror = ndi.zoom(x, (1, 1, 88), order=ORDERS[mode], mode="mirror")
    out = upsample(torch.from_numpy(x), size, mode, clip=False).numpy()
    assert scipy_constant[0, 0, -1] == 0.0
    assert out[0, 0, -1] == pytest.approx(raw[-1], abs=1e-12)
    np.testing.assert_allclose(out, scipy_mirror, rtol=0, atol=1e-12)
    np.testing.assert_allclose(out[..., :-1], scipy_constant[..., :-1], rtol=0, atol=1e-12)


def test_leading_dims_equal_per_map_results() -> None:
    raw = torch.from_numpy(_rand((2, 3, 4, 5, 6), seed=7))
    size = (9, 13, 10)
    for align in ("corners", "centers"):
        out = upsample(raw, size, align=align)
        assert out.shape == (2, 3, *size)
        for n in range(2):
            for k in range(3):
                torch.testing.assert_close(
                    out[n, k], upsample(raw[n, k], size, align=align), rtol=0, atol=1e-12
                )
    # no leading dims, one leading dim, and an empty batch
    assert tuple(upsample(raw[0, 0], size).shape) == size
    assert tuple(upsample(raw[0], size).shape) == (3, *size)
    assert tuple(upsample(raw[:0], size).shape) == (0, 3, *size)


def test_non_contiguous_input() -> None:
    raw = torch.from_numpy(_rand((6, 5, 4), seed=8))
    t = raw.permute(2, 1, 0)  # (4, 5, 6), non-contiguous
    torch.testing.assert_close(upsample(t, (8, 9, 10)), upsample(t.contiguous(), (8, 9, 10)))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_dtype_is_preserved(dtype: torch.dtype) -> None:
    raw = torch.from_numpy(_rand((2, 3, 3), seed=9)).to(dtype)
    out = upsample(raw, (4, 6, 6))
    assert out.dtype == dtype and out.device == raw.device
    ref = upsample(raw.double(), (4, 6, 6))
    tol = {torch.float16: 1e-2, torch.bfloat16: 5e-2}.get(dtype, 1e-6)
    torch.testing.assert_close(out.double(), ref, rtol=0, atol=tol)


@pytest.mark.parametrize("align", ["corners", "centers"])
@pytest.mark.parametrize("mode", list(ORDERS))
def test_identity_size_returns_raw(mode: str, align: str) -> None:
    raw = torch.from_numpy(_rand((3, 4, 5), seed=10))
    out = upsample(raw, (3, 4, 5), mode=mode, align=align)
    torch.testing.assert_close(out, raw, rtol=0, atol=0)
    out[0, 0, 0] = 123.0  # a new tensor, not a view of raw
    assert raw[0, 0, 0] != 123.0


def test_corners_grid_hits_input_samples() -> None:
    raw = torch.from_numpy(_rand((3, 4, 5), seed=11))
    out = upsample(raw, (3, 4, 15), mode="cubic", clip=False)
    # corners, W' = 5 -> 15: x = o * 4 / 14 lands on input samples at o = 0, 7, 14, and the
    # unchanged T and H axes are left alone.
    for o, i in [(0, 0), (7, 2), (14, 4)]:
        torch.testing.assert_close(out[..., o], raw[..., i], rtol=0, atol=1e-12)


@pytest.mark.parametrize("align", ["corners", "centers"])
@pytest.mark.parametrize("mode", list(ORDERS))
def test_constant_map_stays_constant(mode: str, align: str) -> None:
    raw = torch.full((2, 3, 4, 5), 2.5, dtype=torch.float64)
    out = upsample(raw, (7, 11, 13), mode=mode, align=align, clip=False)
    torch.testing.assert_close(out, torch.full_like(out, 2.5), rtol=0, atol=1e-12)


# The small size clips with broadcast bounds, the large one map by map with scalars.
@pytest.mark.parametrize("size", [(9, 17, 15), (16, 48, 48)])
@pytest.mark.parametrize("align", ["corners", "centers"])
def test_clip_limits_to_each_maps_range_and_equals_clipped_scipy(
    ndi: ModuleType, align: str, size: tuple[int, int, int]
) -> None:
    raw = np.zeros((2, 4, 6, 6))
    raw[0, 1, 2, 3] = 1.0  # an isolated spike rings: the cubic spline undershoots 0
    raw[1] = _rand((4, 6, 6), seed=12) * 3.0 + 10.0
    out = upsample(torch.from_numpy(raw), size, align=align).numpy()
    overshoot = False
    for n in range(2):
        lo, hi = raw[n].min(), raw[n].max()
        ref = _zoom(ndi, raw[n], size, 3, align)
        overshoot |= bool(ref.min() < lo - 1e-6 or ref.max() > hi + 1e-6)
        assert out[n].min() >= lo and out[n].max() <= hi
        np.testing.assert_allclose(out[n], np.clip(ref, lo, hi), rtol=0, atol=1e-9)
    assert overshoot  # otherwise this test would prove nothing


def test_defaults_are_cubic_corners_clipped(ndi: ModuleType) -> None:
    raw = _rand((4, 7, 7), seed=13)
    ref = np.clip(_zoom(ndi, raw, (13, 50, 61), 3, "corners"), raw.min(), raw.max())
    out = upsample(torch.from_numpy(raw), (13, 50, 61)).numpy()
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-9)


def test_clip_keeps_autograd_working() -> None:
    raw = torch.from_numpy(_rand((3, 4, 4), seed=14)).requires_grad_()
    out = upsample(raw, (5, 8, 8))
    out.sum().backward()
    assert raw.grad is not None and raw.grad.shape == raw.shape


_GOOD = torch.zeros(2, 3, 3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"raw": [[[0.0]]]}, r"^expected raw to be a torch\.Tensor, but got list; "),
        ({"raw": torch.zeros(7, 7)}, r"^expected raw with at least 3 dims .* \(7, 7\); "),
        ({"raw": torch.zeros(2, 3, 3, dtype=torch.int64)}, r"floating-point .* torch\.int64; "),
        ({"raw": torch.zeros(2, 0, 3)}, r"^expected non-empty T', H', W' axes"),
        ({"raw": torch.tensor([[[0.0, float("nan")]]])}, r"finite .* 1 NaN/inf value"),
        ({"raw": torch.tensor([[[float("inf"), -float("inf")]]])}, r"2 NaN/inf value"),
        ({"size": (16, 112)}, r"^expected size to be 3 positive ints .* \(16, 112\); "),
        ({"size": (16, 0, 112)}, r"3 positive ints .* \(16, 0, 112\)"),
        ({"size": (16, -1, 112)}, r"3 positive ints"),
        ({"size": (16.0, 112, 112)}, r"3 positive ints"),
        ({"size": (True, 112, 112)}, r"3 positive ints"),
        ({"size": "abc"}, r"3 positive ints"),
        ({"mode": "bicubic"}, r"^expected mode to be one of 'nearest', .* 'bicubic'; "),
        ({"align": "edges"}, r"^expected align to be one of 'corners', 'centers', .* 'edges'"),
        ({"clip": "yes"}, r"^expected clip to be a bool, but got 'yes'"),
    ],
)
def test_bad_input_raises_input_error(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"raw": _GOOD, "size": (4, 5, 5), **kwargs}
    with pytest.raises(InputError, match=match) as info:
        upsample(**args)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)
    assert "\n" not in str(info.value) and "; " in str(info.value)


def test_accepts_numpy_and_torch_size_ints() -> None:
    raw = torch.zeros(2, 3, 3)
    assert upsample(raw, (np.int64(4), 5, 6)).shape == (4, 5, 6)
    assert upsample(raw, torch.Size([4, 5, 6])).shape == (4, 5, 6)  # type: ignore[arg-type]
    assert upsample(raw, [4, 5, 6]).shape == (4, 5, 6)  # type: ignore[arg-type]


def test_no_warnings_emitted() -> None:
    raw = torch.from_numpy(_rand((2, 3, 3), seed=15))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        upsample(raw, (5, 7, 7), align="centers")
        upsample(raw, (5, 7, 7), align="corners")


def test_a_map_already_at_the_size_comes_back_as_it_is() -> None:
    """An input-space method's map is at the clip's size: no spline, every mode the same."""
    raw = torch.randn(2, 3, 4, 6, 5, generator=torch.Generator().manual_seed(3))
    for mode in ("nearest", "linear", "quadratic", "cubic"):
        for align in ("corners", "centers"):
            out = upsample(raw, (4, 6, 5), mode=mode, align=align)
            assert torch.equal(out, raw) and out.data_ptr() != raw.data_ptr()
