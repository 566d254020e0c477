"""``run_demo`` called directly: the generated clip, its mask and the embedded model's answer."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from saliency_tubes.commands import DEMO_SEED, run_demo
from saliency_tubes.commands.demo import DEMO_FRAMES, DEMO_SIZE
from saliency_tubes.synthetic import make_clip


def test_run_demo(tmp_path: Path) -> None:
    result = run_demo(tmp_path / "demo", formats=("npy",), progress=False)
    truth = make_clip(seed=DEMO_SEED, frames=DEMO_FRAMES, size=DEMO_SIZE)
    assert result.manifest["demo"]["true_class"] == "shrink" == result.tubes[0].name
    assert result.tubes[0].score > 0.9 and len(result.tubes) == 2
    np.testing.assert_array_equal(np.load(tmp_path / "demo" / "input_mask.npy"), truth.mask)
    assert result.manifest["model"]["weights"] is not None  # trained, shipped weights


def test_a_failed_demo_leaves_the_folder_as_it_was(tmp_path: Path) -> None:
    import pytest

    from saliency_tubes.errors import ClassSelectionError, InputError

    with pytest.raises(InputError, match="expected method one of"):
        run_demo(tmp_path / "new", method="bogus", progress=False)
    assert not (tmp_path / "new").exists()
    out = tmp_path / "demo"
    run_demo(out, formats=("npy",), progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(ClassSelectionError, match="but got 'top0'"):
        run_demo(out, classes="top0", formats=("npy",), progress=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
