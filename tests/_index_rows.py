"""Index rows of a made-up validation set (for the index page's scale test and its README
screenshot at scale): Kinetics-like paths and 400 classes, every column of index.parquet
filled as a batch fills it, from a fixed seed."""

from __future__ import annotations

from typing import Any

import numpy as np

from saliency_tubes.commands.batch.worker import COLUMNS


def made_up_rows(count: int, seed: int = 0, classes: int = 400) -> list[dict[str, Any]]:
    """``count`` rows: one in 50 failed, the rest labelled, about 70 % right, with
    localisation scores (a ground truth for every video)."""
    rng = np.random.default_rng(seed)
    names = [f"class_{k:03d}_{'ab'[k % 2]}ction" for k in range(classes)]
    rows = []
    for i in range(count):
        label = int(rng.integers(classes))
        vid = f"val_{names[label]}_{i:06d}-{rng.integers(16**8):08x}"
        row: dict[str, Any] = dict.fromkeys(COLUMNS)
        row.update(
            video_id=vid,
            path=f"/data/kinetics400/val/{names[label]}/{rng.integers(16**11):011x}_000010_000020.mp4",
            label=names[label],
            output=f"videos/{vid}",
            fingerprint=f"{rng.integers(16**8):08x}{rng.integers(16**8):08x}",
        )
        if i % 50 == 7:
            row.update(status="error", error="expected a readable video, but got a truncated file")
            rows.append(row)
            continue
        right = rng.random() < 0.7
        pred = label if right else int(rng.integers(classes))
        top = sorted({pred, *rng.integers(classes, size=4).tolist()}, key=lambda k: k != pred)[:5]
        scores = np.sort(rng.dirichlet(np.ones(len(top)) * 0.5))[::-1]
        curve = np.abs(np.sin(np.linspace(0, 3, 20) + rng.random() * 3)) * rng.random()
        duration = float(rng.uniform(2, 10))
        row.update(
            status="ok",
            label_index=label,
            pred=pred,
            pred_name=names[pred],
            score=float(scores[0]),
            correct=pred == label,
            topk=top,
            topk_names=[names[k] for k in top],
            topk_scores=[float(x) for x in scores],
            fraction_above=float(rng.beta(2, 5)),
            spread=float(rng.uniform(0.05, 0.4)),
            key_times=sorted(float(round(x, 3)) for x in rng.uniform(0, duration, size=3)),
            curve=curve.round(4).tolist(),
            pointing=float(rng.random() < 0.6),
            mass=float(rng.beta(2, 3)),
            iou=float(rng.beta(2, 4)),
            frames=int(duration * 25),
            fps=25.0,
            duration=duration,
            seconds=float(rng.uniform(1, 4)),
            random_weights=False,
            model="r3d_18",
            method="cam",
            weights_source="download",
        )
        rows.append(row)
    return rows
