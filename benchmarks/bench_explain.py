"""``explain`` end to end against its floor and against an earlier version, side by side.

For each case (a clip, a model, the sampling) three kinds of child process run, alternated
round by round so that they see the same machine load, each timed from its start to its
exit (``wall``):

* **tool**: ``python -m saliency_tubes.cli explain VIDEO --format mp4`` with this checkout;
* **base**: the same command with the code of ``--base`` (a git revision checked out into a
  temporary worktree; default: the code when issue 12 was filed);
* **floor**: what no explain of these outputs can avoid, in one process: import torch,
  decode the clip with the project's reader, and encode exactly the tool's output frames
  (drawn beforehand, losslessly, and read back from memory maps) with the tool's own
  encoder settings (:class:`~saliency_tubes.video.VideoWriter`); once in a plain loop
  (``floor``), once with the decoder and each encoder on threads of their own as the tool
  does (``floor, threaded``: the stricter floor); and that plus the model's own part
  (``+ model``: import its package, build it, one forward of one clip).

Writes ``RESULTS_explain.md`` (medians over the rounds and the per-round ratios).

    python benchmarks/bench_explain.py [--rounds 3] [--base 5de00be]
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _machine import describe  # benchmarks/_machine.py (scripts run from this folder)

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "videos"

FLOOR = r"""
import sys
import numpy as np
import torch  # every explain imports it
from saliency_tubes.video import BackgroundWriter, VideoWriter, iter_frames, prefetch, probe

video, out, threaded, model, *npys = sys.argv[1:]
if model != "-":  # the model's own unavoidable part: import, build, one forward
    from saliency_tubes import load_model

    loaded = load_model(model)
    size = loaded.preset.size
    with torch.no_grad():
        loaded.model(torch.zeros(1, 3, loaded.preset.frames, size[0], size[1]))
arrays = [np.load(p, mmap_mode="r") for p in npys]
info = probe(video)
writers = [VideoWriter(f"{out}/{i}.mp4", info.rate) for i in range(len(arrays))]
frames = iter_frames(video, info=info)
if threaded == "1":
    writers = [BackgroundWriter(w) for w in writers]
    frames = prefetch(frames)
for frame in frames:
    for w, a in zip(writers, arrays):
        w.write(np.array(a[frame.index]))
for w in writers:
    w.close()
"""

#: (name, video, model, extra explain arguments)
CASES = [
    ("arm_wrestling, tiny-actions", "arm_wrestling.mp4", "tiny-actions", []),
    ("arm_wrestling, r3d_18 (random weights)", "arm_wrestling.mp4", "r3d_18", []),
    (
        "arm_wrestling, tiny-actions, --windows 16,8",
        "arm_wrestling.mp4",
        "tiny-actions",
        ["--windows", "16,8"],
    ),
]


def _env(src: Path) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(src))


def _timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, ru_maxrss MiB) of one child process (memory is bench_streaming.py's
    subject; the number is kept but not reported here)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(argv)}\n{err}")
    return wall, usage.ru_maxrss / 1024


def _explain(src: Path, video: Path, out: Path, extra: list[str], fmt: str = "mp4") -> list[str]:
    shutil.rmtree(out, ignore_errors=True)
    return [
        sys.executable, "-m", "saliency_tubes.cli", "explain", str(video), "--out", str(out),
        "--format", fmt, "--quiet", *extra,
    ]  # fmt: skip


def _drawn_frames(video: Path, extra: list[str], work: Path) -> list[Path]:
    """The tool's output frames of the case, losslessly (PNG), as one .npy per output."""
    out = work / "png"
    subprocess.run(
        _explain(ROOT / "src", video, out, extra, "png"), env=_env(ROOT / "src"), check=True
    )
    from saliency_tubes.video import iter_frames

    arrays = []
    for folder in sorted(p for p in out.iterdir() if p.is_dir()):
        frames = [f.image for f in iter_frames(folder)]
        path = work / f"{folder.name}.npy"
        np.save(path, np.stack(frames))
        arrays.append(path)
    shutil.rmtree(out)
    return arrays


def _which(src: Path) -> str:
    argv = [sys.executable, "-c", "import saliency_tubes; print(saliency_tubes.__file__)"]
    return subprocess.run(argv, env=_env(src), capture_output=True, text=True, check=True).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--base", default="5de00be", help="git revision to compare with")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("RESULTS_explain.md"))
    parser.add_argument("--videos", type=Path, default=SHARED, help="folder of the real clips")
    args = parser.parse_args()
    if not args.videos.is_dir():
        raise SystemExit(f"expected the real clips in {args.videos}; pass --videos FOLDER")
    began = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="bench-explain-"))
    tree = work / "base"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), args.base],
        check=True, capture_output=True,
    )  # fmt: skip
    rows = []
    try:
        base_src = tree / "src"
        assert str(base_src) in _which(base_src), "the base tree is not the one imported"
        for name, clip, model, extra in CASES:
            video = args.videos / clip
            extra = ["--model", model, *extra]
            npys = _drawn_frames(video, extra, work)
            floor = [sys.executable, "-c", FLOOR, str(video), str(work / "floor")]
            runs = {
                "tool": (_explain(ROOT / "src", video, work / "tool", extra), _env(ROOT / "src")),
                "base": (_explain(base_src, video, work / "old", extra), _env(base_src)),
                "floor": ([*floor, "0", "-", *map(str, npys)], _env(ROOT / "src")),
                "floor, threaded": ([*floor, "1", "-", *map(str, npys)], _env(ROOT / "src")),
                "+ model": ([*floor, "1", model, *map(str, npys)], _env(ROOT / "src")),
            }
            times: dict[str, list[tuple[float, float]]] = {k: [] for k in runs}
            for r in range(args.rounds):
                order = list(runs)[r % len(runs) :] + list(runs)[: r % len(runs)]
                for kind in order:
                    argv, env = runs[kind]
                    if kind not in ("tool", "base"):  # the floors
                        shutil.rmtree(work / "floor", ignore_errors=True)
                        (work / "floor").mkdir()
                    else:
                        shutil.rmtree(Path(argv[argv.index("--out") + 1]), ignore_errors=True)
                    times[kind].append(_timed(argv, env))
                print(name, r, {k: round(v[-1][0], 2) for k, v in times.items()}, flush=True)
            for p in npys:
                p.unlink()
            rows.append((name, times))
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
            check=False, capture_output=True,
        )  # fmt: skip
        shutil.rmtree(work, ignore_errors=True)
    _report(args, rows, time.perf_counter() - began)


def _report(args: argparse.Namespace, rows: list, seconds: float) -> None:
    import torch

    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    lines = [
        "# `explain` end to end: the tool against its floor and against the code before issue 12",
        "",
        f"Command: `python benchmarks/bench_explain.py --rounds {args.rounds} --base {args.base}`"
        f" (tool = this checkout at {head}; base = {args.base}). The whole run took {seconds:.0f} s.",
        "",
        f"- Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        f"- {describe()} Shared with other jobs; load average at the end {os.getloadavg()[0]:.1f}.",
        f"- Software: torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"numpy {np.__version__}, Python {sys.version.split()[0]}.",
        "- Each number is one child process from its start to its exit (interpreter start, "
        "imports, model build, decode, explain, render, encode of heat, focus and "
        "side-by-side at the source size); medians over the rounds, kinds alternated.",
        "- floor: import torch + decode + encode of the same frames with the same encoder "
        "settings (libx264 superfast crf 18, the default); floor, threaded: the same with the decoder "
        "and the encoders on their own threads, as the tool runs them.",
        "",
        "- + model: the threaded floor plus the model's own part (import its package, build "
        "it, one forward of one clip).",
        "",
        "| case | tool s | base s | floor s | floor, threaded s | + model s | tool / floor | "
        "tool / floor, threaded | tool / + model | base / tool |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, times in rows:
        med = {k: statistics.median(w for w, _ in v) for k, v in times.items()}
        ratio = {
            "floor": statistics.median(
                t[0] / f[0] for t, f in zip(times["tool"], times["floor"], strict=True)
            ),
            "threaded": statistics.median(
                t[0] / f[0] for t, f in zip(times["tool"], times["floor, threaded"], strict=True)
            ),
            "model": statistics.median(
                t[0] / f[0] for t, f in zip(times["tool"], times["+ model"], strict=True)
            ),
            "base": statistics.median(
                b[0] / t[0] for t, b in zip(times["tool"], times["base"], strict=True)
            ),
        }
        lines.append(
            f"| {name} | {med['tool']:.2f} | {med['base']:.2f} | {med['floor']:.2f} | "
            f"{med['floor, threaded']:.2f} | {med['+ model']:.2f} | {ratio['floor']:.2f} | "
            f"{ratio['threaded']:.2f} | {ratio['model']:.2f} | {ratio['base']:.2f} |"
        )
    lines += [
        "",
        "Ratios are medians of the per-round ratios (each round's runs are adjacent).",
        "",
        "Every run, in seconds (round by round; the ratios above come from these):",
        "",
        "| case | kind | " + " | ".join(f"round {r + 1}" for r in range(args.rounds)) + " |",
        "|---|---|" + "---:|" * args.rounds,
    ]
    for name, times in rows:
        for kind, runs in times.items():
            cells = " | ".join(f"{wall:.2f}" for wall, _ in runs)
            lines.append(f"| {name} | {kind} | {cells} |")
    lines.append("")
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
