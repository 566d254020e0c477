"""What goes into and comes out of one model call, checked: the clip, the classes asked
for, the batching options, and the class scores in a model's output.

Shared by every explainer (:mod:`.base`), the metrics and the pyramids;
:mod:`.base` hands these names on, so ``from saliency_tubes.methods.base import
select_classes`` keeps working.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ..errors import ClassSelectionError, InputError
from ..hooks import Capture

__all__ = [
    "ClassSpec",
    "activations",
    "check_batching",
    "check_clip",
    "check_outputs",
    "class_scores",
    "logits_of",
    "model_input",
    "select_classes",
]

ClassSpec = (
    str
    | int
    | Sequence[int]
    | Sequence[str]
    | Sequence[Sequence[int]]
    | torch.Tensor
    | Callable[[torch.Tensor], Any]
)

_TOPK = re.compile(r"^top(\d+)$", re.IGNORECASE)


def select_classes(
    spec: ClassSpec, logits: torch.Tensor, categories: Sequence[str] | None
) -> torch.Tensor:
    """Turn a class request into an (N, K) index tensor.

    Accepted: ``"topK"`` (the K highest-scoring classes of each sample); ``"all"`` (every
    class, in index order); one int; a list of ints (the same classes for every sample);
    a list of N lists (per sample, equal lengths); a class name or a list of names (needs
    ``categories``); an (N, K) or (K,) integer tensor; a function of the (N, num_classes)
    ``logits`` returning any of these (chosen from the scores of the same forward).
    """
    n, num_classes = logits.shape
    if callable(spec) and not isinstance(spec, torch.Tensor):
        spec = spec(logits)
        if callable(spec) and not isinstance(spec, torch.Tensor):
            raise ClassSelectionError(
                "expected the class function to return classes, but it returned a function"
            )
    if isinstance(spec, str) and spec.strip().lower() == "all":
        return torch.arange(num_classes, device=logits.device).expand(n, num_classes)
    if isinstance(spec, str):
        match = _TOPK.match(spec.strip())
        if match:
            k = int(match.group(1))
            if not 1 <= k <= num_classes:
                raise ClassSelectionError(
                    f"expected top-K with 1 <= K <= {num_classes} (the model's class count), but got {spec!r}"
                )
            return logits.topk(k, dim=1).indices
        spec = [spec]
    if isinstance(spec, torch.Tensor):
        if spec.dtype.is_floating_point or spec.dim() > 2:
            raise ClassSelectionError(
                f"expected an integer tensor of shape (K,) or (N, K), but got {spec.dtype} {tuple(spec.shape)}"
            )
        spec = spec.tolist()
    if isinstance(spec, int):
        spec = [spec]
    if not isinstance(spec, Sequence) or len(spec) == 0:
        raise ClassSelectionError(
            f"expected classes as 'topK', an int, a list of ints or names, or per-sample lists, but got {spec!r}"
        )
    rows: list[list[Any]]
    if all(isinstance(item, Sequence) and not isinstance(item, str) for item in spec):
        rows = [list(item) for item in spec]  # type: ignore[arg-type]
        if len(rows) != n:
            raise ClassSelectionError(
                f"expected one list of classes per sample ({n}), but got {len(rows)} lists"
            )
        if len({len(r) for r in rows}) != 1 or len(rows[0]) == 0:
            raise ClassSelectionError(
                "expected the per-sample class lists to have the same, non-zero length, "
                f"but got lengths {[len(r) for r in rows]}"
            )
    else:
        rows = [list(spec)] * n
    index = [[_class_index(item, num_classes, categories) for item in row] for row in rows]
    return torch.tensor(index, dtype=torch.long, device=logits.device)


def _class_index(item: Any, num_classes: int, categories: Sequence[str] | None) -> int:
    if isinstance(item, bool):
        raise ClassSelectionError(f"expected a class index or name, but got {item!r}")
    if isinstance(item, int):
        if not 0 <= item < num_classes:
            raise ClassSelectionError(
                f"class index {item} out of range: expected 0 <= index < {num_classes} (the model's class count)"
            )
        return item
    if isinstance(item, str):
        if item.strip().lstrip("-").isdigit():
            return _class_index(int(item), num_classes, categories)
        if not categories:
            raise ClassSelectionError(
                f"class name {item!r} given, but the model has no category names; "
                "pass categories=[...] to the explainer or use class indices"
            )
        lookup = {name.lower(): i for i, name in enumerate(categories)}
        key = item.strip().lower()
        if key not in lookup:
            import difflib

            close = difflib.get_close_matches(key, list(lookup), n=3, cutoff=0.6)
            hint = (
                f"did you mean {', '.join(repr(categories[lookup[c]]) for c in close)}?"
                if close
                else (f"known names include {', '.join(repr(c) for c in list(categories)[:5])}")
            )
            raise ClassSelectionError(f"unknown class name {item!r}; {hint}")
        return lookup[key]
    raise ClassSelectionError(
        f"expected a class index (int) or name (str), but got {type(item).__name__}"
    )


def check_batching(batch_size: Any, max_bytes: Any, progress: Any) -> None:
    """Validate the batching options of the methods that run the model on many perturbed
    clips (Score-CAM, occlusion, integrated gradients): one line per mistake."""
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        raise InputError(
            f"expected batch_size to be a positive int or None, but got {batch_size!r}"
        )
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise InputError(
            f"expected max_bytes to be a positive int, but got {max_bytes!r}; give a number "
            "of bytes such as 512 * 2**20"
        )
    if progress is not None and not callable(progress):
        raise TypeError(
            f"expected progress to be callable or None, but got {type(progress).__name__}"
        )


def check_clip(clip: Any) -> torch.Tensor:
    """Validate a clip: a finite floating (N, C, T, H, W) tensor."""
    if not isinstance(clip, torch.Tensor):
        raise InputError(
            f"expected the clip as a torch.Tensor of shape (N, C, T, H, W), but got {type(clip).__name__}"
        )
    if clip.dim() != 5:
        hint = "; add a batch dimension with clip.unsqueeze(0)" if clip.dim() == 4 else ""
        raise InputError(
            f"expected a 5-D clip (N, C, T, H, W), but got shape {tuple(clip.shape)}{hint}"
        )
    if not clip.is_floating_point():
        raise InputError(
            f"expected a floating-point clip (normalised pixels), but got dtype {clip.dtype}; "
            "convert with clip.float() and normalise it as the model expects"
        )
    if clip.numel() == 0:
        raise InputError(f"expected a non-empty clip, but got shape {tuple(clip.shape)}")
    # the sum is NaN or infinite where a value is (one pass, no mask); a finite clip whose
    # sum overflows is then told apart by the element-wise check
    if not torch.isfinite(clip.sum()) and not torch.isfinite(clip).all():
        raise InputError(
            "expected finite clip values, but the clip contains NaN or inf; check the decoding"
        )
    return clip


def logits_of(output: Any, n: int) -> torch.Tensor:
    """The (N, num_classes) class scores in a model's output (a tensor, the first of a
    tuple/list, or a dict's ``"logits"`` entry), checked for shape."""
    if isinstance(output, dict):
        output = output.get("logits", next(iter(output.values()), None))
    if isinstance(output, (list, tuple)) and output:
        output = output[0]
    if not isinstance(output, torch.Tensor) or output.dim() != 2 or output.shape[0] != n:
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise InputError(
            f"expected the model to return class scores of shape (N={n}, num_classes), but got {shape}"
        )
    return output


Inputs = Callable[[torch.Tensor], Any] | None
"""An adapter's ``inputs``: builds the model's input from the (N, C, T, H, W) clip
(Hugging Face's ``pixel_values``, SlowFast's pathways); None passes the clip as it is."""


def model_input(clip: torch.Tensor, inputs: Inputs = None) -> Any:
    """What the model is called with for ``clip``: ``inputs(clip)``, or the clip itself."""
    return inputs(clip) if inputs is not None else clip


def class_scores(model: nn.Module, clip: torch.Tensor, inputs: Inputs = None) -> torch.Tensor:
    """The (N, num_classes) scores of ``model`` on the (N, C, T, H, W) ``clip``, called
    through the adapter's ``inputs`` (every forward of the metrics goes through here)."""
    return logits_of(model(model_input(clip, inputs)), clip.shape[0])


def activations(layers: list[tuple[str, nn.Module]], records: list[Capture]) -> list[torch.Tensor]:
    """The captured activation of every layer (one-line error for a layer never called)."""
    captured = []
    for (name, _), record in zip(layers, records, strict=True):
        if record.activation is None:
            raise InputError(
                f"layer {name!r} was not called during the forward pass; "
                "pass a layer that the model uses"
            )
        captured.append(record.activation)
    return captured


def check_outputs(
    layers: list[tuple[str, nn.Module]],
    captured: list[torch.Tensor],
    volume: Callable[[torch.Tensor], torch.Tensor],
    logits: torch.Tensor,
) -> None:
    """Refuse activations that are not finite 5-D volumes, and non-finite scores."""
    for (name, _), act in zip(layers, captured, strict=True):
        vol = volume(act.detach())
        if vol.dim() != 5:
            raise InputError(
                f"expected layer {name!r} to output 5-D (N, C, T', H', W') activations, but "
                f"got shape {tuple(vol.shape)}; pick a convolutional layer, or pass "
                "reshape= (saliency_tubes.tokens.TokenGrid for transformer tokens)"
            )
        if not torch.isfinite(vol).all():
            raise InputError(
                f"the model produced NaN or inf activations at layer {name!r} for this "
                "clip; check the input normalisation and the weights"
            )
    if not torch.isfinite(logits).all():
        raise InputError(
            "the model produced NaN or inf scores for this clip; "
            "check the input normalisation and the weights"
        )
