"""One forward per window: counted on the model, and the tubes are those of that forward."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from saliency_tubes.commands import CompareOptions, ExplainOptions, compare_classes, explain_video
from saliency_tubes.commands.pipeline import explaining
from saliency_tubes.video import probe, read_frames

from .conftest import assert_close, state


@contextmanager
def counted(model: torch.nn.Module) -> Iterator[list[int]]:
    """Count the model's forward calls (each entry: the batch size of one call)."""
    calls: list[int] = []

    def count(_module: torch.nn.Module, args: tuple) -> None:
        calls.append(int(args[0].shape[0]))

    handle = model.register_forward_pre_hook(count)
    try:
        yield calls
    finally:
        handle.remove()


def _window_clips(path: Path, loaded, windows: list[dict]) -> list[torch.Tensor]:
    info = probe(path)
    prep = loaded.preset.preprocess()
    return [prep(read_frames(path, w["frame_indices"], info=info))[None] for w in windows]


@pytest.mark.parametrize("method", ["cam", "gradcam"])
def test_top_k_over_windows_takes_one_forward_per_window(
    clip_path: Path, tmp_path: Path, tiny, method: str
) -> None:
    before = state(tiny.model)
    options = ExplainOptions(
        windows=(16, 4), classes="top2", method=method, formats=("npy",), progress=False
    )
    with counted(tiny.model) as calls:
        result = explain_video(clip_path, tmp_path / "out", tiny, options)
    windows = result.manifest["clips"]
    assert len(windows) == 3 and calls == [1, 1, 1]  # one forward per window, nothing else
    assert state(tiny.model) == before

    # The classes: the two highest mean probabilities over the windows, each window's raw
    # tubes those of a hand-run explainer asked for exactly these classes.
    explainer = tiny.explainer(method)
    clips = _window_clips(clip_path, tiny, windows)
    mean = torch.stack([torch.softmax(explainer.logits(c), 1)[0] for c in clips]).mean(0)
    chosen = mean.topk(2).indices.tolist()
    assert [t.index for t in result.tubes] == chosen
    assert_close([t.score for t in result.tubes], mean[chosen].numpy(), atol=1e-6)
    info = probe(clip_path)
    (e,) = explaining.explain(
        clip_path, info, [explaining.plan(info, tiny, options)], False, lambda _: None
    )
    assert e.classes == chosen
    for win, clip in zip(e.windows, clips, strict=True):
        assert_close(win.tubes().numpy(), explainer(clip, classes=chosen).raw[0].numpy(), atol=1e-5)


def test_every_class_tubes_past_the_memory_bound_go_to_a_file(
    clip_path: Path, tmp_path: Path, tiny, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = ExplainOptions(windows=(16, 4), classes="top2", formats=("npy",), progress=False)
    kept = explain_video(clip_path, tmp_path / "kept", tiny, options)
    info = probe(clip_path)
    (e,) = explaining.explain(
        clip_path, info, [explaining.plan(info, tiny, options)], False, lambda _: None
    )
    one_window = 8 * 4 * int(np.prod(e.track.layer_grid))  # 8 classes, float32
    monkeypatch.setattr(explaining, "_IN_MEMORY", one_window)  # window 0 kept, 1 and 2 spilled
    spilled = explain_video(clip_path, tmp_path / "spilled", tiny, options)
    assert [t.index for t in spilled.tubes] == [t.index for t in kept.tubes]
    np.testing.assert_array_equal(
        np.load(tmp_path / "spilled" / "tube.npy"), np.load(tmp_path / "kept" / "tube.npy")
    )


def test_a_contrast_is_explained_from_the_same_forward(
    clip_path: Path, tmp_path: Path, tiny
) -> None:
    names = tiny.categories
    options = CompareOptions(
        classes="top1", contrast=(names[0], names[1]), formats=("npy",), progress=False
    )
    with counted(tiny.model) as calls:
        result = compare_classes(clip_path, tmp_path / "out", tiny, options)
    assert calls == [1]
    explained = {t.name for t in result.tubes}
    assert {names[0], names[1]} <= explained
