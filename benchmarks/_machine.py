"""What machine a benchmark ran on: shared by the scripts in this folder."""

from __future__ import annotations

import platform


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
    import os

    return f"Machine: {cpu_model()}, {os.cpu_count()} CPUs, Python {platform.python_version()}."


def load() -> str:
    """The load average over 1, 5 and 15 minutes, as ``uptime`` says it."""
    import os

    return ", ".join(f"{v:.1f}" for v in os.getloadavg())
