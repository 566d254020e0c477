"""Attention rollout and gradient-weighted attention relevancy over space-time tokens.

Abnar and Zuidema, "Quantifying Attention Flow in Transformers", ACL 2020 (rollout);
Chefer, Gur and Wolf, "Generic Attention-model Explainability for Interpreting Bi-Modal and
Encoder-Decoder Transformers", ICCV 2021 (relevancy). Both follow the attention through
every block, from the tokens the head reads back to the embeddings' space-time tokens; the
attention maps are recorded by :mod:`saliency_tubes.methods.attention_sites`, which also
says how a divided (TimeSformer) attention becomes an operator on the full token set:
rollout's during the call's one forward (under no_grad: autograd keeps nothing),
relevancy's block by block in the backward, each block run again from its input
(:mod:`saliency_tubes.methods.attention_recompute`), so that autograd holds one block's
attention at a time.

Both methods only need the row of the relevance operator that the head reads (the class
token's, or the mean row of a mean-pooled head), so they carry that row r from the last
block to the first: with the per-attention operators M_1 ... M_B in forward order,

* rollout: ``r ← r · Ã_b`` for b = B ... 1, with ``Ã = (0.5·A + 0.5·I)`` rows renormalised
  and A the heads' mean (or max, or min) attention: r·Ã_B···Ã_1 is the row of Abnar's
  product ``Ã_B···Ã_1``;
* relevancy: ``r ← r + r · Ā_b`` for b = B ... 1, with ``Ā = mean_heads((∇A ⊙ A)⁺)``, ∇A
  the gradient of the class score: r·(I + Ā_B)···(I + Ā_1) is the row of Chefer's R after
  ``R ← R + Ā·R`` from ``R = I``.

The row costs one (L,) x (L, L) product per attention instead of an (L, L) x (L, L) one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from functools import partial
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..errors import InputError
from ..hooks import LayerSpec
from ..vocabulary import ATTENTION_METHODS, METHOD_NAMES
from .attention_pooled import PooledBlock, watching_blocks
from .attention_recompute import Fold, find_blocks, recomputing
from .attention_sites import (
    AttentionLayout,
    AttentionRecorder,
    Site,
    find_layout,
    fuse_heads,
    place,
    readout_row,
    real,
)
from .base import ClassSpec, Explainer, ExplainerOptions, ForwardPass, LayersSpec, Tubes

if TYPE_CHECKING:
    from typing_extensions import Unpack

HEAD_FUSIONS = ("mean", "max", "min")
"""How rollout fuses the heads of one attention map."""

Step = Callable[[torch.Tensor], torch.Tensor]
"""One attention's operator on the carried row: (N, L_out) -> (N, L_in)."""


def no_attention_error(model: nn.Module, method: str) -> InputError:
    """The one line that refuses a model whose attention the methods cannot follow."""
    others = ", ".join(m for m in METHOD_NAMES if m not in ATTENTION_METHODS)
    return InputError(
        f"expected a video transformer for --method {method} (VideoMAE, TimeSformer or ViViT "
        f"from transformers, MViT from torchvision or pytorchvideo), but {type(model).__name__} has no attention these methods can "
        f"follow; use one of the methods that apply: {others}"
    )


class AttentionExplainer(Explainer):
    """What rollout and relevancy share: the attention maps of the call's forward.

    Args:
        model: a supported video transformer (see :func:`~saliency_tubes.methods.attention_sites.find_layout`).
        layer, classifier: accepted and ignored: relevance is carried to the embeddings'
            tokens (reported as the layer) and the head is not needed.
        **options: :class:`~saliency_tubes.Explainer`'s keywords; ``reshape`` defaults to
            the model's embedding token grid.
    """

    needs_head = False

    def __init__(
        self,
        model: nn.Module,
        layer: LayersSpec = None,
        classifier: LayerSpec = None,
        **options: Unpack[ExplainerOptions],
    ) -> None:
        del layer, classifier
        if not isinstance(model, nn.Module):
            raise TypeError(f"expected a torch.nn.Module, but got {type(model).__name__}")
        found = find_layout(model)
        if found is None:
            raise no_attention_error(model, self.method)
        self.attention: AttentionLayout = found
        if options.get("reshape") is None:
            options["reshape"] = found.grid
        super().__init__(model, found.tokens, None, **options)
        self._local = threading.local()  # each thread's call keeps its own attention maps

    def __call__(
        self, clip: torch.Tensor, classes: ClassSpec = "top1", *, upsample: bool = True
    ) -> Tubes:
        self._local.records = []
        self._local.blocks = {}
        try:
            return super().__call__(clip, classes, upsample=upsample)
        finally:
            self._local.records = None
            self._local.blocks = None
            self._local.fold = None

    @property
    def _records(self) -> list[Any] | None:
        """This thread's call's records (None outside a call)."""
        return getattr(self._local, "records", None)

    def _forward(self, clip: torch.Tensor) -> Any:
        records = self._records
        if records is None:  # logits(): no attention needed
            return super()._forward(clip)
        with self._recording(clip.shape[0], records):
            return super()._forward(clip)

    def _recording(self, n: int, records: list[Any]) -> AbstractContextManager[object]:
        """What the call's forward (of ``n`` clips) records of the attention into ``records``."""
        raise NotImplementedError

    def _relevance(self, forward: ForwardPass) -> torch.Tensor:
        """(N, K, L) relevance of every token (the class token too) for each class."""
        raise NotImplementedError

    def _raw_maps(self, forward: ForwardPass) -> list[torch.Tensor]:
        if not self._records:
            raise InputError(
                f"expected the attention of {type(self.model).__name__} to be called during the "
                "forward pass, but none was; pass the model itself, not a part of it"
            )
        relevance = self._relevance(forward)  # (N, K, L)
        n, k, length = relevance.shape
        tokens = relevance.reshape(n * k, length, 1)
        grid = forward.volume(tokens)  # (N K, 1, T', H', W')
        return [grid.reshape(n, k, *grid.shape[2:])]

    def _start(self, n: int, size: int, like: torch.Tensor) -> torch.Tensor:
        return readout_row(self.attention, n, size, like)


class AttentionRollout(AttentionExplainer):
    r"""Attention rollout (Abnar and Zuidema 2020): **class-agnostic**.

    Per attention, the heads are fused (``head_fusion``: their mean by default, or max, or
    min), the identity is added for the residual (``0.5·A + 0.5·I``, rows renormalised) and
    the maps are multiplied from the first block to the last; the row of the token the head
    reads (the class token; the mean over tokens for VideoMAE's mean-pooled head) gives a
    relevance per space-time token. It never looks at a class: every class of a sample gets
    the same tube (:attr:`Tubes.class_agnostic`). One forward, no backward.

    Args:
        model: a VideoMAE, TimeSformer or ViViT video classifier of ``transformers``.
        head_fusion: "mean", "max" or "min" over the heads of each attention.
        **options: :class:`~saliency_tubes.Explainer`'s keywords.
    """

    method = "rollout"
    class_agnostic = True

    def __init__(
        self,
        model: nn.Module,
        layer: LayersSpec = None,
        classifier: LayerSpec = None,
        *,
        head_fusion: str = "mean",
        **options: Unpack[ExplainerOptions],
    ) -> None:
        if head_fusion not in HEAD_FUSIONS:
            raise InputError(
                f"expected head_fusion one of {', '.join(HEAD_FUSIONS)}, but got {head_fusion!r}"
            )
        self.head_fusion = head_fusion
        super().__init__(model, layer, classifier, **options)

    @contextmanager
    def _recording(self, n: int, records: list[Any]) -> Iterator[None]:
        """Each attention's fused map (and MViT's block operators), in forward order."""

        def keep(site: Site, probs: torch.Tensor) -> None:
            records.append(self._keep(site, probs, n))

        with ExitStack() as stack:
            if self.attention.blocks:  # pooling attention: each block's token operator
                blocks = {name: (block, thw) for name, block, thw in self.attention.blocks}
                stack.enter_context(watching_blocks(blocks, self._local.blocks))
            stack.enter_context(AttentionRecorder(keep).watching(self.attention.sites))
            yield

    def _block(self, site: Site) -> PooledBlock:
        """The token operator of a pooled site's block, recorded in this call."""
        blocks: dict[str, PooledBlock] = self._local.blocks
        return blocks[site.name]

    def _keep(self, site: Site, probs: torch.Tensor, n: int) -> tuple[torch.Tensor, Step]:
        """(an attention's fused map, r ↦ r·Ã for its block)."""
        fused = fuse_heads(real(probs.detach()), self.head_fusion)
        if site.kind == "pooled":
            return fused, partial(self._block(site).rollout, fused=fused)
        op = place(fused, site.kind, n, cls_rows="mean", fill_identity=True)
        eye = torch.eye(op.shape[-1], dtype=op.dtype, device=op.device)
        mixed = 0.5 * op + 0.5 * eye
        mixed = mixed / mixed.sum(dim=-1, keepdim=True)
        return mixed, partial(_times, op=mixed)

    def _relevance(self, forward: ForwardPass) -> torch.Tensor:
        ops: list[tuple[torch.Tensor, Step]] = self._records or []
        last = ops[-1][0]
        row = self._start(last.shape[0], last.shape[-2], last)
        for _, step in reversed(ops):
            row = step(row)
        return row[:, None].expand(-1, forward.classes.shape[1], -1)


class AttentionRelevancy(AttentionExplainer):
    r"""Gradient-weighted attention relevancy (Chefer, Gur and Wolf, ICCV 2021): class-specific.

    Per attention, ``Ā = mean_heads((∇A ⊙ A)⁺)`` with ∇A the gradient of the class's score
    (its logit) with respect to the attention probabilities; from ``R = I``, ``R ← R + Ā·R``
    block after block; the row of the token the head reads gives each space-time token's
    relevance. TimeSformer's divided attention enters as two operators per block (temporal
    then spatial) on the full token set. One forward, and per explained class one backward
    to the embeddings (no parameter gradient) in which every block runs its forward again
    (:mod:`saliency_tubes.methods.attention_recompute`): autograd holds the blocks' inputs
    and one block's attention at a time, never every block's.

    The recommended method for the transformers of the zoo.

    Args:
        model: a VideoMAE, TimeSformer or ViViT video classifier of ``transformers``.
        **options: :class:`~saliency_tubes.Explainer`'s keywords.
    """

    method = "relevancy"
    needs_gradients = True

    @contextmanager
    def _recording(self, n: int, records: list[Any]) -> Iterator[None]:
        """Each block runs through the recomputing autograd function; ``records`` gets
        one entry per block call (:attr:`~saliency_tubes.methods.attention_recompute.Fold.called`)."""
        pooled = {name: (block, thw) for name, block, thw in self.attention.blocks}
        self._local.fold = Fold(self.attention, n, pooled, called=records)
        with recomputing(find_blocks(self.model, self.attention), self._local.fold):
            yield

    def _relevance(self, forward: ForwardPass) -> torch.Tensor:
        fold: Fold = self._local.fold
        classes = forward.classes
        rows: list[torch.Tensor] = []
        with torch.enable_grad():
            for k in range(classes.shape[1]):
                fold.row = None
                if forward.logits.grad_fn is not None and all(ok for _, ok in fold.called):
                    score = forward.logits.gather(1, classes[:, k : k + 1]).sum()
                    last = k == classes.shape[1] - 1
                    torch.autograd.grad(
                        score, forward.activations, retain_graph=not last, allow_unused=True
                    )
                if fold.row is None or not all(ok for _, ok in fold.called):
                    raise InputError(
                        "the class scores do not depend on the attention through autograd; "
                        "explain the whole model (its forward from the clip to the scores)"
                    )
                rows.append(fold.row)
        return torch.stack(rows, dim=1)


def _times(row: torch.Tensor, op: torch.Tensor) -> torch.Tensor:
    return (row[:, None, :] @ op)[:, 0]
