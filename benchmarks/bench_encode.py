"""The H.264 encoder setting of the outputs: speed against quality, measured side by side.

Encodes the same frames (the side-by-side layout of ``explain`` on a real clip: original |
heat | focus, drawn once and kept in memory) with libx264 at every preset from
``ultrafast`` to ``medium`` and the given CRFs, through the project's own
:class:`~saliency_tubes.video.VideoWriter`, alternating the settings round by round so
they see the same machine load. Records the median encode time, the file size, and the
PSNR of the decoded video against the frames given (luma and RGB). Also encodes each
setting twice to say whether the output is reproducible. Writes ``RESULTS_encode.md``.

    python benchmarks/bench_encode.py [--video ../../shared/videos/arm_wrestling.mp4]
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import statistics
import tempfile
import time
from pathlib import Path

import av
import numpy as np
from _machine import describe  # benchmarks/_machine.py (scripts run from this folder)

from saliency_tubes.commands import ExplainOptions, explain_video, load_model
from saliency_tubes.video import VideoWriter, iter_frames

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"]


def _frames(video: Path, work: Path) -> list[np.ndarray]:
    """The side-by-side frames ``explain`` draws for ``video`` (decoded from a PNG folder)."""
    options = ExplainOptions(formats=("png",), layouts=("side_by_side",), progress=False)
    result = explain_video(video, work / "explain", load_model("tiny-actions"), options)
    folder = result.files["png"][0]
    return [f.image for f in iter_frames(folder)]


def _encode(frames: list[np.ndarray], path: Path, preset: str, crf: int, fps: float) -> float:
    started = time.perf_counter()
    with VideoWriter(path, fps=fps, crf=crf, preset=preset) as writer:
        for image in frames:
            writer.write(image)
    return time.perf_counter() - started


def _psnr(frames: list[np.ndarray], path: Path) -> tuple[float, float]:
    """PSNR (dB) of the decoded video against ``frames``: RGB, and luma (BT.601)."""
    with av.open(str(path)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    se_rgb = se_y = 0.0
    n_rgb = n_y = 0
    weights = np.array([0.299, 0.587, 0.114])
    for a, b in zip(frames, decoded, strict=True):
        b = b[: a.shape[0], : a.shape[1]].astype(np.float64)
        d = a.astype(np.float64) - b
        se_rgb += float((d**2).sum())
        n_rgb += d.size
        dy = d @ weights
        se_y += float((dy**2).sum())
        n_y += dy.size
    return (10 * np.log10(255**2 / (se_rgb / n_rgb)), 10 * np.log10(255**2 / (se_y / n_y)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--video", type=Path, default=ROOT.parent / "shared/videos/arm_wrestling.mp4"
    )
    parser.add_argument("--crf", type=int, nargs="+", default=[18])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        frames = _frames(args.video, work)
        fps = 28.0
        settings = [(p, c) for c in args.crf for p in PRESETS]
        times: dict[tuple[str, int], list[float]] = {s: [] for s in settings}
        digests: dict[tuple[str, int], set[str]] = {s: set() for s in settings}
        for _ in range(args.repeat):
            for preset, crf in settings:
                out = work / f"{preset}_{crf}.mp4"
                times[(preset, crf)].append(_encode(frames, out, preset, crf, fps))
                digests[(preset, crf)].add(hashlib.md5(out.read_bytes()).hexdigest())
        rows = []
        for preset, crf in settings:
            out = work / f"{preset}_{crf}.mp4"
            rgb, luma = _psnr(frames, out)
            rows.append(
                (
                    preset,
                    crf,
                    statistics.median(times[(preset, crf)]),
                    out.stat().st_size,
                    rgb,
                    luma,
                    len(digests[(preset, crf)]) == 1,
                )
            )
            print(rows[-1], flush=True)
    h, w = frames[0].shape[:2]
    medium = {crf: t for p, crf, t, *_ in rows if p == "medium"}
    lines = [
        "# H.264 encoder settings of the outputs",
        "",
        f"Measured {datetime.date.today()} by `benchmarks/bench_encode.py`: the {len(frames)} "
        f"side-by-side frames ({w}x{h}) `explain` draws for `{args.video.name}`, encoded by "
        f"`VideoWriter` (libx264, yuv420p), median of {args.repeat} rounds, settings alternating.",
        describe(),
        "",
        "| preset | crf | encode (s) | vs medium | size (KB) | PSNR RGB (dB) | PSNR luma (dB) | same bytes twice |",
        "|---|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for preset, crf, seconds, size, rgb, luma, same in rows:
        lines.append(
            f"| {preset} | {crf} | {seconds:.2f} | {medium[crf] / seconds:.1f}x | {size // 1024} | "
            f"{rgb:.1f} | {luma:.1f} | {'yes' if same else 'no'} |"
        )
    (Path(__file__).parent / "RESULTS_encode.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
