"""torchvision's Kinetics-400 video classifiers as model adapters.

Nine architectures of ``torchvision.models.video``, each with the layer its tube is read
from, its head, its preprocessing (from the weights' ``transforms()``), and the
Kinetics-400 class names of the weights' metadata (shipped inside torchvision, no
download). torchvision itself is imported only when one of them is built, through
:func:`~saliency_tubes.zoo.sources._torchvision.import_torchvision`.

Where the tube is read, and why:

* **r3d_18, mc3_18, r2plus1d_18** (Tran et al., "A Closer Look at Spatiotemporal
  Convolutions for Action Recognition", CVPR 2018): ``layer4`` feeds a global average pool
  and the linear ``fc``, so the class score is the CAM tube's space-time mean plus the bias
  and CAM is exact (it equals normalised Grad-CAM).
* **s3d** (Xie et al., "Rethinking Spatiotemporal Feature Learning", ECCV 2018):
  ``features`` feeds ``AvgPool3d((2, 7, 7), stride=1)``, a 1x1x1 conv (``classifier.1``)
  and a mean over what is left. Every step is linear, so the score is
  :math:`y_c = \\sum_x \\omega(x)\\,\\mathrm{CAM}_c(x) + b_c`, with :math:`\\omega(x)` the
  number of pooling windows that cover position :math:`x` divided by (windows x window
  size): :math:`\\sum_x \\omega(x) = 1`, but the first and last time steps (and, on clips
  larger than 224, the border rows and columns) weigh less than the others. The tube is
  the paper's formula and Grad-CAM's channel weights are still proportional to the class
  weights (:math:`\\overline{\\partial y_c / \\partial A_j} = W_{cj} / (T'H'W')`), so CAM
  still equals normalised Grad-CAM; but the score is an :math:`\\omega`-weighted mean of the
  tube, not its plain mean: ``cam_exact=False``.
* **mvit_v1_b, mvit_v2_s** (Fan et al., "Multiscale Vision Transformers", ICCV 2021; Li et
  al., "MViTv2", CVPR 2022): the head reads the class token alone, after the last block and
  the final norm. The spatial tokens that a block *outputs* at the end never reach the
  score (their gradient is exactly zero), nor do those of the last block's attention
  output; the last place where space-time tokens feed the score is the last block's
  attention, through its keys and values. So the tube is Grad-CAM (Selvaraju et al., ICCV
  2017) on ``blocks.15.norm1``, the normalised tokens that attention reads, reshaped from
  ``(N, 1 + T'H'W', C)`` to ``(N, C, T', H', W')`` with the class token dropped: the grid
  is the clip divided by the stride (2, 32, 32), 8x7x7 at 16x224x224. CAM does not apply
  (no pooled linear head over these tokens).
* **swin3d_t/s/b** (Liu et al., "Video Swin Transformer", CVPR 2022): the final ``norm``
  outputs channels-last ``(N, T', H', W', C)`` that a global average pool and the linear
  ``head`` read: CAM is exact after the :func:`~saliency_tubes.tokens.channels_last`
  reshape.

Weights: ``load_model(name, weights="kinetics400")`` (case-insensitive; also the enum
member or ``"R3D_18_Weights.KINETICS400_V1"``) downloads the official weights through
torchvision (cached in torch's hub folder); without internet that is a one-line
:class:`~saliency_tubes.errors.ModelLoadError` that says to pass a local checkpoint path.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import nn

from ...errors import ModelLoadError
from ...tokens import Reshape, TokenGrid, channels_last
from ...video import KINETICS_MEAN, KINETICS_STD
from ..checkpoints import build_with_weights, downloading, looks_like_path
from ..registry import ModelAdapter, Preset
from ._torchvision import import_torchvision

KINETICS400 = "kinetics400"
"""The short weights name accepted for every adapter here (case-insensitive)."""

# Normalisation of the torchvision Kinetics weights (pixels in [0, 1]), from each
# Weights entry's transforms(): video.KINETICS_MEAN/KINETICS_STD for most, these for the rest.
_MVIT_MEAN = (0.45, 0.45, 0.45)
_MVIT_STD = (0.225, 0.225, 0.225)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)

# Video ResNets: resize to 128x171 (short side 128 of a 4:3 frame), crop 112; trained and
# evaluated on 16-frame clips at 15 fps.
_RESNET_PRESET = Preset.centre_crop(16, 112, short_side=128, mean=KINETICS_MEAN, std=KINETICS_STD)
# S3D: trained on 64-frame clips (evaluated on 128) at 15 fps, resized to 256x256 then
# centre-cropped to 224. torchvision squashes the frame to a square before the crop; the
# preset keeps the aspect ratio (short side 256, then the centre crop) so that the tube maps
# back onto the source frame without distortion.
_S3D_PRESET = Preset.centre_crop(64, 224, short_side=256, mean=KINETICS_MEAN, std=KINETICS_STD)
# MViT: 16 frames (sampled at 7.5 fps), short side 256, crop 224. Its positional
# embeddings fix the input at exactly 16x224x224.
_MVIT_PRESET = Preset.centre_crop(16, 224, short_side=256, mean=_MVIT_MEAN, std=_MVIT_STD)
# Video Swin: 32 frames (sampled at 15 fps), short side 256, crop 224, ImageNet statistics.
_SWIN_PRESET = Preset.centre_crop(32, 224, short_side=256, mean=_IMAGENET_MEAN, std=_IMAGENET_STD)

MVIT_TOKENS = TokenGrid(stride=(2, 32, 32), prefix=1)
"""MViT's last-stage tokens: patch embedding stride (2, 4, 4) times three 2x spatial
query poolings; one class token first."""


@dataclass(frozen=True)
class _Spec:
    """One torchvision video architecture and how it is explained."""

    name: str
    weights_enum: str
    layer: str
    classifier: str
    preset: Preset
    description: str
    reshape: Reshape | None = None
    default_method: str = "cam"
    cam_exact: bool = True


SPECS: tuple[_Spec, ...] = (
    _Spec(
        "r3d_18",
        "R3D_18_Weights",
        "layer4",
        "fc",
        _RESNET_PRESET,
        "torchvision R3D-18 (Tran et al. 2018), Kinetics-400 classes; --weights kinetics400 or a path",
    ),
    _Spec(
        "mc3_18",
        "MC3_18_Weights",
        "layer4",
        "fc",
        _RESNET_PRESET,
        "torchvision MC3-18, mixed 3D/2D convolutions (Tran et al. 2018), Kinetics-400 classes",
    ),
    _Spec(
        "r2plus1d_18",
        "R2Plus1D_18_Weights",
        "layer4",
        "fc",
        _RESNET_PRESET,
        "torchvision R(2+1)D-18 (Tran et al. 2018), Kinetics-400 classes",
    ),
    _Spec(
        "s3d",
        "S3D_Weights",
        "features",
        "classifier.1",
        _S3D_PRESET,
        "torchvision S3D (Xie et al. 2018); local pool + 1x1x1 conv head: CAM weights edge steps less",
        cam_exact=False,
    ),
    _Spec(
        "mvit_v1_b",
        "MViT_V1_B_Weights",
        "blocks.15.norm1",
        "head.1",
        _MVIT_PRESET,
        "torchvision MViT-B (Fan et al. 2021); class-token head: Grad-CAM on the last attention's tokens",
        reshape=MVIT_TOKENS,
        default_method="gradcam",
        cam_exact=False,
    ),
    _Spec(
        "mvit_v2_s",
        "MViT_V2_S_Weights",
        "blocks.15.norm1",
        "head.1",
        _MVIT_PRESET,
        "torchvision MViTv2-S (Li et al. 2022); class-token head: Grad-CAM on the last attention's tokens",
        reshape=MVIT_TOKENS,
        default_method="gradcam",
        cam_exact=False,
    ),
    _Spec(
        "swin3d_t",
        "Swin3D_T_Weights",
        "norm",
        "head",
        _SWIN_PRESET,
        "torchvision Video Swin-T (Liu et al. 2022), Kinetics-400 classes",
        reshape=channels_last,
    ),
    _Spec(
        "swin3d_s",
        "Swin3D_S_Weights",
        "norm",
        "head",
        _SWIN_PRESET,
        "torchvision Video Swin-S (Liu et al. 2022), Kinetics-400 classes",
        reshape=channels_last,
    ),
    _Spec(
        "swin3d_b",
        "Swin3D_B_Weights",
        "norm",
        "head",
        _SWIN_PRESET,
        "torchvision Video Swin-B (Liu et al. 2022), Kinetics-400 classes",
        reshape=channels_last,
    ),
)


def _video_module() -> Any:
    import_torchvision()
    return importlib.import_module("torchvision.models.video")


def _weights_enum(spec: _Spec) -> Any:
    return getattr(_video_module(), spec.weights_enum)


def kinetics400_categories(name: str = "r3d_18") -> tuple[str, ...]:
    """The Kinetics-400 class names of a torchvision video model's default weights.

    Read from ``Weights.meta["categories"]``, which ships inside torchvision: no download.
    """
    return tuple(_weights_enum(_spec(name)).DEFAULT.meta["categories"])


def _spec(name: str) -> _Spec:
    for spec in SPECS:
        if spec.name == name:
            return spec
    known = ", ".join(s.name for s in SPECS)
    raise ModelLoadError(f"expected a torchvision video model ({known}), but got {name!r}")


def resolve_weights(spec: _Spec, text: str) -> str | None:
    """The canonical ``Enum.MEMBER`` name for a weights name, or None if ``text`` is no name.

    Accepted (case-insensitive): ``"kinetics400"``, ``"default"``, a member name
    (``"KINETICS400_V1"``) or the full enum name (``"R3D_18_Weights.KINETICS400_V1"``).
    Anything that looks like a file (a path separator or a checkpoint suffix) is left to
    the checkpoint loader.
    """
    if looks_like_path(text, _CHECKPOINT_SUFFIXES):
        return None
    enum = _weights_enum(spec)
    key = text.strip().upper()
    prefix, dot, member = key.rpartition(".")
    if dot:
        if prefix != spec.weights_enum.upper():
            raise ModelLoadError(
                f"expected weights of {spec.name} ({spec.weights_enum}.<name>), but got {text!r}; "
                f"known: {', '.join(_member_names(enum))}"
            )
        key = member
    if key in (KINETICS400.upper(), "DEFAULT"):
        return f"{spec.weights_enum}.{enum.DEFAULT.name}"
    for known in _member_names(enum):
        if key == known.upper():
            return f"{spec.weights_enum}.{known}"
    if dot:
        raise ModelLoadError(
            f"unknown weights {text!r} for {spec.name}; known: {', '.join(_member_names(enum))} "
            f"or {KINETICS400!r}"
        )
    return None


_CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".safetensors")


def _member_names(enum: Any) -> list[str]:
    return [m.name for m in enum]


def _download_state_dict(weights: Any) -> dict[str, torch.Tensor]:
    """The state dict of a torchvision ``Weights`` entry (downloaded once, then cached).

    torchvision fetches it through ``torch.hub`` into ``$TORCH_HOME/hub/checkpoints`` and
    checks its hash; ``torch.load`` there is weights-only.
    """
    with downloading(f"the {weights!r}"):
        state = weights.get_state_dict(progress=True, check_hash=True)
    return dict(state)


def build(
    name: str,
    *,
    pretrained: bool = False,
    num_classes: int | None = None,
    weights: str | None = None,
) -> nn.Module:
    """Build a torchvision video classifier, with the named weights when given.

    This is every adapter's builder here (:attr:`ModelAdapter.builder`); ``pretrained`` is
    unused, as nothing is downloaded unless ``weights`` names it.

    Args:
        name: the torchvision builder's name (``"r3d_18"`` ... ``"swin3d_b"``).
        num_classes: the head's size: 400 by default, and the weights' 400 with ``weights``.
        weights: a canonical name from :func:`resolve_weights` (``"R3D_18_Weights.KINETICS400_V1"``).

    Returns:
        The model, with ``model.categories`` set to the Kinetics-400 names when its head has
        400 outputs (the explainers and the CLI pick them up).
    """
    del pretrained
    spec = _spec(name)
    video = _video_module()
    enum = getattr(video, spec.weights_enum)
    factory = getattr(video, spec.name)
    entry = None if weights is None else enum[weights.rpartition(".")[2]]
    classes = 400 if entry is None else len(entry.meta["categories"])
    return build_with_weights(
        lambda n: factory(weights=None, num_classes=classes if n is None else n),
        num_classes=num_classes,
        weights=None if entry is None else repr(entry),
        weights_classes=classes,
        load=lambda model: model.load_state_dict(_download_state_dict(entry)),
        categories=lambda: tuple(enum.DEFAULT.meta["categories"]),
    )


def adapters() -> list[ModelAdapter]:
    """One :class:`ModelAdapter` per torchvision video architecture (nothing imported yet)."""
    return [
        ModelAdapter(
            name=spec.name,
            builder=partial(build, spec.name),
            layer=spec.layer,
            classifier=spec.classifier,
            preset=spec.preset,
            num_classes=400,
            description=spec.description,
            reshape=spec.reshape,
            default_method=spec.default_method,
            cam_exact=spec.cam_exact,
            weight_names=partial(resolve_weights, spec),
        )
        for spec in SPECS
    ]
