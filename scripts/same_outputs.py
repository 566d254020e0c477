"""Do two versions of saliency-tubes write the same outputs? Run both, compare every file.

Runs every command of the command line (demo, explain with one clip and with windows,
compare-classes with a contrast, compare-models, pyramid, evaluate on a video, the
evaluation benchmark on two clips) on one generated clip and, when ``../shared/videos`` is
there, on a real clip, once with the code of ``--base`` (a git revision, checked out into a
temporary worktree) and once with this checkout, each in its own process. Then compares
what they wrote: the manifests and JSON reports key by key (timings excepted), ``.npy``
arrays value by value, the drawn frames (PNG frame folders, plots) pixel by pixel, and the
encoded videos by frame count and size (H.264 encodes are not reproducible run to run).

    python scripts/same_outputs.py --base 5de00be        # exit 0: the same outputs

Used to check that a refactoring changed no behaviour; see the README's layout section.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "videos"
#: Keys whose values legitimately differ between two runs of the same code (timings: the
#: evaluation's estimate is a measured time per forward).
VOLATILE = {"seconds", "seconds_per_forward_estimate"}
#: ... and in a batch's summary: its throughput, and its slowest videos (an order of timings).
VOLATILE |= {"wall_seconds", "videos_per_second", "frames_per_second", "slowest"}


def _commands(inputs: Path) -> list[tuple[str, list[str]]]:
    """``(name, argv)`` of every run on the shared inputs (``--out`` and ``--quiet`` added)."""
    clip = str(inputs / "input.mp4")
    mask = str(inputs / "input_mask.npy")
    runs = [
        ("demo", ["demo"]),
        (
            "explain",
            ["explain", clip, "--classes", "top2", "--format", "png,gif,npy,plot", "--timeline"],
        ),
        (
            "explain_windows",
            [
                "explain",
                clip,
                "--windows",
                "16,8",
                "--format",
                "png,npy,plot",
                "--method",
                "gradcam",
            ],
        ),
        (
            "explain_options",
            [
                "explain",
                clip,
                "--classes",
                "3",
                "--format",
                "png,mp4",
                "--layouts",
                "heat",
                "--interpolation",
                "linear",
                "--align",
                "centers",
                "--background",
                "blur",
            ],
        ),
        (
            "compare_classes",
            [
                "compare-classes",
                clip,
                "--classes",
                "top3",
                "--contrast",
                "shrink,grow",
                "--format",
                "png,npy,plot",
                "--timeline",
                "--style",
                "heat",
            ],
        ),
        (
            "compare_models",
            [
                "compare-models",
                clip,
                "--models",
                "tiny-actions,resnet3d-18",
                "--weights",
                f"resnet3d-18={inputs / 'r18.pth'}",
                "--classes",
                "top2",
                "--format",
                "png,npy,plot",
            ],
        ),
        ("pyramid", ["pyramid", clip, "--class", "shrink", "--depth", "2", "--all-tubes"]),
        (
            "evaluate_video",
            ["evaluate", clip, "--gt", mask, "--steps", "4", "--units", "voxel,frame"],
        ),
        (
            "benchmark",
            [
                "evaluate",
                "--clips",
                "2",
                "--steps",
                "4",
                "--methods",
                "cam,gradcam",
                "--interpolation",
                "cubic,nearest",
                "--baselines",
                "uniform,motion",
            ],
        ),
    ]
    # a batch of two videos, one labelled with ground truth (index.parquet, the journal,
    # the summary and each video's folder compared)
    runs.append(("batch", ["batch", str(inputs / "batch.csv"), "--workers", "1"]))
    real = SHARED / "arm_wrestling.mp4"
    if real.exists():
        runs += [
            ("real_explain", ["explain", str(real), "--format", "png,npy,plot"]),
            (
                "real_windows",
                [
                    "explain",
                    str(real),
                    "--windows",
                    "32,16",
                    "--format",
                    "npy,plot",
                    "--classes",
                    "top2",
                ],
            ),
        ]
    return runs


def _env(src: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(src), OMP_NUM_THREADS="1")
    check = subprocess.run(
        [sys.executable, "-c", "import saliency_tubes; print(saliency_tubes.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    if not Path(check.stdout.strip()).resolve().is_relative_to(src.resolve()):
        raise SystemExit(f"expected saliency_tubes from {src}, but got {check.stdout.strip()}")
    return env


def produce(src: Path, inputs: Path, out: Path) -> None:
    """Run every command with the package in ``src`` (a ``src/`` folder), outputs in ``out``."""
    env = _env(src)
    for name, argv in _commands(inputs):
        print(f"  {name}", flush=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "saliency_tubes.cli",
                *argv,
                "--out",
                str(out / name),
                "--quiet",
            ],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            cwd=out,
        )


def _json_diff(a: Any, b: Any, where: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key in VOLATILE:
                continue
            if key not in a or key not in b:
                out.append(f"{where}.{key}: only in {'new' if key not in a else 'base'}")
                continue
            _json_diff(a[key], b[key], f"{where}.{key}", out)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{where}: {len(a)} items against {len(b)}")
            return
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _json_diff(x, y, f"{where}[{i}]", out)
    elif isinstance(a, float) and isinstance(b, float):
        if not (a == b or (np.isnan(a) and np.isnan(b)) or abs(a - b) <= 1e-6 * max(1, abs(a))):
            out.append(f"{where}: {a!r} against {b!r}")
    elif a != b:
        out.append(f"{where}: {a!r} against {b!r}")


def _frames(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def compare(base: Path, new: Path) -> list[str]:
    """Every difference between two output trees, as lines."""
    problems: list[str] = []
    names_a = {p.relative_to(base) for p in base.rglob("*") if p.is_file()}
    names_b = {p.relative_to(new) for p in new.rglob("*") if p.is_file()}
    for rel in sorted(names_a ^ names_b):
        problems.append(f"{rel}: only in {'base' if rel in names_a else 'new'}")
    for rel in sorted(names_a & names_b):
        a, b = base / rel, new / rel
        suffix = rel.suffix
        if suffix == ".json":
            _json_diff(json.loads(a.read_text()), json.loads(b.read_text()), str(rel), problems)
        elif suffix == ".npy":
            x, y = np.load(a), np.load(b)
            if x.shape != y.shape or x.dtype != y.dtype:
                problems.append(f"{rel}: {x.shape} {x.dtype} against {y.shape} {y.dtype}")
            elif not np.array_equal(x, y, equal_nan=True):
                diff = float(np.nanmax(np.abs(x.astype(np.float64) - y)))
                if diff > 1e-6:
                    problems.append(f"{rel}: values differ by up to {diff:.3g}")
        elif suffix in (".mp4", ".gif"):
            # H.264 and GIF encodes are not reproducible run to run here (the decoded pixels
            # of one input written twice differ), so videos are compared by frame count and
            # size; the drawn frames themselves are compared exactly as PNG frame folders.
            x, y = _frames(a), _frames(b)
            if x.shape != y.shape:
                problems.append(f"{rel}: frames {x.shape} against {y.shape}")
        elif suffix == ".parquet":
            x, y = _table(a), _table(b)
            if x[0] != y[0]:
                problems.append(f"{rel}: schema {x[0]} against {y[0]}")
            _json_diff(x[1], y[1], str(rel), problems)
        elif suffix == ".jsonl":
            x, y = _lines(a), _lines(b)
            _json_diff(x, y, str(rel), problems)
        elif suffix == ".md" and rel.name.startswith("summary"):
            if _untimed(a) != _untimed(b):
                problems.append(f"{rel}: text differs (its throughput line left out)")
        elif suffix == ".png" or suffix == ".md":
            if a.read_bytes() != b.read_bytes():
                if suffix == ".png" and _png_same(a, b):
                    continue
                problems.append(f"{rel}: bytes differ")
    return problems


def _table(path: Path) -> tuple[str, list[dict[str, Any]]]:
    """A Parquet file's schema (as text) and rows."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    return str(table.schema.remove_metadata()), table.to_pylist()


def _lines(path: Path) -> list[Any]:
    """A JSON-lines file's rows, in order."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _untimed(path: Path) -> list[str]:
    """A batch summary's Markdown lines, less its throughput line (a timing)."""
    return [line for line in path.read_text().splitlines() if not line.startswith("Throughput")]


def _png_same(a: Path, b: Path) -> bool:
    from PIL import Image

    return bool(np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b))))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="git revision to compare with")
    parser.add_argument("--keep", type=Path, default=None, help="keep both output trees here")
    args = parser.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="same-outputs-"))
    tree = work / "base-tree"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), args.base],
        check=True,
        capture_output=True,
    )
    inputs = work / "inputs"  # one generated clip for both versions
    subprocess.run(
        [sys.executable, "-m", "saliency_tubes.cli", "demo", "--out", str(inputs), "--quiet"],
        env=_env(ROOT / "src"),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    # A fixed checkpoint for the second model of compare-models (random weights otherwise).
    seeded = (
        "import sys, torch; torch.manual_seed(0); "
        "from saliency_tubes.zoo import load_model; "
        "torch.save(load_model('resnet3d-18').model.state_dict(), sys.argv[1])"
    )
    subprocess.run(
        [sys.executable, "-c", seeded, str(inputs / "r18.pth")], env=_env(ROOT / "src"), check=True
    )
    shutil.copy(inputs / "input.mp4", inputs / "second.mp4")
    (inputs / "batch.csv").write_text(
        "path,label,gt\ninput.mp4,shrink,input_mask.npy\nsecond.mp4,,\n", encoding="utf-8"
    )
    run = work / "run"  # both versions write here, so that recorded paths are the same
    try:
        for label, src in (("base", tree / "src"), ("new", ROOT / "src")):
            print(f"{label}: {src}", flush=True)
            run.mkdir(parents=True)
            produce(src, inputs, run)
            run.rename(work / label)
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
            check=False,
            capture_output=True,
        )
    problems = compare(work / "base", work / "new")
    # The demo generates and encodes its own clip, so its tubes differ with the encode: it is
    # compared by its files and classes only.
    problems = [
        p
        for p in problems
        if not p.startswith("demo/") or "only in" in p or ".classes[" in p and ".name" in p
    ]
    for line in problems:
        print(line)
    print(f"{len(problems)} difference(s) between {args.base} and the working tree")
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
