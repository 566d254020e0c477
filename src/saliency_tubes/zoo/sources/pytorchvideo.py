"""pytorchvideo's Kinetics-400 models as model adapters (the optional ``pytorchvideo`` extra).

Eleven architectures of pytorchvideo's model zoo, built by its own hub builders
(``pytorchvideo.models.hub``) with the head's activation switched off: pytorchvideo's
X3D and R(2+1)D heads end in a softmax by default, and the explainers need the class
*logits*. pytorchvideo (and torchvision, which it imports) are imported only when one of
these models is built; without the extra the adapters are still listed and building one
says how to install it. Install: ``pip install 'saliency-tubes[pytorchvideo]'``.

pytorchvideo 0.1.5 (its last release) and torchvision 0.28: the model builders import
and work; ``pytorchvideo.transforms`` does not (it imports
``torchvision.transforms.functional_tensor``, removed from torchvision), so nothing here
uses it: the presets below do the preprocessing. On this project's CPU torch,
torchvision itself needs :func:`~saliency_tubes.zoo.sources._torchvision.import_torchvision`
(pytorchvideo's ``models.head`` imports ``torchvision.ops``).

Where the tube is read, and why (A: the target layer's activation, (N, C, T', H', W')):

* **X3D-XS/S/M/L** (Feichtenhofer, "X3D: Expanding Architectures for Efficient Video
  Recognition", CVPR 2020): the head pools *before* it projects. ``blocks.5.pool`` is
  pre_conv -> pre_norm -> pre_act -> AvgPool3d -> post_conv (1x1x1, no bias) -> post_act
  (ReLU), then ``blocks.5.proj`` (linear). The tube is read at ``blocks.5.pool.pre_act``,
  the activation that is pooled. With :math:`p = \\overline{A}` the space-time mean and
  :math:`m = \\mathbb{1}[W_{post}\\,p > 0]` the ReLU's pattern at this clip, the score is
  :math:`y_c = W_{proj}[c]\\,\\mathrm{diag}(m)\\,W_{post}\\,p + b_c`, linear in
  :math:`p` on the piece that holds it. CAM (``pooled_head``) uses exactly these
  effective weights :math:`w_c = W_{proj}[c]\\,\\mathrm{diag}(m)\\,W_{post}`, so
  :math:`y_c = \\overline{\\sum_j w_{cj} A_j} + b_c`: exact.
* **SlowFast-R50** (Feichtenhofer, Fan, Malik and He, "SlowFast Networks for Video
  Recognition", ICCV 2019): two pathways. The clip is packed into ``[slow, fast]``
  (:class:`PackPathways`, slow = T/alpha frames, alpha = 4); the tube is read at both
  last stages (``blocks.4.multipathway_blocks.0`` and ``.1``); the head pools each
  pathway, concatenates [slow, fast] and projects with one linear layer, so the class
  weights split by channel: :math:`y_c = \\overline{W_c^{slow} A^{slow}} +
  \\overline{W_c^{fast} A^{fast}} + b_c`. The explainer gives a tube per pathway
  (``tubes.pathways``) and the fused tube on the clip's grid (``tubes.maps``).
* **Slow-R50, I3D-R50, C2D-R50** (SlowFast paper; Carreira and Zisserman, CVPR 2017;
  Wang et al., "Non-local Neural Networks", CVPR 2018), **R(2+1)D-R50** (Tran et al.,
  CVPR 2018) and **ir-CSN-101** (Tran, Wang, Torresani and Feiszli, "Video Classification
  with Channel-Separated Convolutional Networks", ICCV 2019): the last stage ``blocks.4``
  feeds ``ResNetBasicHead``: AvgPool3d, then ``proj``, a linear layer applied to the
  channels-last features, then a global mean. Linear after the pool: CAM is exact.
* **MViT-B 16x4** (Fan et al., "Multiscale Vision Transformers", ICCV 2021): the head
  reads the class token alone. The patch tokens reach it only through the last block's
  attention, so the tube is Grad-CAM (Selvaraju et al., ICCV 2017) on
  ``blocks.15.norm1`` (the tokens that attention reads), reshaped from
  ``(N, 1 + T'H'W', C)`` to a (T', H', W') = (T/2, H/32, W/32) grid with the class token
  dropped. CAM does not apply.

Exactness and input size. The pytorchvideo heads pool with a *fixed* AvgPool3d kernel
(stride 1) set for the training clip, then average what is left. Every preset below is
that training size, where the kernel covers the layer's whole grid (e.g. (8, 7, 7) for
Slow-R50 at 8x224x224, (4, 5, 5) for X3D-XS at 4x160x160) and the pool is the global mean
the formulas above assume. On a larger clip the pool slides: the score becomes a mean of
overlapping window averages (border positions weigh less) and, for X3D, of the head
applied per window, so CAM is the paper's formula but no longer the exact decomposition.
A clip smaller than the kernel does not run at all; SlowFast runs only at 32 frames
(the two pathways' pooled grids must match); MViT's positional embeddings fix its input
at 16x224x224.

Presets. Frames x sampling rate from pytorchvideo's model zoo table (X3D-L from the X3D
paper); crop = the training crop (the pool's coverage), after resizing the short side to
the test scale of the PySlowFast configurations the models were trained with; mean 0.45
and std 0.225 per channel. ``sampling_rate`` (source frames between clip frames, at 30
fps) is kept in ``adapter.extra``: the commands sample the clip uniformly over the video.

Class names: Kinetics-400, in the alphabetical order that the PySlowFast/pytorchvideo
checkpoints use, taken from torchvision's weights metadata (shipped in torchvision).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import torch
from torch import nn

from ...errors import InputError, ModelLoadError, first_line
from ...hooks import resolve_module
from ...tokens import TokenGrid
from ..checkpoints import build_with_weights, downloading, load_weights, looks_like_path
from ..registry import ModelAdapter, Preset
from ._torchvision import import_torchvision

EXTRA = "pytorchvideo"
"""The name of the optional dependency group that installs pytorchvideo."""
INSTALL = "pip install 'saliency-tubes[pytorchvideo]'"
KINETICS400 = "kinetics400"
"""The weights name accepted by every adapter here (case-insensitive; also "default")."""

_MEAN = (0.45, 0.45, 0.45)
_STD = (0.225, 0.225, 0.225)
_CHECKPOINT_SUFFIXES = (".pyth", ".pth", ".pt", ".ckpt", ".bin", ".safetensors")

Kind = Literal["x3d", "resnet", "slowfast", "mvit"]


@dataclass(frozen=True)
class _Spec:
    """One pytorchvideo architecture: its hub builder, its preset and where it is explained."""

    name: str
    hub_module: str
    kind: Kind
    frames: int
    sampling_rate: int
    crop: int
    short_side: int
    description: str
    layer: str | tuple[str, ...] = "blocks.4"
    classifier: str = "blocks.5.proj"
    note: str = ""

    @property
    def preset(self) -> Preset:
        """The training recipe's clip: frames, short-side resize, centre crop, statistics."""
        return Preset.centre_crop(
            self.frames, self.crop, short_side=self.short_side, mean=_MEAN, std=_STD
        )


_X3D_LAYER = "blocks.5.pool.pre_act"
# I3D and C2D pool in time after res2 (blocks.2): their last stage is blocks.5.
_POOL1 = {"layer": "blocks.5", "classifier": "blocks.6.proj"}

SPECS: tuple[_Spec, ...] = (
    _Spec("x3d_xs", "x3d", "x3d", 4, 12, 160, 182, "X3D-XS (Feichtenhofer 2020)", _X3D_LAYER),
    _Spec("x3d_s", "x3d", "x3d", 13, 6, 160, 182, "X3D-S (Feichtenhofer 2020)", _X3D_LAYER),
    _Spec("x3d_m", "x3d", "x3d", 16, 5, 224, 256, "X3D-M (Feichtenhofer 2020)", _X3D_LAYER),
    _Spec("x3d_l", "x3d", "x3d", 16, 5, 312, 356, "X3D-L (Feichtenhofer 2020)", _X3D_LAYER),
    _Spec("slow_r50", "resnet", "resnet", 8, 8, 224, 256, "Slow-R50 (Feichtenhofer 2019)"),
    _Spec(
        "slowfast_r50",
        "slowfast",
        "slowfast",
        32,
        2,
        224,
        256,
        "SlowFast-R50 (Feichtenhofer 2019)",
        layer=("blocks.4.multipathway_blocks.0", "blocks.4.multipathway_blocks.1"),
        classifier="blocks.6.proj",
        note="slow pathway T/4 frames: a tube per pathway and the fused tube",
    ),
    _Spec("i3d_r50", "resnet", "resnet", 8, 8, 224, 256, "I3D-R50 (Carreira 2017)", **_POOL1),
    _Spec("r2plus1d_r50", "r2plus1d", "resnet", 16, 4, 224, 256, "R(2+1)D-R50 (Tran 2018)"),
    _Spec("csn_r101", "csn", "resnet", 32, 2, 224, 256, "ir-CSN-101 (Tran 2019)"),
    _Spec("c2d_r50", "resnet", "resnet", 8, 8, 224, 256, "C2D-R50 (Wang 2018)", **_POOL1),
    _Spec(
        "mvit_base_16x4",
        "vision_transformers",
        "mvit",
        16,
        4,
        224,
        224,
        "MViT-B (Fan 2021)",
        layer="blocks.15.norm1",
        classifier="head.proj",
        note="class-token head: Grad-CAM on the last attention's tokens",
    ),
)

SLOWFAST_ALPHA = 4
"""Frame-rate ratio of SlowFast-R50's pathways (the fast one sees 4x the slow one's frames)."""

MVIT_TOKENS = TokenGrid(stride=(2, 32, 32), prefix=1)
"""MViT-B's last-stage tokens: patch stride (2, 4, 4) times three 2x spatial query
poolings (blocks 1, 3 and 14); one class token first."""


def available() -> bool:
    """Whether pytorchvideo is installed (checked without importing it)."""
    return importlib.util.find_spec("pytorchvideo") is not None


def import_hub(module: str | None = None) -> ModuleType:
    """Import ``pytorchvideo.models.hub`` (or one of its modules), torchvision first.

    Raises:
        ModelLoadError: pytorchvideo is not installed, or its import fails (one line that
            says why and how to install it).
    """
    if not available():
        raise ModelLoadError(
            f"this model needs the optional pytorchvideo package, which is not installed; "
            f"install it with: {INSTALL}"
        )
    import_torchvision()
    name = "pytorchvideo.models.hub" + (f".{module}" if module else "")
    try:
        return importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001 - any import failure becomes one clear line
        reason = first_line(exc)
        raise ModelLoadError(
            f"importing {name} failed ({reason}); expected pytorchvideo 0.1.5 with a torchvision "
            f"that matches your torch: reinstall with {INSTALL}"
        ) from None


@dataclass(frozen=True)
class PackPathways:
    """Pack an (N, C, T, H, W) clip into SlowFast's ``[slow, fast]`` input.

    ``fast`` is the clip; ``slow`` is T // alpha frames at ``linspace(0, T - 1, T // alpha)``
    (rounded down), as PySlowFast and pytorchvideo's tutorial pack them: the first and the
    last frame are both kept, so the slow frames sit exactly where the corner-aligned
    upsampling of the slow tube to the fast grid puts them.
    """

    alpha: int = SLOWFAST_ALPHA

    def __call__(self, clip: torch.Tensor) -> list[torch.Tensor]:
        t = clip.shape[2]
        if t < self.alpha:
            raise InputError(
                f"expected a clip of at least {self.alpha} frames for SlowFast's slow pathway "
                f"(alpha={self.alpha}), but got {t}; pass more frames (the preset is 32)"
            )
        index = torch.linspace(0, t - 1, t // self.alpha, device=clip.device).long()
        return [clip.index_select(2, index), clip]


class X3DPooledHead:
    r"""X3D's head after the pool, on pooled (N, C) features: the map CAM differentiates.

    .. math::
        y = W_{proj}\,\mathrm{act}\big(\mathrm{norm}(W_{post}\,p)\big) + b

    (``post_norm`` only when the model was built with ``head_bn_lin5_on``; the dropout
    between them is off in eval mode, where the explainers run). Piecewise linear in
    :math:`p`, so its Jacobian at the clip's pooled features is CAM's exact weight.
    """

    def __init__(self, model: nn.Module) -> None:
        _, head = resolve_module(model, "blocks.5", "classifier")
        pool = getattr(head, "pool", None)
        if not all(hasattr(pool, a) for a in ("post_conv", "post_act")) or not isinstance(
            getattr(head, "proj", None), nn.Linear
        ):
            raise ModelLoadError(
                "expected an X3D model (blocks.5 = ResNetBasicHead with a ProjectedPool and a "
                f"linear proj), but got {type(head).__name__}; build it with pytorchvideo's create_x3d"
            )
        self.pool = pool
        self.proj: nn.Linear = head.proj  # type: ignore[assignment]
        self.activation: nn.Module | None = head.activation  # type: ignore[assignment]

    def __call__(self, pooled: torch.Tensor) -> torch.Tensor:
        pool = self.pool
        x = pool.post_conv(pooled[:, :, None, None, None])  # type: ignore[union-attr]
        if pool.post_norm is not None:  # type: ignore[union-attr]
            x = pool.post_norm(x)  # type: ignore[union-attr]
        if pool.post_act is not None:  # type: ignore[union-attr]
            x = pool.post_act(x)  # type: ignore[union-attr]
        scores: torch.Tensor = self.proj(x.flatten(1))
        if self.activation is not None:
            scores = self.activation(scores)
        return scores


def x3d_pooled_head(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The ``pooled_head`` factory of the X3D adapters (see :class:`X3DPooledHead`)."""
    return X3DPooledHead(model)


def _spec(name: str) -> _Spec:
    for spec in SPECS:
        if spec.name == name:
            return spec
    known = ", ".join(s.name for s in SPECS)
    raise ModelLoadError(f"expected a pytorchvideo model ({known}), but got {name!r}")


def resolve_weights(text: str) -> str | None:
    """``"kinetics400"`` for a weights *name* (``kinetics400``/``default``), else None (a path)."""
    if looks_like_path(text, _CHECKPOINT_SUFFIXES):
        return None
    return KINETICS400 if text.strip().lower() in (KINETICS400, "default") else None


def checkpoint_url(name: str) -> str:
    """The address of a model's Kinetics-400 checkpoint, from pytorchvideo's hub module."""
    spec = _spec(name)
    paths: dict[str, str] = import_hub(spec.hub_module).checkpoint_paths
    return paths[spec.name]


def _fetch_checkpoint(name: str) -> Path:
    """Download a checkpoint once into torch's hub folder; the cached file on later calls."""
    url = checkpoint_url(name)
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    path = folder / url.rsplit("/", 1)[-1]
    if not path.is_file():
        with downloading(f"the {name} Kinetics-400"):
            folder.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(url, str(path), progress=True)
    return path


def kinetics400_categories() -> tuple[str, ...]:
    """The 400 Kinetics class names (alphabetical), from torchvision's weights metadata."""
    from . import torchvision as torchvision_models

    return torchvision_models.kinetics400_categories()


def build(
    name: str,
    *,
    pretrained: bool = False,
    num_classes: int | None = None,
    weights: str | None = None,
    **overrides: Any,
) -> nn.Module:
    """Build a pytorchvideo model by its hub name, with the head's activation off.

    The builder of every adapter here (see :attr:`ModelAdapter.builder`); ``pretrained``
    is unused: weights are downloaded only when named.

    Args:
        name: the hub builder's name (``"x3d_xs"`` ... ``"mvit_base_16x4"``).
        num_classes: the head's size (400 by default; must be 400 with named weights).
        weights: ``"kinetics400"`` downloads pytorchvideo's checkpoint (once, into torch's
            hub folder) and loads it weights-only.
        **overrides: passed to pytorchvideo's builder (e.g. ``stem_dim_out`` for a narrower
            network); named weights need the defaults.

    Returns:
        The model (logits out), with ``model.categories`` set to the Kinetics-400 names when
        its head has 400 outputs.
    """
    del pretrained
    spec = _spec(name)
    factory = getattr(import_hub(spec.hub_module), spec.name)

    def make(classes: int | None) -> nn.Module:
        kwargs: dict[str, Any] = {"head_activation": None, **overrides}
        if classes is not None:
            kwargs["head_num_classes" if spec.kind == "mvit" else "model_num_class"] = classes
        model: nn.Module = factory(pretrained=False, **kwargs)
        return model

    return build_with_weights(
        make,
        num_classes=num_classes,
        weights=None if weights is None else f"{name} Kinetics-400",
        weights_classes=400,
        load=lambda model: load_weights(model, _fetch_checkpoint(name)),
        categories=kinetics400_categories,
    )


def adapters() -> list[ModelAdapter]:
    """One :class:`ModelAdapter` per pytorchvideo architecture (nothing imported yet).

    Without pytorchvideo the adapters are still returned (so that ``saliency-tubes models``
    lists them), with the install hint in their description; building one raises
    :class:`~saliency_tubes.errors.ModelLoadError` with that hint.
    """
    missing = "" if available() else f" [needs the {EXTRA} extra: {INSTALL}]"
    out = []
    for spec in SPECS:
        out.append(
            ModelAdapter(
                name=spec.name,
                builder=partial(build, spec.name),
                layer=spec.layer,
                classifier=spec.classifier,
                preset=spec.preset,
                num_classes=400,
                description=(
                    f"pytorchvideo {spec.description}, {spec.frames}x{spec.sampling_rate}, "
                    f"Kinetics-400 classes{'; ' + spec.note if spec.note else ''}{missing}"
                ),
                extra={"requires": EXTRA, "sampling_rate": spec.sampling_rate},
                reshape=MVIT_TOKENS if spec.kind == "mvit" else None,
                inputs=PackPathways(SLOWFAST_ALPHA) if spec.kind == "slowfast" else None,
                pooled_head=x3d_pooled_head if spec.kind == "x3d" else None,
                default_method="gradcam" if spec.kind == "mvit" else "cam",
                cam_exact=spec.kind != "mvit",
                weight_names=resolve_weights,
            )
        )
    return out
