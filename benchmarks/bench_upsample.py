"""Benchmark saliency_tubes.splines (cubic, corners) against scipy.ndimage.zoom(order=3).

Times both on the same seeded float32 map, checks the values agree (max abs error as a
fraction of the map's range) and prints a Markdown table plus the machine description.

Usage:
    python benchmarks/bench_upsample.py                # both sizes, 5 repeats
    python benchmarks/bench_upsample.py --quick        # small size only
    python benchmarks/bench_upsample.py --threads 2 --repeats 3
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import TypeVar

import numpy as np
import torch
from _machine import cpu_model  # benchmarks/_machine.py (scripts run from this folder)

from saliency_tubes.splines import _axis_matrix, upsample

R = TypeVar("R")

CASES: list[tuple[tuple[int, int, int], tuple[int, int, int]]] = [
    ((5, 7, 7), (16, 112, 112)),
    ((75, 14, 14), (300, 480, 640)),
]


def _median_time(fn: Callable[[], R], repeats: int) -> tuple[float, R]:
    """Median wall time of ``max(repeats, 1)`` calls of ``fn`` and the last result."""
    times = []
    t0 = time.perf_counter()
    result = fn()
    times.append(time.perf_counter() - t0)
    for _ in range(repeats - 1):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the Markdown report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per case (median)")
    parser.add_argument(
        "--scipy-big-repeats",
        type=int,
        default=1,
        help="scipy runs on the big case (each takes ~1 min)",
    )
    parser.add_argument("--quick", action="store_true", help="only the small case")
    parser.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=None,
        help="torch.set_num_threads value(s) to time ours with (scipy runs once per case)",
    )
    args = parser.parse_args(argv)

    from scipy import ndimage  # a benchmark dependency, not a library one

    thread_counts = args.threads or [torch.get_num_threads()]
    cases = CASES[:1] if args.quick else CASES
    rng = np.random.default_rng(0)

    rows = []
    for shape, size in cases:
        raw = rng.standard_normal(shape).astype(np.float32)
        raw_t = torch.from_numpy(raw)
        factors = tuple(o / i for i, o in zip(shape, size, strict=True))
        big = np.prod(size) > 10_000_000
        scipy_repeats = max(1, args.scipy_big_repeats if big else args.repeats)
        scipy_s, ref = _median_time(partial(ndimage.zoom, raw, factors, order=3), scipy_repeats)
        for threads in thread_counts:
            torch.set_num_threads(threads)
            _axis_matrix.cache_clear()  # so the cold call really builds the matrices
            t0 = time.perf_counter()
            upsample(raw_t, size, mode="cubic", align="corners", clip=False)  # cold call
            cold = time.perf_counter() - t0
            ours_s, ours = _median_time(
                partial(upsample, raw_t, size, mode="cubic", align="corners", clip=False),
                args.repeats,
            )
            clip_s, _ = _median_time(partial(upsample, raw_t, size), args.repeats)
            err = float(np.abs(ours.numpy().astype(np.float64) - ref).max()) / float(np.ptp(raw))
            rows.append((shape, size, scipy_s, scipy_repeats, threads, ours_s, cold, clip_s, err))
            del ours
        del ref

    print(f"Date: {datetime.date.today().isoformat()}")
    print(
        f"Machine: nproc={os.cpu_count()}, CPU={cpu_model()}, torch {torch.__version__}, "
        f"torch threads={','.join(map(str, thread_counts))}, numpy {np.__version__}, "
        f"scipy {__import__('scipy').__version__}, Python {platform.python_version()}"
    )
    print(
        f"Ours: cubic, corners, clip=False, float32; median of {args.repeats} warm runs "
        "(the cold first call, which builds the cached matrices, is shown separately; the "
        "last column times the default call, clip=True). "
        "scipy: ndimage.zoom(order=3) on the same float32 map, median of n runs."
    )
    print()
    print(
        "| size | scipy s | ours s | torch threads | ratio | max err / range | ours cold s "
        "| ours clip=True s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for shape, size, scipy_s, n_sc, threads, ours_s, cold, clip_s, err in rows:
        label = f"{shape} -> {size}".replace(" ", "")
        print(
            f"| {label} | {scipy_s:.3f} (n={n_sc}) | {ours_s:.4f} | {threads} "
            f"| {scipy_s / ours_s:.0f}x | {err:.1e} | {cold:.4f} | {clip_s:.4f} |"
        )


if __name__ == "__main__":
    main()
