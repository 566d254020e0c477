"""Forward time of every registered model adapter at its preset size, and one explain call.

For each adapter of ``saliency_tubes.zoo.available_models()`` (the embedded tiny-actions,
resnet3d-*, densenet3d-*, torchvision's video models, pytorchvideo's when that extra is
importable): build it with ``load_model(name)`` (random weights except tiny-actions' shipped
ones: weights do not change the time), make one random clip of the preset's size
(batch 1, ``1 x 3 x frames x H x W``), then time, in alternating rounds so that load changes
hit both alike:

* forward: ``model(inputs)`` under ``torch.no_grad()`` (``inputs`` = the adapter's packing
  of the clip, e.g. SlowFast's two pathways);
* explain: one full call of ``loaded.explainer(default_method)`` for the top-1 class: the
  forward with the layer hooked, the tube (CAM: class weights times activations; Grad-CAM:
  the gradient from the score back to the target layer only), cubic upsampling to the
  clip's T x H x W and normalisation.

One untimed warm-up of each comes first. Medians over the rounds; the ratio is explain /
forward of the medians. torch runs on one thread (``--threads``), on the CPU.

The Markdown results (machine, software, one row per model) go to
``benchmarks/RESULTS_zoo.md`` (``--out``) and to stdout. Models that cannot be built here
(an optional package missing) get a row that says why.

With ``--update``, only the rows of the models measured are replaced (or added) in the
existing ``--out`` file; the other rows and the hand-written notes stay, and a line under
the header says which rows were re-measured, when, on what machine and with which command.

Usage (from the project root; big models take a while, so they get fewer rounds):
    .venv/bin/python benchmarks/bench_zoo.py                         # every model
    .venv/bin/python benchmarks/bench_zoo.py --models r3d_18 s3d --rounds 5
    .venv/bin/python benchmarks/bench_zoo.py --models videomae-base vivit-b --update
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from _machine import cpu_model  # benchmarks/_machine.py (scripts run from this folder)

from saliency_tubes.errors import SaliencyTubesError
from saliency_tubes.zoo import available_models, get_adapter, load_model

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Row:
    """One model's measurement (or why it has none)."""

    name: str
    input: str
    method: str
    params_m: float | None = None
    forward_s: float | None = None
    explain_s: float | None = None
    forward_min_s: float | None = None
    explain_min_s: float | None = None
    rounds: int = 0
    note: str = ""

    def markdown(self) -> str:
        if (
            self.forward_s is None
            or self.explain_s is None
            or self.forward_min_s is None
            or self.explain_min_s is None
        ):
            return f"| {self.name} | {self.input} | {self.method} | | | | | | | {self.note} |"
        return (
            f"| {self.name} | {self.input} | {self.method} | {self.params_m:.1f} | "
            f"{self.forward_s:.3f} | {self.explain_s:.3f} | {self.explain_s / self.forward_s:.2f} | "
            f"{self.explain_min_s / self.forward_min_s:.2f} | {self.rounds} | {self.note} |"
        )


def _time(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(name: str, rounds: int, slow_s: float, slow_rounds: int) -> Row:
    """Build ``name`` and time its forward and one explain call at the preset size."""
    adapter = get_adapter(name)
    p = adapter.preset
    row = Row(name, f"{p.frames}x{p.size[0]}x{p.size[1]}", adapter.default_method)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded = load_model(name)
    except (SaliencyTubesError, ImportError) as exc:
        row.note = f"not built here: {str(exc).splitlines()[0]}"
        return row
    except Exception as exc:  # noqa: BLE001 - a broken adapter is reported, the run goes on
        row.note = f"build failed: {type(exc).__name__}: {str(exc).splitlines()[0]}"
        return row
    model = loaded.model
    row.params_m = sum(t.numel() for t in model.parameters()) / 1e6
    clip = torch.randn(1, 3, p.frames, *p.size, generator=torch.Generator().manual_seed(0))
    pack = adapter.inputs
    explainer = loaded.explainer(adapter.default_method)

    def forward() -> None:
        # Packed anew each call: pytorchvideo's SlowFast overwrites its input list in place.
        with torch.no_grad():
            model(pack(clip) if pack is not None else clip)

    def explain() -> None:
        explainer(clip, classes="top1")

    forwards: list[float] = []
    explains: list[float] = []
    try:
        warm = _time(forward)
        _time(explain)
        n = slow_rounds if warm > slow_s else rounds
        for _ in range(n):
            forwards.append(_time(forward))
            explains.append(_time(explain))
    except Exception as exc:  # noqa: BLE001 - a broken adapter is reported, the run goes on
        row.note = f"run failed: {type(exc).__name__}: {str(exc).splitlines()[0]}"
        return row
    row.forward_s = statistics.median(forwards)
    row.explain_s = statistics.median(explains)
    row.forward_min_s = min(forwards)
    row.explain_min_s = min(explains)
    row.rounds = n
    return row


def _ram_gib() -> str:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            kib = int(f.readline().split()[1])
        return f"{kib / 2**20:.1f} GiB RAM"
    except (OSError, ValueError, IndexError):
        return "RAM unknown"


def _load() -> str:
    try:
        return "/".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def _versions() -> str:
    parts = [f"Python {platform.python_version()}", f"torch {torch.__version__}"]
    for module in ("torchvision", "pytorchvideo", "transformers"):
        mod = sys.modules.get(module)
        if mod is not None:
            parts.append(f"{module} {getattr(mod, '__version__', '?')}")
    return ", ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=None, help="default: every registered")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--slow-seconds",
        type=float,
        default=4.0,
        help="a model whose warm-up forward takes longer gets --slow-rounds rounds",
    )
    parser.add_argument("--slow-rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS_zoo.md")
    parser.add_argument(
        "--update",
        action="store_true",
        help="replace only the measured models' rows in --out (the others and the notes stay)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = args.models or available_models()
    start = time.perf_counter()
    load_before = _load()
    rows = []
    for name in names:
        row = measure(name, args.rounds, args.slow_seconds, args.slow_rounds)
        rows.append(row)
        print(row.markdown(), flush=True)
    took = time.perf_counter() - start
    now = datetime.datetime.now(datetime.timezone.utc)
    if args.update and args.out.is_file():
        text = update_rows(
            args.out.read_text(encoding="utf-8"), rows, _note(args, took, load_before, now)
        )
        args.out.write_text(text, encoding="utf-8")
        print(f"\nupdated {len(rows)} row(s) of {args.out} ({took:.0f} s)")
        return
    lines = [
        "# Forward and explain time of every model adapter",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_zoo.py{_argv()}` "
        f"(written by the script; the whole run took {took:.0f} s).",
        "",
        f"- Date: {now:%Y-%m-%d (%H:%M UTC)}",
        f"- Machine: `nproc` = {os.cpu_count()}, CPU model (from /proc/cpuinfo) "
        f'"{cpu_model()}" ({platform.machine()}), {_ram_gib()}; shared with other jobs '
        f"(load average 1/5/15 min: {load_before} at the start, {_load()} at the end).",
        f"- Software: {_versions()}; torch on {torch.get_num_threads()} thread(s), CPU.",
        "- One row: `load_model(name)` (random weights, except tiny-actions' shipped ones), one",
        "  random clip of the preset's size, batch 1; after one untimed warm-up of each, rounds",
        "  alternate a `torch.no_grad()` forward and one full explain call with the adapter's",
        "  default method for the top-1 class (forward with the layer hooked, tube, cubic",
        "  upsampling to the clip, normalisation). Times are medians of the rounds; ratio =",
        "  explain / forward of the medians, and of the fastest rounds (less sensitive to other",
        f"  jobs). Models whose warm-up forward took over {args.slow_seconds:g} s got "
        f"{args.slow_rounds} rounds, the others {args.rounds}.",
        "",
        "| model | input T x H x W | method | params (M) | forward s | explain s | explain / forward | ratio of fastest | rounds | note |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *(row.markdown() for row in rows),
        "",
    ]
    text = "\n".join(lines)
    args.out.write_text(text, encoding="utf-8")
    print(f"\nwrote {args.out} ({took:.0f} s)")


def _note(args: argparse.Namespace, took: float, load_before: str, now: datetime.datetime) -> str:
    names = ", ".join(f"`{n}`" for n in (args.models or []))
    return (
        f"- Rows {names} re-measured {now:%Y-%m-%d (%H:%M UTC)} with "
        f"`.venv/bin/python benchmarks/bench_zoo.py{_argv()}` ({took:.0f} s): `nproc` = "
        f'{os.cpu_count()}, "{cpu_model()}" ({platform.machine()}), {_ram_gib()}, shared with '
        f"other jobs (load average 1/5/15 min: {load_before} at the start, {_load()} at the "
        f"end); {_versions()}; torch on {torch.get_num_threads()} thread(s), CPU; "
        f"{args.rounds} rounds ({args.slow_rounds} past {args.slow_seconds:g} s)."
    )


def update_rows(text: str, rows: list[Row], note: str) -> str:
    """``text`` (a results file) with the table rows of ``rows`` replaced or added (sorted
    by name) and ``note`` added to the list above the table."""
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| model |"))
    end = header + 2
    while end < len(lines) and lines[end].startswith("| "):
        end += 1
    table = {line.split("|")[1].strip(): line for line in lines[header + 2 : end]}
    table.update({row.name: row.markdown() for row in rows})
    body = [table[name] for name in sorted(table)]
    # An earlier note on the same rows describes numbers that are now replaced.
    prefix = note.split(" re-measured ")[0]
    before = [line for line in lines[:header] if line.split(" re-measured ")[0] != prefix]
    while before and not before[-1].strip():
        before.pop()
    return "\n".join([*before, note, "", *lines[header : header + 2], *body, *lines[end:]]) + "\n"


def _argv() -> str:
    return "".join(f" {a}" for a in sys.argv[1:])


if __name__ == "__main__":
    main()
