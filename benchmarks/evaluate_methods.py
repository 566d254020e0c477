"""Every explanation method on the evaluation benchmark, side by side, with what each costs.

What runs: :func:`saliency_tubes.metrics.benchmark_run.run_benchmark` on the held-out synthetic
clips of ``benchmarks/evaluate_tubes.py`` (``make_dataset(seed=10000)``, the embedded
``tiny-actions`` model at 16x96x96, each clip's true class explained) for every method in
:data:`saliency_tubes.METHODS` (installed extras included; cubic splines where a method
upsamples) and the motion-energy baseline: pointing game, mass, IoU, deletion, insertion and
the cascading-randomisation sanity check. Then, per method, what one explanation of one
clip costs on this model: clip forwards counted by a forward pre-hook on the model (the
batch size of every call), and seconds (median of 5 calls, after a warm-up), one torch
thread.

Outputs: ``benchmarks/RESULTS_methods.md`` and the text between the ``methods-results``
markers of the pages (docs/methods.md: the Methods page's table of measured numbers).

The black-box methods (RISE, LIME, Kernel SHAP: about 1000 forwards per explanation and per
sanity step) are left out of that run; ``--blackbox`` measures them on the same 40 clips
beside CAM, occlusion and integrated gradients re-measured there, into
``benchmarks/RESULTS_methods_blackbox.md`` and the ``methods-blackbox`` markers.

``--blackbox`` runs one clip at a time and keeps each finished clip's scores in a journal
(``--journal``, by default ``benchmarks/RESULTS_methods_blackbox.journal.json``, rewritten
whole after each clip): a run stopped at any moment loses only the clip under way, a rerun
with the same settings skips the clips the journal holds, and the tables are computed from
every finished clip and say how many. ``--shard K/N`` runs N processes side by side on one
journal (each save merges with the file under a lock; POSIX ``fcntl``); no shard writes
the tables or measures the costs: ``--from-journal`` writes the tables without running
more, and ``--measure-costs`` measures the costs (again) into the journal.

Usage (from the repository root):
    .venv/bin/python benchmarks/evaluate_methods.py               # 40 clips, ~30 min here
    .venv/bin/python benchmarks/evaluate_methods.py --clips 8 --no-write
    for k in 1 2; do   # the black-box table: 40 clips in two processes, one journal;
        .venv/bin/python benchmarks/evaluate_methods.py --blackbox --shard $k/2 &
    done; wait         # about 20 600 clip forwards a clip, 4-5 min each; stop and rerun
    .venv/bin/python benchmarks/evaluate_methods.py --blackbox --from-journal --measure-costs
    .venv/bin/python benchmarks/evaluate_methods.py --blackbox --clips 4 --samples 500 \
        --journal /tmp/j.json   # an earlier, cheaper run (RESULTS_methods_blackbox_500.md)
"""

from __future__ import annotations

import argparse
import datetime
import fcntl
import importlib.util
import json
import os
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from _machine import describe, load  # benchmarks/_machine.py (scripts run from this folder)
from evaluate_tubes import update_pages  # the same marker replacement

from saliency_tubes import METHODS
from saliency_tubes.commands import benchmark
from saliency_tubes.metrics.benchmark import BenchmarkConfig, BenchmarkResult
from saliency_tubes.metrics.protocol import INCREASE_TOLERANCE
from saliency_tubes.synthetic import make_dataset
from saliency_tubes.vocabulary import ATTENTION_METHODS, BLACKBOX_METHODS, INPUT_METHODS
from saliency_tubes.zoo import load_model

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- methods-results:begin -->", "<!-- methods-results:end -->"
BLACKBOX_BEGIN, BLACKBOX_END = "<!-- methods-blackbox:begin -->", "<!-- methods-blackbox:end -->"
BLACKBOX_REFERENCES = ("cam", "occlusion", "integrated-gradients")
"""Re-measured beside the black-box methods on the same clips (``--blackbox``)."""
JOURNAL = ROOT / "benchmarks" / "RESULTS_methods_blackbox.journal.json"
"""``--blackbox``'s journal: each finished clip's scores, so that a rerun continues."""


@dataclass
class Journal:
    """What a ``--blackbox`` run has finished, kept in a JSON file rewritten whole (a new
    file renamed over the old) after each clip, so that a run stopped at any moment loses
    at most the clip it was on and a rerun with the same settings skips the clips held.

    Attributes:
        path: the file.
        settings: what the scores depend on (the benchmark's configuration, the black-box
            masks / samples, torch threads); a rerun with others is refused.
        costs: per method ``[clip forwards, seconds]`` and the load when measured (None
            until measured).
        layers: the sanity cascade's layers; fractions: the curves' x (set by the first
            clip).
        clips: per finished clip (its index as a string) :meth:`BenchmarkResult.clip_record`
            plus its seconds and the load average when it finished.
    """

    path: Path
    settings: dict[str, Any]
    costs: dict[str, Any] | None = None
    layers: list[str] = field(default_factory=list)
    fractions: list[float] = field(default_factory=list)
    clips: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def open(cls, path: Path, settings: dict[str, Any]) -> Journal:
        """The journal at ``path`` (a new one where there is none); exits with one line when
        it holds other settings."""
        if not path.is_file():
            return cls(path, settings)
        held = json.loads(path.read_text("utf-8"))
        if held["settings"] != settings:
            sys.exit(
                f"error: expected the journal {path} to hold a run with these settings, but "
                f"it holds {held['settings']}; give another --journal or move it away"
            )
        return cls(path, **{k: v for k, v in held.items() if k != "path"})

    def save(self) -> None:
        """Write the journal, merged with what other runs on the same file (``--shard``)
        saved since it was read: under an exclusive lock, the file's clips, costs, layers
        and fractions are taken in where this run lacks them, then the whole is written to
        a new file renamed over the old."""
        with open(self.path.with_name(self.path.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self.path.is_file():
                held = json.loads(self.path.read_text("utf-8"))
                if held["settings"] != self.settings:
                    sys.exit(
                        f"error: expected the journal {self.path} to hold a run with these "
                        f"settings, but another run wrote {held['settings']} into it; give "
                        "each run its own --journal"
                    )
                self.clips = {**held["clips"], **self.clips}
                self.costs = self.costs or held["costs"]
                self.layers = self.layers or held["layers"]
                self.fractions = self.fractions or held["fractions"]
            keys = ("settings", "costs", "layers", "fractions", "clips")
            data = {k: getattr(self, k) for k in keys}
            part = self.path.with_name(self.path.name + ".part")
            part.write_text(json.dumps(data, indent=1) + "\n", "utf-8")
            os.replace(part, self.path)

    def record(
        self, result: BenchmarkResult, idx: list[int], seconds: float, shard: tuple[int, int]
    ) -> None:
        """Keep the clips ``idx`` of ``result`` (``seconds`` for them all, run by ``shard``
        K of N) and save."""
        self.layers, self.fractions = list(result.layers), result.fractions.tolist()
        for i in idx:
            self.clips[str(i)] = {
                **result.clip_record(i),
                "seconds": round(seconds / len(idx), 1),
                "shard": "{}/{}".format(*shard),
                "load": load(),
                "finished": datetime.datetime.now(datetime.timezone.utc).strftime("%H:%M UTC"),
            }
        self.save()

    def result(self, config: BenchmarkConfig) -> BenchmarkResult:
        """The benchmark's result over the clips finished, in clip order."""
        records = [self.clips[k] for k in sorted(self.clips, key=int)]
        seconds = sum(r["seconds"] for r in records)
        return BenchmarkResult.from_records(
            config, self.layers, self.fractions, records, seconds=seconds
        )


def costs(methods: list[str], repeats: int = 5) -> dict[str, tuple[int, float]]:
    """Per method: clip forwards and seconds (median of ``repeats``) to explain one held-out
    clip's true class on tiny-actions."""
    loaded = load_model("tiny-actions")
    preset = loaded.preset
    videos, _, labels = make_dataset(8, seed=10_000, frames=preset.frames, size=preset.size)
    clip = preset.preprocess()(videos[0])[None]
    target = [[int(labels[0])]]
    seen = [0]

    def count(_module: torch.nn.Module, args: tuple) -> None:
        first = args[0] if args else None
        seen[0] += int(first.shape[0]) if isinstance(first, torch.Tensor) else 1

    out: dict[str, tuple[int, float]] = {}
    for name in methods:
        explainer = loaded.explainer(name)
        explainer(clip, classes=target)  # warm-up; finds the layer (a traced forward)
        handle = loaded.model.register_forward_pre_hook(count)
        try:
            seen[0] = 0
            explainer(clip, classes=target)
            forwards = seen[0]
        finally:
            handle.remove()
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            explainer(clip, classes=target)
            times.append(time.perf_counter() - started)
        out[name] = (forwards, statistics.median(times))
    return out


def use_samples(count: int) -> None:
    """Run RISE with ``count`` masks and LIME / Kernel SHAP with ``count`` samples instead
    of their default 1000, in this process only: every explainer the benchmark builds comes
    from :data:`saliency_tubes.METHODS` (the benchmark, its sanity steps, its forward plan and
    :func:`costs`), so its entries are replaced by subclasses with that default."""
    for name, key in (("rise", "masks"), ("lime", "samples"), ("kernelshap", "samples")):
        base = METHODS[name]

        def init(self, *args, _base=base, _key=key, **options) -> None:  # noqa: ANN001
            options.setdefault(_key, count)
            _base.__init__(self, *args, **options)

        METHODS[name] = type(base.__name__, (base,), {"__init__": init})


def settings(methods: list[str]) -> list[str]:
    """The black-box methods' settings as the benchmark runs them (``loaded.explainer``'s
    defaults), read off the explainers, one line each."""
    loaded = load_model("tiny-actions")
    preset = loaded.preset
    size = (preset.frames, *preset.size)
    lines = []
    for name in methods:
        e = loaded.explainer(name)
        if name == "rise":
            what = (
                f"{e.masks} masks on a {'x'.join(map(str, e.grid(size)))} (t x h x w) grid, "
                f"p = {e.p}, {e.substrate} substrate, {e.score} weights, seed {e.seed}"
            )
        else:
            segments = (
                f"SLIC (n_segments {e.n_segments}, compactness {e.compactness:g})"
                if e.segments == "slic"
                else f"a {e.segments} of cells {e.cells}"
            )
            extra = f", {e.surrogate} surrogate" if hasattr(e, "surrogate") else ""
            what = f"{e.samples} samples over {segments} supervoxels, seed {e.seed}{extra}"
        lines.append(f"`{name}` ({METHODS[name].__name__}): {what}")
    return lines


def shard(text: str) -> tuple[int, int]:
    """``K/N`` as ``(K, N)``, with 1 <= K <= N."""
    k, _, n = text.partition("/")
    if not (k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
        raise argparse.ArgumentTypeError(f"expected K/N with 1 <= K <= N, got {text!r}")
    return int(k), int(n)


def arguments() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", type=int, help="held-out clips (default 40)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument(
        "--blackbox",
        action="store_true",
        help=f"{', '.join(BLACKBOX_METHODS)} beside {', '.join(BLACKBOX_REFERENCES)} "
        "(their own table and markers)",
    )
    p.add_argument(
        "--repeats", type=int, help="timed explanations per method (default 5; 3 with --blackbox)"
    )
    p.add_argument(
        "--samples",
        type=int,
        help="RISE's masks and LIME's / Kernel SHAP's samples (default: theirs, 1000)",
    )
    p.add_argument("--no-write", action="store_true", help="print only; write no files")
    p.add_argument(
        "--journal",
        type=Path,
        default=JOURNAL,
        help="--blackbox: each finished clip's scores go here; a rerun skips them "
        f"(default {JOURNAL.relative_to(ROOT)})",
    )
    p.add_argument(
        "--shard",
        type=shard,
        default=(1, 1),
        metavar="K/N",
        help="--blackbox: score only the clips whose index is K-1 modulo N, into the same "
        "journal (run N of them side by side, K = 1..N); no shard measures the costs or "
        "writes the tables: run --from-journal --measure-costs after the last one",
    )
    p.add_argument(
        "--measure-costs",
        action="store_true",
        help="--blackbox: measure each method's cost now (again) into the journal (on a quiet "
        "machine: the seconds are wall time)",
    )
    p.add_argument(
        "--from-journal",
        action="store_true",
        help="--blackbox: run nothing new; write the tables from the clips the journal holds",
    )
    args = p.parse_args()
    if not args.blackbox and (args.shard != (1, 1) or args.from_journal or args.measure_costs):
        p.error("--shard, --from-journal and --measure-costs need --blackbox")
    if args.clips is None:
        args.clips = 40
    if args.repeats is None:
        args.repeats = 3 if args.blackbox else 5
    return args


def run_blackbox(
    args: argparse.Namespace, config: BenchmarkConfig
) -> tuple[BenchmarkResult, dict[str, tuple[int, float]], str]:
    """``--blackbox``: the benchmark one clip at a time through the journal (the clips it
    holds skipped, each new one saved as it finishes), the costs measured once; returns
    the result over every finished clip, the costs and a line saying what the run holds."""
    settings = {
        "config": repr(config),
        "samples": args.samples or "the defaults",
        "threads": args.threads,
        "repeats": args.repeats,
        "increase_tolerance": INCREASE_TOLERANCE,
    }
    journal = Journal.open(args.journal, settings)
    k, n = args.shard
    if args.measure_costs or (journal.costs is None and not args.from_journal and n == 1):
        print("- measuring each method's cost on one clip", file=sys.stderr)
        measured = costs(list(config.methods), args.repeats)
        journal.costs = {"methods": measured, "load": load()}
        journal.save()
    others = {i for i in range(config.clips) if i % n != k - 1}  # other shards' clips
    done = {int(c) for c in journal.clips} | others
    if not args.from_journal and len(done) < config.clips:
        last = [time.perf_counter()]

        def keep(result: BenchmarkResult, idx: list[int]) -> None:
            now = time.perf_counter()
            journal.record(result, idx, now - last[0], args.shard)
            last[0] = now
            print(
                f"- journal: clips {sorted(int(k) + 1 for k in journal.clips)} done",
                file=sys.stderr,
            )

        say = lambda m: print(f"- {m}", file=sys.stderr)  # noqa: E731
        benchmark(config, show=True, on_stage=say, skip=done, on_chunk=keep)
    if n > 1 and not args.from_journal:  # no shard writes the tables: --from-journal does
        print(
            f"- shard {k}/{n} done; when every shard is, run --from-journal --measure-costs",
            file=sys.stderr,
        )
        sys.exit(0)
    if not journal.clips:
        sys.exit(
            f"error: expected finished clips in {args.journal}, but got none; run without --from-journal"
        )
    if journal.costs is None:
        print(
            "- the journal holds no costs: the costs table is empty; add --measure-costs",
            file=sys.stderr,
        )
    cost = {m: (int(f), float(t)) for m, (f, t) in (journal.costs or {}).get("methods", {}).items()}
    held = journal.result(config)
    finished = sorted(int(k) + 1 for k in journal.clips)
    loads = ", ".join(
        f"{journal.clips[k]['load'].split(',')[0]}" for k in sorted(journal.clips, key=int)
    )
    line = (
        f"Journal ({args.journal.name}): {len(finished)} of {config.clips} clips finished "
        f"(clips {', '.join(map(str, finished))}; {held.seconds / 60:.1f} min of benchmark "
        f"summed over the clips, {shards(journal)}; 1-min load average as each finished: "
        f"{loads}); the costs measured at load "
        f"{(journal.costs or {}).get('load', 'n/a')}."
    )
    return held, cost, line


def shards(journal: Journal) -> str:
    """How the journal's clips were run: one process, or N side by side (their minutes
    overlap in wall time)."""
    n = max((int(r.get("shard", "1/1").split("/")[1]) for r in journal.clips.values()), default=1)
    return "one process" if n == 1 else f"{n} processes side by side (wall time is less)"


def main() -> None:
    args = arguments()
    torch.set_num_threads(args.threads)
    if args.samples is not None:
        use_samples(args.samples)
    started = time.perf_counter()
    load_before = load()
    # The captum methods (occlusion, integrated gradients) where their extra is installed;
    # the black-box methods only with --blackbox.
    captum = importlib.util.find_spec("captum") is not None
    if args.blackbox:
        methods = [*BLACKBOX_REFERENCES, *BLACKBOX_METHODS]
    else:
        # The attention methods need a transformer: their rows are evaluate_vit.py's.
        methods = [m for m in METHODS if captum or m not in INPUT_METHODS]
        methods = [m for m in methods if m not in (*BLACKBOX_METHODS, *ATTENTION_METHODS)]
    config = BenchmarkConfig(
        clips=args.clips, methods=tuple(methods), interpolations=("cubic",), baselines=("motion",)
    )
    journalled = ""
    if args.blackbox:
        result, cost, journalled = run_blackbox(args, replace(config, chunk=1))
    else:
        say = lambda m: print(f"- {m}", file=sys.stderr)  # noqa: E731
        result = benchmark(config, show=True, on_stage=say)
        cost = costs(methods, args.repeats)
    write(args, config, result, cost, journalled, started, load_before)


def write(
    args: argparse.Namespace,
    config: BenchmarkConfig,
    result: BenchmarkResult,
    cost: dict[str, tuple[int, float]],
    journalled: str,
    started: float,
    load_before: str,
) -> None:
    """Print the tables and (without --no-write) write the RESULTS file and the pages."""
    methods = list(config.methods)
    table, versus = result.table(), result.versus_table()
    names = {name: METHODS[name].__name__ for name in methods}
    cost_lines = [
        "| `--method` | class | clip forwards per explanation "
        f"| seconds per clip (median of {args.repeats}) |",
        "|---|---|---:|---:|",
        *(
            f"| `{m}` | `st.{names[m]}` | {cost[m][0]} | {cost[m][1]:.3f} |"
            for m in methods
            if m in cost
        ),
    ]
    total = time.perf_counter() - started
    n = int(result.labels.size)
    counts = Counter(int(c) for c in result.labels.tolist())
    if len(set(counts.values())) == 1 and len(counts) == 8:
        classes = f"{n // 8} per class"
    else:
        classes = "classes " + ", ".join(f"{c}: {counts[c]}" for c in sorted(counts))
    of = f" of the {config.clips}" if n < config.clips else ""
    summary = (
        f"{n}{of} held-out clips (`make_dataset({config.clips}, seed=10000)`, 16x96x96, {classes}) on "
        f"the embedded tiny-actions model, explained class = the true class (accuracy "
        f"{result.accuracy:.3f}); mean [95 % percentile-bootstrap interval over clips]; "
        f"deletion / insertion {config.protocol.steps} steps, blur substrate, 1 frame x 4 x 4 "
        "px cells; cubic splines where a method upsamples. Costs: one clip, its true class, "
        f"{args.threads} torch thread(s). Benchmark {result.seconds / 60:.1f} min"
        + ("" if journalled else f", whole script {total / 60:.1f} min")
        + f" ({datetime.date.today().isoformat()}). {describe()}"
    )
    if not journalled:  # a journalled run states the load as each clip finished
        summary += f" Load average (1, 5, 15 min) at the start {load_before}, at the end {load()}."
    if args.blackbox:
        which = "the defaults" if args.samples is None else f"{args.samples} masks / samples"
        summary += (
            f" Black-box settings ({which}): "
            + "; ".join(settings([m for m in methods if m in BLACKBOX_METHODS]))
            + f". {journalled}"
        )
    block = f"{summary}\n\n{table}\n\n{versus}\n\n" + "\n".join(cost_lines)
    print(block)
    if args.no_write:
        return
    command = (
        f"`.venv/bin/python benchmarks/evaluate_methods.py --clips {args.clips} "
        f"--threads {args.threads}{' --blackbox' if args.blackbox else ''} "
        f"--repeats {args.repeats}"
        f"{'' if args.samples is None else f' --samples {args.samples}'}`"
    )
    name, title = ("RESULTS_methods.md", "Every method on the evaluation benchmark")
    markers = (BEGIN, END)
    if args.blackbox:
        name, title = ("RESULTS_methods_blackbox.md", "The black-box methods on the benchmark")
        markers = (BLACKBOX_BEGIN, BLACKBOX_END)
    (ROOT / "benchmarks" / name).write_text(f"# {title}\n\n{command}\n\n{block}\n", "utf-8")
    pages = update_pages(block, *markers)
    print(f"wrote benchmarks/{name}, {', '.join(pages)} ({total / 60:.1f} min)")


if __name__ == "__main__":
    main()
