"""Peak memory of ``saliency-tubes explain`` versus video length (the streaming claim).

What is measured: the peak resident set size (RSS, ``ru_maxrss``) and the wall time of one
``saliency-tubes explain VIDEO --model resnet3d-18 --quiet --format mp4`` run, each in its
own fresh child process. The peak of that one child is read from ``os.wait4`` (the
``rusage`` of exactly that child, so runs do not contaminate each other's peaks the way the
cumulative ``RUSAGE_CHILDREN`` maximum would). Every video is run in two modes: the default
(one uniform clip of 16 frames) and ``--windows 16,16`` (sliding windows covering every
frame; one forward per window, every class explained on the layer's grid until the
video's top-1 is known).

Inputs:

1. the real clips in ``../shared/videos/`` relative to the project root (skipped, with a
   message, when the folder is absent);
2. generated videos of one resolution (default 360x640, 30 fps) and several lengths,
   written with :class:`saliency_tubes.video.VideoWriter` (H.264) into a temporary folder;
   the content is a drifting random texture under moving sinusoidal gratings and a
   bouncing bright square, so the encoder and decoder have real work.

A baseline child (imports, ``load_model("resnet3d-18")`` and one forward/backward pass of a
16x112x112 clip, no video) shows the fixed part of the peak.

The claim holds when the peak RSS of the longest generated video is about that of the
shortest (ratio ~1.0, say within +10%) in each mode. ``resnet3d-18`` has random weights
here, which does not matter for memory. Output: a Markdown table on stdout.

Usage:
    .venv/bin/python benchmarks/bench_streaming.py              # 2 s, 8 s, 30 s at 360x640
    .venv/bin/python benchmarks/bench_streaming.py --quick      # 1 s, 2 s, 4 s
    .venv/bin/python benchmarks/bench_streaming.py --seconds 5 30 --size 480 640
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from _machine import cpu_model  # benchmarks/_machine.py (scripts run from this folder)

ROOT = Path(__file__).resolve().parents[1]
SHARED_VIDEOS = ROOT.parent / "shared" / "videos"
REAL_CLIPS = ("arm_wrestling.mp4", "eye_makeup.avi", "pool_cleaning_32f.mp4")
MODEL = "resnet3d-18"
MODES: dict[str, list[str]] = {"uniform": [], "windows 16,16": ["--windows", "16,16"]}

BASELINE_CODE = f"""
import torch
from saliency_tubes.methods import METHODS
from saliency_tubes.zoo import load_model
m = load_model({MODEL!r})
e = METHODS["cam"](m.model, layer=m.layer, classifier=m.classifier)
e(torch.randn(1, 3, 16, 112, 112), classes="top1")
"""


@dataclass
class Run:
    """One measured child process."""

    video: str
    kind: str  # "real", "generated" or "baseline"
    mode: str
    frames: int
    height: int
    width: int
    seconds: float
    peak_mib: float
    returncode: int
    stderr: str = ""

    @property
    def fps(self) -> float:
        """Source frames processed per wall second."""
        return self.frames / self.seconds if self.seconds > 0 else float("nan")


def measure(cmd: list[str]) -> tuple[float, float, int, str]:
    """Run ``cmd`` as a fresh child; return (wall s, peak RSS MiB, exit code, stderr tail).

    ``os.wait4`` gives the resource usage of exactly this child (and any grandchildren it
    waited for); on Linux ``ru_maxrss`` is in KiB.
    """
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = err.read().decode("utf-8", "replace")[-2000:]
    return wall, usage.ru_maxrss / 1024.0, proc.returncode, tail


def explain_cmd(video: Path, out: Path, mode_args: list[str]) -> list[str]:
    """The CLI call measured for one video and mode."""
    return [
        sys.executable, "-m", "saliency_tubes.cli", "explain", str(video),
        "--out", str(out), "--model", MODEL, "--quiet", "--format", "mp4", *mode_args,
    ]  # fmt: skip


def make_video(path: Path, frames: int, height: int, width: int, fps: int) -> None:
    """Write a moving textured H.264 video with ``VideoWriter`` (one frame at a time)."""
    from saliency_tubes.video import VideoWriter

    rng = np.random.default_rng(0)
    # a random texture larger than the frame, smoothed a little, that drifts diagonally
    tex = rng.integers(0, 256, size=(height + 64, width + 64, 3), dtype=np.uint8)
    tex = ((tex.astype(np.uint16) + np.roll(tex, 1, 0) + np.roll(tex, 1, 1)) // 3).astype(np.uint8)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    side = max(8, min(height, width) // 6)
    with VideoWriter(path, fps=fps, preset="veryfast", crf=23) as writer:
        for i in range(frames):
            dy, dx = (i * 2) % 64, (i * 3) % 64
            frame = tex[dy : dy + height, dx : dx + width].astype(np.float32) * 0.5
            grating = 0.5 + 0.5 * np.sin(0.05 * xx + 0.03 * yy - 0.2 * i)
            frame[..., 0] += 100 * grating
            frame[..., 2] += 100 * (1 - grating)
            # a bright square bouncing around
            py = int(abs((i * 5) % (2 * (height - side)) - (height - side)))
            px = int(abs((i * 7) % (2 * (width - side)) - (width - side)))
            frame[py : py + side, px : px + side] = 255
            writer.write(np.clip(frame, 0, 255).astype(np.uint8))


def run_explain(
    video: Path, kind: str, mode: str, work: Path, frames: int, hw: tuple[int, int]
) -> Run:
    """Measure one ``explain`` run; the output folder is deleted afterwards."""
    import shutil

    out = work / f"out_{video.stem}_{mode.split()[0]}"
    wall, peak, rc, err = measure(explain_cmd(video, out, MODES[mode]))
    shutil.rmtree(out, ignore_errors=True)
    run = Run(video.name, kind, mode, frames, hw[0], hw[1], wall, peak, rc, err)
    status = "ok" if rc == 0 else f"FAILED rc={rc}"
    print(
        f"  {video.name:28s} {mode:14s} {frames:5d} fr  {wall:7.1f} s  {peak:7.1f} MiB  "
        f"{run.fps:6.1f} fr/s  {status}",
        file=sys.stderr,
        flush=True,
    )
    if rc != 0:
        print(err, file=sys.stderr)
    return run


def _ram_gib() -> float:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return float("nan")


def machine() -> str:
    """One line describing the machine and the software."""
    import av
    import torch

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"nproc={os.cpu_count()}, CPU={cpu_model()}, RAM={_ram_gib():.1f} GiB, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), numpy "
        f"{np.__version__}, av {av.__version__}, Python {platform.python_version()}, "
        f"load average at start {load:.2f}"
    )


def table(runs: list[Run]) -> str:
    """The Markdown table of all runs."""
    lines = [
        "| video | kind | mode | frames | HxW | wall s | peak RSS MiB | frames/s |",
        "|---|---|---|---:|---|---:|---:|---:|",
    ]
    for r in runs:
        frames = str(r.frames) if r.frames else "-"
        hw = f"{r.height}x{r.width}" if r.height else "-"
        fps = f"{r.fps:.1f}" if r.frames else "-"
        peak = f"{r.peak_mib:.1f}" + ("" if r.returncode == 0 else f" (rc={r.returncode})")
        lines.append(
            f"| {r.video} | {r.kind} | {r.mode} | {frames} | {hw} | {r.seconds:.1f} "
            f"| {peak} | {fps} |"
        )
    return "\n".join(lines)


def ratios(runs: list[Run]) -> str:
    """Peak RSS of the longest over the shortest generated video, per mode."""
    lines = [
        "| mode | shortest (frames, MiB) | longest (frames, MiB) | length ratio "
        "| peak RSS ratio | claim (<= 1.10) |",
        "|---|---|---|---:|---:|---|",
    ]
    for mode in MODES:
        gen = sorted(
            (r for r in runs if r.kind == "generated" and r.mode == mode and r.returncode == 0),
            key=lambda r: r.frames,
        )
        if len(gen) < 2:
            continue
        lo, hi = gen[0], gen[-1]
        ratio = hi.peak_mib / lo.peak_mib
        lines.append(
            f"| {mode} | {lo.frames}, {lo.peak_mib:.1f} | {hi.frames}, {hi.peak_mib:.1f} "
            f"| {hi.frames / lo.frames:.0f}x | {ratio:.3f} | {'holds' if ratio <= 1.10 else 'FAILS'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the Markdown report; exit code 1 if a run failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short videos (1, 2, 4 s)")
    parser.add_argument(
        "--seconds",
        type=float,
        nargs="+",
        default=None,
        help="lengths of the generated videos in seconds (default 2 8 30; --quick 1 2 4)",
    )
    parser.add_argument(
        "--size", type=int, nargs=2, default=(360, 640), metavar=("H", "W"),
        help="resolution of the generated videos",
    )  # fmt: skip
    parser.add_argument("--fps", type=int, default=30, help="frame rate of generated videos")
    parser.add_argument("--no-real", action="store_true", help="skip the real clips")
    parser.add_argument(
        "--modes", nargs="+", choices=list(MODES), default=list(MODES), metavar="MODE",
        help="modes to run: 'uniform' and/or 'windows 16,16' (quote it)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    seconds = args.seconds or ([1.0, 2.0, 4.0] if args.quick else [2.0, 8.0, 30.0])
    height, width = args.size
    modes = args.modes

    from saliency_tubes.video import probe

    started = time.perf_counter()
    runs: list[Run] = []
    print(f"machine: {machine()}", file=sys.stderr)
    wall, peak, rc, err = measure([sys.executable, "-c", BASELINE_CODE])
    runs.append(Run("(no video: load model + 1 clip)", "baseline", "-", 0, 0, 0, wall, peak, rc))
    print(f"  baseline {wall:.1f} s {peak:.1f} MiB rc={rc}", file=sys.stderr)
    if rc != 0:
        print(err, file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="bench_streaming_") as tmp:
        work = Path(tmp)
        if args.no_real:
            pass
        elif not SHARED_VIDEOS.is_dir():
            print(f"skipping real clips: {SHARED_VIDEOS} is absent", file=sys.stderr)
        else:
            for name in REAL_CLIPS:
                path = SHARED_VIDEOS / name
                if not path.is_file():
                    print(f"skipping real clip {name}: not in {SHARED_VIDEOS}", file=sys.stderr)
                    continue
                info = probe(path)
                for mode in modes:
                    runs.append(run_explain(path, "real", mode, work, info.num_frames, info.size))

        for sec in seconds:
            n = max(2, round(sec * args.fps))
            path = work / f"gen_{height}x{width}_{n}f.mp4"
            t0 = time.perf_counter()
            make_video(path, n, height, width, args.fps)
            print(
                f"generated {path.name} ({n} frames) in {time.perf_counter() - t0:.1f} s",
                file=sys.stderr,
            )
            info = probe(path)
            for mode in modes:
                runs.append(run_explain(path, "generated", mode, work, info.num_frames, info.size))
            path.unlink()

    cmd = "python benchmarks/bench_streaming.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}")
    print(f"Command: `{cmd.strip()}`")
    print(f"Machine: {machine()}")
    print(
        f"Each row: one fresh `python -m saliency_tubes.cli explain VIDEO --model {MODEL} "
        "--quiet --format mp4 [--windows 16,16]` child; peak RSS = ru_maxrss of that child "
        "(os.wait4). frames/s = source frames / wall s (decode + explain + render + encode "
        "of 3 layouts, incl. ~interpreter and model start-up)."
    )
    print()
    print(table(runs))
    print()
    print(ratios(runs))
    print()
    print(f"Total benchmark time: {time.perf_counter() - started:.0f} s")
    return 0 if all(r.returncode == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
