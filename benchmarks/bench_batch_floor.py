"""``batch DIR --format npy`` against its floor, per video.

The floor: one process looping over the videos: probe, decode the sampled frames,
preprocess, one no-grad forward of the same model (what any tool must do to look at a
video once). Both run as fresh processes on 6 and on 18 copies of ``arm_wrestling.mp4``;
per video = (time for 18 - time for 6) / 12, so start-up and model loads, which a dataset
of thousands does not notice, cancel out. The runs alternate their order round by round
so they see the same machine load; wall and CPU seconds (user + system of the process and
its workers) are reported, medians over the rounds.

Writes ``RESULTS_batch_floor_MODEL.md`` beside this script.

    python benchmarks/bench_batch_floor.py [--rounds 2] [--model tiny-actions]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--model", default="tiny-actions")
    args = parser.parse_args()
    runs: dict[tuple[str, int], list[tuple[float, float]]] = {}
    loads: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-batch-floor-") as tmp:
        folders = {}
        for n in (6, 18):
            folders[n] = Path(tmp) / f"videos{n}"
            folders[n].mkdir()
            for i in range(n):
                shutil.copy(CLIP, folders[n] / f"v{i:02d}.mp4")
        configs = [(kind, n) for n in (6, 18) for kind in ("floor", "batch")]
        for r in range(args.rounds):
            for c, (kind, n) in enumerate(configs if r % 2 == 0 else configs[::-1]):
                if kind == "floor":
                    cmd = [sys.executable, "-c", FLOOR, str(folders[n]), args.model]
                else:
                    out = Path(tmp) / f"out-{r}-{c}"
                    cmd = [sys.executable, "-m", "saliency_tubes.cli", "batch", str(folders[n])]
                    cmd += ["--out", str(out), "--format", "npy", "--model", args.model, "--quiet"]
                loads.append(os.getloadavg()[0])
                runs.setdefault((kind, n), []).append(_timed(cmd))
                wall, cpu = runs[(kind, n)][-1]
                print(f"round {r} {kind} {n}: {wall:.1f} s wall, {cpu:.1f} s CPU", flush=True)
    med = statistics.median

    def per_video(kind: str, which: int) -> float:
        return (
            med(x[which] for x in runs[(kind, 18)]) - med(x[which] for x in runs[(kind, 6)])
        ) / 12

    lines = [
        f"# `batch --format npy` against its floor, per video ({args.model})",
        "",
        f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC by "
        f"`benchmarks/bench_batch_floor.py --rounds {args.rounds} --model {args.model}`. "
        f"{describe()}",
        f"Load average (1 min) before each run: {min(loads):.1f} to {max(loads):.1f} "
        "(the machine is shared).",
        "",
        "Copies of arm_wrestling.mp4 (280 frames, 340x256); batch with its defaults "
        "(one local worker) and `--format npy`.",
        "",
        "| run | 6 videos wall s | 18 videos wall s | 6 videos CPU s | 18 videos CPU s |",
        "|---|---|---|---|---|",
    ]
    for kind in ("floor", "batch"):
        w6, w18 = (", ".join(f"{x[0]:.1f}" for x in runs[(kind, n)]) for n in (6, 18))
        c6, c18 = (", ".join(f"{x[1]:.1f}" for x in runs[(kind, n)]) for n in (6, 18))
        lines.append(f"| {kind} | {w6} | {w18} | {c6} | {c18} |")
    fw, bw, fc, bc = (
        per_video("floor", 0),
        per_video("batch", 0),
        per_video("floor", 1),
        per_video("batch", 1),
    )
    lines += [
        "",
        f"Per video (18 less 6, over 12): floor {fw:.2f} s wall / {fc:.2f} s CPU, batch "
        f"{bw:.2f} s wall / {bc:.2f} s CPU: **{bw / fw:.2f}x the floor (wall), {bc / fc:.2f}x "
        "(CPU)** (goal <= 1.2x).",
    ]
    (HERE / f"RESULTS_batch_floor_{args.model}.md").write_text(
        "\n".join(lines) + "\n", encoding="utf-8"
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
