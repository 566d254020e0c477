"""The report's side panel, worded for people: a manifest as sections of short facts.

:func:`report_facts` turns a manifest (``manifest.json``'s content) into the sections
*model*, *method*, *video* and *options*, each a list of ``(name, text)``: numbers rounded
with their units (``2.00 s``, ``128 x 96 px``), the encoder as ``libx264 superfast crf 18``,
the focus floor as ``0.078 (20/255)``, lists joined with commas. Every value is text, so
the page shows it as it is (``textContent``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..pipeline.model_line import WEIGHTS_WORDS

__all__ = ["report_facts"]

_NORMALISE = {
    "video": "one scale for the whole video (moments compare)",
    "frame": "per-frame scale: each frame stretched to its own peak",
}


def _num(value: float, digits: int = 3) -> str:
    """``value`` with ``digits`` significant digits, no exponent for everyday sizes."""
    text = f"{value:.{digits}g}"
    return text if "e" not in text else f"{value:.{digits}e}"


def _yes(value: Any) -> str:
    return "yes" if value else "no"


def _model(manifest: dict[str, Any]) -> list[tuple[str, Any]]:
    model = manifest.get("model") or {}
    source = model.get("weights_source")
    preset = model.get("preset") or {}
    size = preset.get("size")
    fed = None
    if preset.get("frames") and size:
        fed = f"{preset['frames']} frames of {size[1]} x {size[0]} px"
        if preset.get("resize"):
            fed += f" ({preset['resize']} resize)"
    return [
        ("name", model.get("name")),
        ("weights", WEIGHTS_WORDS.get(str(source), source)),
        ("weights file", model.get("weights") if source in ("file", "download") else None),
        (
            "random weights",
            "yes: untrained, the tubes mean nothing" if model.get("random_weights") else "no",
        ),
        ("caveat", model.get("caveat")),
        ("layer", model.get("layer")),
        ("classifier", model.get("classifier")),
        ("input", fed),
    ]


def _method(manifest: dict[str, Any]) -> list[tuple[str, Any]]:
    options = manifest.get("options") or {}
    tube = manifest.get("tube") or {}
    windows = options.get("windows")
    return [
        ("method", manifest.get("method") or (manifest.get("model") or {}).get("method")),
        ("clip", f"{options['frames']} frames" if options.get("frames") else None),
        (
            "windows",
            f"{windows[0]} frames every {windows[1]}" if windows else "one clip over the video",
        ),
        (
            "upsampling",
            f"{options['interpolation']} spline, {options.get('align')} aligned"
            if options.get("interpolation")
            else None,
        ),
        (
            "tube grid",
            " x ".join(map(str, tube["layer_grid"])) + " (T x H x W) on the layer"
            if tube.get("layer_grid")
            else None,
        ),
        ("normalisation", tube.get("normalisation")),
        ("colour scale", _NORMALISE.get(str(options.get("normalise", "video")))),
    ]


def _video(manifest: dict[str, Any]) -> list[tuple[str, Any]]:
    source = manifest.get("source") or {}
    w, h = source.get("width"), source.get("height")
    frames, fps = source.get("num_frames"), source.get("fps")
    duration = source.get("duration")
    return [
        ("file", Path(str(source["path"])).name if source.get("path") else None),
        ("folder", str(Path(str(source["path"])).parent) if source.get("path") else None),
        ("size", f"{w} x {h} px" if w and h else None),
        ("frames", f"{frames} at {_num(float(fps))} fps" if frames and fps else frames),
        ("duration", f"{float(duration):.2f} s" if duration is not None else None),
        ("codec", source.get("codec")),
        ("rotation", f"{source['rotation']} deg" if source.get("rotation") else None),
    ]


def _options(manifest: dict[str, Any]) -> list[tuple[str, Any]]:
    options = manifest.get("options") or {}
    encoder = options.get("encoder") or {}
    floor = options.get("floor")
    return [
        ("colour map", options.get("colormap")),
        (
            "opacity",
            f"{float(options['opacity']):.2f}" if options.get("opacity") is not None else None,
        ),
        (
            "focus floor",
            f"{float(floor):.3f} ({round(float(floor) * 255)}/255)" if floor is not None else None,
        ),
        ("focus background", options.get("background")),
        (
            "layouts",
            ", ".join(str(x).replace("_", " ") for x in options.get("layouts") or []) or None,
        ),
        ("style", options.get("style")),
        ("formats", ", ".join(options.get("formats") or []) or None),
        ("timeline", _yes(options.get("timeline")) if "timeline" in options else None),
        (
            "encoder",
            " ".join(str(x) for x in (encoder.get("codec"), encoder.get("preset")) if x)
            + (f" crf {encoder['crf']}" if encoder.get("crf") is not None else "")
            or None,
        ),
        ("device", options.get("device")),
    ]


def report_facts(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The side panel's sections: ``[{"section": name, "facts": [[name, text], ...]}]``,
    facts without a value left out."""
    sections = [("model", _model), ("method", _method), ("video", _video), ("options", _options)]
    out = []
    for name, facts in sections:
        kept = [[k, str(v)] for k, v in facts(manifest) if v not in (None, "")]
        if kept:
            out.append({"section": name, "facts": kept})
    return out
