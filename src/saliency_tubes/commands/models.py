"""``models``: the registered models, one line each, with layer, head, preset and method."""

from __future__ import annotations

from ..zoo import available_models, get_adapter

__all__ = ["model_lines"]


def model_lines() -> list[str]:
    """One line per registered model.

    ``cam=exact``: the class score is the CAM tube's mean plus a constant (global pool and
    a linear head after the layer); ``cam=approx``: the paper's formula, not exact for this
    head; ``cam=n/a``: no pooled linear head over the layer (MViT's class token), Grad-CAM
    only.
    """
    lines = []
    for name in available_models():
        a = get_adapter(name)
        p = a.preset
        layer = "+".join(a.layer) if isinstance(a.layer, tuple) else a.layer
        approx = a.default_method == "cam" or a.pooled_head is not None
        cam = "exact" if a.cam_exact else ("approx" if approx else "n/a")
        lines.append(
            f"{name:16s} layer={layer or 'auto'} head={a.classifier or 'auto'} "
            f"input={p.frames}x{p.size[0]}x{p.size[1]} ({p.resize}) method={a.default_method} "
            f"cam={cam}  {a.description}"
        )
    return lines
