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
    began, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        call()
    sync()
    clips = batch * repeats
    return clips / (time.perf_counter() - began), (time.process_time() - cpu) / clips
with torch.no_grad():
    forward, forward_cpu = rate(lambda: loaded.model(x))
explain, explain_cpu = rate(lambda: explainer(x, classes="top1", upsample=False))
print(json.dumps({"forward": forward, "explain": explain, "forward_cpu": forward_cpu,
                  "explain_cpu": explain_cpu}))
"""


def _batch_cmd(args: argparse.Namespace, engine: str, folder: Path, out: Path) -> list[str]:
    cmd = [sys.executable, "-m", "saliency_tubes.cli", "batch", str(folder), "--out", str(out)]
    cmd += ["--format", "npy", "--model", args.model, "--device", args.device]
    cmd += ["--batch-size", str(args.batch_size), "--threads", str(args.threads), "--quiet"]
    cmd += ["--method", args.method, "--engine", engine, "--decoders", str(args.decoders)]
    return cmd


def _timed(cmd: list[str], out: Path) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system of the command and the descendants it waited
    for: not Ray's worker processes, which Ray's own processes start and end) and the
    steady rate: the rows after the first arrival over the time from the first arrival to
    the last (the journal's lines, polled every 50 ms; start-up and model loads left out)."""
    journal = out / ".batch" / "journal.jsonl"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    seen: list[tuple[float, int]] = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as p:
        while p.poll() is None:
            time.sleep(0.05)
            rows = _lines(journal)
            if rows and (not seen or rows > seen[-1][1]):
                seen.append((time.perf_counter(), rows))
        _, err = p.communicate()
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise SystemExit(f"{cmd[:6]} failed ({p.returncode}):\n{err[-3000:]}")
    rows = _lines(journal)
    if not seen or rows > seen[-1][1]:
        seen.append((time.perf_counter(), rows))
    steady = (seen[-1][1] - seen[0][1]) / max(1e-9, seen[-1][0] - seen[0][0])
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), steady


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except OSError:
        return 0


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
    parser.add_argument("--name", default="", help="a suffix of the results file's name")
    return parser.parse_args()


def main() -> None:
    args = _parse()
    engines = args.engines.split(",")
    walls: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
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
                out = Path(tmp) / f"out-{r}-{c}"
                walls.setdefault((kind, n), []).append(
                    _timed(_batch_cmd(args, kind, folders[n], out), out)
                )
                wall, cpu, steady = walls[(kind, n)][-1]
                print(
                    f"round {r} {kind} {n}: {wall:.1f} s wall, {cpu:.1f} s CPU, "
                    f"steady {steady:.2f} clips/s",
                    flush=True,
                )
    _write(args, engines, walls, rates, loads)


def _listed(rates: list[dict[str, float]], key: str) -> str:
    return ", ".join(f"{r[key]:.2f}" for r in rates)


def _engine_rows(
    args: argparse.Namespace, engine: str, walls: dict, forward: float, forward_cpu: float
) -> tuple[str, str]:
    """One batch line of the table and of the summary."""
    med, extra = statistics.median, args.large - args.small
    small, large = walls[(engine, args.small)], walls[(engine, args.large)]
    clips = extra / (med(w[0] for w in large) - med(w[0] for w in small))
    cpu = (med(w[1] for w in large) - med(w[1] for w in small)) / extra
    steady = med(w[2] for w in large)
    label = f"batch, local, {args.decoders} decoders" if engine == "local" else "batch, ray"
    pairs = list(zip(small, large, strict=True))
    times = ", ".join(f"{a[0]:.1f}/{b[0]:.1f}" for a, b in pairs)
    cpus = ", ".join(f"{a[1]:.1f}/{b[1]:.1f}" for a, b in pairs)
    steadies = ", ".join(f"{b[2]:.2f}" for _, b in pairs)
    if engine == "ray":
        cpu_cells = f"{cpus} | n/a (Ray's workers uncounted) | n/a"
        said = f"{engine} {clips / forward:.2f}x wall, {steady / forward:.2f}x steady"
    else:
        cpu_cells = f"{cpus} | {cpu:.2f} | {forward_cpu / cpu:.2f}"
        said = (
            f"{engine} {clips / forward:.2f}x wall, {steady / forward:.2f}x steady, "
            f"{forward_cpu / cpu:.2f}x CPU"
        )
    row = (
        f"| {label} | {times} | {clips:.2f} | {clips / forward:.2f} | {steadies} | "
        f"{steady:.2f} | {steady / forward:.2f} | {cpu_cells} |"
    )
    return row, said


def _write(
    args: argparse.Namespace,
    engines: list[str],
    walls: dict[tuple[str, int], list[tuple[float, float, float]]],
    rates: list[dict[str, float]],
    loads: list[float],
) -> None:
    med = statistics.median
    forward, explain = med(r["forward"] for r in rates), med(r["explain"] for r in rates)
    forward_cpu = med(r["forward_cpu"] for r in rates)
    explain_cpu = med(r["explain_cpu"] for r in rates)
    rows = [
        f"| model forward (no grad), batch {args.batch_size} | {_listed(rates, 'forward')} "
        f"| {forward:.2f} | 1.00 | | | | {_listed(rates, 'forward_cpu')} | {forward_cpu:.2f} "
        "| 1.00 |",
        f"| explainer call ({args.method}), batch {args.batch_size} | "
        f"{_listed(rates, 'explain')} | {explain:.2f} | {explain / forward:.2f} | | | | "
        f"{_listed(rates, 'explain_cpu')} | {explain_cpu:.2f} | {forward_cpu / explain_cpu:.2f} |",
    ]
    summary = []
    for engine in engines:
        row, said = _engine_rows(args, engine, walls, forward, forward_cpu)
        rows.append(row)
        summary.append(said)
    now = datetime.datetime.now(datetime.timezone.utc)
    extra = args.large - args.small
    text = [
        f"# `batch --format npy` clips/s against the model's forward ({args.model}, {args.device})",
        "",
        f"Run {now:%Y-%m-%d %H:%M} UTC by `benchmarks/bench_flow.py --device {args.device} "
        f"--model {args.model} --batch-size {args.batch_size} --decoders {args.decoders} "
        f"--threads {args.threads} --rounds {args.rounds} --small {args.small} "
        f"--large {args.large} --repeats {args.repeats}"
        f"{f' --name {args.name}' if args.name else ''}`. {describe()}",
        f"Load average (1 min) before each line: {min(loads):.1f} to {max(loads):.1f} "
        "(the machine is shared).",
        "",
        f"Copies of arm_wrestling.mp4 (280 frames, 340x256); {args.threads} torch thread(s) "
        f"in every line; batch clips/s = {extra} / (median wall for {args.large} videos - "
        f"median for {args.small}); steady clips/s: in the {args.large}-video runs, the rows "
        "after the first arrival over the time from the first arrival to the last (the "
        "journal polled every 50 ms: start-up and model loads left out; Ray Data hands "
        "rows back in bursts of its output blocks (seen: a run's rows 9 to 16 came together), "
        "which overstates its steady rate: read Ray's wall clips/s); CPU s per clip "
        "likewise from the CPU seconds (user + "
        "system) of the command and the processes it waited for, which leaves out Ray's "
        "worker processes (started and ended by Ray's own). The forward lines time "
        f"{args.repeats} call(s) after a warm-up, in one process. x forward: clips/s over "
        "the forward's (wall), the forward's CPU s per clip over the line's (CPU). The "
        "model's weights do not matter to the speed (r3d_18 without --weights: random).",
        "",
        "| line | wall: clips/s per round (batch: s small/large) | clips/s | x forward | "
        "steady clips/s per round | steady clips/s | x forward | "
        "CPU: s per clip per round (batch: s small/large) | CPU s per clip | x forward |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Summary ({args.device}, load {min(loads):.0f} to {max(loads):.0f}): "
        f"batch against the model's forward at batch {args.batch_size}: "
        + "; ".join(summary)
        + " (target on a GPU: >= 0.8x).",
        "",
    ]
    path = HERE / f"RESULTS_flow_{args.device.replace(':', '')}{args.name}.md"
    path.write_text("\n".join(text), encoding="utf-8")
    print("\n".join(text))


if __name__ == "__main__":
    main()
