"""Input-space attributions through captum: occlusion and integrated gradients.

Zeiler and Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014
(occlusion). Sundararajan, Taly and Yan, "Axiomatic Attribution for Deep Networks", ICML
2017 (integrated gradients). Both run captum's own classes (``captum.attr.Occlusion``,
``captum.attr.IntegratedGradients``; the extra ``saliency-tubes[captum]``), imported on the
first call only, so that nothing imports captum before a method needs it.

Their attributions are per input voxel, at the clip's own (T, H, W): there is no target
layer (:attr:`Tubes.layer` is ``"input"``), no head, and no upsampling (the raw map is the
map's grid, the spline an identity). The attribution is summed over the colour channels
into one (T, H, W) map per (sample, class).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ..errors import InputError, missing_extra
from ..hooks import LayerSpec, preserved_state
from ..resources import ACTIVATION_FACTOR
from ..tokens import Reshape
from .base import (
    ClassSpec,
    Explainer,
    ForwardPass,
    Inputs,
    LayersSpec,
    Tubes,
    check_batching,
    logits_of,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "SIGNS",
    "IntegratedGradients",
    "Occlusion",
    "occlusion_windows",
]

DEFAULT_MAX_BYTES = 512 * 2**20
"""Default bound on the memory of one batch of perturbed clips (as Score-CAM's)."""

SIGNS: tuple[str, ...] = ("positive", "absolute", "signed")
"""How the channel-summed attribution becomes the raw map: its positive part (evidence for
the class), its magnitude, or as it is (then :attr:`Tubes.maps`' min-max puts 0 mid-range)."""

INTEGRATIONS: tuple[str, ...] = (
    "gausslegendre",
    "riemann_trapezoid",
    "riemann_left",
    "riemann_right",
    "riemann_middle",
)
"""captum's rules for the path integral of integrated gradients."""

Progress = Callable[[int, int], None]
"""``progress(done, total)``: clips forwarded so far, of how many (after each forward)."""

Triple = tuple[int, int, int]


def _baseline(value: Any) -> float:
    """A baseline value, checked: a finite number in the normalised clip's units."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(
            f"expected baseline as a number, but got {value!r}; give a value of the "
            "normalised clip (0: the data set's mean colour)"
        )
    if not math.isfinite(float(value)):
        raise InputError(f"expected a finite baseline, but got {value!r}; give e.g. 0")
    return float(value)


def captum_attr(method: str) -> Any:
    """``captum.attr``, or one error line saying how to install it."""
    try:
        import captum.attr as attr
    except ImportError:
        raise missing_extra(f"--method {method}", "captum", "captum") from None
    return attr


def positive_triple(value: Any, name: str) -> Triple | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value, value)
    if (
        not isinstance(value, Sequence)
        or len(value) != 3
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
    ):
        raise InputError(
            f"expected {name} as three positive ints (t, h, w) or one int, but got {value!r}"
        )
    return (int(value[0]), int(value[1]), int(value[2]))


def occlusion_windows(
    size: Triple, window: Triple | None = None, stride: Triple | None = None
) -> tuple[Triple, Triple, int]:
    """The occluding window, its stride and the number of windows for a clip of ``size``.

    By default the window is a quarter of the clip along each of T, H and W (rounded up)
    and the stride half the window (rounded up), so about 7 positions per axis: 343
    windows for 16 x 112 x 112 (window 4 x 28 x 28, stride 2 x 14 x 14). A window larger
    than the clip is cut to it. As in captum, the windows start at 0 and step by the
    stride until the axis is covered (the last one may stick out and be cut).

    Returns:
        ``(window, stride, count)``: ``count`` windows, one forward each per clip.
    """
    win = window or tuple(max(1, math.ceil(s / 4)) for s in size)
    win = tuple(min(w, s) for w, s in zip(win, size, strict=True))
    step = stride or tuple(max(1, math.ceil(w / 2)) for w in win)
    for w, st_, s in zip(win, step, size, strict=True):
        if w < s and st_ > w:
            raise InputError(
                f"expected an occlusion stride no larger than the window ({w}) along every "
                f"axis the window does not cover, but got stride {tuple(step)} for window "
                f"{tuple(win)}; lower the stride so that every voxel is occluded at least once"
            )
    count = 1
    for w, st_, s in zip(win, step, size, strict=True):
        count *= math.ceil((s - w) / st_) + 1
    return win, step, count  # type: ignore[return-value]


class InputAttribution(Explainer):
    """What occlusion and integrated gradients share: no layer, maps at the clip's grid.

    ``layer``, ``classifier``, ``reshape``, ``interpolation`` and ``align`` are accepted
    (every explainer takes them; the model zoo passes its adapter's) and **ignored**: the
    attribution is on the clip's own voxels, so there is no layer to read, no tokens to
    reshape, nothing to upsample. The command line refuses ``--layer`` and
    ``--classifier`` with these methods.
    """

    needs_head = False
    input_space = True

    def __init__(
        self,
        model: nn.Module,
        layer: LayersSpec = None,
        classifier: LayerSpec = None,
        *,
        sign: str = "positive",
        batch_size: int | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        progress: Progress | None = None,
        categories: Sequence[str] | None = None,
        eval_mode: bool = True,
        inputs: Inputs | None = None,
        interpolation: str = "cubic",
        align: str = "corners",
        reshape: Reshape | None = None,
    ) -> None:
        del layer, classifier, reshape  # see the class docstring: no layer, no tokens
        super().__init__(
            model,
            None,
            None,
            relu=False,
            interpolation=interpolation,
            align=align,
            categories=categories,
            eval_mode=eval_mode,
            inputs=inputs,
        )
        if sign not in SIGNS:
            raise InputError(f"expected sign one of {', '.join(SIGNS)}, but got {sign!r}")
        check_batching(batch_size, max_bytes, progress)
        self.sign = sign
        self.batch_size = batch_size
        self.max_bytes = max_bytes
        self.progress = progress

    @property
    def layer_name(self) -> str:
        """Always ``"input"``: the attributions are on the clip's voxels."""
        return "input"

    def check_available(self) -> None:
        """Raise the one-line :class:`~saliency_tubes.InputError` that says how to install
        captum when it is missing (the commands ask before decoding the video)."""
        captum_attr(self.method)

    def _resolve(self, clip: torch.Tensor) -> tuple[list[Any], str, nn.Module | None]:
        del clip
        return [], "", None  # no layer to find, no head: nothing traced

    def __call__(
        self, clip: torch.Tensor, classes: ClassSpec = "top1", *, upsample: bool = True
    ) -> Tubes:
        """Explain ``clip`` (see :meth:`Explainer.__call__`); the maps are at the clip's
        (T, H, W) whatever ``upsample`` (there is no coarser grid)."""
        self.check_available()  # one error line before any forward when captum is missing
        tubes = super().__call__(clip, classes, upsample=upsample)
        return dataclasses.replace(tubes, layer="input", classifier="")

    def _per_clip_bytes(self, clip: torch.Tensor, extra: int = 0) -> int:
        one = clip[0].numel() * clip.element_size()
        return one * (1 + ACTIVATION_FACTOR) + extra

    def _counting(self, forward: Callable[[torch.Tensor], torch.Tensor], total: int) -> Any:
        """``forward`` telling :attr:`progress` of the clips it runs, out of ``total``."""
        done = [0]

        def counted(x: torch.Tensor) -> torch.Tensor:
            out = forward(x)
            done[0] += int(x.shape[0])
            if self.progress is not None:
                self.progress(min(done[0], total), total)
            return out

        return counted

    def _signed(self, attribution: torch.Tensor) -> torch.Tensor:
        """(..., C, T, H, W) attribution -> (..., T, H, W) raw map: summed over channels,
        then :attr:`sign` applied."""
        summed = attribution.sum(dim=-4)
        if self.sign == "positive":
            return summed.clamp_min(0)
        if self.sign == "absolute":
            return summed.abs()
        return summed


class Occlusion(InputAttribution):
    r"""Occlusion tube (Zeiler and Fergus 2014) through ``captum.attr.Occlusion``.

    A 3-D window of every colour channel (C, t, h, w) slides over the clip; each position
    replaces the clip's voxels under it by the baseline (0 of the normalised clip: the data
    set's mean colour, as Score-CAM's masked-out voxels) and the class score (the logit)
    drops by :math:`d_j = y^c(X) - y^c(X_{\setminus j})`. Each voxel's attribution is the
    mean of the drops of the windows that cover it (captum's), summed over the channels:

    .. math::
        M^c(x) = \sum_{\text{channels}} \frac{1}{|J(x)|} \sum_{j \in J(x)} d_j
               = C \cdot \mathrm{mean}_{j \ni x}\, d_j

    and the ``sign`` (``"positive"`` by default: where hiding the clip lowers the score;
    ``"absolute"``; ``"signed"``). Window and stride follow the clip
    (:func:`occlusion_windows`: a quarter of each axis and half of that by default, about
    7 positions per axis), so the map is piecewise constant on cells of the stride.

    Cost: with W windows (343 by default) one clip costs 2 + W forwards, no backward (the
    call's forward, captum's unoccluded forward, one per window), for one class or all of
    them: the forward function returns every explained class's logit, so one set of
    occluded clips gives every class's map. The occluded clips run in batches of
    ``batch_size`` windows, or as many as fit in ``max_bytes``; ``progress(done, total)``
    is called after each forward (clips, a batch of B clips counts B).

    Args:
        model: the video classifier.
        layer, classifier: accepted for a common call, ignored (see
            :class:`InputAttribution`).
        window: (t, h, w) of the occluding window, or one int for all three; None: a
            quarter of the clip per axis.
        stride: (t, h, w) steps of the window; None: half the window.
        baseline: the value an occluded voxel takes (in the normalised clip's units).
        sign: ``"positive"`` (default), ``"absolute"`` or ``"signed"`` (see :data:`SIGNS`).
        batch_size: windows per forward (each a batch of the N clips); None derives it
            from ``max_bytes``.
        max_bytes: bound on one batch's occluded clips, their activations and captum's
            per-window products, in bytes.
        progress: called as ``progress(done, total)`` after each forward.
        categories, eval_mode, inputs: see :class:`Explainer`.
    """

    method = "occlusion"

    def __init__(
        self,
        model: nn.Module,
        layer: LayersSpec = None,
        classifier: LayerSpec = None,
        *,
        window: int | Sequence[int] | None = None,
        stride: int | Sequence[int] | None = None,
        baseline: float = 0.0,
        sign: str = "positive",
        **options: Any,
    ) -> None:
        super().__init__(model, layer, classifier, sign=sign, **options)
        self.window = positive_triple(window, "window")
        self.stride = positive_triple(stride, "stride")
        self.baseline = _baseline(baseline)

    def forwards(self, size: Triple, classes: int) -> int:
        """``2 + W`` for W windows (see the class docstring), whatever ``classes``."""
        del classes
        return 2 + occlusion_windows(size, self.window, self.stride)[2]

    def _raw_maps(self, forward: ForwardPass) -> list[torch.Tensor]:
        attr = captum_attr(self.method)
        clip = forward.clip
        if clip is None:
            raise InputError("expected the clip in the forward pass for occlusion, but got none")
        n, c = clip.shape[:2]
        size = (clip.shape[2], clip.shape[3], clip.shape[4])
        win, step, count = occlusion_windows(size, self.window, self.stride)
        index = forward.classes  # (N, K)
        k = index.shape[1]
        if self.batch_size is not None:
            per_eval = self.batch_size
        else:
            # One window: the N occluded clips and their activations, and captum's product
            # of the K score drops with the window's mask (N K clips of floats).
            clip_bytes = clip[0].numel() * 4
            per_eval = self.max_bytes // max(1, n * self._per_clip_bytes(clip, k * clip_bytes))
        per_eval = max(1, min(per_eval, count))

        def scores(x: torch.Tensor) -> torch.Tensor:
            logits = logits_of(self._forward(x), x.shape[0]).float()
            return logits.gather(1, index.repeat(x.shape[0] // n, 1))  # (B, K)

        occlusion = attr.Occlusion(self._counting(scores, n * (1 + count)))
        with torch.no_grad():
            attribution = occlusion.attribute(
                clip,
                sliding_window_shapes=(c, *win),
                strides=(c, *step),
                baselines=self.baseline,
                target=None,  # every explained class at once: (N K, C, T, H, W)
                perturbations_per_eval=per_eval,
            )
        attribution = attribution.reshape(n, k, *clip.shape[1:])
        return [self._signed(attribution)]


class IntegratedGradients(InputAttribution):
    r"""Integrated-gradients tube (Sundararajan et al. 2017) through
    ``captum.attr.IntegratedGradients``.

    With :math:`X'` the baseline clip (zeros of the normalised clip, the data set's mean
    colour, by default) and :math:`y^c` the class's logit,

    .. math::
        \mathrm{IG}_i(X) = (X_i - X'_i) \int_0^1
            \frac{\partial y^c\big(X' + \alpha (X - X')\big)}{\partial X_i}\, d\alpha,
        \qquad M^c = \mathrm{sign}\Big(\sum_{\text{channels}} \mathrm{IG}\Big)

    the integral approximated by captum's ``integration`` rule with ``n_steps`` points
    (Gauss-Legendre by default, exact for a polynomial path of degree below 2 ``n_steps``;
    captum's ``riemann_trapezoid`` weighs its n points 1/n and the two ends half that, so
    its weights add up to 1 - 1/n, not 1). The attributions add up to :math:`y^c(X) - y^c(X')` up to
    that approximation (completeness). ``sign`` is ``"positive"`` by default (the evidence
    for the class, as every method's ``relu``; it localises the planted object a little
    better than the magnitude), or ``"absolute"`` (the magnitude, as captum's
    visualisations show it) / ``"signed"``.

    Cost: per clip and class ``n_steps`` forwards and as many backwards to the clip (plus
    the call's forward), in batches of ``batch_size`` path points or as many as fit in
    ``max_bytes``; ``progress(done, total)`` is told the forwards. Gradients are taken with
    respect to the clip only (no parameter gradient).

    Args:
        model: the video classifier.
        layer, classifier: accepted for a common call, ignored (see
            :class:`InputAttribution`).
        n_steps: points of the path integral (captum's default, 50; at least 2 for the
            Riemann rules).
        integration: captum's rule, one of :data:`INTEGRATIONS`.
        baseline: the baseline clip's value (a number, in the normalised clip's units).
        sign: ``"positive"`` (default), ``"absolute"`` or ``"signed"``.
        batch_size: path points per forward (captum's ``internal_batch_size``, in clips;
            at least the N clips of the call); None derives it from ``max_bytes``.
        max_bytes: bound on one batch's clips, activations and gradients, in bytes.
        progress: called as ``progress(done, total)`` after each forward.
        categories, eval_mode, inputs: see :class:`Explainer`.
    """

    method = "integrated-gradients"
    needs_gradients = True

    def __init__(
        self,
        model: nn.Module,
        layer: LayersSpec = None,
        classifier: LayerSpec = None,
        *,
        n_steps: int = 50,
        integration: str = "gausslegendre",
        baseline: float = 0.0,
        sign: str = "positive",
        **options: Any,
    ) -> None:
        super().__init__(model, layer, classifier, sign=sign, **options)
        if integration not in INTEGRATIONS:
            raise InputError(
                f"expected integration one of {', '.join(INTEGRATIONS)}, but got {integration!r}"
            )
        least = 1 if integration == "gausslegendre" else 2  # captum's Riemann rules need 2
        if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < least:
            raise InputError(
                f"expected n_steps to be an int >= {least} for {integration}, but got {n_steps!r}"
            )
        self.n_steps = n_steps
        self.integration = integration
        self.baseline = _baseline(baseline)

    def _scores(self, x: torch.Tensor) -> torch.Tensor:
        """The class scores of ``x``; one line when ``x`` asks for gradients and the scores
        carry none (nothing to integrate)."""
        out = logits_of(self._forward(x), x.shape[0])
        if x.requires_grad and not out.requires_grad:
            raise _no_gradients()
        return out

    def check_gradients(self, clip: torch.Tensor) -> None:
        """One forward of ``clip`` with gradients on, to raise the error of a model whose
        scores carry none before any video is read (``batch``); the model's mode is restored
        and its parameters are left as they were. A forward that fails on this clip (a model
        that takes only another clip size, e.g. with ``--windows``) proves nothing: the
        videos' own clips will tell, so nothing is raised for it."""
        x = clip.detach().clone().requires_grad_(True)
        with preserved_state(self.model, eval_mode=self.eval_mode), torch.enable_grad():
            try:
                out = logits_of(self._forward(x), x.shape[0])
            except Exception:  # noqa: BLE001 - only the missing gradients are this check's
                return
        if not out.requires_grad:
            raise _no_gradients()

    def forwards(self, size: Triple, classes: int) -> int:
        """``1 + classes * n_steps`` (each of the path's forwards has its backward)."""
        del size
        return 1 + classes * self.n_steps

    def _raw_maps(self, forward: ForwardPass) -> list[torch.Tensor]:
        attr = captum_attr(self.method)
        clip = forward.clip
        if clip is None:
            raise InputError(
                "expected the clip in the forward pass for integrated gradients, but got none"
            )
        n = clip.shape[0]
        index = forward.classes
        k = index.shape[1]
        if self.batch_size is not None:
            internal = self.batch_size
        else:
            # A path point: its clip, the activations kept for the backward, the clip's gradient.
            internal = self.max_bytes // self._per_clip_bytes(clip, clip[0].numel() * 4)
        # captum takes at least one path point of every sample per forward.
        internal = max(n, min(internal, n * self.n_steps))

        ig = attr.IntegratedGradients(self._counting(self._scores, k * n * self.n_steps))
        params = [(p, p.requires_grad) for p in self.model.parameters()]
        maps = []
        try:
            # Gradients to the clip only: the parameters need none (restored afterwards,
            # also by the caller's preserved_state).
            for p, _ in params:
                p.requires_grad_(False)
            with torch.enable_grad():
                for j in range(k):
                    attribution = ig.attribute(
                        clip.detach(),
                        baselines=self.baseline,
                        target=index[:, j].tolist(),
                        n_steps=self.n_steps,
                        method=self.integration,
                        internal_batch_size=internal,
                    )
                    maps.append(self._signed(attribution.detach()))
        finally:
            for p, flag in params:
                if p.requires_grad != flag:
                    p.requires_grad_(flag)
        return [torch.stack(maps, dim=1)]


def _no_gradients() -> InputError:
    """The one line for a model whose scores carry no gradients."""
    return InputError(
        "expected the model's scores to carry gradients for integrated gradients, but got "
        "scores with none (a function under torch.no_grad, or a model outside torch); use "
        "--method rise, lime, kernelshap or occlusion"
    )
