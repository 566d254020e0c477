"""Which convolution kernel produced each channel: one traced forward pass.

The class feature pyramid (:mod:`saliency_tubes.pyramid`) back-steps from a kernel to the
channels it reads, and from each channel to the kernel that produced it. That second step
is found here, for any network, without reading module names: during one forward pass
every ``nn.Conv3d`` output channel ``k`` is labelled ``(conv, k)``, and a
:class:`~torch.overrides.TorchFunctionMode` carries the labels through every other torch
call, by channel index:

* **channel-wise ops** (batch norm, activations, dropout, pooling, padding, resizing,
  flatten/view/squeeze that keep the first two axes, slicing that keeps the channel axis
  whole, reductions over the space-time axes) keep the labels;
* **element-wise ops of several tensors** (``out + identity``, ``x * y``) take, per
  channel, the label with the most convolutions behind it (its *depth*: convolutions on the
  longest path from the input, this one included; ties go to the later call). A residual
  channel is thus attributed to the residual branch's last convolution, not the shortcut.
  Broadcast operands (an SE gate of shape ``(N, C, 1, 1, 1)``) are ignored;
* **concatenation along channels** (DenseNet) concatenates the labels, so channel ``j``
  keeps the label of the input it came from;
* **anything else** (a convolution called functionally, ``permute``, ``softmax`` over the
  channels, a channel shuffle) drops the labels: the back-step stops there. The op names
  are recorded (:attr:`Trace.lost`) for error messages.

Labels are kept in a table keyed by ``id`` with weak references, so tracing keeps no
activation alive; hooks and the mode live for one call and are removed in ``finally``.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from .errors import InputError
from .hooks import Hook, hooked

Source = tuple[int, int, int]
"""``(depth, call, kernel)``: convolutions on the longest path from the input to this
output (this one included), the convolution's call index in the pass, its output channel."""

Channels = tuple[Source | None, ...]
"""One :data:`Source` (or None: not produced by a traced convolution) per channel."""

# The output's channel k is the input's channel k, when the first two axes are unchanged
# (see _keeps_channels for the ops that take an axis or an index).
_UNARY = frozenset(
    """
    batch_norm instance_norm group_norm relu relu_ relu6 leaky_relu leaky_relu_ elu elu_
    selu celu gelu silu mish sigmoid sigmoid_ tanh tanh_ hardtanh hardtanh_ hardswish
    hardsigmoid softplus threshold threshold_ clamp clamp_ clip clip_ neg abs exp
    dropout dropout_ dropout1d dropout2d dropout3d feature_dropout alpha_dropout
    max_pool1d max_pool2d max_pool3d max_pool3d_with_indices avg_pool1d avg_pool2d avg_pool3d
    adaptive_avg_pool1d adaptive_avg_pool2d adaptive_avg_pool3d adaptive_max_pool3d
    adaptive_max_pool3d_with_indices lp_pool3d pad interpolate upsample
    flatten view reshape squeeze unsqueeze contiguous clone detach to float half double
    type __getitem__ diff mean sum amax amin max min
    """.split()
)
# Element-wise ops of several tensors: output channel k comes from channel k of the inputs
# that have the output's shape.
_ELEMENTWISE = frozenset(
    """
    add add_ __add__ __radd__ __iadd__ sub sub_ __sub__ __rsub__ __isub__ mul mul_ __mul__
    __rmul__ __imul__ div div_ __truediv__ __itruediv__ maximum minimum
    """.split()
)
_CONCAT = frozenset({"cat", "concat", "concatenate"})
_REDUCTIONS = frozenset({"mean", "sum", "amax", "amin", "max", "min"})


def deepest(a: Source | None, b: Source | None) -> Source | None:
    """The source with more convolutions behind it (then the later call); None loses."""
    if a is None:
        return b
    if b is None:
        return a
    return a if a[:2] >= b[:2] else b


def _dims(value: Any, ndim: int) -> set[int] | None:
    if value is None:
        return None
    items = value if isinstance(value, (tuple, list)) else (value,)
    try:
        return {int(d) % ndim for d in items}
    except (TypeError, ValueError):
        return None


def _index_keeps_channels(index: Any, ndim: int) -> bool:
    """Whether ``x[index]`` keeps the batch axis and the whole channel axis in place."""
    items = index if isinstance(index, tuple) else (index,)
    if any(i is None for i in items):  # new axes shift the channel axis
        return False
    if items and items[0] is Ellipsis:
        rest = items[1:]
        return Ellipsis not in rest and len(rest) <= ndim - 2
    if not items:
        return True
    if not isinstance(items[0], slice):
        return False
    return len(items) < 2 or items[1] == slice(None)


def _keeps_channels(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Checks beyond the shapes, for the ops that take an axis or an index."""
    x = args[0]
    if name == "__getitem__":
        return len(args) > 1 and _index_keeps_channels(args[1], x.dim())
    if name in _REDUCTIONS:
        dims = _dims(kwargs.get("dim", args[1] if len(args) > 1 else None), x.dim())
        return dims is not None and not dims & {0, 1}
    if name == "diff":
        dims = _dims(kwargs.get("dim", args[2] if len(args) > 2 else -1), x.dim())
        return dims is not None and not dims & {0, 1}
    return True


class ChannelTracker(TorchFunctionMode):
    """Carries per-channel :data:`Source` labels through the torch calls of a forward pass.

    Convolution outputs are labelled by :func:`trace_channels`' hooks with :meth:`set`;
    this mode carries the labels over to the outputs of every other call (see the module
    documentation for the rules).

    Attributes:
        lost: names of the ops that dropped the labels of a labelled input.
    """

    def __init__(self) -> None:
        super().__init__()
        self._table: dict[int, tuple[weakref.ref[torch.Tensor], Channels]] = {}
        self._paused = False
        self.lost: list[str] = []

    def get(self, tensor: Any) -> Channels | None:
        """The labels of ``tensor``'s channels (axis 1), or None when unknown."""
        if not isinstance(tensor, torch.Tensor):
            return None
        entry = self._table.get(id(tensor))
        if entry is None or entry[0]() is not tensor:
            return None
        return entry[1]

    def set(self, tensor: torch.Tensor, channels: Channels | None) -> None:
        """Label ``tensor``'s channels (None forgets its labels)."""
        key = id(tensor)
        table = self._table
        if channels is None:
            table.pop(key, None)
            return

        def forget(ref: weakref.ref[torch.Tensor]) -> None:
            entry = table.get(key)
            if entry is not None and entry[0] is ref:
                del table[key]

        table[key] = (weakref.ref(tensor, forget), channels)

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Run the hooks' own bookkeeping ops without labelling their results."""
        before, self._paused = self._paused, True
        try:
            yield
        finally:
            self._paused = before

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        """Run ``func`` and carry its inputs' channel labels over to its output."""
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self._paused:
            return out
        result = out[0] if isinstance(out, (tuple, list)) and out else out
        if isinstance(result, torch.Tensor) and result.dim() >= 2:
            self._carry(getattr(func, "__name__", ""), args, kwargs, result)
        return out

    def _carry(
        self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], result: torch.Tensor
    ) -> None:
        channels: Channels | None = None
        inputs = [a for a in args if isinstance(a, torch.Tensor)]
        if name in _CONCAT:
            channels = self._concat(args, kwargs, result)
        elif name in _ELEMENTWISE:
            channels = self._merge([a for a in inputs if a.shape == result.shape])
        elif (
            name in _UNARY
            and inputs
            and inputs[0] is args[0]
            and args[0].dim() >= 2
            and tuple(args[0].shape[:2]) == tuple(result.shape[:2])
            and _keeps_channels(name, args, kwargs)
        ):
            channels = self.get(args[0])
        if channels is not None and len(channels) == result.shape[1]:
            self.set(result, channels)
            return
        if any(self.get(a) is not None for a in inputs):
            self.lost.append(name or "an unnamed op")
        if any(result is a for a in inputs):  # an in-place op that cannot be followed
            self.set(result, None)

    def _merge(self, tensors: Sequence[torch.Tensor]) -> Channels | None:
        labelled = [c for c in (self.get(t) for t in tensors) if c is not None]
        if not labelled:
            return None
        merged = labelled[0]
        for other in labelled[1:]:
            if len(other) == len(merged):
                merged = tuple(deepest(a, b) for a, b in zip(merged, other, strict=True))
        return merged

    def _concat(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], result: torch.Tensor
    ) -> Channels | None:
        tensors = kwargs.get("tensors", args[0] if args else None)
        if not isinstance(tensors, (list, tuple)) or not all(
            isinstance(t, torch.Tensor) for t in tensors
        ):
            return None
        dims = _dims(kwargs.get("dim", args[1] if len(args) > 1 else 0), result.dim())
        if dims == {1}:
            parts: list[Source | None] = []
            for t in tensors:
                parts.extend(self.get(t) or (None,) * t.shape[1])
            return tuple(parts)
        return self._merge([t for t in tensors if t.dim() >= 2 and t.shape[1] == result.shape[1]])


@dataclass
class ConvCall:
    """One ``nn.Conv3d`` call of the traced pass.

    Attributes:
        name: the convolution's qualified name.
        module: the convolution.
        call: its call index in the pass.
        inputs: the labels of its input channels (None when none is known).
        pooled: ``(C_in,)`` float64, the input's mean over ``(T, H, W)`` for sample 0.
        grid: its output's ``(T', H', W')``.
    """

    name: str
    module: nn.Conv3d
    call: int
    inputs: Channels | None
    pooled: torch.Tensor
    grid: tuple[int, int, int] = (0, 0, 0)

    @property
    def depth(self) -> int:
        """Convolutions on the longest path from the input to this one's output."""
        return 1 + max((s[0] for s in self.inputs or () if s is not None), default=0)


@dataclass
class Trace:
    """What :func:`trace_channels` recorded.

    Attributes:
        convs: every ``nn.Conv3d`` call, in call order.
        output: the model's output.
        watched: per watched module name, ``(output for sample 0, its channel labels)``.
        lost: ops that dropped channel labels.
    """

    convs: list[ConvCall]
    output: Any
    watched: dict[str, tuple[torch.Tensor, Channels | None]]
    lost: list[str]

    def by_name(self) -> dict[str, ConvCall]:
        """Convolutions by name (the last call of a shared convolution wins)."""
        return {c.name: c for c in self.convs}

    def source_name(self, source: Source) -> str:
        """The name of the convolution of a :data:`Source`."""
        return self.convs[source[1]].name


def trace_channels(
    model: nn.Module, clip: torch.Tensor, watch: Mapping[str, nn.Module] | None = None
) -> Trace:
    """Run ``model(clip)`` once, labelling channels and recording every Conv3d's input.

    Args:
        model: the network (left unchanged: hooks and the mode are removed in ``finally``).
        clip: its input, ``(N, C, T, H, W)``; statistics are taken for sample 0.
        watch: modules whose output (sample 0, detached copy) and channel labels to keep,
            by name.

    Returns:
        The :class:`Trace`.
    """
    tracker = ChannelTracker()
    names = {id(m): n for n, m in model.named_modules()}
    convs: list[ConvCall] = []
    watched: dict[str, tuple[torch.Tensor, Channels | None]] = {}

    def pre_hook(module: nn.Module, args: tuple[Any, ...]) -> None:
        x = args[0] if args else None
        if not isinstance(x, torch.Tensor) or x.dim() != 5:
            return
        with tracker.paused():
            pooled = x[0].detach().mean(dim=(1, 2, 3), dtype=torch.float64)
        conv = cast(nn.Conv3d, module)
        convs.append(ConvCall(names[id(module)], conv, len(convs), tracker.get(x), pooled))

    def post_hook(module: nn.Module, _args: tuple[Any, ...], output: Any) -> None:
        call = next((c for c in reversed(convs) if c.module is module), None)
        if call is None or not isinstance(output, torch.Tensor) or output.dim() != 5:
            return
        call.grid = (int(output.shape[2]), int(output.shape[3]), int(output.shape[4]))
        depth = call.depth
        tracker.set(output, tuple((depth, call.call, k) for k in range(output.shape[1])))

    def watch_hook(name: str) -> Callable[..., None]:
        def hook(_module: nn.Module, _args: tuple[Any, ...], output: Any) -> None:
            tensor = output[0] if isinstance(output, (tuple, list)) and output else output
            if isinstance(tensor, torch.Tensor) and tensor.dim() >= 1:
                with tracker.paused():
                    copy = tensor[0].detach().float().clone()
                watched[name] = (copy, tracker.get(tensor))

        return hook

    hooks = [
        Hook(module, function, before=function is pre_hook)
        for module in model.modules()
        if isinstance(module, nn.Conv3d)
        for function in (pre_hook, post_hook)
    ]
    hooks += [Hook(module, watch_hook(name)) for name, module in (watch or {}).items()]
    with hooked(model, hooks), torch.no_grad(), tracker:
        output = model(clip)
    return Trace(convs=convs, output=output, watched=watched, lost=tracker.lost)


def conv_outputs(
    model: nn.Module, clip: torch.Tensor, wanted: Mapping[str, Sequence[int]]
) -> dict[str, torch.Tensor]:
    """Run ``model(clip)`` and keep output channels ``wanted[name]`` of the named convolutions.

    Args:
        model: the network (hooks are removed in ``finally``).
        clip: its input; sample 0 is kept.
        wanted: per convolution name, the output channels to keep.

    Returns:
        Per name, ``(len(wanted[name]), T', H', W')`` float32, in the order asked.

    Raises:
        InputError: a wanted convolution was not called.
    """
    modules = dict(model.named_modules())
    out: dict[str, torch.Tensor] = {}

    def make_hook(name: str, kernels: Sequence[int]) -> Callable[..., None]:
        index = torch.tensor(list(kernels), dtype=torch.long)

        def hook(_module: nn.Module, _args: tuple[Any, ...], output: Any) -> None:
            out[name] = output[0].detach().float().index_select(0, index.to(output.device))

        return hook

    hooks = [Hook(modules[name], make_hook(name, kernels)) for name, kernels in wanted.items()]
    with hooked(model, hooks), torch.no_grad():
        model(clip)
    missing = [name for name in wanted if name not in out]
    if missing:
        raise InputError(
            f"expected convolution {missing[0]!r} to run in the second forward pass, but it "
            "was not called; the model must run the same layers for the same clip"
        )
    return out
