"""``evaluate VIDEO``: clip forwards and wall time of the quick default against the full protocol.

Each run is a fresh process that loads the model, puts a forward pre-hook on it (the hook
survives the sanity check's deep copies, so their forwards are counted too) and times
``evaluate_video`` on a real clip: the default options (the quick protocol), then
``EvaluateOptions.full()``, per model, side by side in one invocation. With ``--base REV``
the code at REV (a temporary git worktree) runs what its command line ran by default
(three methods, four baselines, units voxel,frame,tube) on the first model, for the
count before this change. The ground truth is one box over the middle of every frame: the
forwards and the time do not depend on where it is. Writes ``RESULTS_evaluate_speed.md``
beside this script.

    python benchmarks/bench_evaluate_speed.py --models tiny-actions,r3d_18 --base 2d03091
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _machine import describe  # benchmarks/_machine.py (scripts run from this folder)

ROOT = Path(__file__).resolve().parents[1]
VIDEO = ROOT.parent / "shared" / "videos" / "arm_wrestling.mp4"

WORKER = r"""
import json, sys, time, warnings
sys.path.insert(0, {src!r})
warnings.simplefilter("ignore")
import torch
from saliency_tubes.commands import EvaluateOptions, evaluate_video
from saliency_tubes.zoo import load_model

loaded = load_model({model!r})
count = [0, 0]
def hook(_module, args):
    count[0] += 1
    count[1] += int(args[0].shape[0])
handle = loaded.model.register_forward_pre_hook(hook)
protocol = {protocol!r}
if protocol == "full":
    options = EvaluateOptions.full(progress=False)
elif protocol == "quick":
    options = EvaluateOptions(progress=False)
else:  # what the command line ran by default before the quick protocol
    options = EvaluateOptions(
        methods=("cam", "gradcam", "gradcam++"),
        baselines=("uniform", "centre", "random", "motion"),
        units=("voxel", "frame", "tube"),
    )
lines = []
started = time.perf_counter()
result = evaluate_video({video!r}, {gt!r}, {out!r}, loaded, options, on_stage=lines.append)
seconds = time.perf_counter() - started
handle.remove()
evaluation = result.manifest.get("evaluation", {{}})
estimate = [line for line in lines if "clip forwards in all" in line]
print(json.dumps({{
    "clips": count[1], "calls": count[0], "seconds": seconds,
    "announced": evaluation.get("forwards", {{}}).get("total"),
    "per_forward": evaluation.get("seconds_per_forward_estimate"),
    "line": estimate[0] if estimate else None,
    "rows": len(result.manifest["tubes"]), "threads": torch.get_num_threads(),
    "random_weights": loaded.random_weights,
}}))
"""


def _run(src: Path, model: str, protocol: str, gt: Path, out: Path) -> dict:
    code = WORKER.format(
        src=str(src), model=model, protocol=protocol, video=str(VIDEO), gt=str(gt), out=str(out)
    )
    load = os.getloadavg()[0]
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=ROOT
    )
    if done.returncode != 0:
        raise SystemExit(f"{model} {protocol} failed:\n{done.stderr[-3000:]}")
    record = json.loads(done.stdout.strip().splitlines()[-1])
    record["load"] = (load, os.getloadavg()[0])
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny-actions,r3d_18")
    parser.add_argument("--base", default=None, help="revision whose old defaults to count")
    args = parser.parse_args()
    if not VIDEO.is_file():
        raise SystemExit(f"expected the shared clip {VIDEO}; it is not here")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    scratch = Path(tempfile.mkdtemp(prefix="bench-evaluate-"))
    gt = scratch / "boxes.json"
    gt.write_text(
        json.dumps(
            {"size": [256, 340], "boxes": {str(i): [[90, 48, 250, 208]] for i in range(280)}}
        )
    )
    runs: list[tuple[str, str, dict]] = []
    for model in models:
        for protocol in ("quick", "full"):
            record = _run(ROOT / "src", model, protocol, gt, scratch / f"{model}-{protocol}")
            runs.append((model, protocol, record))
            print(model, protocol, record, flush=True)
    if args.base:
        tree = scratch / "base"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), args.base],
            check=True,
            capture_output=True,
        )
        try:
            record = _run(tree / "src", models[0], "before", gt, scratch / "before")
            runs.append((models[0], f"before (`{args.base}`, its CLI defaults)", record))
            print(models[0], "before", record, flush=True)
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                check=False,
                capture_output=True,
            )
    write(runs, models, args)


def write(runs: list[tuple[str, str, dict]], models: list[str], args: argparse.Namespace) -> None:
    threads = runs[0][2]["threads"]
    lines = [
        "# `evaluate VIDEO`: quick default against the full protocol",
        "",
        f"Measured {datetime.date.today()} by `benchmarks/bench_evaluate_speed.py --models "
        f"{','.join(models)}" + (f" --base {args.base}" if args.base else "") + "`: "
        "`arm_wrestling.mp4` (280 frames, 256x340; one 16-frame clip sampled as `explain` "
        "does), one box over the middle of every frame as ground truth, each run a fresh "
        f"process with {threads} torch threads, one after the other in one invocation. "
        "Clip forwards are counted by a forward pre-hook on the model (a batch of B clips "
        "counts B; the sanity check's randomised copies included); `announced` is the count "
        "the run printed before its long part. Wall time is `evaluate_video` alone (model "
        "loaded). `r3d_18` has random weights here (none are downloaded on this machine): "
        "its scores mean nothing, its timing is that of the trained network. The machine is "
        "shared: the 1-minute load average before and after each run is listed (above 2, "
        "other jobs were using its cores and the wall time is longer than on a quiet machine).",
        describe(),
        "",
        "| model | protocol | tubes | clip forwards | announced | model calls | wall (s) "
        "| s per clip forward, estimated before the run | load average before / after |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for model, protocol, r in runs:
        announced = "—" if r["announced"] is None else str(r["announced"])
        per = "—" if r["per_forward"] is None else f"{r['per_forward']:.3f}"
        lines.append(
            f"| {model} | {protocol} | {r['rows']} | {r['clips']} | {announced} | {r['calls']} "
            f"| {r['seconds']:.1f} | {per} | {r['load'][0]:.1f} / {r['load'][1]:.1f} |"
        )
    lines += ["", "Ratios, full ÷ quick (same model, same run):", ""]
    for model in models:
        quick = next(r for m, p, r in runs if m == model and p == "quick")
        full = next(r for m, p, r in runs if m == model and p == "full")
        lines.append(
            f"* {model}: {full['clips'] / quick['clips']:.2f}× the forwards, "
            f"{full['seconds'] / quick['seconds']:.2f}× the time "
            f"({quick['clips']} vs {full['clips']} forwards, {quick['seconds']:.1f} vs "
            f"{full['seconds']:.1f} s)."
        )
    lines += ["", "The estimate lines the runs printed (quick protocol):", ""]
    for model, protocol, r in runs:
        if protocol == "quick" and r["line"]:
            lines.append(f"* {model}: `{r['line']}`")
    out = Path(__file__).with_name("RESULTS_evaluate_speed.md")
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
