"""GPU tubes == CPU tubes: ``batch --format npy`` on the same videos with ``--device cpu`` and
``--device cuda`` (local, ``--batch-size 3``; and Ray's two stages with ``--engine ray`` where
Ray is installed), each video's top-k classes and tube compared.

A GPU's convolutions add in other orders than the CPU's (and cuDNN may use TF32), so the
tubes (normalised to [0, 1]) are compared within ``--tolerance`` (default 1e-3) and the
largest difference is reported; the top-k classes must be the same. ``--assert-models``
(default tiny-actions: trained weights, clear predictions) fail the check when they differ;
the other models (r3d_18 without weights is random: near-uniform scores may swap their
order) are reported only. Writes ``RESULTS_gpu_tubes.md`` beside this script; exit 1 when an
asserted model differs.

    python benchmarks/gpu_tubes.py [--videos DIR] [--models tiny-actions,r3d_18]
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from _machine import describe

HERE = Path(__file__).resolve().parent
VIDEOS = Path(os.environ.get("SALIENCY_TUBES_CLIPS") or HERE.parents[1] / "shared" / "videos")


def _batch(videos: Path, out: Path, model: str, device: str, engine: str) -> dict[str, dict]:
    cmd = [sys.executable, "-m", "saliency_tubes.cli", "batch", str(videos), "--out", str(out)]
    cmd += ["--format", "npy", "--model", model, "--device", device, "--batch-size", "3"]
    cmd += ["--engine", engine, "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return {r["video_id"]: r for r in pq.read_table(out / "index.parquet").to_pylist()}


def _compare(cpu: dict, gpu: dict, out_cpu: Path, out_gpu: Path) -> tuple[bool, float, float]:
    """Whether every video's top-k classes agree; the largest tube and score differences."""
    same, tube, score = cpu.keys() == gpu.keys(), 0.0, 0.0
    for vid, a in cpu.items():
        b = gpu.get(vid)
        if b is None or a["status"] != "ok" or b["status"] != "ok":
            return False, float("nan"), float("nan")
        same = same and a["topk"] == b["topk"]
        score = max(score, abs(a["score"] - b["score"]))
        ta = np.load(out_cpu / a["output"] / "tube.npy")
        tb = np.load(out_gpu / b["output"] / "tube.npy")
        tube = max(tube, float(np.abs(ta - tb).max())) if ta.shape == tb.shape else float("inf")
    return same, tube, score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=Path, default=VIDEOS)
    parser.add_argument("--models", default="tiny-actions,r3d_18")
    parser.add_argument("--assert-models", default="tiny-actions")
    parser.add_argument("--tolerance", type=float, default=1e-3)
    parser.add_argument(
        "--device", default="cuda", help="the device compared with the CPU (cpu: a dry run)"
    )
    args = parser.parse_args()
    try:
        import ray.data  # noqa: F401

        engines = ["local", "ray"]
    except ImportError:
        engines = ["local"]
    asserted = set(args.assert_models.split(","))
    lines, failed = [], False
    with tempfile.TemporaryDirectory(prefix="gpu-tubes-") as tmp:
        for model in args.models.split(","):
            out_cpu = Path(tmp) / f"{model}-cpu"
            cpu = _batch(args.videos, out_cpu, model, "cpu", "local")
            for engine in engines:
                out_gpu = Path(tmp) / f"{model}-{args.device}-{engine}"
                gpu = _batch(args.videos, out_gpu, model, args.device, engine)
                same, tube, score = _compare(cpu, gpu, out_cpu, out_gpu)
                ok = same and tube <= args.tolerance
                failed = failed or (model in asserted and not ok)
                verdict = "equal" if ok else "DIFFER"
                role = "asserted" if model in asserted else "reported"
                lines.append(
                    f"| {model} | {engine} | {len(cpu)} | {same} | {tube:.2e} | {score:.2e} | "
                    f"{verdict} ({role}) |"
                )
                print(lines[-1], flush=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    text = [
        f"# {args.device} tubes against CPU tubes (`batch --format npy --batch-size 3`)",
        "",
        f"Run {now:%Y-%m-%d %H:%M} UTC by `benchmarks/gpu_tubes.py --device {args.device}`. "
        f"{describe()}",
        f"Videos: {args.videos}; tolerance on the tubes (normalised to [0, 1]): "
        f"{args.tolerance:g}; the top-k classes must be the same.",
        "",
        "| model | engine | videos | same top-k | max tube diff | max score diff | verdict |",
        "|---|---|---|---|---|---|---|",
        *lines,
        "",
    ]
    name = "RESULTS_gpu_tubes.md" if args.device.startswith("cuda") else "RESULTS_gpu_tubes_dry.md"
    (HERE / name).write_text("\n".join(text), encoding="utf-8")
    print("\n".join(text))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
