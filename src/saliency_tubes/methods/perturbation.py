r"""Black-box tubes: RISE, LIME and Kernel SHAP over space-time, on any model.

Petsiuk, Das and Saenko, "RISE: Randomized Input Sampling for Explanation of Black-box
Models", BMVC 2018 (extended here to space-time masks). Ribeiro, Singh and Guestrin, "Why
Should I Trust You?", KDD 2016 (LIME). Lundberg and Lee, "A Unified Approach to
Interpreting Model Predictions", NeurIPS 2017 (Kernel SHAP). The video setting follows
REVEX (Gaya-Morey et al. 2024): the features switched on and off are space-time
supervoxels (:mod:`saliency_tubes.methods.supervoxels`).

They only run the model: no layer, no head, no gradient, so the model may be a plain
callable ``fn(clip) -> scores`` (``RISE(fn, classes=400)``; see
:mod:`saliency_tubes.callables`). Like occlusion and integrated gradients their maps are
at the clip's own (T, H, W) (:attr:`Tubes.layer` is ``"input"``). Hidden voxels take the
value of a *substrate*, the evaluation's (:func:`saliency_tubes.metrics.make_substrate`):
``"zeros"`` (the data set's mean colour of a normalised clip; RISE's product with the
mask), ``"mean"`` (the clip's mean colour) or ``"blur"``. Every random draw comes from
``seed``: the same call gives the same tube, whatever the batch size.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from ..callables import as_module, check_class_count
from ..errors import InputError
from .attribution import InputAttribution, Triple, captum_attr, positive_triple
from .base import ForwardPass, logits_of
from .supervoxels import check_segmentation, missing_skimage, supervoxels

__all__ = ["DEFAULT_CELLS", "KernelShap", "Lime", "RISE", "rise_grids", "rise_masks"]

DEFAULT_CELLS: Triple = (4, 7, 7)
"""RISE's mask grid and the supervoxel grid along (T, H, W): the paper's 7 x 7 in space,
4 steps in time (each axis capped at the clip's length)."""

SCORES: tuple[str, ...] = ("probability", "logit")
"""What weighs RISE's masks: the class's softmax probability (the paper's) or its logit."""

SUBSTRATE_NAMES: tuple[str, ...] = ("zeros", "mean", "blur")

SURROGATES: tuple[str, ...] = ("lasso", "ridge")
"""LIME's linear surrogate: captum's default, a Lasso with alpha 0.01 (it keeps only the
supervoxels that move the probability by more than about alpha: on tiny-actions' clip of
'shrink' it keeps no positive one, an all-zero tube), or a ridge regression with alpha 1,
the lime package's own default (every supervoxel gets a coefficient)."""

MAX_ENUMERATED = 16
"""``masks="all"`` enumerates 2 ** cells grids: at most 2 ** 16."""


def _seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"expected seed to be a non-negative int, but got {seed!r}")
    return seed


def _positive(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"expected {name} to be a positive int, but got {value!r}")
    return value


def rise_grids(
    masks: int | str, cells: Triple, p: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """RISE's binary grids, their weights and shifts.

    Args:
        masks: how many random grids, or ``"all"``: every binary grid of ``cells``.
        cells: the grid's (t, h, w).
        p: the probability that a cell is kept.
        seed: the generator's seed (all grids and shifts are drawn first, so the masks do
            not depend on how they are batched).

    Returns:
        ``(grids, weights, shifts)``: (M, t, h, w) float32 0/1 grids; (M,) float64 weights
        (1 each for random grids; the probability :math:`p^k (1-p)^{n-k}` of each grid
        for ``"all"``); (M, 3) float32 shifts in [0, 1), fractions of a cell per axis (None
        for ``"all"``).
    """
    n = math.prod(cells)
    if masks == "all":
        if n > MAX_ENUMERATED:
            raise InputError(
                f"expected at most {MAX_ENUMERATED} cells for masks='all' (2 ** cells grids), "
                f"but got cells {cells} ({n}); give a number of masks or fewer cells"
            )
        bits = torch.tensor(list(itertools.product((0.0, 1.0), repeat=n)))
        kept = bits.double().sum(1)
        weights = p**kept * (1 - p) ** (n - kept)
        return bits.reshape(-1, *cells).float(), weights, None
    gen = torch.Generator().manual_seed(seed)
    grids = (torch.rand(int(masks), *cells, generator=gen) < p).float()
    shifts = torch.rand(int(masks), 3, generator=gen)
    return grids, torch.ones(int(masks), dtype=torch.float64), shifts


def rise_masks(grids: torch.Tensor, shifts: torch.Tensor | None, size: Triple) -> torch.Tensor:
    r"""(B, T, H, W) soft masks in [0, 1] from (B, t, h, w) grids, as in the paper.

    With cell size :math:`c = \lceil S / s \rceil` per axis, each grid is upsampled
    trilinearly (half-pixel centres) to :math:`(s + 1) c` and cut to the clip's size from
    an offset of ``shift * c`` (shifts in [0, 1), floored), so the cell borders fall
    anywhere. With ``shifts=None`` (the enumerated grids) the grid is upsampled straight to
    the clip's size, with no offset.
    """
    if shifts is None:
        return F.interpolate(grids[:, None], size=size, mode="trilinear", align_corners=False)[:, 0]
    cells = grids.shape[1:]
    cell = [math.ceil(s / g) for s, g in zip(size, cells, strict=True)]
    up = tuple((g + 1) * c for g, c in zip(cells, cell, strict=True))
    big = F.interpolate(grids[:, None], size=up, mode="trilinear", align_corners=False)[:, 0]
    offset = (shifts * torch.tensor(cell, dtype=shifts.dtype)).long()
    t, h, w = size
    return torch.stack(
        [big[b, o[0] : o[0] + t, o[1] : o[1] + h, o[2] : o[2] + w] for b, o in enumerate(offset)]
    )


class Perturbation(InputAttribution):
    """What RISE, LIME and Kernel SHAP share: a model that is only run (an ``nn.Module`` or
    any callable, see :mod:`saliency_tubes.callables`), a substrate, a seed, and the
    batching and progress of :class:`~saliency_tubes.methods.attribution.InputAttribution`.

    ``classes`` is the number of class scores the model returns; when given, it is checked
    on every call (one error line when the model returns another number).
    """

    def __init__(
        self,
        model: Any,
        layer: Any = None,
        classifier: Any = None,
        *,
        classes: int | None = None,
        substrate: str = "zeros",
        seed: int = 0,
        **options: Any,
    ) -> None:
        module = as_module(model, classes)
        super().__init__(module, layer, classifier, **options)
        if classes is not None:
            _positive(classes, "classes")
        if substrate not in SUBSTRATE_NAMES:
            raise InputError(
                f"expected substrate one of {', '.join(SUBSTRATE_NAMES)}, but got {substrate!r}"
            )
        self.num_classes = classes
        self.substrate = substrate
        self.seed = _seed(seed)

    def _substrates(self, clip: torch.Tensor) -> torch.Tensor:
        """(N, C, T, H, W): each clip's substrate."""
        from ..metrics.faithfulness import make_substrate  # metrics imports methods

        return torch.cat(
            [make_substrate(clip[i : i + 1], self.substrate) for i in range(len(clip))]
        )

    def _probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """(B, num_classes) softmax probabilities of the model on ``x``."""
        return torch.softmax(logits_of(self._forward(x), x.shape[0]).float(), dim=1)

    def _clip_of(self, forward: ForwardPass) -> torch.Tensor:
        if forward.clip is None:
            raise InputError(
                f"expected the clip in the forward pass for {self.method}, but got none"
            )
        check_class_count(self.num_classes, forward.logits)
        return forward.clip


class RISE(Perturbation):
    r"""RISE tube (Petsiuk et al. 2018) over space-time.

    ``masks`` random binary grids of ``cells`` (t, h, w), each cell kept with probability
    ``p``, are upsampled with random shifts to soft masks :math:`M_i` of the clip's size
    (:func:`rise_masks`); the model scores each blend :math:`X \odot M_i + B \odot (1 - M_i)`
    (:math:`B` the substrate: zeros, the product of the paper) and

    .. math::
        S^c(x) = \frac{1}{p \sum_i w_i} \sum_i w_i\, f_c(X \odot M_i + B \odot (1 - M_i))\, M_i(x)

    with :math:`f_c` the class's softmax probability (``score="probability"``, the
    paper's) or logit (``score="logit"``) and :math:`w_i = 1`: a Monte-Carlo estimate of
    :math:`\mathbb{E}[f_c \cdot M(x)] / p`. ``masks="all"`` enumerates every binary grid
    (at most :data:`MAX_ENUMERATED` cells) with weight :math:`w = p^k (1-p)^{n-k}`,
    upsampled without shifts: the expectation itself.

    Cost: the call's forward plus one forward per mask and clip (``1 + masks``, or
    ``1 + 2 ** cells``), the same for one class or all of them (every class's score comes
    from the same forwards); no backward. The masked clips run in batches of
    ``batch_size`` masks (each a batch of the N clips) or as many as fit in ``max_bytes``.

    Args:
        model: an ``nn.Module`` or any callable clip -> (N, num_classes) scores.
        layer, classifier: accepted for a common call, ignored.
        masks: the number of random masks, or ``"all"``.
        cells: (t, h, w) of the grid, or one int; default :data:`DEFAULT_CELLS` capped at
            the clip's size.
        p: the probability of keeping a cell, in (0, 1).
        seed: seeds the grids and shifts.
        substrate: ``"zeros"``, ``"mean"`` or ``"blur"``: what hidden voxels become.
        score: ``"probability"`` or ``"logit"`` (see :data:`SCORES`).
        classes: the model's number of class scores (checked; needed by nothing else).
        batch_size, max_bytes, progress, categories, eval_mode, inputs: as for occlusion.
    """

    method = "rise"

    def __init__(
        self,
        model: Any,
        layer: Any = None,
        classifier: Any = None,
        *,
        masks: int | str = 1000,
        cells: int | Sequence[int] | None = None,
        p: float = 0.5,
        score: str = "probability",
        **options: Any,
    ) -> None:
        super().__init__(model, layer, classifier, sign="signed", **options)
        if masks != "all":
            _positive(masks, "masks (or 'all')")
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p < 1:
            raise InputError(
                f"expected p, the probability of keeping a cell, in (0, 1), but got {p!r}"
            )
        if score not in SCORES:
            raise InputError(f"expected score one of {', '.join(SCORES)}, but got {score!r}")
        self.masks = masks
        self.cells = positive_triple(cells, "cells")
        self.p = float(p)
        self.score = score

    def check_available(self) -> None:
        """Nothing to install: RISE runs on torch alone."""

    def grid(self, size: Triple) -> Triple:
        """The mask grid for a clip of ``size``: ``cells`` capped at the clip's length."""
        cells = self.cells or DEFAULT_CELLS
        return tuple(min(c, s) for c, s in zip(cells, size, strict=True))  # type: ignore[return-value]

    def forwards(self, size: Triple, classes: int) -> int:
        """``1 + masks`` (``1 + 2 ** cells`` for ``"all"``), whatever ``classes``."""
        del classes
        count = 2 ** math.prod(self.grid(size)) if self.masks == "all" else int(self.masks)
        return 1 + count

    def _raw_maps(self, forward: ForwardPass) -> list[torch.Tensor]:
        clip = self._clip_of(forward)
        n = clip.shape[0]
        size: Triple = (clip.shape[2], clip.shape[3], clip.shape[4])
        index = forward.classes  # (N, K)
        grids, weights, shifts = rise_grids(self.masks, self.grid(size), self.p, self.seed)
        total = len(grids)
        base = self._substrates(clip)
        mask_bytes = math.prod(size) * 4
        if self.batch_size is not None:
            per_eval = self.batch_size
        else:
            per_eval = self.max_bytes // max(1, n * self._per_clip_bytes(clip, mask_bytes))
        per_eval = max(1, min(per_eval, total))
        score = self._counting(
            self._probabilities if self.score == "probability" else self._logits, n * total
        )
        saliency = torch.zeros(n, index.shape[1], *size, dtype=torch.float64, device=clip.device)
        with torch.no_grad():
            for start in range(0, total, per_eval):
                stop = min(start + per_eval, total)
                part = None if shifts is None else shifts[start:stop]
                m = rise_masks(grids[start:stop], part, size).to(clip.device, clip.dtype)
                blend = base + (clip - base) * m[:, None, None]  # (B, N, C, T, H, W)
                s = score(blend.reshape(-1, *clip.shape[1:])).reshape(stop - start, n, -1)
                picked = s.gather(2, index[None].expand(stop - start, -1, -1)).double()
                w = weights[start:stop].to(clip.device)[:, None, None] * picked
                saliency += torch.einsum("bnk,bthw->nkthw", w, m.double())
        return [(saliency / (self.p * float(weights.sum()))).float()]

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return logits_of(self._forward(x), x.shape[0]).float()


class _Surrogate(Perturbation):
    """LIME and Kernel SHAP: captum's class on supervoxel features (see :class:`Lime`)."""

    def __init__(
        self,
        model: Any,
        layer: Any = None,
        classifier: Any = None,
        *,
        segments: str = "slic",
        n_segments: int = 100,
        compactness: float = 10.0,
        cells: int | Sequence[int] | None = None,
        samples: int = 1000,
        sign: str = "positive",
        **options: Any,
    ) -> None:
        super().__init__(model, layer, classifier, sign=sign, **options)
        check_segmentation(segments, n_segments, compactness)
        self.segments = segments
        self.n_segments = n_segments
        self.compactness = float(compactness)
        self.cells = positive_triple(cells, "cells")
        self.samples = _positive(samples, "samples")

    def check_available(self) -> None:
        """One error line when captum, scikit-learn (captum's linear models) or, for SLIC,
        scikit-image is missing (the commands ask before decoding the video)."""
        captum_attr(self.method)
        try:
            import sklearn  # noqa: F401  # captum fits its linear models with it
        except ImportError:
            raise InputError(
                f"--method {self.method} needs scikit-learn (captum's linear models), which is "
                "not installed; install it with pip install 'saliency-tubes[blackbox]'"
            ) from None
        if self.segments == "slic":
            try:
                import skimage.segmentation  # noqa: F401
            except ImportError:
                raise missing_skimage(self.method) from None

    def feature_mask(self, clip: torch.Tensor) -> torch.Tensor:
        """The (T, H, W) int64 supervoxels of one (C, T, H, W) clip (the features)."""
        return supervoxels(
            clip,
            self.segments,
            n_segments=self.n_segments,
            compactness=self.compactness,
            cells=self.cells or DEFAULT_CELLS,
            method=self.method,
        )

    def forwards(self, size: Triple, classes: int) -> int:
        """``1 + classes * samples``: captum fits one surrogate per class."""
        del size
        return 1 + classes * self.samples

    def _captum_method(self, attr: Any, forward: Any) -> Any:
        raise NotImplementedError

    def _raw_maps(self, forward: ForwardPass) -> list[torch.Tensor]:
        attr = captum_attr(self.method)
        clip = self._clip_of(forward)
        n, k = forward.classes.shape
        base = self._substrates(clip)
        if self.batch_size is not None:
            per_eval = self.batch_size
        else:
            per_eval = self.max_bytes // max(1, self._per_clip_bytes(clip, clip[0].numel() * 4))
        per_eval = max(1, min(per_eval, self.samples))
        surrogate = self._captum_method(
            attr, self._counting(self._probabilities, n * k * self.samples)
        )
        devices = [clip.device] if clip.device.type == "cuda" else []
        maps = torch.zeros(n, k, *clip.shape[2:], device=clip.device)
        with torch.no_grad():
            for i in range(n):
                mask = self.feature_mask(clip[i])[None, None]  # (1, 1, T, H, W)
                for j in range(k):
                    # The same samples for every class and clip: reseeded before each fit.
                    with torch.random.fork_rng(devices=devices):
                        _seed_generators(self.seed, clip.device)
                        coefficients = surrogate.attribute(
                            clip[i : i + 1],
                            baselines=base[i : i + 1],
                            target=int(forward.classes[i, j]),
                            feature_mask=mask,
                            n_samples=self.samples,
                            perturbations_per_eval=per_eval,
                        )
                    maps[i, j] = self._signed(coefficients[0, :1].float())
        return [maps]


def _seed_generators(seed: int, device: torch.device) -> None:
    """Seed the CPU generator, and ``device``'s when a GPU: exactly those that
    ``fork_rng(devices=...)`` restores (``torch.manual_seed`` would seed every GPU's, and
    leave the user's CUDA generators changed after an explanation on the CPU)."""
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        with torch.cuda.device(device):
            torch.cuda.manual_seed(seed)


class Lime(_Surrogate):
    r"""LIME tube (Ribeiro et al. 2016) through ``captum.attr.Lime`` on space-time
    supervoxels.

    The clip is cut into features (:func:`~saliency_tubes.methods.supervoxels.supervoxels`:
    SLIC on the clip as one 3-D volume, ``n_segments`` and ``compactness``; or a regular
    grid of ``cells``, ``segments="grid"``). captum draws ``samples`` random on/off
    patterns of the features (each on with probability 1/2), scores each clip with the
    off features replaced by the substrate, and fits a linear surrogate to the class's
    softmax probability (samples weighted by captum's default kernel, an exponential of
    their cosine distance to the whole clip, width 1): captum's default, a Lasso with
    :math:`\alpha = 0.01` (``surrogate="lasso"``), or the lime package's default, a ridge
    regression with :math:`\alpha = 1` (``surrogate="ridge"``; see :data:`SURROGATES`).
    Each supervoxel's coefficient painted on its voxels, after ``sign`` (its positive part
    by default), is the raw tube. The result equals captum's own call (``Lime(f)``, or
    ``Lime(f, interpretable_model=SkLearnRidge(alpha=1.0))``) on the same feature mask
    after ``torch.manual_seed(seed)``.

    Cost: ``1 + classes * samples`` forwards per clip (captum fits one surrogate per
    class), in batches of ``batch_size`` samples or as many as fit in ``max_bytes``; plus
    one SLIC per clip (under a second for 16 x 112 x 112).

    Args:
        model: an ``nn.Module`` or any callable clip -> (N, num_classes) scores.
        layer, classifier: accepted for a common call, ignored.
        segments: ``"slic"`` (needs ``saliency-tubes[blackbox]``) or ``"grid"``.
        n_segments, compactness: SLIC's options (scikit-image's meaning).
        cells: the grid's (t, h, w) for ``segments="grid"`` (default :data:`DEFAULT_CELLS`).
        samples: captum's ``n_samples``.
        surrogate: ``"lasso"`` (default, captum's) or ``"ridge"`` (see :data:`SURROGATES`).
        sign: ``"positive"`` (default), ``"absolute"`` or ``"signed"`` coefficients.
        seed, substrate, classes, batch_size, max_bytes, progress, categories, eval_mode, inputs: see
            :class:`RISE`.
    """

    method = "lime"

    def __init__(
        self,
        model: Any,
        layer: Any = None,
        classifier: Any = None,
        *,
        surrogate: str = "lasso",
        **options: Any,
    ) -> None:
        super().__init__(model, layer, classifier, **options)
        if surrogate not in SURROGATES:
            raise InputError(
                f"expected surrogate one of {', '.join(SURROGATES)}, but got {surrogate!r}"
            )
        self.surrogate = surrogate

    def _captum_method(self, attr: Any, forward: Any) -> Any:
        from captum._utils.models.linear_model import SkLearnLasso, SkLearnRidge

        if self.surrogate == "ridge":
            return attr.Lime(forward, interpretable_model=SkLearnRidge(alpha=1.0))
        return attr.Lime(forward, interpretable_model=SkLearnLasso(alpha=0.01))  # captum's


class KernelShap(_Surrogate):
    r"""Kernel SHAP tube (Lundberg and Lee 2017) through ``captum.attr.KernelShap`` on
    space-time supervoxels.

    As :class:`Lime`, but captum draws the feature patterns and weighs them by the Shapley
    kernel (the all-on and all-off patterns first, with a very large weight) and fits a
    plain linear regression: the coefficients approximate each supervoxel's Shapley value
    for the class's probability, with the substrate as the absent value; they add up to
    about :math:`f_c(X) - f_c(B)`. Same options (but ``surrogate``) and cost as
    :class:`Lime`.
    """

    method = "kernelshap"

    def _captum_method(self, attr: Any, forward: Any) -> Any:
        return attr.KernelShap(forward)
