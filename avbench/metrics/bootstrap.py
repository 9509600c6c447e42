"""Seeded percentile bootstrap intervals over items.

NaN entries are degenerate units: they are left out of every resample's
mean, never counted as numbers.
"""

from __future__ import annotations

import numpy as np

from ..defaults import BOOTSTRAP_RESAMPLES as RESAMPLES
from ..defaults import INTERVAL_CONFIDENCE as CONFIDENCE

SEED = 0


def bootstrap_ci(
    values: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED, confidence: float = CONFIDENCE
) -> tuple[float, float] | None:
    """Percentile interval of the mean of the finite entries of `values`."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return None
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, 100):  # chunks keep memory flat for large N
        stop = min(start + 100, resamples)
        picks = rng.integers(0, finite.size, size=(stop - start, finite.size))
        means[start:stop] = finite[picks].mean(axis=1)
    alpha = (1.0 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)
