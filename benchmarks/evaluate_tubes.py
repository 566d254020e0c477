"""Regenerate the evaluation benchmark: table, plots, RESULTS_evaluation.md, README section.

What runs: :func:`saliency_tubes.metrics.benchmark_run.run_benchmark` on held-out synthetic clips
(``make_dataset(seed=10000)``, generated at the embedded model's 16x96x96) for CAM,
Grad-CAM and Grad-CAM++ (``--methods``: any others, e.g. ``occlusion,integrated-gradients``,
which get one row each: their maps are at the clip's own grid) in every interpolation mode
and the four baselines, then a few
investigations (why the numbers are what they are), on the first clips of the same set
except (1), which draws its own smaller set with the same seed:

1. deletion / insertion with cells that span the whole clip in time (space-only ranking),
   against the default per-frame 4x4 cells;
2. localisation with ``align="centers"`` instead of ``"corners"``; CAM with ``relu=True``;
3. temporal alignment: CAM scored against the ground truth shifted by -1 / +1 frame;
4. Grad-CAM++'s channel weights on this global-average-pool + linear head;
5. deletion / insertion by frame and by connected region, and with the mean and zeros
   substrates, for CAM and the uniform and motion baselines.

Outputs: ``benchmarks/evaluation/`` (results.json, results.md, deletion_insertion.png,
sanity.png), ``docs/evaluation.png`` (the three panels, the README figure),
``benchmarks/RESULTS_evaluation.md`` and the text between the ``evaluation-results``
markers of README.md (summary line, table, paired differences).

Usage (from the repository root):
    .venv/bin/python benchmarks/evaluate_tubes.py                   # 40 clips, ~5 min here
    .venv/bin/python benchmarks/evaluate_tubes.py --clips 8 --investigate 4 --no-write
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _machine import cpu_model, load  # benchmarks/_machine.py (scripts run from this folder)

from saliency_tubes import GradCAMPlusPlus, SaliencyTubes
from saliency_tubes.commands import benchmark, write_benchmark
from saliency_tubes.hooks import capture_activation, preserved_state
from saliency_tubes.methods import METHODS as ALL_METHODS
from saliency_tubes.methods import normalize_tubes
from saliency_tubes.metrics import (
    localisation,
    motion_energy,
    perturbation_curve,
    spearman,
    uniform,
)
from saliency_tubes.metrics.benchmark import BenchmarkConfig, Protocol
from saliency_tubes.metrics.benchmark_run import run_benchmark
from saliency_tubes.metrics.stats import bootstrap_mean
from saliency_tubes.splines import upsample
from saliency_tubes.synthetic import make_dataset
from saliency_tubes.vocabulary import INPUT_METHODS
from saliency_tubes.zoo import load_model

ROOT = Path(__file__).resolve().parents[1]
# Methods --methods may name: the layer methods (in each interpolation mode) and the
# input-space ones (captum, one row each: their maps are at the clip's grid) where captum is
# installed. Every method side by side: benchmarks/evaluate_methods.py.
METHODS = tuple(
    m
    for m in ALL_METHODS
    if m not in INPUT_METHODS or importlib.util.find_spec("captum") is not None
)
BEGIN, END = "<!-- evaluation-results:begin -->", "<!-- evaluation-results:end -->"


def _fmt(values: np.ndarray) -> str:
    e = bootstrap_mean(values)
    return f"{e.mean:.3f} [{e.low:.3f}, {e.high:.3f}]" if e.n else "n/a"


def _held_out(n: int, k: int) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    loaded = load_model("tiny-actions")
    preset = loaded.preset
    videos, masks, labels = make_dataset(n, seed=10_000, frames=preset.frames, size=preset.size)
    prep = preset.preprocess()
    clips = torch.stack([prep(v) for v in videos[:k]])
    return clips, masks[:k], labels[:k]


def _loc_rows(name: str, maps: torch.Tensor, masks: np.ndarray, shift: int = 0) -> str:
    scores: dict[str, list[float]] = {"pointing": [], "mass": [], "iou": []}
    t = masks.shape[1]
    for i in range(maps.shape[0]):
        index = np.clip(np.arange(t) + shift, 0, t - 1)
        s = localisation(maps[i], masks[i][index], tolerance_frames=1, tolerance_px=6.0)
        for key in scores:
            scores[key].append(s[key])
    cells = " | ".join(_fmt(np.array(v)) for v in scores.values())
    return f"| {name} | {cells} |"


def investigate(n: int, k: int, protocol: Protocol) -> str:
    """The investigations on the first ``k`` clips of the ``n``-clip held-out set (Markdown)."""
    out = []
    loaded = load_model("tiny-actions")
    model = loaded.model
    clips, masks, labels = _held_out(n, k)
    targets = [[int(c)] for c in labels]

    # 1. deletion / insertion with space-only cells
    spatial = BenchmarkConfig(
        clips=k,
        interpolations=("cubic",),
        protocol=Protocol(cell=(16, 4, 4), steps=protocol.steps, resamples=protocol.resamples),
    )
    res = run_benchmark(spatial)
    out.append(
        f"### (1) Deletion / insertion with space-only cells ({k} clips, "
        "`make_dataset(" + str(k) + ", seed=10000)`)\n\n"
        "Cells of all 16 frames x 4 x 4 px (the tube averaged over time, each cell removed "
        "in every frame at once) instead of 1 frame x 4 x 4 px:\n"
    )
    out.append(res.table(["deletion", "insertion"]))

    # 2. alignment of the upsampling grid, and CAM with ReLU
    out.append(f"\n### (2) Localisation: upsampling grid and ReLU ({k} clips)\n")
    out.append("| tube | pointing game ↑ | mass ↑ | IoU top-\\|G\\| ↑ |\n|---|---:|---:|---:|")
    for name, explainer in (
        ("CAM, cubic, corners (default)", SaliencyTubes(model, "features", "fc")),
        ("CAM, cubic, centers", SaliencyTubes(model, "features", "fc", align="centers")),
        ("CAM, cubic, relu=True", SaliencyTubes(model, "features", "fc", relu=True)),
    ):
        out.append(_loc_rows(name, explainer(clips, classes=targets).maps[:, 0], masks))

    # 3. temporal alignment
    out.append(f"\n### (3) Temporal alignment: ground truth shifted in time ({k} clips)\n")
    out.append("| CAM, cubic vs mask of frame | pointing game ↑ | mass ↑ | IoU top-\\|G\\| ↑ |")
    out.append("|---|---:|---:|---:|")
    cam = SaliencyTubes(model, "features", "fc")(clips, classes=targets).maps[:, 0]
    for shift in (-1, 0, 1):
        out.append(_loc_rows(f"t {shift:+d}" if shift else "t (same frame)", cam, masks, shift))

    # 4. Grad-CAM++ on a global-average-pool + linear head
    with preserved_state(model, eval_mode=True), torch.no_grad():
        with capture_activation(model.features, with_grad=False) as record:
            model(clips)
    assert record.activation is not None
    act = record.activation  # (k, C, T', H', W'), non-negative (ReLU)
    z = act[0].numel() // act.shape[1]
    w = model.fc.weight.detach()[torch.as_tensor(labels)]  # (k, C)
    m = act.mean(dim=(2, 3, 4))  # (k, C)
    products = (w * m)[w > 0]
    size = tuple(clips.shape[2:])

    def tube(weights: torch.Tensor) -> torch.Tensor:
        raw = torch.einsum("nc,ncthw->nthw", weights, act)[:, None]
        return normalize_tubes(upsample(raw, size))[:, 0]  # type: ignore[arg-type]

    def rho(a: torch.Tensor, b: torch.Tensor) -> str:
        return _fmt(np.array([spearman(a[i], b[i]) for i in range(k)]))

    gpp = GradCAMPlusPlus(model, "features")(clips, classes=targets).maps[:, 0]
    activity = tube(torch.ones_like(w))  # every channel, no class information
    out.append(
        f"\n### (4) Grad-CAM++ on a global-average-pool + linear head ({k} clips)\n\n"
        f"Here dy/dA_j(x) = w_j / Z (Z = T'H'W' = {z}), so the closed form gives channel j the "
        "weight relu(w_j) / (2 + w_j m_j), m_j its mean activation. Over the channels with "
        f"w_j > 0, w_j m_j has median {float(products.median()):.2f} (quartiles "
        f"{float(products.quantile(0.25)):.2f}, {float(products.quantile(0.75)):.2f}), so the "
        "weight is close to relu(w_j) / 2: Grad-CAM++ is CAM with the negative class weights "
        "dropped. Spearman ρ over the clips:\n\n"
        "| tubes compared | ρ |\n|---|---:|\n"
        f"| Grad-CAM++ vs sum of relu(w_j) A_j | {rho(gpp, tube(w.clamp_min(0)))} |\n"
        f"| Grad-CAM++ vs sum of A_j (all channels, no class weights) | {rho(gpp, activity)} |\n"
        f"| CAM vs sum of A_j | {rho(cam, activity)} |"
    )

    # 5. other units and substrates
    grid = protocol.grid(clips.shape[2:])
    tubes = {
        "CAM, cubic": cam,
        "uniform": uniform(clips),
        "motion": motion_energy(clips),
    }
    out.append(
        f"\n### (5) Other deletion / insertion units and substrates ({k} clips)\n\n"
        "Deletion AUC ↓ / insertion AUC ↑; voxel cells as in the main table.\n\n"
        "| unit, substrate | " + " | ".join(tubes) + " |\n|---|" + "---:|" * len(tubes)
    )
    for unit, substrate in (
        ("frame", "blur"),
        ("tube", "blur"),
        ("voxel", "mean"),
        ("voxel", "zeros"),
    ):
        cells = []
        for maps in tubes.values():
            aucs = {
                mode: np.array(
                    [
                        perturbation_curve(
                            model,
                            clips[i : i + 1],
                            maps[i],
                            int(labels[i]),
                            mode=mode,  # type: ignore[arg-type]
                            unit=unit,  # type: ignore[arg-type]
                            steps=protocol.steps,
                            substrate=substrate,
                            grid=grid,
                        ).auc
                        for i in range(k)
                    ]
                )
                for mode in ("deletion", "insertion")
            }
            cells.append(f"{_fmt(aucs['deletion'])} / {_fmt(aucs['insertion'])}")
        out.append(f"| {unit}, {substrate} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def machine() -> str:
    return (
        f'2 cores of an "{cpu_model()}" (shared with other jobs), Python '
        f"{platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}"
    )


def update_readme(path: Path, block: str, begin: str = BEGIN, end: str = END) -> None:
    """Replace the text between the ``begin`` and ``end`` markers of ``path`` by ``block``."""
    text = path.read_text(encoding="utf-8")
    if begin not in text or end not in text:
        sys.exit(f"{path}: markers {begin} ... {end} not found; add them where the results go")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{begin}\n{block}\n{end}{tail}", encoding="utf-8")


def update_pages(block: str, begin: str = BEGIN, end: str = END) -> list[str]:
    """Replace the marked block in every page that holds the markers: README.md and the
    documentation's pages (docs/*.md; the same numbers appear in both until the README is
    cut to its short form). Returns the pages written; none holding them is an error."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    marked = [p for p in pages if p.is_file() and begin in (t := p.read_text("utf-8")) and end in t]
    if not marked:
        sys.exit(f"no page holds the markers {begin} ... {end}; add them where the results go")
    for page in marked:
        update_readme(page, block, begin, end)
    return [str(p.relative_to(ROOT)) for p in marked]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", type=int, default=40, help="held-out clips (default 40)")
    p.add_argument(
        "--investigate", type=int, default=16, help="clips for the investigations (0: none)"
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "evaluation")
    p.add_argument("--no-write", action="store_true", help="print only; write no files")
    p.add_argument(
        "--methods",
        default=",".join(BenchmarkConfig().methods),
        help=f"comma-separated explainers among {','.join(METHODS)} (default: cam, gradcam, "
        "gradcam++; occlusion runs 2 + 343 forwards per explanation and sanity step, "
        "integrated-gradients 1 + 50)",
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    load_before = load()
    config = BenchmarkConfig(
        clips=args.clips, methods=tuple(m.strip() for m in args.methods.split(",") if m.strip())
    )
    result = benchmark(config, show=True, on_stage=lambda m: print(f"- {m}", file=sys.stderr))
    table, versus = result.table(), result.versus_table()
    print(table, versus, sep="\n\n")
    notes = investigate(args.clips, args.investigate, config.protocol) if args.investigate else ""
    print(notes)
    total = time.perf_counter() - started
    n = int(result.labels.size)
    summary = (
        f"{n} held-out clips (`make_dataset(seed=10000)`, 16x96x96, {n // 8} per class), "
        f"explained class = the true class (model accuracy on them: {result.accuracy:.3f}); "
        "mean [95 % percentile-bootstrap interval over clips, 2000 resamples]. "
        f"Deletion / insertion: {config.protocol.steps} steps, blur substrate, cells of "
        "1 frame x 4 x 4 px; pointing game with 1 frame / 6 px tolerance; sanity check: "
        "cascading randomisation of fc, features, layer2, layer1, stem. Benchmark "
        f"{result.seconds / 60:.1f} min, whole script {total / 60:.1f} min on {machine()}, "
        f"{args.threads} torch thread(s); load average (1, 5, 15 min) {load_before} at the "
        f"start, {load()} at the end."
    )
    if args.no_write:
        return
    write_benchmark(result, args.out)
    shutil.move(args.out / "evaluation.png", ROOT / "docs" / "evaluation.png")  # the README's
    date = datetime.date.today().isoformat()
    results = (
        "# Evaluation benchmark\n\n"
        f"`.venv/bin/python benchmarks/evaluate_tubes.py --clips {args.clips} "
        f"--investigate {args.investigate} --threads {args.threads}` ({date}).\n\n"
        f"{summary}\n\n## All tubes\n\n{table}\n\n"
        "## Paired differences with the motion-energy baseline\n\n"
        f"Same clips, paired bootstrap; positive is better for every column except deletion.\n\n"
        f"{versus}\n\n## Investigations\n\n{notes}\n\n"
        f"Files: [`evaluation/results.json`](evaluation/results.json) (per-clip values, curves), "
        "[`evaluation/`](evaluation/) plots, [`../docs/evaluation.png`](../docs/evaluation.png).\n"
    )
    (ROOT / "benchmarks" / "RESULTS_evaluation.md").write_text(results, encoding="utf-8")
    pages = update_pages(f"{summary}\n\n{table}\n\n{versus}")
    print(
        f"wrote {args.out}, docs/evaluation.png, benchmarks/RESULTS_evaluation.md, "
        f"{', '.join(pages)} ({total / 60:.1f} min)"
    )


if __name__ == "__main__":
    main()
