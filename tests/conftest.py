"""Fixtures shared by tests across folders: the generated demo clip and the embedded model.

Helpers that are not fixtures (tiny fixed-weight networks, clip writers) live in
``tests/_models.py`` and ``tests/_clips.py``; fixtures of one folder stay in its own
``conftest.py``, fixtures of one file in that file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from _clips import write_demo_clip
from saliency_tubes.zoo import LoadedModel, load_model


@pytest.fixture(scope="session")
def demo_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A held-out synthetic clip of class 'shrink' (24 frames, 96x128, 12 fps), written once
    (tests read it, never change it)."""
    return write_demo_clip(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="session")
def clip_path(demo_clip: Path) -> Path:
    """:func:`demo_clip` under the name the command tests use."""
    return demo_clip


@pytest.fixture()
def tiny() -> LoadedModel:
    """The embedded, trained model (fresh for every test: tests check it is left unchanged)."""
    return load_model("tiny-actions")
