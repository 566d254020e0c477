"""Model adapters by name: the embedded default and the architectures of the paper."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

from torch import nn

from .checkpoints import load_weights, read_categories, read_state_dict
from .loading import WEIGHTS_SOURCES, LoadedModel, load_model
from .nets import tiny, tiny_mvit, tiny_vit
from .nets.densenet3d import DenseNet3D, densenet3d
from .nets.resnet3d import ResNet3D, resnet3d
from .registry import ModelAdapter, Preset, available_models, get_adapter, register, register_prefix
from .sources import hf_adapters, pytorchvideo, torchvision
from .sources._torchvision import import_torchvision

DEFAULT_MODEL = "tiny-actions"


def _shipped(
    name: str,
    builder: Callable[..., nn.Module],
    spec: dict[str, Any],
    *,
    description: str,
    weights: str,
    caveat: str,
) -> ModelAdapter:
    """The adapter of a model this project trained and ships, from its ``PRESET`` table
    (layer, head, frames, size, mean, std, categories: see :mod:`.nets.tiny`)."""
    categories = tuple(spec["categories"])
    return ModelAdapter(
        name=name,
        builder=builder,
        layer=str(spec["layer"]),
        classifier=str(spec["classifier"]),
        preset=Preset(
            frames=int(spec["frames"]),
            size=(int(spec["size"][0]), int(spec["size"][1])),
            resize="full",
            mean=(float(spec["mean"][0]), float(spec["mean"][1]), float(spec["mean"][2])),
            std=(float(spec["std"][0]), float(spec["std"][1]), float(spec["std"][2])),
        ),
        categories=categories,
        num_classes=len(categories),
        description=description,
        default_weights=weights,
        caveat=caveat,
    )


register(
    _shipped(
        DEFAULT_MODEL,
        tiny.tiny_action_net,
        tiny.PRESET,
        description="small 3D CNN trained here on the synthetic motion data set (ships with the package)",
        weights="tiny_actions.safetensors (shipped)",
        caveat="knows only 8 synthetic motion classes",
    )
)
_COLOURS_CAVEAT = (
    "knows only the 6 synthetic colour classes (red, yellow, green, cyan, blue, magenta)"
)
"""What the three colour models (CNN, ViT, MViT) say of themselves in every caption."""

# The colour CNN (synthetic_colours' 6 hues), shipped, at the colour clips' 16 x 64 x 64.
register(
    _shipped(
        "tiny-colours",
        tiny_vit.tiny_colours,
        tiny.COLOUR_PRESET,
        description="small 3D CNN trained here on the synthetic colour clips (ships with the package)",
        weights="tiny_colours.safetensors (shipped)",
        caveat=_COLOURS_CAVEAT,
    )
)
# The colour transformer (tiny_vit.TinyVideoViT, a class token read by the head), shipped,
# explained by relevancy; Grad-CAM reads the tokens of the block before the last (the last
# block's patch tokens never reach the class token).
register(
    replace(
        _shipped(
            "tiny-colours-vit",
            tiny_vit.tiny_colours_vit,
            tiny.COLOUR_PRESET | {"layer": tiny_vit.GRADCAM_LAYER, "classifier": "fc"},
            description="small video transformer trained here on the synthetic colour clips "
            "(ships with the package)",
            weights="tiny_colours_vit.safetensors (shipped)",
            caveat=_COLOURS_CAVEAT,
        ),
        reshape=tiny_vit.embed_grid(1, tiny_vit.SHIPPED["tubelet"]),  # type: ignore[arg-type]
        default_method="relevancy",
        cam_exact=False,
    )
)

# The colour MViT (torchvision's MViT class, MViTv2 form, pooling attention), shipped;
# Grad-CAM reads the first block's normed patch tokens (tiny_mvit.GRADCAM_LAYER: measured).
register(
    replace(
        _shipped(
            "tiny-colours-mvit",
            tiny_mvit.tiny_colours_mvit,
            tiny.COLOUR_PRESET | {"layer": tiny_mvit.GRADCAM_LAYER, "classifier": "head.1"},
            description="small MViT (torchvision's MViT class, pooling attention) trained here "
            "on the synthetic colour clips (ships with the package; needs torchvision)",
            weights="tiny_colours_mvit.safetensors (shipped)",
            caveat=_COLOURS_CAVEAT,
        ),
        reshape=tiny_mvit.GRADCAM_TOKENS,
        default_method="gradcam",
        cam_exact=False,
    )
)


def _hara(
    family: Callable[..., nn.Module],
    depth: int,
    *,
    pretrained: bool = False,
    num_classes: int = 400,
) -> nn.Module:
    del pretrained  # no released weights can be downloaded here: pass --weights PATH
    return family(depth, num_classes=num_classes)


# Kinetics statistics of the 3D-ResNets-PyTorch family (pixels in [0, 1]).
_HARA_PRESET = Preset(
    frames=16,
    size=(112, 112),
    resize="short_side",
    mean=(0.4345, 0.4051, 0.3775),
    std=(0.2768, 0.2713, 0.2737),
)
# (name prefix, title, builder, depths, layer, head). DenseNet's relu5 (after features.norm5) is what the
# global pool averages: the CAM is exact there.
_HARA_FAMILIES = (
    ("resnet3d", "3D-ResNet", resnet3d, (18, 34, 50, 101, 152), "layer4", "fc"),
    ("densenet3d", "3D-DenseNet", densenet3d, (121, 169, 201, 264), "relu5", "classifier"),
)
for _prefix, _title, _family, _depths, _layer, _head in _HARA_FAMILIES:
    for _depth in _depths:
        register(
            ModelAdapter(
                name=f"{_prefix}-{_depth}",
                builder=partial(_hara, _family, _depth),
                layer=_layer,
                classifier=_head,
                preset=_HARA_PRESET,
                num_classes=400,
                description=f"{_title}-{_depth} (Hara et al. 2018 layout; load its checkpoints with --weights)",
            )
        )

# torchvision's video classifiers: torchvision is imported only when one is built.
for _adapter in torchvision.adapters():
    register(_adapter)

# pytorchvideo's model zoo (the optional pytorchvideo extra): listed always, imported only
# when one is built; without the extra, building one says how to install it.
for _adapter in pytorchvideo.adapters():
    register(_adapter)

# Hugging Face video transformers (the optional transformers extra): listed always, imported
# only when one is built; any save_pretrained folder of them is --model hf:DIR.
register_prefix("hf:", hf_adapters.prefixed_adapter)
for _adapter in hf_adapters.adapters():
    register(_adapter)

__all__ = [
    "DEFAULT_MODEL",
    "WEIGHTS_SOURCES",
    "DenseNet3D",
    "LoadedModel",
    "ModelAdapter",
    "Preset",
    "ResNet3D",
    "available_models",
    "densenet3d",
    "get_adapter",
    "import_torchvision",
    "load_model",
    "load_weights",
    "read_categories",
    "read_state_dict",
    "register",
    "resnet3d",
]
