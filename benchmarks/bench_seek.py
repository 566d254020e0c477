"""``explain --format npy`` on a 10-minute 1080p video against a 10-second one (seeking reads).

Generates 1080p H.264 videos at 25 fps with PyAV/libx264 (superfast, 3 B-frames, a moving
pattern): 10 seconds and 10 minutes, with a keyframe every 2 seconds (GOP 50, what
streaming encoders and phones use) and every 10 seconds (GOP 250, libx264's default).
Then runs the same ``saliency-tubes explain VIDEO --format npy`` command line on each as a
fresh process (what a user runs: interpreter, imports and model load count), the videos
alternating their order round by round so they see the same machine load, and reports per
video the median wall seconds and CPU seconds (the process's user + system time, which a
busy machine distorts less), and the ratio long / short per GOP. A second table times the
decoding alone in this process: the 16 frames of a uniform clip read with seeks
(``read_frames``) against the same reader with seeks switched off (it decodes up to the
last of them; frames not wanted and not referenced are skipped in both), with the frames
compared for equality. For a video whose samples never skip a keyframe both columns run
the same path (their ratio is the noise).

Writes ``RESULTS_seek.md`` beside this script.

    python benchmarks/bench_seek.py [--rounds 3] [--cache DIR] [--gops 50,250]
"""

from __future__ import annotations

import argparse
import datetime
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from _machine import describe  # benchmarks/_machine.py (scripts run from this folder)

from saliency_tubes.video import decoding, probe, read_frames, sample_uniform

HERE = Path(__file__).resolve().parent
FPS = 25


def generate(path: Path, seconds: float, gop: int, size: tuple[int, int] = (1080, 1920)) -> Path:
    """A 1080p H.264 video: a diagonal ramp scrolling sideways and a square moving down."""
    if path.is_file():
        return path
    height, width = size
    yy, xx = np.mgrid[0:height, 0:width]
    base = ((xx * 3 + yy * 2) % 256).astype(np.uint8)
    chroma = np.full((height // 2, width), 128, np.uint8)
    partial = path.with_suffix(".partial.mp4")
    with av.open(str(partial), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(FPS))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "superfast", "g": str(gop), "bf": "3", "crf": "23"}
        for i in range(int(round(seconds * FPS))):
            luma = np.roll(base, 4 * i, axis=1)
            top = (7 * i) % (height - 100)
            luma[top : top + 100, 200:300] = 235
            chroma[:] = 128 + i % 50
            frame = av.VideoFrame.from_ndarray(np.concatenate([luma, chroma]), format="yuv420p")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    partial.rename(path)
    return path


def _explain(video: Path, out: Path) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of one ``explain --format npy`` process."""
    cmd = [sys.executable, "-m", "saliency_tubes.cli", "explain", str(video)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run(
        [*cmd, "--out", str(out), "--format", "npy", "--quiet"], capture_output=True, text=True
    )
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"explain failed ({done.returncode}):\n{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _decode_only(video: Path) -> dict[str, float]:
    """Seconds to read a uniform 16-frame clip with seeks and sequentially; frames equal."""
    info = probe(video)
    began = time.perf_counter()
    info = probe(video)
    probed = time.perf_counter() - began
    idx = sample_uniform(info.num_frames, 16)
    began = time.perf_counter()
    seeking = read_frames(video, idx, info=info)
    seek_s = time.perf_counter() - began
    kept, decoding.SEEK_MIN_SKIP = decoding.SEEK_MIN_SKIP, 10**9
    try:
        began = time.perf_counter()
        sequential = read_frames(video, idx, info=info)
        seq_s = time.perf_counter() - began
    finally:
        decoding.SEEK_MIN_SKIP = kept
    assert np.array_equal(seeking, sequential), video
    return {"probe": probed, "seek": seek_s, "sequential": seq_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=None, help="keep the generated videos")
    parser.add_argument("--gops", default="50,250")
    args = parser.parse_args()
    gops = [int(g) for g in args.gops.split(",")]
    cache = args.cache or Path(tempfile.mkdtemp(prefix="bench-seek-videos-"))
    cache.mkdir(parents=True, exist_ok=True)
    videos = {
        (seconds, gop): generate(cache / f"{seconds}s_1080p_gop{gop}.mp4", seconds, gop)
        for gop in gops
        for seconds in (10, 600)
    }
    loads: list[float] = []
    walls: dict[tuple[int, int], list[float]] = {key: [] for key in videos}
    cpus: dict[tuple[int, int], list[float]] = {key: [] for key in videos}
    with tempfile.TemporaryDirectory(prefix="bench-seek-") as tmp:
        for r in range(args.rounds):
            keys = list(videos) if r % 2 == 0 else list(videos)[::-1]
            for n, key in enumerate(keys):
                loads.append(os.getloadavg()[0])
                wall, cpu = _explain(videos[key], Path(tmp) / f"out-{r}-{n}")
                walls[key].append(wall)
                cpus[key].append(cpu)
                print(f"round {r} {key}: {wall:.1f} s wall, {cpu:.1f} s CPU", flush=True)
    decodes = {key: _decode_only(path) for key, path in videos.items()}
    _write(args, gops, videos, walls, cpus, loads, decodes)


def _write(args, gops, videos, walls, cpus, loads, decodes) -> None:  # type: ignore[no-untyped-def]
    med = statistics.median
    lines = [
        "# `explain --format npy`: a 10-minute 1080p video against a 10-second one",
        "",
        f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC by "
        f"`benchmarks/bench_seek.py --rounds {args.rounds}`. {describe()}",
        f"Load average (1 min) before each run: {min(loads):.1f} to {max(loads):.1f} "
        "(the machine is shared; CPU seconds are less distorted by the load than wall seconds).",
        "",
        "Videos: 1920x1080 H.264 (libx264 superfast, 3 B-frames, crf 23) at 25 fps, generated "
        "by the script; the default model (tiny-actions), one uniform clip of 16 frames.",
        "",
        "| GOP (frames) | video | size | wall s (median) | CPU s (median) | wall runs |",
        "|---|---|---|---|---|---|",
    ]
    for (seconds, gop), path in videos.items():
        runs = ", ".join(f"{w:.1f}" for w in walls[(seconds, gop)])
        lines.append(
            f"| {gop} | {seconds} s | {path.stat().st_size / 2**20:.0f} MB | "
            f"{med(walls[(seconds, gop)]):.1f} | {med(cpus[(seconds, gop)]):.1f} | {runs} |"
        )
    lines += ["", "| GOP | long / short, wall | long / short, CPU | goal |", "|---|---|---|---|"]
    for gop in gops:
        rw = med(walls[(600, gop)]) / med(walls[(10, gop)])
        rc = med(cpus[(600, gop)]) / med(cpus[(10, gop)])
        lines.append(f"| {gop} | {rw:.2f}x | {rc:.2f}x | <= 1.5x |")
    lines += [
        "",
        "Decoding alone (this process, seconds): the 16 frames of a uniform clip read with "
        "seeks and with seeks switched off (up to the last of them; unreferenced frames "
        "skipped in both); the frames are equal. Where no sample skips a keyframe both run "
        "the same path.",
        "",
        "| GOP | video | probe | seeking read | read without seeks | speed-up |",
        "|---|---|---|---|---|---|",
    ]
    for (seconds, gop), d in decodes.items():
        lines.append(
            f"| {gop} | {seconds} s | {d['probe']:.2f} | {d['seek']:.2f} | "
            f"{d['sequential']:.2f} | {d['sequential'] / d['seek']:.1f}x |"
        )
    (HERE / "RESULTS_seek.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
