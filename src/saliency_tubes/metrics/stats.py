r"""Confidence intervals over clips: the percentile bootstrap.

Efron and Tibshirani, "An Introduction to the Bootstrap", 1993, ch. 13: resample the
:math:`n` per-clip values with replacement :math:`B` times, take the mean of each
resample, and report the :math:`\alpha/2` and :math:`1 - \alpha/2` quantiles of those means.
The bootstrap was chosen over a t-interval because several scores are bounded and far
from normal (the pointing game is 0 or 1 per clip; AUCs pile up near 0 or 1).
Paired differences (method minus baseline on the same clips) resample clip indices
once for both, so the interval accounts for the pairing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import InputError

__all__ = ["Estimate", "bootstrap_mean", "paired_difference"]


@dataclass(frozen=True)
class Estimate:
    """A mean with its bootstrap confidence interval.

    Attributes:
        mean: the sample mean.
        low: lower end of the interval.
        high: upper end of the interval.
        n: number of values.
    """

    mean: float
    low: float
    high: float
    n: int

    def as_dict(self) -> dict[str, float | int | None]:
        """``{"mean", "low", "high", "n"}`` for JSON (None where undefined)."""

        def value(x: float) -> float | None:
            return None if math.isnan(x) else x

        return {
            "mean": value(self.mean),
            "low": value(self.low),
            "high": value(self.high),
            "n": self.n,
        }


def _resampled_means(values: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, values.shape[0], size=(resamples, values.shape[0]))
    return values[idx].mean(axis=1)


def bootstrap_mean(
    values: np.ndarray | list[float],
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> Estimate:
    """Mean of ``values`` with a percentile-bootstrap interval.

    Args:
        values: one value per clip; NaN marks a clip where the score is undefined (it
            is left out; with no defined value at all the estimate is NaN, ``n = 0``).
        confidence: coverage of the interval, in (0, 1).
        resamples: number of bootstrap resamples ``B``.
        seed: seed of the resampling.

    Returns:
        The :class:`Estimate` (a single value gives a zero-width interval).
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if np.isinf(v).any():
        raise InputError("expected finite values (NaN for undefined), but got inf")
    if not 0.0 < confidence < 1.0:
        raise InputError(f"expected confidence in (0, 1), but got {confidence!r}")
    v = v[~np.isnan(v)]
    if v.size == 0:
        return Estimate(mean=math.nan, low=math.nan, high=math.nan, n=0)
    means = _resampled_means(v, resamples, seed)
    alpha = (1.0 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return Estimate(mean=float(v.mean()), low=float(low), high=float(high), n=int(v.size))


def paired_difference(
    a: np.ndarray | list[float],
    b: np.ndarray | list[float],
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> Estimate:
    """Mean of ``a - b`` over the same clips, with a paired percentile-bootstrap interval."""
    va = np.asarray(a, dtype=np.float64).reshape(-1)
    vb = np.asarray(b, dtype=np.float64).reshape(-1)
    if va.shape != vb.shape:
        raise InputError(f"expected paired values of equal length, but got {va.size} and {vb.size}")
    return bootstrap_mean(va - vb, confidence=confidence, resamples=resamples, seed=seed)
