"""Hugging Face video transformers (the optional ``transformers`` extra): their families, token
layouts, presets and builders; the adapters made from them are in :mod:`.hf_adapters`.

Three families of ``transformers``: ``VideoMAEForVideoClassification`` (Tong et al.,
"VideoMAE", NeurIPS 2022), ``TimesformerForVideoClassification`` (Bertasius, Wang and
Torresani, "Is Space-Time Attention All You Need for Video Understanding?", ICML 2021) and
``VivitForVideoClassification`` (Arnab et al., "ViViT: A Video Vision Transformer", ICCV
2021). Each is registered at its base size (``videomae-base``, ``timesformer-base``,
``vivit-b``), built offline from its config class (random weights), and ``--model hf:DIR``
takes any folder written by ``save_pretrained`` whose ``config.json`` is one of them; a
registered name also takes such a folder as ``--weights DIR`` (its config then decides the
sizes). Nothing is ever fetched from a hub: ``from_pretrained`` only reads a local folder.
transformers is imported only when a model is built.

What the adapters give the explainers (read from the config, see :class:`Layout`):

* the input: the models take ``pixel_values`` of shape (N, T, C, H, W), so ``inputs``
  permutes the project's (N, C, T, H, W) clip (:class:`PixelValues`, which also refuses a
  clip of another size than the config's); the output's ``.logits`` are the scores;
* the token grid: VideoMAE and ViViT embed tubelets with a ``Conv3d`` whose output is
  flattened in (t, h, w) order, (T/tubelet, H/patch, W/patch); ViViT puts a class token
  first, VideoMAE has none. TimeSformer embeds each frame with 16x16 patches and, for its
  divided space-time attention, lays the tokens out patch-major: token ``1 + (h W' + w)
  T + t`` is patch (h, w) of frame t (``TimesformerEmbeddings``, kept by every
  ``TimesformerLayer``), so its grid is read with ``order="hwt"`` (T, H/patch, W/patch);
* the layer, where the class decision still reads the space-time tokens:

  - **TimeSformer, ViViT** (and VideoMAE without mean pooling): the head reads one token
    (the class token; VideoMAE's first patch token) after the last block and the final
    norm. The tokens the last block outputs at the other positions never reach the score
    (their gradient is exactly zero); they reach it through the last block's attention
    (its keys and values). So the tube is Grad-CAM on the **last block's input** (the
    output of the block before it; the embeddings when there is one block). CAM does not
    apply: no pooled linear head reads these tokens (asking for it is one error line).
  - **VideoMAE with mean pooling** (the released checkpoints): the head is token mean ->
    ``fc_norm`` (LayerNorm) -> linear, so every token of the **last layer's output**
    reaches the score. CAM goes through the head's local linear map (``pooled_head``, as
    for X3D): with p the token mean and J the Jacobian of ``classifier(fc_norm(p))`` at p,
    the tube is ``J A(x)``. It is **not exact**: LayerNorm does not change when its input
    is scaled, so ``J p ~ 0`` (to LayerNorm's eps): the tube's mean is ~0, not the score
    minus a constant; ``J A(x) = J (A(x) - p)`` is the first-order change of the score if
    the pooled features moved to token x's. J is the same at every token, so CAM equals
    normalised HiResCAM before its ReLU and Grad-CAM's map up to a positive factor.

* preprocessing: frames ``num_frames``, size ``image_size`` (the models refuse any other:
  position embeddings and TimeSformer's layout fix both), and the resize, crop, mean and std
  of the family's video processor, or of the folder's ``preprocessor_config.json`` (or
  ``video_preprocessor_config.json``) when present. Rescaling is folded into mean/std on the
  [0, 1] scale: ViViT's ``x / 127.5 - 1`` then (x - 0.5) / 0.5 is mean 0.75, std 0.25;
* class names: the config's ``id2label`` (the placeholders ``LABEL_0 ...`` are no names).

The explainers hook modules and never touch the config (no ``output_hidden_states``
toggle): the model comes back as it was.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from ...errors import InputError, ModelLoadError, first_line
from ...tokens import TokenGrid
from .hf_sizes import check_sizes

EXTRA = "transformers"
INSTALL = "pip install 'saliency-tubes[transformers]'"
PROCESSOR_FILES = ("preprocessor_config.json", "video_preprocessor_config.json")
"""The processor files read for preprocessing, first found wins."""

CROP = 224
"""Every family's processor crop (``crop_size``) by default."""
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class Family:
    """One transformers architecture: its classes, module names and processor defaults."""

    key: str
    architecture: str
    config_class: str
    backbone: str
    blocks: str
    """Qualified name of the block list (``"videomae.encoder.layer"``)."""
    defaults: dict[str, Any]
    """The config class's defaults the adapter reads (for keys a config.json leaves out)."""
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    short_side: int
    rescale_factor: float = 1 / 255
    offset: bool = False
    """ViViT's processor maps pixels to ``x * rescale_factor - 1`` before normalising."""


FAMILIES: dict[str, Family] = {
    "videomae": Family(
        "videomae",
        "VideoMAEForVideoClassification",
        "VideoMAEConfig",
        "videomae",
        "videomae.encoder.layer",
        {
            "image_size": 224,
            "patch_size": 16,
            "num_frames": 16,
            "tubelet_size": 2,
            "num_hidden_layers": 12,
            "use_mean_pooling": True,
        },
        HALF,
        HALF,
        224,
    ),
    "timesformer": Family(
        "timesformer",
        "TimesformerForVideoClassification",
        "TimesformerConfig",
        "timesformer",
        "timesformer.encoder.layer",
        {
            "image_size": 224,
            "patch_size": 16,
            "num_frames": 8,
            "num_hidden_layers": 12,
            "attention_type": "divided_space_time",
        },
        IMAGENET_MEAN,
        IMAGENET_STD,
        224,
    ),
    "vivit": Family(
        "vivit",
        "VivitForVideoClassification",
        "VivitConfig",
        "vivit",
        "vivit.layers",
        {"image_size": 224, "num_frames": 32, "tubelet_size": [2, 16, 16], "num_hidden_layers": 12},
        HALF,
        HALF,
        256,
        rescale_factor=1 / 127.5,
        offset=True,
    ),
}
ARCHITECTURES = {f.architecture: f for f in FAMILIES.values()}

# The registered presets: (name, family, description). Base sizes, 400 classes (the
# Kinetics-400 fine-tuned releases), random weights; --weights DIR for trained ones.
PRESETS = (
    ("videomae-base", "videomae", "VideoMAE-B (Tong et al. 2022), 16x224x224, mean-pooled head"),
    (
        "timesformer-base",
        "timesformer",
        "TimeSformer-B (Bertasius et al. 2021), divided space-time, 8x224x224",
    ),
    (
        "vivit-b",
        "vivit",
        "ViViT-B 16x2 (Arnab et al. 2021), joint space-time attention, 32x224x224",
    ),
)
PRESET_CLASSES = 400


def available() -> bool:
    """Whether transformers is installed (checked without importing it)."""
    return importlib.util.find_spec("transformers") is not None


def import_transformers(model: str) -> Any:
    """Import and return ``transformers`` (torchvision first, through the project's import
    workaround, when it is installed: transformers imports it).

    Raises:
        ModelLoadError: transformers is not installed (one line naming ``model`` and how to
            install the extra), or its import fails.
    """
    if not available():
        raise ModelLoadError(
            f"--model {model} needs transformers, which is not installed; install it with {INSTALL}"
        )
    if importlib.util.find_spec("torchvision") is not None:
        from ._torchvision import import_torchvision

        try:
            import_torchvision()
        except ModelLoadError:
            pass  # transformers works without torchvision's compiled operators
    try:
        return importlib.import_module("transformers")
    except Exception as exc:  # noqa: BLE001 - any import failure becomes one clear line
        raise ModelLoadError(
            f"--model {model} needs transformers, but importing it failed ({first_line(exc)}); "
            f"reinstall it with {INSTALL}"
        ) from None


def pixel_values(clip: torch.Tensor) -> torch.Tensor:
    """The (N, T, C, H, W) ``pixel_values`` of an (N, C, T, H, W) clip (every adapter's ``inputs``)."""
    return clip.permute(0, 2, 1, 3, 4)


@dataclass(frozen=True)
class PixelValues:
    """Every adapter's ``inputs``: the clip as ``pixel_values``, at the one size the model takes.

    The clip must be ``frames`` x ``size``: VideoMAE's and ViViT's position embeddings
    refuse any other, and TimeSformer's blocks regroup the tokens by the config's
    ``num_frames``, so another frame count would run on a scrambled layout.
    """

    frames: int
    size: tuple[int, int]

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        t, h, w = clip.shape[2:]
        if (t, h, w) != (self.frames, *self.size):
            raise InputError(
                f"expected clips of {self.frames}x{self.size[0]}x{self.size[1]} (the model's "
                f"num_frames x image_size), but got {t}x{h}x{w}; use the preset's frames "
                "(drop --frames, or --windows of that length) and size"
            )
        return pixel_values(clip)


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, (list, tuple)):
        return int(value[0]), int(value[-1])
    return int(value), int(value)


@dataclass(frozen=True)
class Layout:
    """What the adapter reads from one config: the family, sizes, layer and head.

    Attributes:
        family: the architecture family.
        frames, size: the clip the model takes (``num_frames``, ``image_size``).
        stride: (t, h, w) size of one token (tubelet x patch; TimeSformer: 1 x patch).
        prefix: tokens before the space-time grid (1: a class token).
        order: token order of the grid (see :class:`~saliency_tubes.tokens.TokenGrid`).
        layer: the explained module; its output is the tokens read.
        pooled: the head mean-pools the tokens (VideoMAE's ``use_mean_pooling``).
        classes: the head's size (``num_labels``).
        categories: class names from ``id2label`` (None: none, or only placeholders).
    """

    family: Family
    frames: int
    size: tuple[int, int]
    stride: tuple[int, int, int]
    prefix: int
    order: Literal["thw", "hwt"]
    layer: str
    pooled: bool
    classes: int
    categories: tuple[str, ...] | None

    @property
    def grid(self) -> tuple[int, int, int]:
        """The (T', H', W') token grid at the model's clip size."""
        return TokenGrid(self.stride, self.prefix, self.order).grid((self.frames, *self.size))


def layout(config: dict[str, Any], where: str) -> Layout:
    """The :class:`Layout` of a config (a ``config.json`` read as a dict).

    Raises:
        ModelLoadError: not one of the three architectures, or a TimeSformer whose
            ``attention_type`` is ``space_only`` (its frames are batched apart).
    """
    family = _family(config, where)
    merged: dict[str, Any] = {**family.defaults, **config}

    def get(key: str) -> Any:
        return merged.get(key)

    check_sizes(get, where, family.key)  # an untrusted config: bounded before anything
    frames = int(get("num_frames"))
    size = _pair(get("image_size"))
    blocks = int(get("num_hidden_layers"))
    if family.key == "vivit":
        tubelet = [int(v) for v in get("tubelet_size")]
        stride = (tubelet[0], tubelet[1], tubelet[2])
    else:
        patch = _pair(get("patch_size"))
        t = int(get("tubelet_size")) if family.key == "videomae" else 1
        stride = (t, patch[0], patch[1])
    pooled = family.key == "videomae" and bool(get("use_mean_pooling"))
    if family.key == "timesformer" and get("attention_type") == "space_only":
        raise ModelLoadError(
            f"expected a TimeSformer with divided_space_time or joint_space_time attention in "
            f"{where}, but got attention_type 'space_only' (its frames are batched apart and its "
            "head scores each frame); use a space-time TimeSformer"
        )
    if pooled:
        layer = f"{family.blocks}.{blocks - 1}"  # every output token reaches the mean
    elif blocks > 1:
        layer = f"{family.blocks}.{blocks - 2}"  # the last block's input
    else:
        layer = f"{family.backbone}.embeddings"
    labels = config.get("id2label") or {}
    classes = int(config.get("num_labels") or len(labels) or 2)
    return Layout(
        family=family,
        frames=frames,
        size=size,
        stride=stride,
        prefix=0 if family.key == "videomae" else 1,
        order="hwt" if family.key == "timesformer" else "thw",
        layer=layer,
        pooled=pooled,
        classes=len(labels) or classes,
        categories=_categories(labels),
    )


def _family(config: dict[str, Any], where: str) -> Family:
    archs = config.get("architectures") or []
    for arch in archs:
        if arch in ARCHITECTURES:
            return ARCHITECTURES[arch]
    if not archs and config.get("model_type") in FAMILIES:
        return FAMILIES[str(config["model_type"])]
    known = ", ".join(ARCHITECTURES)
    got = f"architectures {archs}" if archs else f"model_type {config.get('model_type')!r}"
    raise ModelLoadError(
        f"expected a config of {known} in {where}, but got {got}; "
        "save one of these video classifiers with save_pretrained"
    )


_PLACEHOLDER = re.compile(r"LABEL_\d+")


def _categories(labels: dict[Any, Any]) -> tuple[str, ...] | None:
    if not labels:
        return None
    try:
        items = sorted((int(k), str(v)) for k, v in labels.items())
    except (TypeError, ValueError):
        return None
    if [i for i, _ in items] != list(range(len(items))):
        return None
    names = tuple(name for _, name in items)
    if all(_PLACEHOLDER.fullmatch(n) for n in names):
        return None
    return names


def read_json(path: Path, what: str) -> dict[str, Any]:
    """A JSON object from ``path``, or one :class:`ModelLoadError` line."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(
            f"expected {what} as JSON in {path}, but reading it failed ({first_line(exc)}); "
            "save the model again with save_pretrained"
        ) from None
    if not isinstance(data, dict):
        raise ModelLoadError(
            f"expected {what} as a JSON object in {path}, but got a {type(data).__name__}"
        )
    return data


def processor_settings(folder: Path) -> dict[str, Any]:
    for name in PROCESSOR_FILES:
        if (folder / name).is_file():
            return read_json(folder / name, "the processor settings")
    return {}


@contextmanager
def quiet_progress(transformers: Any) -> Iterator[None]:
    """transformers' progress bars and log lines off for the block (its load report of
    missing or unexpected keys: what is wrong is said in one line after it), then as they
    were."""
    logging = transformers.utils.logging
    was = logging.is_progress_bar_enabled()
    level = logging.get_verbosity()
    logging.disable_progress_bar()
    logging.set_verbosity(logging.CRITICAL)
    try:
        yield
    finally:
        logging.set_verbosity(level)
        if was:
            logging.enable_progress_bar()


def build(
    family: str,
    model_name: str,
    *,
    pretrained: bool = False,
    num_classes: int | None = None,
    **overrides: Any,
) -> nn.Module:
    """A base-size model of ``family`` from its config class, randomly initialised
    (every preset's builder): ``num_labels`` = ``num_classes`` (400 by default);
    ``overrides`` go to the config class (``hidden_size=32`` ... for a narrow twin)."""
    del pretrained  # no weights can be fetched here: pass --weights DIR (a save_pretrained folder)
    fam = FAMILIES[family]
    transformers = import_transformers(model_name)
    config = getattr(transformers, fam.config_class)(
        num_labels=num_classes or PRESET_CLASSES, **overrides
    )
    model: nn.Module = getattr(transformers, fam.architecture)(config)
    return model.eval()
