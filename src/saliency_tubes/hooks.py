"""Find the target layer and the classifier, and capture activations for one call.

Everything here leaves the user's model exactly as it came: hooks are registered inside
``try`` and removed in ``finally``, and :func:`preserved_state` restores every module's
training flag and every parameter's ``requires_grad`` even when the forward raises.

Hooks and training flags are shared by every thread that uses a model, so each hooked
call holds the model's lock (:func:`model_lock`): two threads explaining with the same
model take turns, and each gets the tubes it would get alone; two threads explaining two
models that share no module run at the same time.
"""

from __future__ import annotations

import difflib
import itertools
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .errors import LayerNotFoundError

LayerSpec = str | nn.Module | None

#: The lock of every module seen so far (a module's lock never changes once given).
_LOCKS: weakref.WeakKeyDictionary[nn.Module, _Lock] = weakref.WeakKeyDictionary()
#: Guards ``_LOCKS`` for the few microseconds a look-up takes (never held across a call).
_REGISTRY = threading.Lock()
_NUMBER = itertools.count()


@dataclass(frozen=True, eq=False)
class _Lock:
    """One re-entrant lock with its creation number (the order locks are taken in)."""

    number: int
    lock: threading.RLock = field(default_factory=threading.RLock)


@dataclass(frozen=True)
class ModelLock:
    """The lock of one model: the re-entrant locks of its modules, taken in one global order.

    Usually one lock. Several only when a model joins modules that were locked apart
    before (a wrapper around two models that were explained on their own): it then takes
    all of theirs, always in the order the locks were made, so no two threads can each
    hold one and wait for the other's.
    """

    locks: tuple[_Lock, ...]

    def __enter__(self) -> ModelLock:
        for entry in self.locks:
            entry.lock.acquire()
        return self

    def __exit__(self, *_exc: object) -> None:
        for entry in reversed(self.locks):
            entry.lock.release()

    def held_elsewhere(self) -> bool:
        """Whether another thread holds any of these locks now (for tests and diagnostics)."""
        taken: list[threading.RLock] = []
        try:
            for entry in self.locks:
                if not entry.lock.acquire(blocking=False):
                    return True
                taken.append(entry.lock)
            return False
        finally:
            for lock in reversed(taken):
                lock.release()


def model_lock(model: nn.Module) -> ModelLock:
    """The re-entrant lock that serialises the hooked calls on ``model`` (a context manager).

    A lock per model, kept in a ``WeakKeyDictionary`` (it goes with the model). The rule
    that decides which models share one: **models that share a module share its lock.** A
    module's lock is given the first time a model containing it is locked, and then never
    changes; every module of ``model`` without a lock gets the lock of the first module of
    ``model`` that has one (a fresh lock if none has). So a wrapper and the model it wraps
    (the wrapper contains every module of the inner model), or two heads on one backbone,
    share one lock whichever is locked first, while two separate models never wait for
    each other. A wrapper around models locked apart before takes all of their locks.

    :func:`preserved_state`, :func:`capture_activation` and :func:`trace_calls` hold it for
    their whole duration, so the hooks and training flags of one call are never seen by
    another thread's call (a thread may nest them: the locks are re-entrant, and a
    submodule's locks are among its model's).
    """
    with _REGISTRY:
        modules = list(model.modules())
        found: dict[int, _Lock] = {}
        for module in modules:
            entry = _LOCKS.get(module)
            if entry is not None:
                found.setdefault(entry.number, entry)
        if not found:
            fresh = _Lock(next(_NUMBER))
            found[fresh.number] = fresh
        first = found[min(found)]
        for module in modules:
            if module not in _LOCKS:
                _LOCKS[module] = first
        return ModelLock(tuple(found[number] for number in sorted(found)))


def model_device(model: nn.Module) -> torch.device | None:
    """The device of the model's first parameter (or buffer); None for a model with neither."""
    for tensor in model.parameters():
        return tensor.device
    for buffer in model.buffers():
        return buffer.device
    return None


def module_name(model: nn.Module, module: nn.Module) -> str:
    """Return the qualified name of ``module`` inside ``model`` ("" for the model itself)."""
    for name, candidate in model.named_modules():
        if candidate is module:
            return name
    raise LayerNotFoundError(
        f"expected a module that belongs to the model, but got a {type(module).__name__} "
        "that is not among model.named_modules(); pass one of the model's own modules or its name"
    )


def resolve_module(
    model: nn.Module, spec: str | nn.Module, what: str = "layer"
) -> tuple[str, nn.Module]:
    """Resolve a module given by qualified name or as a module object.

    Args:
        model: the network.
        spec: a name as in ``dict(model.named_modules())`` (e.g. ``"layer4"`` or
            ``"layer4.1.conv2"``) or one of the model's modules.
        what: the word used in error messages ("layer" or "classifier").

    Returns:
        ``(name, module)``.
    """
    if isinstance(spec, nn.Module):
        return module_name(model, spec), spec
    if not isinstance(spec, str):
        raise TypeError(
            f"expected the {what} as a module name (str) or an nn.Module, but got {type(spec).__name__}"
        )
    modules = dict(model.named_modules())
    if spec in modules:
        return spec, modules[spec]
    close = difflib.get_close_matches(spec, [n for n in modules if n], n=5, cutoff=0.5)
    hint = (
        f"did you mean {', '.join(repr(c) for c in close)}?"
        if close
        else ("see dict(model.named_modules()) for the names")
    )
    raise LayerNotFoundError(f"{what} {spec!r} not found in {type(model).__name__}; {hint}")


@contextmanager
def preserved_state(model: nn.Module, *, eval_mode: bool) -> Iterator[None]:
    """Restore training flags and ``requires_grad`` of ``model`` on exit, even on error.

    Args:
        model: the user's network.
        eval_mode: put every module in eval mode for the duration (dropout off,
            batch-norm on running statistics) so that explanations are deterministic.
            Without it the model's buffers (batch-norm statistics, which a forward in
            training mode updates) are restored on exit too.

    The model's lock (:func:`model_lock`) is held from before the state is saved until
    after it is restored: another thread's call waits, and cannot save the eval mode of
    this call as the model's own.
    """
    with model_lock(model):
        modes = [(m, m.training) for m in model.modules()]
        flags = [(p, p.requires_grad) for p in model.parameters()]
        # A forward in training mode updates buffers (batch norm's running statistics):
        # kept here and put back, so that explaining never trains the model.
        buffers = [] if eval_mode else [(b, b.detach().clone()) for b in model.buffers()]
        try:
            if eval_mode:
                model.eval()
            yield
        finally:
            for m, training in modes:
                m.training = training
            for p, requires_grad in flags:
                if p.requires_grad != requires_grad:
                    p.requires_grad_(requires_grad)
            with torch.no_grad():
                for b, kept in buffers:
                    b.copy_(kept)


@dataclass(frozen=True)
class Hook:
    """A forward hook to register on ``module`` (a forward pre-hook when ``before``)."""

    module: nn.Module
    function: Callable[..., Any]
    before: bool = False


@contextmanager
def hooked(model: nn.Module, hooks: Iterable[Hook]) -> Iterator[None]:
    """Register ``hooks`` for the block, holding ``model``'s lock; every hook registered is
    removed on every way out (also when registering a later one, or the block, raises).

    The one place hooks are put on a user's model: :func:`counted_forwards`,
    :func:`capture_activation`, :func:`trace_calls` and the channel tracing of
    :mod:`saliency_tubes.channels` go through it.
    """
    with model_lock(model), ExitStack() as stack:
        for hook in hooks:
            module = hook.module
            register = (
                module.register_forward_pre_hook if hook.before else module.register_forward_hook
            )
            stack.callback(register(hook.function).remove)
        yield


@contextmanager
def counted_forwards(model: nn.Module) -> Iterator[list[int]]:
    """Count the clips ``model`` forwards while the block runs: ``[n]``, the batch size of
    each call of the model itself summed (a list of pathways counts its first tensor's).

    The model's lock (:func:`model_lock`) is held for the block, so another thread's
    explanations (they take the same lock) wait and are not counted; a direct
    ``model(x)`` from another thread meanwhile would be. A forward that calls the model
    itself again counts each call. The hook is removed on every way out.
    """
    counted = [0]

    def count(_module: nn.Module, args: tuple[Any, ...]) -> None:
        first = args[0] if args else None
        if isinstance(first, (list, tuple)):
            first = _first_tensor(first)
        counted[0] += int(first.shape[0]) if isinstance(first, torch.Tensor) and first.dim() else 1

    with hooked(model, [Hook(model, count, before=True)]):
        yield counted


def _first_tensor(output: Any) -> torch.Tensor | None:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (list, tuple)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    return None


@dataclass
class Capture:
    """What one hooked call recorded: the target layer's activation (last call wins)."""

    activation: torch.Tensor | None = None


@contextmanager
def capture_activation(module: nn.Module, *, with_grad: bool) -> Iterator[Capture]:
    """Record the output of ``module`` during one forward pass.

    With ``with_grad=True`` the forward is expected to run under ``torch.no_grad()``:
    the hook turns gradient recording on from the target layer onwards and makes its
    output a fresh leaf, so a later ``torch.autograd.grad(score, activation)`` computes
    only the gradient from the score back to this layer (no graph is built for the layers
    before it, and no parameter gradient is ever computed).

    The hook is removed on exit, also when the forward raises. The lock of the model
    that owns ``module`` should be held around the call (:func:`preserved_state` does);
    the module's own lock is held here.
    """
    record = Capture()

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> Any:
        tensor = _first_tensor(output)
        if tensor is None:
            return None
        if not with_grad:
            record.activation = tensor
            return None
        torch.set_grad_enabled(True)
        leaf = tensor.detach().requires_grad_(True)
        record.activation = leaf
        # A non-leaf view for the rest of the network: in-place ops after this layer
        # (ReLU(inplace=True)) must not touch the leaf we differentiate against.
        replaced = leaf.clone()
        if isinstance(output, torch.Tensor):
            return replaced
        return type(output)([replaced, *output[1:]])

    with hooked(module, [Hook(module, hook)]):
        yield record


@dataclass(frozen=True)
class ModuleCall:
    """One finished module call seen while tracing: its name, module and output shape."""

    name: str
    module: nn.Module
    shape: tuple[int, ...] | None


def trace_calls(model: nn.Module, inputs: Any) -> list[ModuleCall]:
    """Run one forward pass and list every module call in the order the calls finished.

    Only shapes are kept (no tensors), so tracing costs one forward pass and no memory.
    The model's lock is held for the call (:func:`model_lock`).
    """
    calls: list[ModuleCall] = []

    def make_hook(name: str) -> Any:
        def hook(module: nn.Module, _inputs: Any, output: Any) -> None:
            tensor = _first_tensor(output)
            shape = tuple(tensor.shape) if tensor is not None else None
            calls.append(ModuleCall(name=name, module=module, shape=shape))

        return hook

    hooks = [Hook(module, make_hook(name)) for name, module in model.named_modules() if name]
    with hooked(model, hooks), torch.no_grad():
        model(inputs)
    return calls


def is_head(module: nn.Module) -> bool:
    """Whether ``module`` can be a CAM classifier: ``nn.Linear`` or a 1x1x1 ``nn.Conv3d``."""
    if isinstance(module, nn.Linear):
        return True
    return (
        isinstance(module, nn.Conv3d)
        and tuple(module.kernel_size) == (1, 1, 1)
        and module.groups == 1
    )


def head_in_features(module: nn.Module) -> int:
    """Number of input features of a classifier head."""
    if isinstance(module, nn.Linear):
        return module.in_features
    if isinstance(module, nn.Conv3d):
        return module.in_channels
    raise LayerNotFoundError(
        f"expected the classifier to be an nn.Linear or a 1x1x1 nn.Conv3d, but got {type(module).__name__}; "
        "pass classifier='<name of the final linear layer>'"
    )


def head_out_features(module: nn.Module) -> int:
    """Number of outputs (classes) of a classifier head (``nn.Linear`` or 1x1x1 ``nn.Conv3d``)."""
    return int(head_weight(module).shape[0])


def head_weight(module: nn.Module) -> torch.Tensor:
    """The (num_classes, C) weight matrix of a classifier head."""
    if not is_head(module):
        head_in_features(module)  # raises the explanatory error
    weight: torch.Tensor = module.weight  # type: ignore[assignment]
    return weight.reshape(weight.shape[0], -1)


def find_layer_and_head(
    model: nn.Module,
    calls: list[ModuleCall],
    layer: LayerSpec,
    classifier: LayerSpec,
) -> tuple[str, nn.Module, str, nn.Module]:
    """Decide the target layer and the classifier head from a trace.

    Default rule: the classifier is the last ``nn.Linear`` or 1x1x1 ``nn.Conv3d`` called;
    the target layer is the last module to finish whose output is 5-D with more than one
    space-time position and whose channel count equals the classifier's input features,
    among the calls that finished before the classifier. The outermost such module is
    chosen (``layer4`` rather than ``layer4.1.relu``), as it is the last to finish.
    """
    if classifier is not None:
        head_name, head = resolve_module(model, classifier, "classifier")
        head_index = max((i for i, c in enumerate(calls) if c.module is head), default=None)
        if head_index is None:
            raise LayerNotFoundError(
                f"classifier {head_name!r} was not called during the forward pass; "
                "pass the name of the module that produces the class scores"
            )
    else:
        heads = [i for i, c in enumerate(calls) if is_head(c.module)]
        if not heads:
            raise LayerNotFoundError(
                f"could not find the classifier of {type(model).__name__}: expected an nn.Linear or a "
                "1x1x1 nn.Conv3d producing the class scores, but found none; pass classifier='<name>'"
            )
        head_index = heads[-1]
        head_name, head = calls[head_index].name, calls[head_index].module
    channels = head_in_features(head)

    if layer is not None:
        layer_name, layer_module = resolve_module(model, layer, "layer")
        return layer_name, layer_module, head_name, head

    five_d = [
        c
        for c in calls[:head_index]
        if c.shape is not None and len(c.shape) == 5 and c.shape[2] * c.shape[3] * c.shape[4] > 1
    ]
    matching = [c for c in five_d if c.shape is not None and c.shape[1] == channels]
    if not matching:
        names = list(dict.fromkeys(c.name for c in reversed(five_d)))[:8]
        listed = ", ".join(f"{n!r}" for n in names) if names else "none"
        raise LayerNotFoundError(
            f"could not decide the target layer: expected a module with a 5-D output of {channels} "
            f"channels feeding classifier {head_name!r}, but found none (last 5-D layers: {listed}); "
            "pass layer='<name>'"
        )
    chosen = matching[-1]
    return chosen.name, chosen.module, head_name, head
