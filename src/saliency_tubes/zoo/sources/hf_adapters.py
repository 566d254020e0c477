"""The adapters of Hugging Face video classifiers: the registered presets (``videomae-base`` ...)
and a model saved in a folder (``--model hf:DIR``, ``save_pretrained``), its config and processor
read and checked, and the model loaded from it."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...errors import ModelLoadError, first_line
from ...tokens import TokenGrid
from ..registry import ModelAdapter, Preset
from .huggingface import (
    CROP,
    EXTRA,
    FAMILIES,
    INSTALL,
    PRESET_CLASSES,
    PRESETS,
    Family,
    PixelValues,
    available,
    build,
    import_transformers,
    layout,
    processor_settings,
    quiet_progress,
    read_json,
)


def preset(family: Family, size: tuple[int, int], frames: int, processor: dict[str, Any]) -> Preset:
    """The clip preset: the model's frames and size, the processor's resize and statistics.

    Mean and std are on the project's [0, 1] pixel scale: a processor that computes
    ``(p * rescale_factor - offset - mean) / std`` on 0-255 pixels p does exactly
    ``(x - m') / s'`` on x = p / 255 with ``m' = (offset + mean) / (255 rescale_factor)``
    and ``s' = std / (255 rescale_factor)``.
    """
    get = processor.get
    factor = float(get("rescale_factor", family.rescale_factor)) if get("do_rescale", True) else 1.0
    offset = 1.0 if get("offset", family.offset) and get("do_rescale", True) else 0.0
    if get("do_normalize", True):
        mean = _triple(get("image_mean", family.mean))
        std = _triple(get("image_std", family.std))
    else:
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    scale = 255.0 * factor
    mean01 = tuple(round((offset + m) / scale, 6) for m in mean)
    std01 = tuple(round(s / scale, 6) for s in std)
    resize_spec = get("size") or {"shortest_edge": family.short_side}
    short = resize_spec.get("shortest_edge") if isinstance(resize_spec, dict) else None
    if short is None and not get("do_center_crop", True):
        return Preset(frames=frames, size=size, resize="full", mean=mean01, std=std01)  # type: ignore[arg-type]
    # The processor's short side for its crop, scaled to the crop the model takes (a
    # processor's 224 crop of a short side 256 is ViViT's 8/7 ratio at any image_size).
    crop_spec = get("crop_size") or {}
    crop = (
        min(crop_spec.get("height", CROP), crop_spec.get("width", CROP))
        if isinstance(crop_spec, dict)
        else CROP
    )
    resize_to = None if short is None else max(min(size), round(int(short) * min(size) / int(crop)))
    return Preset(
        frames=frames,
        size=size,
        resize="short_side",
        resize_to=resize_to,
        mean=mean01,  # type: ignore[arg-type]
        std=std01,  # type: ignore[arg-type]
    )


def _triple(value: Any) -> tuple[float, float, float]:
    values = [float(v) for v in value] if isinstance(value, (list, tuple)) else [float(value)] * 3
    return values[0], values[1], values[2]


def pooled_head(model: nn.Module) -> Any:
    """VideoMAE's mean-pooled head on (N, C) token means: ``classifier(fc_norm(p))`` (CAM
    differentiates it at the clip's mean: its local linear map, see the module notes)."""
    norm: Any = model.fc_norm
    classifier: Any = model.classifier

    def head(pooled: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = classifier(norm(pooled))
        return out

    return head


def adapter_for(
    name: str,
    config: dict[str, Any],
    processor: dict[str, Any],
    builder: Any,
    *,
    description: str,
    where: str,
    folder: Path | None = None,
) -> ModelAdapter:
    """The :class:`ModelAdapter` of a config (and processor settings) of one of the families."""
    lay = layout(config, where)
    missing = "" if available() else f" [needs the {EXTRA} extra: {INSTALL}]"
    # relevancy: class-specific and through every block; it passed the planted-evidence and
    # sanity checks on the trained tiny-colours-vit (tests/methods/test_attention_planted.py)
    method = "relevancy"
    extra: dict[str, object] = {"requires": EXTRA, "family": lay.family.key, "grid": lay.grid}
    if folder is not None:
        extra["folder"] = str(folder)
    return ModelAdapter(
        name=name,
        builder=builder,
        layer=lay.layer,
        classifier="classifier",
        preset=preset(lay.family, lay.size, lay.frames, processor),
        categories=lay.categories,
        description=description + missing,
        num_classes=lay.classes,
        extra=extra,
        reshape=TokenGrid(lay.stride, lay.prefix, lay.order),
        inputs=PixelValues(lay.frames, lay.size),
        pooled_head=pooled_head if lay.pooled else None,
        default_method=method,
        cam_exact=False,
        from_folder=partial(_folder_adapter, family=lay.family.key, name=name),
    )


def prefixed_adapter(name: str) -> ModelAdapter:
    """The adapter of ``--model hf:DIR``: the model saved in DIR (a shell leaves "~" after
    "hf:" as it is, so it is expanded here)."""
    return folder_adapter(Path(name[len("hf:") :]).expanduser(), name=name)


def folder_adapter(folder: Path, *, name: str) -> ModelAdapter:
    """The adapter of the model saved in ``folder`` (``--model hf:DIR``), from its JSON
    files alone; its builder loads the folder with transformers."""
    return _folder_adapter(folder, family=None, name=name)


def _folder_adapter(folder: Path, *, family: str | None, name: str) -> ModelAdapter:
    folder = Path(folder)
    config_path = folder / "config.json"
    if not folder.is_dir() or not config_path.is_file():
        got = (
            "no such folder"
            if not folder.exists()
            else ("not a folder" if not folder.is_dir() else "a folder without config.json")
        )
        raise ModelLoadError(
            f"expected a Hugging Face model folder with a config.json (written by save_pretrained) "
            f"at {folder}, but got {got}; pass the folder that save_pretrained wrote"
        )
    config = read_json(config_path, "the model config")
    lay = layout(config, str(config_path))
    if family is not None and lay.family.key != family:
        raise ModelLoadError(
            f"expected a {FAMILIES[family].architecture} folder for --model {name}, but "
            f"{config_path} is a {lay.family.architecture}; use --model hf:{folder} or the "
            "matching registered name"
        )
    return adapter_for(
        name,
        config,
        processor_settings(folder),
        partial(load_folder, folder, lay.family.key, name),
        description=f"{lay.family.architecture} from {folder}",
        where=str(config_path),
        folder=folder,
    )


def load_folder(
    folder: Path,
    family: str,
    model_name: str,
    *,
    pretrained: bool = False,
    num_classes: int | None = None,
) -> nn.Module:
    """Load a ``save_pretrained`` folder (local files only, float32, weights checked).

    Raises:
        ModelLoadError: transformers missing; weights missing, unreadable or not fitting the
            config (missing, unexpected or mismatched keys); ``num_classes`` other than the
            folder's.
    """
    del pretrained
    fam = FAMILIES[family]
    transformers = import_transformers(model_name)
    cls = getattr(transformers, fam.architecture)
    try:
        with quiet_progress(transformers):
            model, info = cls.from_pretrained(
                str(folder), local_files_only=True, dtype=torch.float32, output_loading_info=True
            )
    except Exception as exc:  # noqa: BLE001 - every loader failure becomes one clear line
        raise ModelLoadError(
            f"could not load the {fam.architecture} weights in {folder} ({type(exc).__name__}: "
            f"{first_line(exc)}); expected a folder written by save_pretrained (config.json and "
            "model.safetensors)"
        ) from None
    problems = [
        f"{what} {sorted(map(str, keys))[:4]}"
        for what, keys in (
            ("missing keys", info.get("missing_keys")),
            ("unexpected keys", info.get("unexpected_keys")),
            (
                "shape mismatches",
                [k[0] if isinstance(k, tuple) else k for k in info.get("mismatched_keys") or []],
            ),
        )
        if keys
    ]
    if problems:
        raise ModelLoadError(
            f"the weights in {folder} do not fit its config.json: {'; '.join(problems)}; "
            "save the model again with save_pretrained"
        )
    classes = int(model.config.num_labels)
    if num_classes is not None and num_classes != classes:
        raise ModelLoadError(
            f"the model in {folder} has {classes} classes, but num_classes={num_classes} was asked "
            "for; drop --num-classes (the folder's config decides the head)"
        )
    return model.eval()


def adapters() -> list[ModelAdapter]:
    """The registered presets (nothing imported: their configs are the family defaults)."""
    out = []
    for name, family, description in PRESETS:
        fam = FAMILIES[family]
        config = {**fam.defaults, "architectures": [fam.architecture], "num_labels": PRESET_CLASSES}
        out.append(
            adapter_for(
                name,
                config,
                {},
                partial(build, family, name),
                description=f"transformers {description}; --weights DIR (save_pretrained folder)",
                where=f"the {name} preset",
            )
        )
    return out
