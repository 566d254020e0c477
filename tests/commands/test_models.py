"""``model_lines`` called directly: one line per registered model, from the registry."""

from __future__ import annotations

from saliency_tubes.commands import model_lines
from saliency_tubes.zoo import available_models, get_adapter


def test_one_line_per_registered_model() -> None:
    lines = model_lines()
    assert [line.split()[0] for line in lines] == available_models()
    tiny = next(line for line in lines if line.startswith("tiny-actions "))
    preset = get_adapter("tiny-actions").preset
    assert f"input={preset.frames}x{preset.size[0]}x{preset.size[1]} (full)" in tiny
    assert "layer=features head=fc" in tiny and "method=cam cam=exact" in tiny
    mvit = next(line for line in lines if line.startswith("mvit_v1_b "))
    assert "method=gradcam cam=n/a" in mvit
