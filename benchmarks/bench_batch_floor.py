"""``batch DIR --format npy`` against its floor, per video.

The floor: one process looping over the videos: probe, decode the sampled frames,
preprocess, one no-grad forward of the same model (what any tool must do to look at a
video once). Both run as fresh processes on 6 and on 18 copies of ``arm_wrestling.mp4``;
per video = (time for 18 - time for 6) / 12, so start-up and model loads, which a dataset
of thousands does not notice, cancel out. The runs alternate their order round by round
so they see the same machine load; wall and CPU seconds (user + system of the process and
its workers) are reported, medians over the rounds.

``batch`` runs once per ``--batch-sizes`` entry (videos per forward), side by side with the
floor in the same rounds. Writes ``RESULTS_batch_floor_MODEL.md`` beside this script and
regenerates the marked summary block of docs/benchmarks.md and docs/tasks/batch.md from every
``RESULTS_batch_floor_*.md`` (``--no-docs``: not).

    python benchmarks/bench_batch_floor.py [--rounds 2] [--model tiny-actions] [--batch-sizes 1,4]
"""

from __future__ import annotations

import argparse
import datetime
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import describe  # benchmarks/_machine.py (scripts run from this folder)
from evaluate_tubes import update_readme  # the one writer of a marked block

BEGIN, END = "<!-- batch-floor:begin -->", "<!-- batch-floor:end -->"
#: The pages with the block, and the way from each to the benchmarks folder in the built docs.
PAGES = {"docs/benchmarks.md": "", "docs/tasks/batch.md": "../"}

HERE = Path(__file__).resolve().parent
CLIP = (
    Path(os.environ.get("SALIENCY_TUBES_CLIPS") or HERE.parents[1] / "shared" / "videos")
    / "arm_wrestling.mp4"
)

FLOOR = """
import sys, torch
from pathlib import Path
from saliency_tubes import load_model
from saliency_tubes.video import probe, read_frames, sample_uniform
loaded = load_model(sys.argv[2])
if len(sys.argv) > 3:
    torch.set_num_threads(int(sys.argv[3]))
prep = loaded.preset.preprocess()
with torch.no_grad():
    for video in sorted(Path(sys.argv[1]).glob("*.mp4")):
        info = probe(video)
        idx = sample_uniform(info.num_frames, loaded.preset.frames)
        loaded.model(prep(read_frames(video, idx, info=info))[None])
"""


def _timed(cmd: list[str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{cmd[:4]} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _per_video(runs: dict, kind: str, which: int) -> float:
    """Median time for 18 videos less the median for 6, over 12."""
    med = statistics.median
    return (med(x[which] for x in runs[(kind, 18)]) - med(x[which] for x in runs[(kind, 6)])) / 12


def _command(kind: str, folder: Path, out: Path, model: str, threads: int | None) -> list[str]:
    if kind == "floor":
        return [
            sys.executable,
            "-c",
            FLOOR,
            str(folder),
            model,
            *([str(threads)] if threads else []),
        ]
    size = kind.split("=")[1]
    cmd = [sys.executable, "-m", "saliency_tubes.cli", "batch", str(folder), "--out", str(out)]
    cmd += ["--format", "npy", "--model", model, "--batch-size", size, "--quiet"]
    return [*cmd, *(["--threads", str(threads)] if threads else [])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--model", default="tiny-actions")
    parser.add_argument("--batch-sizes", default="1,4", help="comma-separated (default 1,4)")
    parser.add_argument(
        "--threads", type=int, default=None,
        help="torch threads of the floor and of the batch worker (default: torch's, cores)",
    )  # fmt: skip
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite the docs block")
    args = parser.parse_args()
    kinds = ["floor", *(f"batch={int(b)}" for b in args.batch_sizes.split(","))]
    runs: dict[tuple[str, int], list[tuple[float, float]]] = {}
    loads: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-batch-floor-") as tmp:
        folders = {}
        for n in (6, 18):
            folders[n] = Path(tmp) / f"videos{n}"
            folders[n].mkdir()
            for i in range(n):
                shutil.copy(CLIP, folders[n] / f"v{i:02d}.mp4")
        configs = [(kind, n) for n in (6, 18) for kind in kinds]
        for r in range(args.rounds):
            for c, (kind, n) in enumerate(configs if r % 2 == 0 else configs[::-1]):
                out = Path(tmp) / f"out-{r}-{c}"
                cmd = _command(kind, folders[n], out, args.model, args.threads)
                loads.append(os.getloadavg()[0])
                runs.setdefault((kind, n), []).append(_timed(cmd))
                wall, cpu = runs[(kind, n)][-1]
                print(f"round {r} {kind} {n}: {wall:.1f} s wall, {cpu:.1f} s CPU", flush=True)
    threads = f"{args.threads} torch thread(s)" if args.threads else "torch's default threads"
    tag = f"_threads{args.threads}" if args.threads else ""
    lines = [
        f"# `batch --format npy` against its floor, per video ({args.model}, {threads})",
        "",
        f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC by "
        f"`benchmarks/bench_batch_floor.py --rounds {args.rounds} --model {args.model} "
        f"--batch-sizes {args.batch_sizes}{f' --threads {args.threads}' if args.threads else ''}`. "
        f"{describe()}",
        f"Load average (1 min) before each run: {min(loads):.1f} to {max(loads):.1f} "
        "(the machine is shared).",
        "",
        "Copies of arm_wrestling.mp4 (280 frames, 340x256); batch with one local worker, "
        "`--format npy` and `--batch-size B` (batch=B below); each round runs every line "
        "(alternating order).",
        "",
        "| run | 6 videos wall s | 18 videos wall s | 6 videos CPU s | 18 videos CPU s "
        "| per video wall s | per video CPU s | x floor wall | x floor CPU |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    fw, fc = _per_video(runs, "floor", 0), _per_video(runs, "floor", 1)
    summary = []
    for kind in kinds:
        w6, w18 = (", ".join(f"{x[0]:.1f}" for x in runs[(kind, n)]) for n in (6, 18))
        c6, c18 = (", ".join(f"{x[1]:.1f}" for x in runs[(kind, n)]) for n in (6, 18))
        pw, pc = _per_video(runs, kind, 0), _per_video(runs, kind, 1)
        lines.append(
            f"| {kind} | {w6} | {w18} | {c6} | {c18} | {pw:.2f} | {pc:.2f} | "
            f"{pw / fw:.2f} | {pc / fc:.2f} |"
        )
        if kind != "floor":
            summary.append(
                f"{kind.replace('batch=', '--batch-size ')}: {pw / fw:.2f}x wall, {pc / fc:.2f}x CPU"
            )
    lines += [
        "",
        f"Summary ({args.model}, {threads}, load {min(loads):.0f} to {max(loads):.0f}): floor "
        f"{fw:.2f} s wall / {fc:.2f} s CPU per video; " + "; ".join(summary) + " (goal <= 1.2x).",
    ]
    (HERE / f"RESULTS_batch_floor_{args.model}{tag}.md").write_text(
        "\n".join(lines) + "\n", encoding="utf-8"
    )
    print("\n".join(lines))
    if not args.no_docs:
        _write_docs()


def _write_docs() -> None:
    """The docs' marked block: the summary line of every RESULTS_batch_floor_*.md."""
    found = []
    for f in sorted(HERE.glob("RESULTS_batch_floor_*.md")):
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.startswith("Summary ("):
                found.append((line[len("Summary (") :].replace("):", ":", 1), f.name))
    for page, up in PAGES.items():
        items = [f"* {text} ([`{name}`]({up}benchmarks/{name}))" for text, name in found]
        block = (
            "`batch --format npy` per video against its floor (probe, decode the sampled "
            "frames, preprocess, one no-grad forward; 18 videos less 6; written by "
            "`benchmarks/bench_batch_floor.py`):\n\n" + "\n".join(items)
        )
        update_readme(HERE.parent / page, block, BEGIN, END)


if __name__ == "__main__":
    main()
