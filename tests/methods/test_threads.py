"""Explainers used from several threads at once: each call gets the tubes it gets alone."""

from __future__ import annotations

import threading
from collections.abc import Callable
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


def test_a_lock_per_model_and_a_thread_may_nest_calls() -> None:
    from saliency_tubes.hooks import model_lock

    first, second = SmallResNet3D(), SmallResNet3D()
    assert model_lock(first) != model_lock(second)
    assert model_lock(first) == model_lock(first)
    assert model_lock(first.fc) == model_lock(first)  # a submodule takes its model's lock
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


def test_a_wrapper_and_the_model_it_wraps_share_one_lock_whichever_comes_first() -> None:
    from saliency_tubes.hooks import model_lock

    inner = SmallResNet3D()
    assert model_lock(inner) == model_lock(_Wrap(inner))  # the inner model first
    fresh = SmallResNet3D()
    outer = _Wrap(fresh)
    assert model_lock(outer) == model_lock(fresh)  # the wrapper first
    assert model_lock(outer) != model_lock(inner)
    backbone = SmallResNet3D()
    heads = [torch.nn.Sequential(backbone, torch.nn.Linear(5, 2)) for _ in range(2)]
    assert model_lock(heads[0]) == model_lock(heads[1])  # two heads on one backbone


def test_a_wrapper_of_two_models_locked_apart_holds_both_locks() -> None:
    from saliency_tubes.hooks import model_lock

    one, two = SmallResNet3D(), SmallResNet3D()
    lock_one, lock_two = model_lock(one), model_lock(two)
    both = torch.nn.ModuleList([one, two])
    seen: list[bool] = []

    def look() -> None:
        seen.extend([lock_one.held_elsewhere(), lock_two.held_elsewhere()])

    with model_lock(both):
        other = threading.Thread(target=look)
        other.start()
        other.join(timeout=60)
    assert seen == [True, True]
    look()  # released on the way out
    assert seen[2:] == [False, False]


class _Gate(torch.nn.Module):
    """Passes its input on; the first call runs ``action`` (a rendezvous with another thread)."""

    def __init__(self, action: Callable[[], None]) -> None:
        super().__init__()
        self.action = action
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == 1:
            self.action()
        return x


def _gated(action: Callable[[], None]) -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv3d(3, 4, 1),
        _Gate(action),
        torch.nn.AdaptiveAvgPool3d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(4, 3),
    )


def test_two_models_explain_at_once_in_two_threads() -> None:
    """Model A's forward waits, holding A's lock, until model B's forward has run: A's call
    completes in time only if B's call runs while A's is inside its forward. Under one lock
    for every model, A's wait would time out (the waits are bounded, generous for a slow
    machine; a failure costs one such wait, not a hang)."""
    a_inside, b_ran = threading.Event(), threading.Event()
    waited: dict[str, bool] = {}

    def a_action() -> None:
        a_inside.set()
        waited["a"] = b_ran.wait(timeout=60)

    def b_action() -> None:
        waited["b"] = a_inside.wait(timeout=60)
        b_ran.set()

    model_a, model_b = _gated(a_action), _gated(b_action)
    clip = torch.randn(1, 3, 2, 4, 4, generator=torch.Generator().manual_seed(3))
    results: dict[str, torch.Tensor] = {}

    def explain(name: str, model: torch.nn.Module) -> None:
        results[name] = st.GradCAM(model, layer="1")(clip, classes="top1").raw

    threads = [
        threading.Thread(target=explain, args=("a", model_a)),
        threading.Thread(target=explain, args=("b", model_b)),
    ]
    threads[0].start()
    assert a_inside.wait(timeout=60)  # A holds its lock and waits inside its forward
    threads[1].start()
    for thread in threads:
        thread.join(timeout=120)
    assert waited == {"a": True, "b": True}
    assert set(results) == {"a", "b"}
    alone = st.GradCAM(model_a, layer="1")(clip, classes="top1").raw  # gates open now
    assert torch.equal(results["a"], alone)
    assert hooks_left(model_a) == 0 and hooks_left(model_b) == 0
