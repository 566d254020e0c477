"""The render+encode stage of ``explain`` on a 1080p clip, with ``--max-side 1280`` and without.

Generates a 1920x1080 H.264 clip of 103 frames at 25 fps (the generator of
``bench_seek.py``), explains it in this process with the default model and the default
outputs (mp4 heat, focus and side-by-side videos, the plot), once with panels at the
source's size and once with ``max_side=1280``, alternating their order round by round so
they see the same machine load. Reports the "write" stage (render+encode: decoding the
source, drawing every frame of the three videos, encoding them; the plot is a few
milliseconds of it) in wall and CPU seconds (this process's, all threads), the speed-up,
and the output files' sizes and frame sizes.

Writes ``RESULTS_max_side.md`` beside this script.

    python benchmarks/bench_max_side.py [--rounds 2] [--cache DIR]
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import tempfile
import time
from pathlib import Path

import av
from _machine import describe  # benchmarks/_machine.py (scripts run from this folder)
from bench_seek import generate

from saliency_tubes import load_model
from saliency_tubes.commands import ExplainOptions, explain_video

HERE = Path(__file__).resolve().parent
CONFIGS = {"source size": None, "--max-side 1280": 1280}


def _size(path: Path) -> str:
    with av.open(str(path)) as container:
        ctx = container.streams.video[0].codec_context
        return f"{ctx.width}x{ctx.height}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=None, help="keep the generated clip")
    args = parser.parse_args()
    cache = args.cache or Path(tempfile.mkdtemp(prefix="bench-max-side-"))
    cache.mkdir(parents=True, exist_ok=True)
    clip = generate(cache / "103f_1080p_gop50.mp4", 103 / 25, 50)
    loaded = load_model("tiny-actions")
    walls: dict[str, list[float]] = {n: [] for n in CONFIGS}
    cpus: dict[str, list[float]] = {n: [] for n in CONFIGS}
    files: dict[str, list[tuple[str, str, int]]] = {}
    loads: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-max-side-") as tmp:
        for r in range(args.rounds):
            names = list(CONFIGS) if r % 2 == 0 else list(CONFIGS)[::-1]
            for name in names:
                options = ExplainOptions(max_side=CONFIGS[name], progress=False)
                out = Path(tmp) / f"out-{r}-{list(CONFIGS).index(name)}"
                loads.append(os.getloadavg()[0])
                cpu = time.process_time()
                result = explain_video(clip, out, loaded, options)
                cpu = time.process_time() - cpu
                write = result.timings["write"]
                walls[name].append(write)
                cpus[name].append(cpu)  # the whole command: the write stage is most of it
                files[name] = [(p.name, _size(p), p.stat().st_size) for p in result.files["mp4"]]
                print(f"round {r} {name}: write {write:.1f} s, command CPU {cpu:.1f} s")
    med = statistics.median
    base, small = (med(walls[n]) for n in CONFIGS)
    lines = [
        "# `explain` render+encode on a 1080p clip: `--max-side 1280` against the source size",
        "",
        f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC by "
        f"`benchmarks/bench_max_side.py --rounds {args.rounds}`. {describe()}",
        f"Load average (1 min) before each run: {min(loads):.1f} to {max(loads):.1f} "
        "(the machine is shared).",
        "",
        "Clip: 1920x1080 H.264, 103 frames at 25 fps (generated); tiny-actions; the default "
        "outputs (heat, focus, side-by-side mp4 at crf 18, superfast; the plot).",
        "",
        "| outputs | write stage, wall s (median) | runs | whole command, CPU s (median) |",
        "|---|---|---|---|",
    ]
    for name in CONFIGS:
        runs = ", ".join(f"{w:.1f}" for w in walls[name])
        lines.append(f"| {name} | {med(walls[name]):.1f} | {runs} | {med(cpus[name]):.1f} |")
    lines += [
        "",
        f"Speed-up of the write stage: **{base / small:.2f}x** (goal >= 3x).",
        "",
        "| outputs | file | frame size | MB |",
        "|---|---|---|---|",
    ]
    for name in CONFIGS:
        for file, size, nbytes in files[name]:
            lines.append(f"| {name} | {file} | {size} | {nbytes / 2**20:.1f} |")
    (HERE / "RESULTS_max_side.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
