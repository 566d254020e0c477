"""How long ``saliency-tubes --help`` and every ``COMMAND --help`` take, against a base revision.

Each help is run ``--repeat`` times in a fresh process (``python -m saliency_tubes.cli``),
alternating the base revision (checked out into a temporary git worktree) and this tree,
so that both see the same machine load; the median wall time of each is recorded, with
whether the process imported torch. Writes ``RESULTS_help.md`` beside this script.

    python benchmarks/bench_help.py --base 5de00be
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import describe  # benchmarks/_machine.py (scripts run from this folder)

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = [
    "",
    "explain",
    "demo",
    "models",
    "compare-classes",
    "compare-models",
    "pyramid",
    "evaluate",
]
PROBE = (
    "import runpy, sys; sys.argv = ['saliency-tubes', *sys.argv[1:], '--help'];\n"
    "try:\n    runpy.run_module('saliency_tubes.cli', run_name='__main__')\n"
    "except SystemExit:\n    pass\n"
    "sys.stderr.write('TORCH' if 'torch' in sys.modules else 'LIGHT')"
)


def _once(src: Path, command: str) -> tuple[float, bool]:
    env = dict(os.environ, PYTHONPATH=str(src))
    argv = [sys.executable, "-c", PROBE, *([command] if command else [])]
    started = time.perf_counter()
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - started, out.stderr.endswith("TORCH")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="git revision to compare with")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    tree = Path(tempfile.mkdtemp(prefix="bench-help-")) / "base"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), args.base],
        check=True,
        capture_output=True,
    )
    rows = []
    try:
        for command in COMMANDS:
            times: dict[str, list[float]] = {"base": [], "new": []}
            torch: dict[str, bool] = {}
            for _ in range(args.repeat):
                for label, src in (("base", tree / "src"), ("new", ROOT / "src")):
                    seconds, imported = _once(src, command)
                    times[label].append(seconds)
                    torch[label] = imported
            base, new = statistics.median(times["base"]), statistics.median(times["new"])
            rows.append((command or "(no command)", base, torch["base"], new, torch["new"]))
            print(f"{command or '(none)':16s} base {base:.2f} s  new {new:.2f} s", flush=True)
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
            check=False,
            capture_output=True,
        )
    lines = [
        "# `--help` latency",
        "",
        f"Measured {datetime.date.today()} by `benchmarks/bench_help.py --base {args.base}`: "
        f"median of {args.repeat} fresh processes each, base and new alternating.",
        describe(),
        "",
        f"| command | base `{args.base}` (s) | imports torch | this tree (s) | imports torch | ratio |",
        "|---|---:|:---:|---:|:---:|---:|",
    ]
    for name, base, base_torch, new, new_torch in rows:
        lines.append(
            f"| `{name} --help` | {base:.2f} | {'yes' if base_torch else 'no'} | {new:.2f} | "
            f"{'yes' if new_torch else 'no'} | {base / new:.1f}x |"
        )
    (Path(__file__).parent / "RESULTS_help.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
