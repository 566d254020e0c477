"""``evaluate VIDEO``'s printed table: the scores with their units, steps, substrate and
sanity steps said, as the README's benchmark table says them.

:func:`protocol_lines` words a protocol (deletion / insertion steps, substrate, units and
cells, pointing tolerance, the sanity steps shown); :func:`video_table` adds a row per tube
of a ``report.json`` under column headings that carry each metric's direction and unit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["protocol_lines", "sanity_step", "video_table"]


def sanity_step(step: int, layers: Sequence[str]) -> str:
    """What step ``step`` of the cascade is: ``trained``, ``top 1 (fc) random``, ``all 5
    random``."""
    if step == 0:
        return "trained"
    if step >= len(layers):
        return f"all {len(layers)} layers random"
    return f"top {step} ({', '.join(layers[:step])}) random"


def _units(units: Sequence[str], cell: Sequence[int]) -> str:
    words = {
        "voxel": f"voxel (cells of {cell[0]} frame x {cell[1]} x {cell[2]} px)",
        "frame": "frame (whole frames)",
        "tube": "tube (the tube's own voxels)",
    }
    return ", ".join(words.get(u, u) for u in units)


def protocol_lines(
    protocol: dict[str, Any],
    units: Sequence[str],
    layers: Sequence[str] = (),
    steps: Sequence[int] = (),
) -> list[str]:
    """The protocol in words: one line for deletion / insertion, one for localisation and
    one for the sanity check (its layers and the steps that were scored)."""
    cell = protocol.get("cell") or (1, 4, 4)
    lines = [
        f"deletion / insertion: area under the class probability curve, "
        f"{protocol.get('steps')} steps, {protocol.get('substrate')} substrate, units "
        f"{_units(units, cell)}",
        f"pointing game: {protocol.get('tolerance_frames')} frame / "
        f"{protocol.get('tolerance_px'):g} px tolerance; mass: share of the tube inside the "
        "ground truth; IoU: of the tube's top |G| voxels with the ground truth |G|",
    ]
    if protocol.get("increase_tolerance") is not None:  # reports written before it lack it
        lines.append(
            "confidence, the clip kept where the tube is high: average drop max(0, Y - O) / Y; "
            f"increase O > Y + {protocol['increase_tolerance']:g} (Y, O: the class "
            "probability on the clip, on the kept clip)"
        )
    if layers:
        shown = "; ".join(f"step {s}: {sanity_step(s, layers)}" for s in steps)
        lines.append(
            f"sanity: Spearman ρ between the trained tube and the tube of the model with "
            f"its top layers randomised (cascade over {', '.join(layers)}; {shown}); "
            "near 0 is what a faithful method gives"
        )
    return lines


def video_table(report: dict[str, Any]) -> str:
    """The table ``evaluate VIDEO`` prints from its ``report.json`` content: the protocol's
    lines, then a row per tube (a method with its interpolation, or a baseline)."""
    ev = report.get("evaluation") or {}
    units = list(ev.get("units") or ["voxel"])
    layers = list(report.get("sanity_layers") or [])
    steps = list(ev.get("sanity_steps") or [])
    lines = protocol_lines(report.get("protocol") or {}, units, layers, steps)
    tubes = report.get("tubes") or {}
    # A plain callable: every tube's sanity entry is the reason it has none (a string).
    na = next((t["sanity"] for t in tubes.values() if isinstance(t.get("sanity"), str)), None)
    if na is not None:
        lines.append(f"sanity: {na}")
    columns: list[tuple[str, str, str]] = [
        ("pointing", "pointing ↑", ".2f"),
        ("mass", "mass ↑", ".3f"),
        ("iou", "IoU ↑", ".3f"),
    ]
    for i, unit in enumerate(units):
        suffix = "" if i == 0 else f"_{unit}"
        columns += [
            (f"deletion{suffix}", f"deletion {unit} ↓", ".3f"),
            (f"insertion{suffix}", f"insertion {unit} ↑", ".3f"),
        ]
    heads = ["tube"] + [head for _, head, _ in columns]
    # As the README's table: the cascade's first step (the top layer random) and its last.
    shown = [i for i in sorted({1, len(steps) - 1}) if 0 < i < len(steps)]
    heads += [f"sanity ρ step {steps[i]} ↓" for i in shown] + (["sanity ρ"] if na else [])
    rows = []
    for name, t in tubes.items():
        cells = [name]
        for key, _, fmt in columns:
            value = t.get(key)
            cells.append("n/a" if value is None else format(value, fmt))
        rho = t.get("sanity") or []
        for i in shown:
            value = rho[i] if i < len(rho) else None
            cells.append("n/a" if value is None else f"{value:.2f}")
        cells += ["n/a"] if na else []
        rows.append(cells)
    widths = [max(len(str(r[i])) for r in [heads, *rows]) for i in range(len(heads))]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        return "  ".join([first, *(c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))])

    legend = "↑: higher is better, ↓: lower is better; n/a: undefined for that tube"
    return "\n".join([*lines, legend, line(heads), *(line(r) for r in rows)])
