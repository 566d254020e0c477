"""Explainers used from several threads at once: each call gets the tubes it gets alone."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch

import saliency_tubes as st
from _models import SmallResNet3D, hooks_left
from saliency_tubes.hooks import preserved_state


def _clips(count: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(7)
    return [torch.randn(1, 3, 4, 16, 16, generator=gen) for _ in range(count)]


def test_two_threads_on_one_model_match_the_sequential_tubes() -> None:
    model = SmallResNet3D(num_classes=5).train()  # training mode, which the calls must keep
    explainers = [st.GradCAM(model), st.SaliencyTubes(model)]
    clips = _clips(40)
    jobs = [(explainers[i % 2], clip) for i, clip in enumerate(clips)]
    alone = [explainer(clip, classes="top2") for explainer, clip in jobs]
    assert model.training and all(m.training for m in model.modules())

    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(lambda job: job[0](job[1], classes="top2"), jobs))

    for one, other in zip(alone, together, strict=True):
        assert torch.equal(one.maps, other.maps)
        assert torch.equal(one.raw, other.raw)
        assert torch.equal(one.classes, other.classes)
        assert torch.equal(one.logits, other.logits)
    assert all(m.training for m in model.modules())
    assert all(p.requires_grad for p in model.parameters())
    assert hooks_left(model) == 0


def test_one_reentrant_lock_for_every_model() -> None:
    """Models may share modules, so one lock serves them all, and a thread may nest calls."""
    from saliency_tubes.hooks import model_lock

    first, second = SmallResNet3D(), SmallResNet3D()
    assert model_lock(first) is model_lock(second)
    with preserved_state(first, eval_mode=True), preserved_state(first, eval_mode=True):
        assert not first.training  # the same thread may nest the calls
    assert first.training


class _Wrap(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


def test_a_model_and_its_wrapper_in_two_threads_keep_their_state() -> None:
    """A wrapper shares every module with the model it wraps: explaining both at once from
    two threads gives the sequential tubes and leaves both in training mode."""
    inner = SmallResNet3D(num_classes=5).train()
    outer = _Wrap(inner).train()
    jobs = [(st.GradCAM(inner if i % 2 else outer), clip) for i, clip in enumerate(_clips(20))]
    alone = [explainer(clip, classes="top1") for explainer, clip in jobs]
    with ThreadPoolExecutor(max_workers=2) as pool:
        together = list(pool.map(lambda job: job[0](job[1], classes="top1"), jobs))
    for one, other in zip(alone, together, strict=True):
        assert torch.equal(one.raw, other.raw)
    assert all(m.training for m in outer.modules()) and hooks_left(outer) == 0
