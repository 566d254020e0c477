"""Relevancy block by block: each transformer block recomputed in the backward.

Chefer's relevancy needs, per attention, its probabilities A and their gradient ∇A. With
one forward recorded by autograd, every block's A (and what softmax and ``attn @ v`` save
for the backward) stays alive until the backward reaches it: on VideoMAE-base (1568
tokens, 12 blocks of 12 heads) that is 1351 MiB of probabilities alone. Here the call's
forward runs each block inside :class:`_Recomputed`, an autograd function whose forward
runs the block without recording (it keeps only the block's input hidden state, the
non-tensor arguments and the random number generators' state) and whose backward

1. runs the block again from that input, with gradients on and the attention recorder
   (:class:`~saliency_tubes.methods.attention_sites.AttentionRecorder`) watching only
   this block's attentions, each recorded probability tensor getting a tensor hook;
2. calls ``torch.autograd.grad(block output, block input, grad_output)`` (never
   ``.backward()``, which would write ``.grad`` into the model's parameters): as each
   attention's gradient arrives, its hook folds ``Ā = mean_heads((∇A ⊙ A)⁺)`` into the
   carried readout row (``r ← r + r·Ā``, in reverse forward order: TimeSformer's spatial
   attention before its temporal one) and drops it;
3. returns the input's gradient to the next block down.

So autograd holds every block's input (N × L × C each) and at most one block's graph at a
time: the peak no longer grows with the number of blocks' attention maps. The price is
one more forward of every block per explained class. A block is the module holding an
attention: the model's entry of its block list (the prefix of the attention's name up to
its first index: ``videomae.encoder.layer.3``, ``blocks.3``), or the attention module
itself when its name has no index. The block's ``forward`` is replaced by an instance
attribute for the call's forward only (calls from other threads run the block as it is)
and removed after, also when the forward raises.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import get_device_states, set_device_states

from .attention_pooled import PooledBlock, pooled_block, skip_index
from .attention_sites import AttentionLayout, AttentionRecorder, Site, place, readout_row, real

Step = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Block:
    """A block recomputed in the backward: its name, the module and its attentions (in
    the order its forward calls them)."""

    name: str
    module: nn.Module
    sites: tuple[Site, ...]


def find_blocks(model: nn.Module, layout: AttentionLayout) -> tuple[Block, ...]:
    """The blocks holding the layout's attentions, in forward order (see the module notes)."""
    names: dict[str, list[Site]] = {}
    for site in layout.sites:
        parts = site.name.split(".")
        index = next((i for i, part in enumerate(parts) if part.isdigit()), None)
        name = site.name if index is None else ".".join(parts[: index + 1])
        names.setdefault(name, []).append(site)
    return tuple(Block(n, model.get_submodule(n), tuple(s)) for n, s in names.items())


@dataclass
class Fold:
    """The readout row of one relevancy call, carried from the last attention to the first.

    ``row`` is None until the first (last in forward order) attention's gradient arrives;
    ``called`` lists the blocks the forward ran, and whether through :class:`_Recomputed`
    (False: the block's input did not require grad, so its attention is not followed)."""

    layout: AttentionLayout
    n: int
    pooled: dict[str, tuple[nn.Module, tuple[int, int, int]]]
    row: torch.Tensor | None = None
    called: list[tuple[str, bool]] = field(default_factory=list)

    def step(
        self, site: Site, probs: torch.Tensor, grad: torch.Tensor, block: PooledBlock | None
    ) -> Step:
        """``r ↦ r + r·Ā`` for one attention (through its pooled block for MViT)."""
        weighted = (real(grad.detach()) * real(probs.detach())).clamp_min_(0).mean(1)
        if self.row is None:
            self.row = readout_row(self.layout, self.n, _tokens(site, probs, self.n), weighted)
        if block is not None:
            return partial(block.relevancy, weighted=weighted)
        op = place(weighted, site.kind, self.n, cls_rows="sum", fill_identity=False)
        return partial(_plus_times, op=op)

    def apply(self, step: Step) -> None:
        assert self.row is not None
        self.row = step(self.row)


@dataclass
class _Call:
    """One call of a block: its forward, its arguments with the tensors taken out, and the
    output of the forward that ran without recording (until the caller takes it)."""

    forward: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    slots: list[tuple[str | int, int]]  # (position or keyword, index into the tensors)
    output: Any = None

    @staticmethod
    def of(
        forward: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[_Call, list[torch.Tensor]]:
        tensors: list[torch.Tensor] = []
        slots: list[tuple[str | int, int]] = []
        keyed: list[tuple[str | int, Any]] = [*enumerate(args), *kwargs.items()]
        for key, value in keyed:
            if isinstance(value, torch.Tensor):
                slots.append((key, len(tensors)))
                tensors.append(value)
        # the tensors travel through the autograd function (saved for its backward), not here
        bare = tuple(None if isinstance(a, torch.Tensor) else a for a in args)
        rest = {k: None if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
        return _Call(forward, bare, rest, slots), tensors

    def run(
        self,
        tensors: tuple[torch.Tensor, ...] | list[torch.Tensor],
        through: Callable[..., Any] | None = None,
    ) -> Any:
        """The block's forward on ``tensors`` (``through``: called instead, e.g. the module)."""
        args, kwargs = list(self.args), dict(self.kwargs)
        for key, i in self.slots:
            if isinstance(key, int):
                args[key] = tensors[i]
            else:
                kwargs[key] = tensors[i]
        return (through or self.forward)(*args, **kwargs)


def _first_tensor(output: Any) -> tuple[torch.Tensor, Callable[[torch.Tensor], Any]]:
    """The block's hidden state among its outputs, and how to put another in its place."""
    if isinstance(output, torch.Tensor):
        return output, lambda t: t
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0], lambda t: type(output)([t, *output[1:]])
    raise TypeError(
        f"expected a transformer block to return its hidden state first, but got "
        f"{type(output).__name__}; explain this model with --method rollout or gradcam"
    )


class _Recomputed(torch.autograd.Function):
    """A block run without recording; recomputed, and its relevancy folded, in the backward."""

    @staticmethod
    def forward(ctx: Any, block: Block, fold: Fold, call: _Call, *tensors: torch.Tensor) -> Any:
        ctx.block, ctx.fold, ctx.call = block, fold, call
        ctx.cpu_rng = torch.get_rng_state()
        ctx.devices, ctx.device_rng = get_device_states(*tensors)
        ctx.device_type = next((t.device.type for t in tensors if t.device.type != "cpu"), "cpu")
        ctx.autocast = [
            (kind, torch.is_autocast_enabled(kind), torch.get_autocast_dtype(kind))
            for kind in {"cpu", ctx.device_type}
        ]
        ctx.save_for_backward(*tensors)
        call.output = call.run(tensors)  # grad mode is off in an autograd function's forward
        out, _ = _first_tensor(call.output)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:
        inputs = [t.detach().requires_grad_(t.requires_grad) for t in ctx.saved_tensors]
        fold: Fold = ctx.fold
        recorded: list[tuple[Site, torch.Tensor]] = []
        pooled = _pooled_blocks(ctx.block, fold, inputs[0])
        with _replayed(ctx), torch.enable_grad():
            recorder = AttentionRecorder(lambda site, probs: recorded.append((site, probs)))
            # a block that is itself an attention (a site named without a block index) is
            # called through the module, so that the recorder's hooks on it see the call
            # (its forward is its own again by now: the patch lasts the forward only)
            module = ctx.block.module
            through = module if any(s.module is module for s in ctx.block.sites) else None
            with recorder.watching(ctx.block.sites):
                out, _ = _first_tensor(ctx.call.run(inputs, through))
        steps: dict[int, Step] = {}
        state = {"next": len(recorded) - 1}

        def drain() -> None:  # fold the waiting steps in reverse forward order
            while state["next"] in steps:
                fold.apply(steps.pop(state["next"]))
                state["next"] -= 1

        def hook(i: int, site: Site, probs: torch.Tensor, g: torch.Tensor) -> None:
            steps[i] = fold.step(site, probs, g, pooled.get(site.name))
            drain()

        # each hook holds its probabilities, which hold the hook: removed after the
        # backward (not left to the garbage collector), so that every block's go at once
        handles = [
            probs.register_hook(partial(hook, i, site, probs))
            for i, (site, probs) in enumerate(recorded)
            if probs.requires_grad
        ]
        recorded.clear()
        wanted = [t for t in inputs if t.requires_grad]
        try:
            grads = iter(torch.autograd.grad(out, wanted, grad, allow_unused=True))
        finally:
            for handle in handles:
                handle.remove()
        while state["next"] >= 0:  # an attention the score does not reach adds nothing
            if state["next"] not in steps:
                state["next"] -= 1
            drain()
        return (None, None, None, *(next(grads) if t.requires_grad else None for t in inputs))


@contextmanager
def _replayed(ctx: Any) -> Iterator[None]:
    """The forward's random number generators (dropout draws the same masks) and autocast,
    as torch.utils.checkpoint restores them; the caller's generators are restored after."""
    with ExitStack() as stack:
        stack.enter_context(torch.random.fork_rng(devices=ctx.devices, device_type=ctx.device_type))
        torch.set_rng_state(ctx.cpu_rng)
        if ctx.devices:
            set_device_states(ctx.devices, ctx.device_rng, device_type=ctx.device_type)
        for kind, enabled, dtype in ctx.autocast:
            stack.enter_context(torch.autocast(kind, dtype=dtype, enabled=enabled))
        yield


def _pooled_blocks(block: Block, fold: Fold, x: torch.Tensor) -> dict[str, PooledBlock]:
    """MViT: the token operator of the block's pooled attention, from its input ``x``."""
    out = {}
    for site in block.sites:
        if site.kind == "pooled":
            module, thw = fold.pooled[site.name]
            out[site.name] = pooled_block(module, thw, skip_index(module, x, thw))
    return out


@contextmanager
def recomputing(blocks: tuple[Block, ...], fold: Fold) -> Iterator[None]:
    """During the block (in this thread), each block runs through :class:`_Recomputed`;
    the blocks' ``forward`` is as it was after, also when the forward raises."""
    owner = threading.get_ident()
    patched: list[tuple[nn.Module, bool, Any]] = []

    def make(block: Block, forward: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() != owner:
                return forward(*args, **kwargs)
            call, tensors = _Call.of(forward, args, kwargs)
            if not torch.is_grad_enabled() or not any(t.requires_grad for t in tensors):
                fold.called.append((block.name, False))
                return forward(*args, **kwargs)
            fold.called.append((block.name, True))
            hidden = _Recomputed.apply(block, fold, call, *tensors)
            output, call.output = call.output, None  # no cycle through the autograd graph
            _, replace = _first_tensor(output)
            return replace(hidden)

        return run

    try:
        for block in blocks:
            module = block.module
            own = "forward" in vars(module)
            patched.append((module, own, vars(module).get("forward")))
            module.forward = make(block, module.forward)  # type: ignore[method-assign]
        yield
    finally:
        for module, own, before in reversed(patched):
            if own:
                module.forward = before  # type: ignore[method-assign]
            else:
                del module.forward


def _plus_times(row: torch.Tensor, op: torch.Tensor) -> torch.Tensor:
    return row + (row[:, None, :] @ op)[:, 0]


def _tokens(site: Site, probs: torch.Tensor, n: int) -> int:
    """L, the number of tokens of the full set, from one attention call."""
    b, _, lq, _ = probs.shape
    if site.kind in ("joint", "pooled"):
        return lq
    if site.kind == "temporal":
        return 1 + (b // n) * lq
    return 1 + (b // n) * (lq - 1)
