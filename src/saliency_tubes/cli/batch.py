"""``saliency-tubes batch`` (and the demo's dataset variant): a dataset of videos at once."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from ..commands import BATCH_SIZE
from . import flags, parse
from .running import guarded, report_batch, say, stages

__all__ = ["batch", "demo_dataset"]


def demo_dataset(out_dir: Path, classes: str, method: str, quiet: bool) -> None:
    def run() -> Any:
        from ..commands import (
            BatchOptions,
            BatchSettings,
            ExplainOptions,
            ModelOptions,
            batch_videos,
            write_demo_dataset,
        )

        explain = ExplainOptions(
            method=method, classes=parse.class_spec(classes), formats=("mp4", "plot")
        )
        table = write_demo_dataset(out_dir / "dataset")
        if not quiet:
            say(f"wrote {table.parent} (clips, masks and labels.csv)")
        settings = BatchSettings(ModelOptions(), explain, out_dir / "batch" / "videos")
        workers = min(2, os.cpu_count() or 1)
        options = BatchOptions(workers=workers, progress=not quiet)
        return batch_videos(table, out_dir / "batch", settings, options, on_stage=stages(quiet))

    result = guarded(run)
    if result is not None:
        report_batch(result)


@click.command(context_settings=flags.CONTEXT)
@click.argument("source", required=False, type=click.Path(path_type=Path), metavar="INPUT")
@flags.options(flags.OUT)
@click.option(
    "--workers", type=int, default=1, show_default=True,
    help="Local worker processes; each loads the model once, with cores/N torch threads "
    "(--device cuda: one per GPU).",
)  # fmt: skip
@click.option(
    "--threads", type=int, default=None,
    help="Torch CPU threads per local worker (default: cores / workers).",
)  # fmt: skip
@click.option(
    "--batch-size", type=int, default=BATCH_SIZE, show_default=True,
    help="Videos per forward (their clips in one batch; the next ones are decoded meanwhile; "
    "on Ray, more than 1: decode actors then explain actors). Methods whose tube would change, or that run many forwards per "
    "clip, and --windows, explain one video at a time (said at the start).",
)  # fmt: skip
@click.option(
    "--decoders", type=int, default=None,
    help="Threads decoding videos for each local worker's model (more than one: each forward "
    "takes the clips decoded so far, up to --batch-size; for one GPU); with --engine ray and "
    "--batch-size above 1, the decode actors (ignored at --batch-size 1). Default: 1 local; on "
    "Ray, the CPUs the explain actors leave.",
)  # fmt: skip
@click.option(
    "--engine", default="local", show_default=True,
    help="local (worker processes on this machine) | ray (Ray Data; needs saliency-tubes[ray]).",
)  # fmt: skip
@click.option(
    "--ray-address", default=None,
    help="With --engine ray: a running cluster to join (auto | HOST:PORT); default: Ray on "
    "this machine only.",
)  # fmt: skip
@click.option(
    "--shard", default=None, metavar="I/N",
    help="Only the I-th of N deterministic parts of INPUT (for job schedulers); join the "
    "parts with --merge.",
)  # fmt: skip
@click.option("--limit", type=int, default=None, help="At most N videos (a trial run).")
@click.option(
    "--timeout", type=float, default=None,
    help="Seconds one video may take; a slower one is stopped and recorded as an error.",
)  # fmt: skip
@click.option("--force", is_flag=True, help="Redo every video, even those done before.")
@click.option(
    "--merge", "merge", multiple=True, type=click.Path(path_type=Path), metavar="DIR",
    help="Instead of running: join the indexes of these batch folders (or of the shards in "
    "--out) into --out's index.parquet and summary. Repeat for several folders.",
)  # fmt: skip
@flags.options(flags.EXPLAIN, flags.QUIET)
def batch(source: Path | None, out_dir: Path, **params: Any) -> None:
    """Explain every video of INPUT: a folder (searched recursively), a .txt list of paths,
    or a .csv / .jsonl / .parquet table with a path column (optional: label, gt).

    \b
    Writes OUT/videos/<video_id>/ (what `explain` writes, per video), OUT/index.parquet (a
    row per video: status, prediction, score, correct, tube statistics, localisation with
    gt, ...) and OUT/summary.json / summary.md. Running the same command again skips the
    videos already done and retries the failed ones. Exit code 1 when some videos failed.
    """
    merge: tuple[Path, ...] = params.pop("merge")

    def run() -> Any:
        from ..commands import (
            BatchOptions,
            BatchSettings,
            batch_videos,
            merge_batches,
            parse_shard,
        )

        if merge:
            if source is not None:
                raise click.UsageError("give INPUT or --merge DIR..., not both")
            return merge_batches(merge, out_dir)
        if source is None:
            raise click.UsageError(
                "expected INPUT (a folder, list or table of videos) or --merge DIR"
            )
        explain = flags.explain_options(params)
        model = parse.model_options(params)
        settings = BatchSettings(model, explain, out_dir / "videos", params["threads"])
        options = BatchOptions(
            workers=params["workers"],
            batch_size=params["batch_size"],
            decoders=params["decoders"],
            engine=params["engine"],
            ray_address=params["ray_address"],
            shard=parse_shard(params["shard"]),
            limit=params["limit"],
            timeout=params["timeout"],
            force=params["force"],
            progress=not params["quiet"],
        )
        return batch_videos(source, out_dir, settings, options, on_stage=stages(params["quiet"]))

    result = guarded(run)
    if result is not None:
        report_batch(result)
