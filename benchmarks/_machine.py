"""What machine a benchmark ran on: shared by the scripts in this folder."""

from __future__ import annotations

import argparse
import datetime
import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (platform.processor() elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def describe() -> str:
    """One line for a results file: CPU model, CPU count, Python version."""
    return f"Machine: {cpu_model()}, {os.cpu_count()} CPUs, Python {platform.python_version()}."


def load() -> str:
    """The load average over 1, 5 and 15 minutes, as ``uptime`` says it."""
    return ", ".join(f"{v:.1f}" for v in os.getloadavg())


def planted_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of the transformer planted-evidence scripts: the weights, the clips'
    seeds, torch's threads and --no-write."""
    p.add_argument("--weights", help="a .safetensors of the model (default: the shipped)")
    p.add_argument("--seeds", type=int, nargs=2, default=(0, 24), help="range start, stop")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-write", action="store_true")
    return p


def write_results(
    path: Path | None, title: str, script: str, what: str, start_load: float, lines: list[str]
) -> None:
    """Print a results file (its title, a line saying which script wrote it when, on what
    (``what``), on which machine at which load, then ``lines``) and write it to ``path``
    (None: print only)."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    head = [
        f"# {title}",
        "",
        f"Written by `benchmarks/{script}` on {stamp}; {what}; {describe()} Load average "
        f"{start_load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end.",
        "",
    ]
    text = "\n".join(head + lines) + "\n"
    print(text)
    if path is not None:
        path.write_text(text)
