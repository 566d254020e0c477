"""Safe checkpoint loading: weights-only by default, safetensors accepted.

``torch.load(weights_only=True)`` refuses pickled objects other than tensors and plain
containers, so a checkpoint cannot run code when it is opened. A full pickle needs
``allow_pickle=True`` (``--allow-pickle`` on the command line): only for files you trust.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
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
        got = "a folder" if path.is_dir() else ("not a regular file" if path.exists() else "")
        if got:
            raise ModelLoadError(
                f"expected a checkpoint file (.pth/.pt/.safetensors) at {path}, but it is {got}; "
                "pass the file (a save_pretrained folder goes with --model hf:DIR or a "
                "registered transformers name)"
            )
        raise ModelLoadError(
            f"checkpoint not found: {path}; expected a path to a .pth/.pt/.safetensors file"
        )
    try:
        if path.suffix == ".safetensors" or is_safetensors(path):
            from safetensors.torch import load_file

            raw: Any = load_file(str(path))
        else:
            # torch warns about files it reads (a plain pickle's protocol, ...) before it
            # refuses or reads them: the outcome is the one message below, or none.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
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


def is_safetensors(path: str | Path) -> bool:
    """Whether the file at ``path`` is a safetensors file, whatever its suffix.

    A safetensors file starts with its header's length ``n`` (8 bytes, little-endian),
    then ``n`` bytes of a JSON object: the length must fit in the file and the header
    must start with ``{``.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(9)
            size = os.fstat(fh.fileno()).st_size
    except OSError:
        return False
    if len(head) < 9:
        return False
    length = int.from_bytes(head[:8], "little")
    return 2 <= length <= size - 8 and head[8:9] == b"{"


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
    """Class names from a ``.txt`` (one per line) or ``.json`` file, in UTF-8.

    A JSON file holds a list of names (strings), or an object mapping class indices (as
    strings) to names, read in index order.

    Raises:
        ModelLoadError: a missing or unreadable file, bytes that are not UTF-8, broken
            JSON, JSON of another shape, or no names at all; one line naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(
            f"class-name file not found: {path}; expected a .txt (one per line) or .json file"
        )
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ModelLoadError(
            f"expected a readable class-name file {path}, but reading it failed "
            f"({first_line(exc)}); check its permissions"
        ) from None
    except UnicodeDecodeError as exc:
        raise ModelLoadError(
            f"expected class-name file {path} in UTF-8, but byte {exc.start} "
            f"(0x{exc.object[exc.start]:02x}) is not UTF-8; save the file as UTF-8"
        ) from None
    if path.suffix.lower() == ".json":
        return _json_categories(path, text)
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if not names:
        raise ModelLoadError(f"class-name file {path} is empty; expected one name per line")
    return names


def _json_categories(path: Path, text: str) -> tuple[str, ...]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelLoadError(
            f"expected JSON in class-name file {path}, but it is not valid JSON ({exc.msg} "
            f"at line {exc.lineno}, column {exc.colno}); fix it, or give one name per line "
            "in a .txt file"
        ) from None
    shape = 'a JSON list of class names or an object {"0": name, "1": name, ...}'
    if isinstance(data, dict):
        indices: dict[int, str] = {}
        for key in data:
            try:
                indices[int(key)] = key
            except ValueError:
                raise ModelLoadError(
                    f"expected {shape} in {path}, but got the key {key!r}, which is no class index"
                ) from None
        # In index order (as before: load_model then checks one name per class).
        items = [data[indices[i]] for i in sorted(indices)]
    elif isinstance(data, list):
        items = data
    else:
        raise ModelLoadError(f"expected {shape} in {path}, but got a {type(data).__name__}")
    if not items:
        raise ModelLoadError(f"expected {shape} in {path}, but it holds no names")
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise ModelLoadError(
                f"expected {shape} in {path}, but the name of class {i} is {item!r}; "
                "give every name as a string"
            )
    return tuple(items)


@contextmanager
def downloading(what: str) -> Iterator[None]:
    """Turn any failure of the download in the block into one :class:`ModelLoadError` line.

    ``what`` names the weights (``"the x3d_xs Kinetics-400"``): "downloading {what}
    weights failed (reason); pass a local checkpoint path instead (--weights PATH)". The
    one wrapper of the adapters that download (torchvision, pytorchvideo).
    """
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - every download failure becomes one clear line
        raise ModelLoadError(
            f"downloading {what} weights failed ({first_line(exc)}); pass a local checkpoint "
            "path instead (--weights PATH)"
        ) from None


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
