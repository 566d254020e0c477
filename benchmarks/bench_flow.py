"""Clips per second of ``batch --format npy`` against the model's own forward throughput.

Issue 24, goal 3: on one GPU the model should never wait for decoding, so that a batch runs
at about the model's own speed (target: at least 0.8 of its forward throughput at the same
batch size). This script measures, in one run, side by side, as fresh processes:

* **forward**: the model alone, ``--batch-size`` copies of a decoded, preprocessed clip of
  ``arm_wrestling.mp4`` per no-grad forward (clips/s over ``--repeats`` forwards after one
  warm-up), and the explainer's call on that batch (``--method``'s, no upsampling: what
  ``batch`` runs per forward);
* **local**: ``batch DIR --format npy --batch-size B`` with one local worker and
  ``--decoders D`` decoding threads;
* **ray**: the same with ``--engine ray`` (decode actors, then explain actors);

each ``batch`` on copies of ``arm_wrestling.mp4``, ``--small`` and ``--large`` of them:
clips/s = (large - small) / (time for large - time for small), so that start-up, model loads
and Ray's start cancel out. Rounds alternate their order so the lines see the same load.
Writes ``RESULTS_flow_DEVICE.md`` beside this script.

    python benchmarks/bench_flow.py [--device cpu] [--model r3d_18] [--batch-size 4]
        [--decoders 2] [--threads 1] [--rounds 2] [--small 4] [--large 12]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
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

FORWARD = """
import json, sys, time, torch
from saliency_tubes import load_model
from saliency_tubes.video import probe, read_frames, sample_uniform
video, name, batch, threads, device, repeats, method = sys.argv[1:8]
batch, repeats = int(batch), int(repeats)
torch.set_num_threads(int(threads))
loaded = load_model(name, device=device)
prep = loaded.preset.preprocess()
info = probe(video)
frames = read_frames(video, sample_uniform(info.num_frames, loaded.preset.frames), info=info)
x = prep(frames)[None].repeat(batch, 1, 1, 1, 1).to(device)
explainer = loaded.explainer(loaded.default_method if method == "auto" else method)
def sync():
    if device.startswith("cuda"):
        torch.cuda.synchronize()
def rate(call):
    call(); sync()
    began = time.perf_counter()
    for _ in range(repeats):
        call()
    sync()
    return batch * repeats / (time.perf_counter() - began)
with torch.no_grad():
    forward = rate(lambda: loaded.model(x))
explain = rate(lambda: explainer(x, classes="top1", upsample=False))
print(json.dumps({"forward": forward, "explain": explain}))
"""


def _batch_cmd(args: argparse.Namespace, engine: str, folder: Path, out: Path) -> list[str]:
    cmd = [sys.executable, "-m", "saliency_tubes.cli", "batch", str(folder), "--out", str(out)]
    cmd += ["--format", "npy", "--model", args.model, "--device", args.device]
    cmd += ["--batch-size", str(args.batch_size), "--threads", str(args.threads), "--quiet"]
    cmd += ["--method", args.method, "--engine", engine, "--decoders", str(args.decoders)]
    return cmd


def _wall(cmd: list[str]) -> float:
    began = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{cmd[:6]} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return time.perf_counter() - began


def _forward(args: argparse.Namespace) -> dict[str, float]:
    cmd = [sys.executable, "-c", FORWARD, str(CLIP), args.model, str(args.batch_size)]
    cmd += [str(args.threads), args.device, str(args.repeats), args.method]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the forward measure failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="r3d_18")
    parser.add_argument("--method", default="auto")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--decoders", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of every line")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="timed forwards per measure")
    parser.add_argument("--small", type=int, default=4)
    parser.add_argument("--large", type=int, default=12)
    parser.add_argument("--engines", default="local,ray")
    return parser.parse_args()


def main() -> None:
    args = _parse()
    engines = args.engines.split(",")
    walls: dict[tuple[str, int], list[float]] = {}
    rates: list[dict[str, float]] = []
    loads: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-flow-") as tmp:
        folders = {}
        for n in (args.small, args.large):
            folders[n] = Path(tmp) / f"videos{n}"
            folders[n].mkdir()
            for i in range(n):
                shutil.copy(CLIP, folders[n] / f"v{i:02d}.mp4")
        lines = [("forward", 0)] + [(e, n) for n in (args.small, args.large) for e in engines]
        for r in range(args.rounds):
            for c, (kind, n) in enumerate(lines if r % 2 == 0 else lines[::-1]):
                loads.append(os.getloadavg()[0])
                if kind == "forward":
                    rates.append(_forward(args))
                    print(f"round {r} forward: {rates[-1]}", flush=True)
                    continue
                cmd = _batch_cmd(args, kind, folders[n], Path(tmp) / f"out-{r}-{c}")
                walls.setdefault((kind, n), []).append(_wall(cmd))
                print(f"round {r} {kind} {n}: {walls[(kind, n)][-1]:.1f} s", flush=True)
    _write(args, engines, walls, rates, loads)


def _listed(rates: list[dict[str, float]], key: str) -> str:
    return ", ".join(f"{r[key]:.2f}" for r in rates)


def _write(
    args: argparse.Namespace,
    engines: list[str],
    walls: dict[tuple[str, int], list[float]],
    rates: list[dict[str, float]],
    loads: list[float],
) -> None:
    med = statistics.median
    forward = med(r["forward"] for r in rates)
    explain = med(r["explain"] for r in rates)
    extra = args.large - args.small
    rows = [
        f"| model forward (no grad), batch {args.batch_size} | "
        f"{_listed(rates, 'forward')} | | {forward:.2f} | 1.00 |",
        f"| explainer call ({args.method}), batch {args.batch_size} | "
        f"{_listed(rates, 'explain')} | | {explain:.2f} | "
        f"{explain / forward:.2f} |",
    ]
    summary = []
    for engine in engines:
        small, large = walls[(engine, args.small)], walls[(engine, args.large)]
        clips = extra / (med(large) - med(small))
        label = (
            f"batch, local, {args.decoders} decoders"
            if engine == "local"
            else "batch, ray, two stages"
        )
        times = ", ".join(f"{a:.1f}/{b:.1f}" for a, b in zip(small, large, strict=True))
        rows.append(f"| {label} | | {times} | {clips:.2f} | {clips / forward:.2f} |")
        summary.append(f"{engine} {clips / forward:.2f}x")
    now = datetime.datetime.now(datetime.timezone.utc)
    text = [
        f"# `batch --format npy` clips/s against the model's forward ({args.model}, {args.device})",
        "",
        f"Run {now:%Y-%m-%d %H:%M} UTC by `benchmarks/bench_flow.py --device {args.device} "
        f"--model {args.model} --batch-size {args.batch_size} --decoders {args.decoders} "
        f"--threads {args.threads} --rounds {args.rounds} --small {args.small} "
        f"--large {args.large}`. {describe()}",
        f"Load average (1 min) before each line: {min(loads):.1f} to {max(loads):.1f} "
        "(the machine is shared).",
        "",
        f"Copies of arm_wrestling.mp4 (280 frames, 340x256); {args.threads} torch thread(s) "
        f"in every line; batch clips/s = {extra} / (median wall for {args.large} videos - "
        f"median for {args.small}). The model's weights do not matter to the speed "
        "(r3d_18 without --weights: random weights).",
        "",
        "| line | clips/s per round | batch wall s per round (small/large) | clips/s "
        "(median) | x forward |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"Summary ({args.device}, load {min(loads):.0f} to {max(loads):.0f}): "
        f"batch clips/s against the model's forward at batch {args.batch_size}: "
        + ", ".join(summary)
        + " (target on a GPU: >= 0.8x).",
        "",
    ]
    path = HERE / f"RESULTS_flow_{args.device.replace(':', '')}.md"
    path.write_text("\n".join(text), encoding="utf-8")
    print("\n".join(text))


if __name__ == "__main__":
    main()
