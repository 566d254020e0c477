"""The pieces of Ray's two stages that need no Ray: the bounded call and the actors' pools."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import pytest

from saliency_tubes.commands.batch.ray_stages import Bounded, stage_pools


def test_a_bounded_call_gives_its_value_raises_its_error_and_is_spent_past_its_time() -> None:
    bounded = Bounded()
    assert bounded.run(lambda: 7, None) == (True, 7)
    assert bounded.run(lambda: 8, 60.0) == (True, 8)
    with pytest.raises(ValueError, match="broken"):
        bounded.run(lambda: (_ for _ in ()).throw(ValueError("broken")), 60.0)
    assert bounded.stuck is None  # an error is not a timeout
    release = threading.Event()
    assert bounded.run(release.wait, 0.01) == (False, None)
    assert bounded.stuck is not None and bounded.stuck.is_alive()  # spent: it would exit
    release.set()
    bounded.stuck.join(timeout=60)
    bounded.leave_if_spent()  # the thread has ended: the actor stays


def _settings(device: str, threads: int | None) -> Any:
    """What the pools read of the settings (a cuda ModelOptions needs a GPU to be made)."""
    return SimpleNamespace(model=SimpleNamespace(device=device), threads=threads)


@pytest.mark.parametrize(
    ("resources", "device", "threads", "decoders", "want"),
    [
        # a GPU: one explain actor on it (and one CPU), the other CPUs decode
        (
            {"CPU": 16, "GPU": 1},
            "cuda",
            None,
            None,
            (15, 1.0, 1, {"num_gpus": 1, "num_cpus": 1}, 1),
        ),
        ({"CPU": 16, "GPU": 1}, "cuda", 4, 6, (6, 1.0, 1, {"num_gpus": 1, "num_cpus": 1}, 4)),
        # CPUs only: half explain, the rest decode; --decoders at most the CPUs left
        ({"CPU": 2}, "cpu", None, None, (1, 1.0, 1, {"num_cpus": 1}, 1)),
        ({"CPU": 8}, "cpu", 2, 9, (4, 1.0, 2, {"num_cpus": 2}, 2)),
        # one CPU: the decode actor shares it with the explain actor
        ({"CPU": 1}, "cpu", None, None, (1, 0.0, 1, {"num_cpus": 1}, 1)),
    ],
)
def test_the_stages_pools(resources, device, threads, decoders, want) -> None:
    assert stage_pools(resources, _settings(device, threads), 100, decoders) == want


def test_no_pool_is_larger_than_the_videos() -> None:
    count, _, explainers, _, _ = stage_pools({"CPU": 32}, _settings("cpu", None), 3, None)
    assert (count, explainers) == (3, 3)
