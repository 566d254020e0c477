"""RISE, LIME and Kernel SHAP (issue 23): RISE's enumerated masks against the closed-form
expectation on a linear model and against an enumeration written here, its random masks
against its formula; LIME and Kernel SHAP against captum's own call with the same feature
mask and seed; the supervoxels (SLIC as one 3-D volume, the grid); the forwards each costs,
counted on the model; batching, progress and seeds; plain callables; the model left as it
was; the options refused and the one error line when scikit-image is missing."""

from __future__ import annotations

import itertools
import math
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import saliency_tubes as st
from _models import LinearNet, hooks_left, passes
from saliency_tubes.methods.perturbation import rise_grids, rise_masks
from saliency_tubes.methods.supervoxels import supervoxels

# --------------------------------------------------------------------------- hand models


class ColourNet(nn.Module):
    """A small fixed-weight 3-channel conv net (three classes)."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.features = nn.Conv3d(3, 4, kernel_size=3, padding=1)
        self.fc = nn.Linear(4, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.features(x)).mean(dim=(2, 3, 4)))


def clip_of(n: int = 1, c: int = 3, size=(4, 8, 8), seed: int = 0) -> torch.Tensor:
    return torch.randn(n, c, *size, generator=torch.Generator().manual_seed(seed))


def blocks_of(n: int = 1, size=(4, 12, 12), seed: int = 0) -> torch.Tensor:
    """Clips of flat colour blocks (2 x 3 x 3 of them) with a little noise: something to
    segment (SLIC merges pure noise into one segment)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(n, 3, 2, 3, 3, generator=g)
    return F.interpolate(coarse, size=size, mode="nearest") + 0.05 * torch.randn(
        n, 3, *size, generator=g
    )


# --------------------------------------------------------------------------- RISE, exact


def _bases(cells: tuple[int, int, int], size: tuple[int, int, int]) -> torch.Tensor:
    """(n, T, H, W): a_c(x), each cell's one-hot grid upsampled to the clip (trilinear,
    half-pixel centres), so that an enumerated mask is M(x) = sum_c B_c a_c(x)."""
    n = math.prod(cells)
    eye = torch.eye(n).reshape(n, 1, *cells)
    return F.interpolate(eye, size=size, mode="trilinear", align_corners=False)[:, 0]


@pytest.mark.parametrize("substrate", ["zeros", "mean"])
def test_rise_over_every_mask_is_the_closed_form_expectation(substrate: str) -> None:
    r"""With logit scores of a linear model f(Z) = <W, Z> + b and Z = B + (X - B) M,
    M(x) = \sum_c B_c a_c(x), B_c ~ Bernoulli(p) independent:

    E[f(Z) M(x)] / p = (b + <W, B>) s(x) + p s(x) <W (X - B), s> + (1 - p) \sum_c a_c(x) <W (X - B), a_c>

    with s = \sum_c a_c, since E[B_c] = p and E[B_c B_d] = p^2 + p (1 - p) [c = d]."""
    size, cells, p = (4, 8, 8), (1, 2, 2), 0.3
    x = clip_of(c=2, size=size)
    model = LinearNet((2, *size))
    tubes = st.RISE(model, masks="all", cells=cells, p=p, score="logit", substrate=substrate)(
        x, classes=[0, 2]
    )
    a = _bases(cells, size).double()
    s = a.sum(0)
    base = torch.zeros_like(x) if substrate == "zeros" else x.mean(dim=(2, 3, 4), keepdim=True)
    for j, k in enumerate([0, 2]):
        w = model.weight[k].detach().double()
        d = (w * (x[0] - base[0]).double()).sum(0)  # W (X - B) summed over channels
        const = float(model.bias[k].detach()) + float((w * base[0].double().expand_as(w)).sum())
        inner = torch.einsum("cthw,thw->c", a, d)
        expected = (
            const * s
            + p * s * float((d * s).sum())
            + (1 - p) * torch.einsum("c,cthw->thw", inner, a)
        )
        torch.testing.assert_close(tubes.raw[0, j].double(), expected, atol=1e-4, rtol=1e-5)
    assert tubes.layer == "input" and tubes.method == "rise" and tubes.maps.shape == (1, 2, *size)


def test_rise_over_every_mask_is_the_probability_weighted_enumeration() -> None:
    """The paper's probability scores: the sum over all 2^4 grids written out here."""
    size, cells, p = (2, 6, 6), (1, 2, 2), 0.6
    x = clip_of(size=size, seed=1)
    model = ColourNet()
    tubes = st.RISE(model, masks="all", cells=cells, p=p)(x, classes=[1])
    a = _bases(cells, size)
    expected = torch.zeros(size, dtype=torch.float64)
    with torch.no_grad():
        for bits in itertools.product((0, 1), repeat=4):
            b = torch.tensor(bits, dtype=torch.float32)
            m = torch.einsum("c,cthw->thw", b, a)
            prob = torch.softmax(model(x * m), 1)[0, 1].double()
            weight = p ** sum(bits) * (1 - p) ** (4 - sum(bits))
            expected += weight * prob * m.double()
    torch.testing.assert_close(tubes.raw[0, 0].double(), expected / p, atol=1e-5, rtol=1e-5)


def test_rise_random_masks_follow_the_formula_and_the_seed() -> None:
    size = (4, 8, 8)
    x = clip_of(n=2, size=size, seed=2)
    model = ColourNet()
    tubes = st.RISE(model, masks=40, cells=(2, 3, 3), p=0.5, seed=5, batch_size=7)(
        x, classes=[0, 2]
    )
    grids, weights, shifts = rise_grids(40, (2, 3, 3), 0.5, 5)
    masks = rise_masks(grids, shifts, size)
    assert masks.shape == (40, *size) and float(masks.min()) >= 0 and float(masks.max()) <= 1
    assert torch.equal(weights, torch.ones(40, dtype=torch.float64))
    with torch.no_grad():
        for i in range(2):
            probs = torch.softmax(model(x[i] * masks[:, None]), 1)[:, [0, 2]]  # (40, 2)
            expected = torch.einsum("bk,bthw->kthw", probs, masks) / (40 * 0.5)
            torch.testing.assert_close(tubes.raw[i], expected, atol=1e-5, rtol=1e-5)
    # The same tube whatever the batching; another seed, other masks.
    again = st.RISE(model, masks=40, cells=(2, 3, 3), seed=5)(x, classes=[0, 2])
    torch.testing.assert_close(again.raw, tubes.raw, atol=1e-6, rtol=1e-6)
    other = st.RISE(model, masks=40, cells=(2, 3, 3), seed=6)(x, classes=[0, 2])
    assert (other.raw - tubes.raw).abs().max() > 1e-3


def test_rise_masks_shift_by_whole_voxels_within_one_cell() -> None:
    """A grid upsampled to (s + 1) c and cut from an offset: shift 0 starts at the big
    mask's corner; an all-ones grid is all ones; the masks keep about p of the clip."""
    size = (4, 8, 8)
    grids = torch.zeros(2, 2, 2, 2)
    grids[:, 0, 0, 0] = 1.0
    big = F.interpolate(grids[:1, None], size=(6, 12, 12), mode="trilinear", align_corners=False)[
        0, 0
    ]
    zero = rise_masks(grids[:1], torch.zeros(1, 3), size)[0]
    torch.testing.assert_close(zero, big[:4, :8, :8])
    shifted = rise_masks(grids[1:], torch.tensor([[0.5, 0.99, 0.3]]), size)[0]  # offsets 1, 3, 1
    torch.testing.assert_close(shifted, big[1:5, 3:11, 1:9])
    assert torch.equal(
        rise_masks(torch.ones(1, 2, 2, 2), torch.rand(1, 3), size), torch.ones(1, *size)
    )
    grids, _, shifts = rise_grids(2000, (4, 7, 7), 0.5, 0)
    assert abs(float(rise_masks(grids, shifts, (8, 28, 28)).mean()) - 0.5) < 0.01


# --------------------------------------------------------------------------- LIME, Kernel SHAP


def _captum_direct(name: str, model, clip, target: int, mask, samples: int, seed: int):
    attr = pytest.importorskip("captum.attr")
    torch.manual_seed(seed)
    method = getattr(attr, name)(lambda z: torch.softmax(model(z), 1))
    with torch.no_grad():
        out = method.attribute(
            clip,
            baselines=torch.zeros_like(clip),
            target=target,
            feature_mask=mask[None, None],
            n_samples=samples,
        )
    return out[0, 0]


@pytest.mark.parametrize("segments", ["slic", "grid"])
@pytest.mark.parametrize("name", ["Lime", "KernelShap"])
def test_lime_and_kernel_shap_are_captum_s_call_on_the_supervoxels(
    name: str, segments: str
) -> None:
    pytest.importorskip("captum.attr")
    pytest.importorskip("sklearn")
    if segments == "slic":
        pytest.importorskip("skimage")
    x = blocks_of(n=2, seed=4)
    model = ColourNet()
    options = dict(segments=segments, n_segments=12, cells=(2, 2, 2), samples=60, seed=9)
    explainer = getattr(st, name)(model, sign="signed", batch_size=16, **options)
    state = torch.get_rng_state()
    tubes = explainer(x, classes=[[0, 2], [1, 0]])
    assert torch.equal(torch.get_rng_state(), state)  # the caller's generator untouched
    for i, row in enumerate([[0, 2], [1, 0]]):
        mask = explainer.feature_mask(x[i])
        assert int(mask.max()) + 1 == len(mask.unique()) >= 4
        for j, k in enumerate(row):
            expected = _captum_direct(name, model, x[i : i + 1], k, mask, 60, 9)
            torch.testing.assert_close(tubes.raw[i, j], expected, atol=1e-5, rtol=1e-4)
            # One value per supervoxel.
            for label in mask.unique():
                assert len(tubes.raw[i, j][mask == label].unique()) == 1
    assert tubes.maps.shape == (2, 2, 4, 12, 12) and tubes.layer == "input"
    positive = getattr(st, name)(model, **options)(x, classes=[[0, 2], [1, 0]])
    torch.testing.assert_close(positive.raw, tubes.raw.clamp_min(0))


def test_lime_with_a_ridge_surrogate_is_captum_s_call_with_it() -> None:
    attr = pytest.importorskip("captum.attr")
    pytest.importorskip("sklearn")
    from captum._utils.models.linear_model import SkLearnRidge

    x = blocks_of(seed=5)
    model = ColourNet()
    explainer = st.Lime(
        model,
        surrogate="ridge",
        segments="grid",
        cells=(2, 2, 2),
        samples=40,
        sign="signed",
        seed=3,
    )
    tubes = explainer(x, classes=[1])
    torch.manual_seed(3)
    lime = attr.Lime(
        lambda z: torch.softmax(model(z), 1), interpretable_model=SkLearnRidge(alpha=1.0)
    )
    with torch.no_grad():
        expected = lime.attribute(
            x,
            baselines=torch.zeros_like(x),
            target=1,
            feature_mask=explainer.feature_mask(x[0])[None, None],
            n_samples=40,
        )[0, 0]
    torch.testing.assert_close(tubes.raw[0, 0], expected, atol=1e-5, rtol=1e-4)
    assert (tubes.raw != 0).all()  # ridge: every supervoxel has a coefficient
    with pytest.raises(st.InputError, match="^expected surrogate one of lasso, ridge"):
        st.Lime(model, surrogate="svm")


def test_kernel_shap_coefficients_add_up_to_the_score_change() -> None:
    """Kernel SHAP's efficiency: the supervoxels' values sum to f(X) - f(substrate)."""
    pytest.importorskip("captum.attr")
    pytest.importorskip("sklearn")
    x = clip_of(size=(4, 8, 8), seed=8)
    model = ColourNet()
    explainer = st.KernelShap(model, segments="grid", cells=(2, 2, 2), samples=200, sign="signed")
    tubes = explainer(x, classes=[2])
    mask = explainer.feature_mask(x[0])
    values = torch.stack([tubes.raw[0, 0][mask == m][0] for m in range(8)])
    with torch.no_grad():
        change = (
            torch.softmax(model(x), 1)[0, 2] - torch.softmax(model(torch.zeros_like(x)), 1)[0, 2]
        )
    assert float(values.sum()) == pytest.approx(float(change), abs=1e-3)


def test_grid_supervoxels_are_the_regular_cells() -> None:
    labels = supervoxels(torch.zeros(3, 4, 6, 6), "grid", cells=(2, 3, 2))
    t, h, w = np.meshgrid(np.arange(4), np.arange(6), np.arange(6), indexing="ij")
    expected = ((t * 2 // 4) * 3 + h * 3 // 6) * 2 + w * 2 // 6
    assert np.array_equal(labels.numpy(), expected)
    # Cells beyond the clip's length are capped: one frame, one cell in time.
    assert int(supervoxels(torch.zeros(3, 1, 6, 6), "grid", cells=(4, 2, 2)).max()) == 3


def test_slic_supervoxels_are_scikit_image_s_on_the_clip_as_one_volume() -> None:
    """A red square moving one pixel a frame on grey: one supervoxel follows it through
    the frames; the labels are skimage's own on the clip scaled to [0, 1]."""
    skimage = pytest.importorskip("skimage.segmentation")
    video = np.full((6, 24, 24, 3), 0.5, dtype=np.float32)
    for t in range(6):
        video[t, 8:16, 4 + t : 12 + t] = (1.0, 0.0, 0.0)
    clip = torch.from_numpy(video).permute(3, 0, 1, 2) * 2 - 1  # normalised: [-1, 1]
    labels = supervoxels(clip, "slic", n_segments=20, compactness=10.0)
    centre = [int(labels[t, 12, 8 + t]) for t in range(6)]
    assert len(set(centre)) == 1, centre
    inside = labels == centre[0]
    square = torch.from_numpy(video[..., 1] == 0.0)
    assert float((inside & square).sum() / inside.sum()) >= 0.9  # the segment is the square
    raw = skimage.slic(
        video.astype(np.float64), n_segments=20, compactness=10.0, channel_axis=-1, start_label=0
    )
    _, inverse = np.unique(raw, return_inverse=True)
    assert np.array_equal(labels.numpy(), inverse.reshape(raw.shape))


# --------------------------------------------------------------------------- costs, batching


@pytest.mark.parametrize("name", ["rise", "lime", "kernelshap"])
def test_the_forwards_said_are_the_forwards_run(name: str) -> None:
    if name != "rise":
        pytest.importorskip("captum.attr")
        pytest.importorskip("sklearn")
    options = {"masks": 24} if name == "rise" else {"samples": 20, "segments": "grid"}
    model = ColourNet()
    x = clip_of(n=2, size=(4, 8, 8))
    seen: list[tuple[int, int]] = []
    explainer = st.METHODS[name](
        model, batch_size=5, progress=lambda d, t: seen.append((d, t)), **options
    )
    for classes in ([1], [0, 2]):
        seen.clear()
        forwards, backwards = passes(explainer, x, classes)
        assert forwards == 2 * explainer.forwards((4, 8, 8), len(classes)) and backwards == 0
        total = forwards - 2
        assert seen[-1] == (total, total) and all(d <= t == total for d, t in seen)
    if name == "rise":
        assert explainer.forwards((4, 8, 8), 5) == 25  # shared by every class
        assert st.RISE(model, masks="all", cells=(1, 2, 3)).forwards((4, 8, 8), 2) == 1 + 64
    else:
        assert explainer.forwards((4, 8, 8), 5) == 1 + 5 * 20  # one fit per class


def test_the_memory_bound_sets_the_batch() -> None:
    model = ColourNet()
    x = clip_of(size=(4, 8, 8))
    sizes: list[int] = []
    handle = model.register_forward_pre_hook(lambda _m, a: sizes.append(a[0].shape[0]))
    try:
        one = 3 * 4 * 8 * 8 * 4  # bytes of the clip; the mask is a third of that
        st.RISE(model, masks=20, max_bytes=one * 170)(x)
    finally:
        handle.remove()
    # The call's forward, then batches of max_bytes / (clip, 32 x its activations, mask):
    # 170 / (33 + 1/3) = 5 masks.
    assert sizes == [1, 5, 5, 5, 5]


# --------------------------------------------------------------------------- any model


def test_a_plain_callable_explains_like_its_module() -> None:
    model = ColourNet()
    x = clip_of(size=(4, 8, 8), seed=3)

    def fn(clip: torch.Tensor) -> torch.Tensor:
        return model(clip)

    module = st.RISE(model, masks=30)(x, classes=[0, 1])
    plain = st.RISE(fn, classes=3, masks=30, categories=["a", "b", "c"])(x, classes=["a", "b"])
    torch.testing.assert_close(plain.raw, module.raw)
    assert plain.names() == [["a", "b"]]
    with pytest.raises(st.InputError, match=r"^expected the model to return 4 class scores"):
        st.RISE(fn, classes=4, masks=3)(x)
    with pytest.raises(st.InputError, match=r"^expected classes .* positive int"):
        st.RISE(fn, classes=0)
    with pytest.raises(TypeError, match="expected a torch.nn.Module or a callable"):
        st.RISE(object())
    with pytest.raises(TypeError, match="expected a torch.nn.Module"):
        st.GradCAM(fn)  # a layer method needs a module
    if _has("captum.attr") and _has("sklearn"):
        lime = st.Lime(fn, classes=3, segments="grid", samples=20)(x)
        same = st.Lime(model, segments="grid", samples=20)(x)
        torch.testing.assert_close(lime.raw, same.raw)


def _has(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("name", ["rise", "lime", "kernelshap"])
def test_the_model_comes_back_as_it_was(name: str) -> None:
    if name != "rise" and not (_has("captum.attr") and _has("sklearn")):
        pytest.skip("LIME and Kernel SHAP need saliency-tubes[blackbox]")
    options = {"masks": 6} if name == "rise" else {"samples": 6, "segments": "grid"}
    model = ColourNet().train()
    model.fc.requires_grad_(False)
    before = [m.training for m in model.modules()], [p.requires_grad for p in model.parameters()]

    def stop(done: int, total: int) -> None:
        raise KeyboardInterrupt

    st.METHODS[name](model, **options)(clip_of(size=(4, 8, 8)))
    with pytest.raises(KeyboardInterrupt):
        st.METHODS[name](model, batch_size=2, progress=stop, **options)(clip_of(size=(4, 8, 8)))
    after = [m.training for m in model.modules()], [p.requires_grad for p in model.parameters()]
    assert after == before and hooks_left(model) == 0
    assert all(p.grad is None for p in model.parameters())


def test_wrong_options_are_one_line_each() -> None:
    model = ColourNet()
    for bad, match in (
        (dict(masks=0), "^expected masks"),
        (dict(masks="some"), "^expected masks"),
        (dict(p=1.0), r"^expected p, the probability of keeping a cell, in \(0, 1\)"),
        (dict(cells=(2, 0, 2)), "^expected cells as three positive ints"),
        (dict(score="rank"), "^expected score one of probability, logit"),
        (dict(substrate="noise"), "^expected substrate one of zeros, mean, blur"),
        (dict(seed=-1), "^expected seed to be a non-negative int"),
    ):
        with pytest.raises(st.InputError, match=match):
            st.RISE(model, **bad)
    with pytest.raises(st.InputError, match=r"^expected at most 16 cells for masks='all'"):
        st.RISE(model, masks="all")(clip_of(size=(4, 8, 8)))
    for bad, match in (
        (dict(segments="flow"), "^expected segments one of slic, grid"),
        (dict(n_segments=0), "^expected n_segments"),
        (dict(compactness=-1), "^expected compactness"),
        (dict(samples=0), "^expected samples"),
        (dict(sign="both"), "^expected sign one of"),
    ):
        with pytest.raises(st.InputError, match=match):
            st.Lime(model, **bad)


def test_without_scikit_image_one_error_line_says_how_to_install(monkeypatch) -> None:
    pytest.importorskip("captum.attr")
    pytest.importorskip("sklearn")
    monkeypatch.setitem(sys.modules, "skimage", None)
    monkeypatch.setitem(sys.modules, "skimage.segmentation", None)
    x = clip_of(size=(4, 8, 8))
    for name in ("lime", "kernelshap"):
        with pytest.raises(st.InputError) as caught:
            st.METHODS[name](ColourNet(), samples=4)(x)
        assert str(caught.value) == (
            f"--method {name} with segments='slic' needs scikit-image, which is not installed; "
            "install it with pip install 'saliency-tubes[blackbox]' (or use segments='grid')"
        )
        st.METHODS[name](ColourNet(), samples=4, segments="grid")(x)  # the grid needs none
    st.RISE(ColourNet(), masks=4)(x)  # neither does RISE


def test_lime_on_the_cpu_leaves_every_random_generator_as_it_was(monkeypatch) -> None:
    # The surrogate's samples are seeded inside fork_rng, which restores the CPU generator
    # (and the clip's GPU's): seeding any other generator would leave it changed.
    if not (_has("captum.attr") and _has("sklearn")):
        pytest.skip("LIME needs captum and scikit-learn (the blackbox extra)")
    seeded: list[int] = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", seeded.append)
    torch.manual_seed(1234)  # (this test's own call, recorded and then forgotten)
    seeded.clear()
    before = torch.get_rng_state()
    model = LinearNet((3, 4, 6, 6))
    x = torch.randn(1, 3, 4, 6, 6, generator=torch.Generator().manual_seed(0))
    first = st.Lime(model, segments="grid", samples=20)(x)
    assert seeded == []
    assert torch.equal(torch.get_rng_state(), before)
    again = st.Lime(model, segments="grid", samples=20)(x)
    torch.testing.assert_close(first.raw, again.raw, rtol=0, atol=0)


# --------------------------------------------------------------------------- planted colour
# The colour task (tests/_colour_model.py: a trained model, a class decided by one coloured
# object among grey look-alikes) at each method's defaults, one clip per call, as
# benchmarks/blackbox_planted.py runs it (its records: benchmarks/RESULTS_blackbox.md).
# Thousands of forwards per clip: behind `slow`. PLANTED holds the clips measured here and
# the frames (of 16 each) whose maximum's centre lay within 4 px of the object.


PLANTED: dict[str, dict[int, int]] = {
    "rise": {0: 13, 1: 12, 2: 16, 3: 15, 4: 15, 5: 16, 6: 16, 7: 16, 8: 15, 9: 16, 10: 11, 11: 16},
    "lime": {0: 16, 1: 16, 2: 16, 3: 16, 4: 16, 5: 16, 6: 16, 7: 16, 8: 16, 9: 16, 10: 16, 11: 16},
    "kernelshap": {
        0: 16,
        1: 16,
        2: 16,
        3: 16,
        4: 16,
        5: 16,
        6: 16,
        7: 16,
        8: 16,
        9: 16,
        10: 16,
        11: 16,
    },
}


def _plateau_centres_on(maps: np.ndarray, near: np.ndarray) -> int:
    hits = 0
    for t, frame in enumerate(maps):
        ys, xs = np.nonzero(frame >= frame.max())
        hits += bool(near[t, int(round(ys.mean())), int(round(xs.mean()))])
    return hits


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PLANTED))
def test_planted_colour_at_the_default_settings(name: str) -> None:
    if name != "rise" and not (_has("captum.attr") and _has("sklearn") and _has("skimage")):
        pytest.skip("LIME and Kernel SHAP need saliency-tubes[blackbox]")
    from scipy.ndimage import binary_dilation

    from _colour_model import colour_preprocess, load_colour_model
    from saliency_tubes.synthetic_colours import make_colour_clip

    loaded = load_colour_model()
    preprocess = colour_preprocess()
    explainer = loaded.explainer(name)
    for seed, measured in PLANTED[name].items():
        clip = make_colour_clip(seed=seed, frames=16, size=(64, 64))
        tubes = explainer(preprocess(clip.video)[None], classes=[[clip.label]])
        assert int(tubes.logits.argmax(1)[0]) == clip.label
        near = binary_dilation(clip.mask, np.ones((1, 3, 3), dtype=bool), iterations=4)
        # Within a frame of what was measured (thread counts move the floats a little).
        got = _plateau_centres_on(tubes.maps[0, 0].numpy(), near)
        assert got >= measured - 1, (name, seed, got, measured)
