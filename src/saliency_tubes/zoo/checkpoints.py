"""Safe checkpoint loading: weights-only by default, safetensors accepted.

``torch.load(weights_only=True)`` refuses pickled objects other than tensors and plain
containers, so a checkpoint cannot run code when it is opened. A full pickle needs
``allow_pickle=True`` (``--allow-pickle`` on the command line): only for files you trust.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ModelLoadError, first_line

_NESTED_KEYS = ("state_dict", "model_state", "model_state_dict", "model", "net", "module")


def read_state_dict(path: str | Path, *, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors``, ``.pt``/``.pth``/``.ckpt`` (weights only).

    Nested checkpoints (``{"state_dict": ..., "epoch": ...}``) are unwrapped and a
    ``module.`` prefix (DataParallel) is removed.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(
            f"checkpoint not found: {path}; expected a path to a .pth/.pt/.safetensors file"
        )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            raw: Any = load_file(str(path))
        else:
            raw = torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except Exception as exc:  # noqa: BLE001 - every reader failure becomes one clear message
        reason = first_line(exc)
        if not allow_pickle and "weights_only" in str(exc):
            raise ModelLoadError(
                f"refused to unpickle {path.name}: it holds objects other than tensors (a pickle can run code); "
                "if you trust the file, pass allow_pickle=True (--allow-pickle)"
            ) from None
        raise ModelLoadError(f"could not read checkpoint {path}: {reason}") from None
    state = _unwrap(raw)
    if not state:
        raise ModelLoadError(f"checkpoint {path} holds no tensors; expected a model state dict")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _unwrap(raw: Any) -> dict[str, torch.Tensor]:
    if isinstance(raw, nn.Module):
        raw = raw.state_dict()
    if not isinstance(raw, Mapping):
        return {}
    for key in _NESTED_KEYS:
        inner = raw.get(key)
        if (
            isinstance(inner, Mapping)
            and inner
            and any(isinstance(v, torch.Tensor) for v in inner.values())
        ):
            return _unwrap(inner)
        if isinstance(inner, nn.Module):
            return _unwrap(inner)
    return {k: v for k, v in raw.items() if isinstance(v, torch.Tensor)}


def load_weights(model: nn.Module, path: str | Path, *, allow_pickle: bool = False) -> nn.Module:
    """Load a checkpoint into ``model`` strictly, with an error that lists what differs.

    A model that defines ``convert_state_dict(state) -> state`` (e.g. to rename the keys of
    an older checkpoint layout) has it applied before the keys are compared.
    """
    state = read_state_dict(path, allow_pickle=allow_pickle)
    convert = getattr(model, "convert_state_dict", None)
    if callable(convert):
        state = convert(state)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if missing or unexpected or mismatched:
        parts = []
        if mismatched:
            parts.append(f"shape mismatches {_few(mismatched)}")
        if missing:
            parts.append(f"missing keys {_few(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_few(unexpected)}")
        hint = "check that the checkpoint is for this architecture"
        if any(("fc." in m or "classifier" in m or "head" in m) for m in mismatched):
            hint = (
                "the class count differs: pass num_classes (--num-classes) to match the checkpoint"
            )
        raise ModelLoadError(
            f"checkpoint {Path(path).name} does not fit the model: {'; '.join(parts)}; {hint}"
        )
    model.load_state_dict(state)
    return model


def _few(items: list[str], limit: int = 4) -> str:
    shown = ", ".join(items[:limit])
    return f"[{shown}{f', ... {len(items) - limit} more' if len(items) > limit else ''}]"


def read_categories(path: str | Path) -> tuple[str, ...]:
    """Class names from a ``.txt`` (one per line) or ``.json`` (a list, or {index: name})."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(
            f"class-name file not found: {path}; expected a .txt (one per line) or .json file"
        )
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        data = json.loads(text)
        if isinstance(data, dict):
            try:
                return tuple(str(data[k]) for k in sorted(data, key=lambda k: int(k)))
            except ValueError:
                raise ModelLoadError(
                    f"expected {path.name} to map class indices to names, but got keys like {next(iter(data))!r}"
                ) from None
        if isinstance(data, list):
            return tuple(str(x) for x in data)
        raise ModelLoadError(
            f"expected a JSON list of class names in {path.name}, but got {type(data).__name__}"
        )
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if not names:
        raise ModelLoadError(f"class-name file {path} is empty; expected one name per line")
    return names


def looks_like_path(text: str, suffixes: Sequence[str]) -> bool:
    """Whether a ``--weights`` text names a file rather than weights: a path separator, or
    one of the checkpoint ``suffixes`` (lower-case, with the dot) as its suffix."""
    return "/" in text or "\\" in text or Path(text).suffix.lower() in suffixes


def build_with_weights(
    factory: Callable[[int | None], nn.Module],
    *,
    num_classes: int | None,
    weights: str | None,
    weights_classes: int,
    load: Callable[[nn.Module], object],
    categories: Callable[[], tuple[str, ...]],
) -> nn.Module:
    """Build a classifier, load its named weights, and give it its class names.

    What the torchvision and pytorchvideo adapters share: a head size that must match the
    named weights, then ``model.categories`` set when the head has as many outputs as
    there are names.

    Args:
        factory: builds the model with a head of ``num_classes`` outputs (None: the
            library's default).
        num_classes: the head size asked for (None: the default, or the weights' size).
        weights: how the named weights are called in messages; None: no weights.
        weights_classes: how many classes the named weights have.
        load: loads the named weights into the built model.
        categories: the class names of the default head.

    Returns:
        The model, with the weights loaded and ``model.categories`` set when it fits.

    Raises:
        ModelLoadError: ``num_classes`` differs from the named weights' class count.
    """
    if weights is not None and num_classes not in (None, weights_classes):
        raise ModelLoadError(
            f"the {weights} weights have {weights_classes} classes, but num_classes={num_classes} "
            "was asked for; drop --num-classes, or pass a local checkpoint of that size"
        )
    model = factory(num_classes)
    if weights is not None:
        load(model)
    names = categories()
    if (weights_classes if weights is not None else num_classes) in (None, len(names)):
        # A plain attribute, read by the explainers and load_model (nn.Module's typing
        # only knows tensors and modules as attributes).
        model.categories = names  # type: ignore[assignment]
    return model
