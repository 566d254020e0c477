"""Running the benchmark protocol: the clips' forwards counted, the tubes and the sanity
check computed per method and mode, and every clip scored (:func:`run_benchmark`); the
configuration and the result are in :mod:`.benchmark`."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..hooks import model_device, preserved_state
from ..methods.inputs import class_scores
from ..synthetic import make_dataset
from ..zoo import get_adapter, load_model
from ..zoo.loading import LoadedModel
from .baselines import baseline_fn
from .benchmark import METRICS, BenchmarkConfig, BenchmarkResult
from .faithfulness import curve_forwards, make_substrate
from .protocol import (
    Forwards,
    Progress,
    Protocol,
    confidence_forwards,
    row_groups,
    row_label,
    score_tube,
)
from .sanity import SaliencyFn, cascade_layers, explainer_fn, explanation_forwards, sanity_check

__all__ = ["benchmark_forwards", "run_benchmark"]


def benchmark_forwards(
    config: BenchmarkConfig, layers: int, skip: Collection[int] = ()
) -> Forwards:
    """The clip forwards :func:`run_benchmark` runs for ``config`` with ``layers`` sanity
    layers (and the clips in ``skip`` left out), by part: the predictions and the trace
    first, then per chunk of clips their substrates and, per method or baseline, its tubes,
    sanity steps and curves."""
    protocol, n = config.protocol, config.clips
    preset = get_adapter(config.model).preset
    clip_size = (preset.frames, *preset.size)
    cells = int(np.prod(protocol.grid(clip_size)))
    per_curve_pair = 2 * curve_forwards(cells, protocol.steps, ends_known=True)
    parts: list[tuple[str, int]] = [("predict", n), ("sanity layers", 1)]
    for idx in _chunks(config, skip):
        size = len(idx)
        parts.append((_chunk_label(idx, n, "substrates"), size))
        for kind, keys in row_groups(config.methods, config.interpolations, config.baselines):
            explained = (
                0
                if kind.startswith("baseline/")
                else size
                * (1 + layers)
                * explanation_forwards(kind, torch.nn.Identity(), clip_size)
            )
            curves = len(keys) * size * (per_curve_pair + confidence_forwards(True))
            parts.append(
                (_chunk_label(idx, n, row_label(keys[0]).split(",")[0]), explained + curves)
            )
    return Forwards(tuple(parts))


def _chunks(config: BenchmarkConfig, skip: Collection[int]) -> list[list[int]]:
    """The clips to score (all but ``skip``), ``config.chunk`` at a time, in order."""
    todo = [i for i in range(config.clips) if i not in set(skip)]
    return [todo[s : s + config.chunk] for s in range(0, len(todo), config.chunk)]


def _chunk_label(idx: list[int], n: int, what: str) -> str:
    if idx == list(range(idx[0], idx[-1] + 1)):
        return f"clips {idx[0] + 1}-{idx[-1] + 1} of {n}: {what}"
    return f"clips {', '.join(str(i + 1) for i in idx)} of {n}: {what}"


def _tubes_and_sanity(
    kind: str,
    modes: Sequence[str],
    loaded: LoadedModel,
    batch: torch.Tensor,
    targets: Sequence[int],
    layers: Sequence[str],
    protocol: Protocol,
    progress: Progress,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tubes of one method (all ``modes`` at once) or one baseline, and their sanity check.

    Returns:
        ``(maps, correlations)``: ``(N, K, T, H, W)`` tubes (K = ``len(modes)``, 1 for a
        baseline) and ``(len(layers) + 1, N, K)`` Spearman correlations.
    """
    fn: SaliencyFn
    if kind.startswith("baseline/"):
        fn = baseline_fn(kind.split("/", 1)[1])
    else:
        explain = explainer_fn(
            kind,
            targets,
            interpolations=modes,
            align=protocol.align,
            **loaded.explainer_options(kind),
        )

        size = (batch.shape[2], batch.shape[3], batch.shape[4])
        per_clip = explanation_forwards(kind, loaded.model, size)

        def fn(model: torch.nn.Module, clip: torch.Tensor) -> torch.Tensor:
            maps = explain(model, clip)
            progress.advance(int(clip.shape[0]) * per_clip)
            return maps

    model = loaded.model
    maps = fn(model, batch)
    check = sanity_check(model, batch, fn, layers=layers, seed=protocol.sanity_seed, reference=maps)
    corr = check.correlations
    if maps.dim() == 4:
        maps, corr = maps[:, None], corr[..., None]
    return maps, corr


def _predictions(
    loaded: LoadedModel,
    clips: torch.Tensor,
    label_index: torch.Tensor,
    chunk: int,
    tell: Progress,
) -> tuple[np.ndarray, torch.Tensor]:
    """The predicted class of every clip and the probability of its true class (float64),
    ``chunk`` clips a forward."""
    predicted_parts, p_clip_parts = [], []
    with preserved_state(loaded.model, eval_mode=True), torch.no_grad():
        for i in range(0, len(clips), chunk):
            part = clips[i : i + chunk]
            probs = torch.softmax(class_scores(loaded.model, part, loaded.inputs).float(), 1).cpu()
            predicted_parts.append(probs.argmax(1).numpy())
            p_clip_parts.append(probs.gather(1, label_index[i : i + len(part), None])[:, 0])
            tell.advance(len(part))
    return np.concatenate(predicted_parts), torch.cat(p_clip_parts).double()


def _substrates(
    loaded: LoadedModel,
    batch: torch.Tensor,
    protocol: Protocol,
    labels: torch.Tensor,
    tell: Progress,
    labelled: Iterator[tuple[str, int]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each clip's substrate and the probability of its true class there (float64), in one
    forward told to ``tell`` as the next part of ``labelled``."""
    bases = torch.cat(
        [make_substrate(batch[j : j + 1], protocol.substrate) for j in range(len(batch))]
    )
    tell.part(*next(labelled))
    with preserved_state(loaded.model, eval_mode=True), torch.no_grad():
        logits = class_scores(loaded.model, bases, loaded.inputs).float()
    p_base = torch.softmax(logits, dim=1).cpu().gather(1, labels[:, None])[:, 0].double()
    tell.advance(len(batch))
    return bases, p_base


def _keep(
    per_clip: dict[str, np.ndarray],
    curves: dict[str, np.ndarray],
    i: int,
    scores: dict[str, float],
    row_curves: dict[str, dict[str, torch.Tensor]],
) -> None:
    """Store clip ``i``'s scores and deletion / insertion curves in its row's arrays."""
    for m in METRICS:
        per_clip[m][i] = scores[m]
    for name in ("deletion", "insertion"):
        curves[name][i] = row_curves[name]["scores"].numpy()


@dataclass(frozen=True)
class _Chunk:
    """A chunk of the benchmark's clips: their indices, clips, true classes, substrates
    and the true class's probability on each substrate."""

    idx: list[int]
    batch: torch.Tensor
    targets: list[int]
    bases: torch.Tensor
    p_base: torch.Tensor


def _score_group(
    kind: str,
    keys: list[str],
    config: BenchmarkConfig,
    loaded: LoadedModel,
    chunk: _Chunk,
    masks: Any,
    p_clip: torch.Tensor,
    layers: list[str],
    tell: Progress,
    kept: tuple[dict[str, Any], dict[str, Any], dict[str, np.ndarray]],
) -> np.ndarray | None:
    """Explain a chunk with one method (or baseline) in each of its rows' modes, run the
    sanity cascade, score every tube, and store it all in ``kept`` (per-clip scores,
    curves, sanity correlations); returns the curves' fractions (None: no clip)."""
    model, protocol = loaded.model, config.protocol
    idx, batch, targets, bases, p_base = (
        chunk.idx,
        chunk.batch,
        chunk.targets,
        chunk.bases,
        chunk.p_base,
    )
    per_clip, curves, sanity = kept
    fractions = None
    maps, corr = _tubes_and_sanity(
        kind,
        config.interpolations[: len(keys)],
        loaded,
        batch,
        targets,
        layers,
        protocol,
        tell,
    )
    for k, row in enumerate(keys):
        sanity[row][:, idx] = corr[:, :, k].numpy()
        for j, i in enumerate(idx):
            scores, row_curves = score_tube(
                model,
                batch[j : j + 1],
                maps[j, k],
                torch.from_numpy(masks[i]),
                targets[j],
                protocol,
                substrate=bases[j : j + 1],
                ends=(float(p_clip[i]), float(p_base[j])),
                progress=tell,
                inputs=loaded.inputs,
            )
            scores["sanity_top"] = float(corr[1, j, k])
            scores["sanity_all"] = float(corr[-1, j, k])
            _keep(per_clip[row], curves[row], i, scores, row_curves)
            fractions = row_curves["deletion"]["fractions"].numpy()
    return fractions


def _zeros(
    config: BenchmarkConfig, labels: np.ndarray, predicted: np.ndarray, layers: list[str]
) -> BenchmarkResult:
    """A result for ``config`` with every clip's scores, curves and correlations at zero."""
    rows, n, steps = config.rows(), config.clips, config.protocol.steps
    return BenchmarkResult(
        config=config,
        rows=rows,
        labels=labels.astype(np.int64),
        predicted=predicted.astype(np.int64),
        layers=layers,
        per_clip={r: {m: np.zeros(n) for m in METRICS} for r in rows},
        curves={r: {k: np.zeros((n, steps + 1)) for k in ("deletion", "insertion")} for r in rows},
        fractions=np.zeros(steps + 1),
        sanity={r: np.zeros((len(layers) + 1, n)) for r in rows},
    )


def run_benchmark(
    config: BenchmarkConfig | None = None,
    *,
    on_stage: Callable[[str], None] | None = None,
    progress: Progress | None = None,
    skip: Collection[int] = (),
    on_chunk: Callable[[BenchmarkResult, list[int]], None] | None = None,
) -> BenchmarkResult:
    """Score every method, interpolation mode and baseline on held-out synthetic clips.

    Each clip's *true* class is explained; its ground truth is the target object's mask
    (the only thing whose motion defines the class). Clips are generated at the model's
    preset size and length, so the mask needs no resizing.

    Args:
        config: what to run (default :class:`BenchmarkConfig`).
        on_stage: called with a short message at each stage.
        progress: told the plan (:func:`benchmark_forwards`) after the predictions and
            the trace, then each part (a chunk of clips and a method or baseline) and each
            forward (a progress bar).
        skip: indices of clips (of ``config.clips``) not to score, e.g. those a journal of
            an earlier, interrupted run holds; the others are chunked as if alone.
        on_chunk: called after each chunk with the result so far (clips not yet scored
            hold zeros) and the chunk's clip indices, e.g. to journal them
            (:meth:`BenchmarkResult.clip_record`).

    Returns:
        The :class:`BenchmarkResult` (of the clips scored when ``skip`` is given: see
        :meth:`BenchmarkResult.subset`).
    """
    config = config or BenchmarkConfig()
    config.check()
    say = on_stage or (lambda _m: None)
    tell = progress or Progress()
    started = time.perf_counter()
    protocol = config.protocol
    loaded = load_model(config.model, device=config.device)
    model, preset = loaded.model, loaded.preset
    say(f"generating {config.clips} held-out clips (seed {config.seed})")
    videos, masks, labels = make_dataset(
        config.clips, seed=config.seed, frames=preset.frames, size=preset.size
    )
    prep = preset.preprocess()
    clips = torch.stack([prep(v) for v in videos]).to(model_device(model) or torch.device("cpu"))
    label_index = torch.as_tensor(labels, dtype=torch.int64)
    predicted, p_clip = _predictions(loaded, clips, label_index, config.chunk, tell)
    layers = cascade_layers(model, clips[:1], protocol.granularity, inputs=loaded.inputs)  # type: ignore[arg-type]
    tell.advance(1)
    plan = benchmark_forwards(config, len(layers), skip)
    tell.plan(Forwards(plan.parts, done=config.clips + 1))
    result = _zeros(config, labels, predicted, layers)
    rows = result.rows
    kept = (result.per_clip, result.curves, result.sanity)
    say(f"scoring {len(rows)} tubes per clip; sanity cascade: {', '.join(layers)}")
    labelled = iter(plan.parts[2:])
    for idx in _chunks(config, skip):
        batch = clips[idx]
        targets = [int(labels[i]) for i in idx]
        bases, p_base = _substrates(loaded, batch, protocol, label_index[idx], tell, labelled)
        for kind, keys in row_groups(config.methods, config.interpolations, config.baselines):
            tell.part(*next(labelled))
            chunk = _Chunk(idx, batch, targets, bases, p_base)
            last = _score_group(
                kind, keys, config, loaded, chunk, masks, p_clip, layers, tell, kept
            )
            result.fractions = result.fractions if last is None else last
        result.seconds = time.perf_counter() - started
        if on_chunk is not None:
            on_chunk(result, idx)
    result.seconds = time.perf_counter() - started
    if skip:
        return result.subset([i for c in _chunks(config, skip) for i in c])
    return result
