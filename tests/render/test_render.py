"""Tests of saliency_tubes.render: colour maps, heat and focus tubes, captions, layouts."""

from __future__ import annotations

import numpy as np
import pytest

from saliency_tubes.errors import InputError
from saliency_tubes.render import (
    HATCH_GREY,
    caption,
    colorbar,
    colormap,
    focus,
    gaussian_blur,
    grid,
    grid_columns,
    heat,
    luma,
    side_by_side,
)

H, W = 24, 40


@pytest.fixture
def frame() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)


def test_colormap_known_values() -> None:
    jet = colormap("jet")
    assert jet.shape == (256, 3) and jet.dtype == np.uint8
    assert jet[0].tolist() == [0, 0, 128]  # dark blue
    assert jet[255].tolist() == [128, 0, 0]  # dark red
    gray = colormap("gray")
    assert gray[0].tolist() == [0, 0, 0] and gray[255].tolist() == [255, 255, 255]
    assert colormap("jet") is jet  # cached
    assert not jet.flags.writeable
    assert colormap("viridis_r")[0].tolist() == colormap("viridis")[255].tolist()


def test_colormap_unknown_name() -> None:
    with pytest.raises(InputError, match="expected a matplotlib colour map name.*jet.*viridis"):
        colormap("not-a-map")
    with pytest.raises(InputError, match="colour map"):
        heat(np.zeros((2, 2, 3), np.uint8), np.zeros((2, 2)), colormap="nope")


def test_heat_zero_is_blend_with_first_colour(frame: np.ndarray) -> None:
    out = heat(frame, np.zeros((H, W)))
    expected = np.rint(0.5 * frame + 0.5 * np.array([0, 0, 128])).astype(np.uint8)
    assert np.array_equal(out, expected)
    out = heat(frame, np.ones((H, W)), opacity=0.25)
    expected = np.rint(0.75 * frame + 0.25 * np.array([128, 0, 0])).astype(np.uint8)
    assert np.array_equal(out, expected)
    assert np.array_equal(heat(frame, np.ones((H, W)), opacity=0.0), frame)


def test_heat_levels_and_clipping(frame: np.ndarray) -> None:
    sal = np.full((H, W), 0.5, np.float32)
    sal[0, 0], sal[0, 1] = -3.0, 7.0  # clipped to 0 and 1
    out = heat(frame, sal, colormap="gray", opacity=1.0)
    assert out[0, 0].tolist() == [0, 0, 0] and out[0, 1].tolist() == [255, 255, 255]
    assert out[1, 1].tolist() == [128, 128, 128]  # round(0.5 * 255) = 128


def test_heat_marks_unseen(frame: np.ndarray) -> None:
    sal = np.zeros((H, W), np.float32)
    sal[:, :10] = np.nan
    out = heat(frame, sal)
    seen = heat(frame, np.zeros((H, W)))
    assert np.array_equal(out[:, 10:], seen[:, 10:])
    # Soft stripes: w = 0.3 (1 + cos(2 pi (y + x) / 12)) / 2 of grey 160 over half the luma.
    yy, xx = np.mgrid[0:H, 0:10]
    w = 0.3 * 0.5 * (1 + np.cos(2 * np.pi * (yy + xx) / 12))
    want = np.rint((1 - w) * 0.5 * luma(frame)[:, :10] + w * HATCH_GREY)
    assert np.abs(out[:, :10].astype(int) - want[..., None]).max() <= 1  # float32 rounding
    assert np.all(out[:, :10, 0] == out[:, :10, 1])  # grey
    assert w.max() == pytest.approx(0.3) and w.min() == pytest.approx(0.0)


def test_focus_full_and_zero_saliency(frame: np.ndarray) -> None:
    assert np.array_equal(focus(frame, np.ones((H, W))), frame)
    for bg in ("black", "dark", "blur", "gray"):
        assert np.array_equal(focus(frame, np.ones((H, W)), background=bg), frame)  # type: ignore[arg-type]
    out = focus(frame, np.zeros((H, W)))
    assert np.array_equal(out, np.rint(frame * (20 / 255)).astype(np.uint8))
    out = focus(frame, np.zeros((H, W)), floor=0.0, background="dark")
    assert np.array_equal(out, np.rint(frame * 0.25).astype(np.uint8))
    out = focus(frame, np.zeros((H, W)), floor=0.0, background="gray")
    assert np.array_equal(out[..., 0], np.rint(luma(frame)).astype(np.uint8))


def test_focus_formula_midway(frame: np.ndarray) -> None:
    s = np.full((H, W), 0.5, np.float32)
    a = 20 / 255 + (1 - 20 / 255) * 0.5
    assert np.array_equal(focus(frame, s), np.rint(frame * np.float32(a)).astype(np.uint8))


def test_focus_marks_unseen(frame: np.ndarray) -> None:
    sal = np.ones((H, W), np.float32)
    sal[:5] = np.nan
    out = focus(frame, sal)  # black background: unseen pixels black with hatch lines
    assert np.array_equal(out[5:], frame[5:])
    yy, xx = np.mgrid[0:5, 0:W]
    w = 0.3 * 0.5 * (1 + np.cos(2 * np.pi * (yy + xx) / 12))
    assert np.abs(out[:5, :, 0].astype(int) - np.rint(w * HATCH_GREY)).max() <= 1


def test_unseen_marks_follow_each_mask_not_the_last_one(frame: np.ndarray) -> None:
    """The mark of a mask is computed once and reused (a video's border repeats on every
    frame): masks of the same shape and size but another layout, alternating, each get
    their own stripes, equal to the formula computed here with boolean indexing."""
    from saliency_tubes.render import hatch_weights

    w = hatch_weights(H, W)
    masks = []
    for cols in (slice(0, 10), slice(30, 40), slice(0, 10)):  # same pixel count, 2 layouts
        m = np.zeros((H, W), bool)
        m[:, cols] = True
        masks.append(m)
    masks.append(np.random.default_rng(3).random((H, W)) < 0.4)  # scattered pixels
    for m in masks * 2:
        sal = np.full((H, W), 0.25, np.float32)
        sal[m] = np.nan
        grey = frame[m].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        want = grey * np.float32(0.5) * (np.float32(1) - w[m]) + np.float32(HATCH_GREY) * w[m]
        out = heat(frame, sal)
        assert np.abs(out[m].astype(int) - np.rint(want)[:, None]).max() <= 1
        assert np.array_equal(out[~m], heat(frame, np.full((H, W), 0.25))[~m])
        black = focus(frame, sal)
        assert np.array_equal(
            black[m][:, 0], np.rint(np.float32(HATCH_GREY) * w[m]).astype(np.uint8)
        )
        dark = focus(frame, sal, background="dark")
        base = frame[m].astype(np.float32) * np.float32(0.25)
        want3 = base * np.float32(0.5) * (1 - w[m])[:, None] + (HATCH_GREY * w[m])[:, None]
        assert np.abs(dark[m].astype(int) - np.rint(want3)).max() <= 1


def test_unseen_marks_whatever_the_memory_layout(frame: np.ndarray) -> None:
    """Transposed (non-contiguous) frames and maps are marked as their contiguous copies
    are; a grey base keeps its 2-D shape; a mask of another size is refused."""
    from saliency_tubes.render import hatch_weights, mark_unseen
    from saliency_tubes.render.unseen import UnseenMark

    sal = np.full((H, W), 0.5, np.float32)
    sal[:, :7] = np.nan
    f_t, s_t = frame.transpose(1, 0, 2), sal.T  # views, not C-contiguous
    assert not f_t.flags.c_contiguous and not s_t.flags.c_contiguous
    for bg in ("black", "dark", "blur", "gray"):
        want = focus(np.ascontiguousarray(f_t), np.ascontiguousarray(s_t), background=bg)  # type: ignore[arg-type]
        assert np.array_equal(focus(f_t, s_t, background=bg), want), bg  # type: ignore[arg-type]
    assert np.array_equal(
        heat(f_t, s_t), heat(np.ascontiguousarray(f_t), np.ascontiguousarray(s_t))
    )
    assert (focus(f_t, s_t)[:7] > 0).any()  # the stripes are there, not the floor's black
    grey = frame[..., 0]
    marked = mark_unseen(grey, np.isnan(sal))
    w = hatch_weights(H, W)[:, :7]
    want_grey = grey[:, :7].astype(np.float32) * np.float32(0.5) * (1 - w) + HATCH_GREY * w
    assert marked.shape == (H, W) and np.allclose(marked[:, :7], want_grey, atol=1e-4)
    assert np.array_equal(marked[:, 7:], grey[:, 7:].astype(np.float32))
    with pytest.raises(InputError, match="mask of unseen pixels"):
        mark_unseen(frame, np.zeros((H + 1, W), bool))
    # Writing through a non-contiguous array: the same pixels as through a contiguous one.
    mark = UnseenMark(np.isnan(sal))
    a = np.zeros((H, W, 3), np.float32)
    b = np.asfortranarray(np.zeros((H, W, 3), np.float32))
    values = mark.values(mark.at(frame))
    mark.put(a, values)
    mark.put(b, values)
    assert not b.flags.c_contiguous and np.array_equal(a, b) and a[:, :7].any()


def test_gaussian_blur_properties() -> None:
    flat = np.full((20, 30, 3), 77, np.uint8)
    assert np.allclose(gaussian_blur(flat, 3.0), 77, atol=1e-3)
    impulse = np.zeros((41, 41, 3), np.float32)
    impulse[20, 20] = 1000.0
    out = gaussian_blur(impulse, 3.0)
    assert out.sum() == pytest.approx(3000.0, rel=1e-4)  # mass kept
    row = out[20, :, 0] / out[20, :, 0].sum()
    sigma = np.sqrt((row * (np.arange(41) - 20.0) ** 2).sum())
    assert sigma == pytest.approx(3.0, abs=0.5)


def test_bad_inputs(frame: np.ndarray) -> None:
    with pytest.raises(InputError, match="expected saliency of shape"):
        heat(frame, np.zeros((H, W + 1)))
    with pytest.raises(InputError, match=r"expected frame of shape \(H, W, 3\) and dtype uint8"):
        focus(frame.astype(np.float32), np.zeros((H, W)))
    with pytest.raises(InputError, match="expected background"):
        focus(frame, np.zeros((H, W)), background="white")  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"expected opacity in \[0, 1\]"):
        heat(frame, np.zeros((H, W)), opacity=1.5)


@pytest.mark.parametrize("position", ["top", "bottom"])
def test_caption_changes_only_band(position: str) -> None:
    img = np.full((60, 120, 3), 200, np.uint8)
    out = caption(img, "Arm wrestling 0.93", position=position)  # type: ignore[arg-type]
    changed_rows = np.flatnonzero((out != img).any(axis=(1, 2)))
    assert changed_rows.size > 0
    band = np.arange(changed_rows.min(), changed_rows.max() + 1)
    if position == "top":
        assert band[0] == 0
    else:
        assert band[-1] == 59
    assert band.size < 30  # a band, not the whole frame
    outside = np.setdiff1d(np.arange(60), band)
    assert np.array_equal(out[outside], img[outside])
    # inside the band: darkened frame (200 * 0.4 = 80) plus bright text
    assert (out[band] == 80).mean() > 0.5
    assert out[band].max() > 200
    assert np.array_equal(img, np.full((60, 120, 3), 200, np.uint8))  # input untouched


def test_caption_long_text_is_truncated() -> None:
    img = np.zeros((40, 60, 3), np.uint8)
    out = caption(img, "a very long caption that cannot possibly fit" * 3)
    assert out.shape == img.shape
    with pytest.raises(InputError, match="expected position"):
        caption(img, "x", position="left")  # type: ignore[arg-type]


def test_side_by_side_and_grid() -> None:
    a = np.full((10, 4, 3), 1, np.uint8)
    b = np.full((6, 3, 3), 2, np.uint8)
    out = side_by_side([a, b], gap=2, fill=9)
    assert out.shape == (10, 4 + 2 + 3, 3)
    assert np.all(out[:, :4] == 1) and np.all(out[:, 4:6] == 9)
    assert np.all(out[2:8, 6:] == 2) and np.all(out[:2, 6:] == 9) and np.all(out[8:, 6:] == 9)

    g = grid([a, b, a], cols=2, gap=1, fill=(255, 0, 0))
    assert g.shape == (10 * 2 + 1, 4 * 2 + 1, 3)
    assert np.all(g[:10, :4] == 1)
    # The short last row is centred: (9 - 4) // 2 = 2 fill columns on its left, 3 on its right.
    assert np.all(g[11:, 2:6] == 1)
    assert np.all(g[11:, :2] == [255, 0, 0]) and np.all(g[11:, 6:] == [255, 0, 0])
    assert np.all(g[2:8, 5:8] == 2)  # b centred in its 10x4 cell: rows 2..7, cols 5..7
    with pytest.raises(InputError, match="at least one frame"):
        grid([], cols=2)
    # Columns that fill the grid: 5 panels as 3 + 2 (one empty cell), not 4 + 1 (three).
    assert [grid_columns(n) for n in (1, 4, 5, 6, 7, 9, 10)] == [1, 4, 3, 3, 4, 3, 4]
    with pytest.raises(InputError, match="cols to be a positive integer"):
        grid([a], cols=0)


def test_colorbar() -> None:
    bar = colorbar(50, 8)
    assert bar.shape == (50, 8, 3)
    assert bar[0, 0].tolist() == [128, 0, 0] and bar[-1, 0].tolist() == [0, 0, 128]
    flat = colorbar(30, 4, "gray", vertical=False)
    assert flat.shape == (4, 30, 3) and flat[0, 0, 0] == 0 and flat[0, -1, 0] == 255
