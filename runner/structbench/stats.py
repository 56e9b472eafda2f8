"""Small statistics helpers: percentiles, Wilson intervals for rates, bootstrap for means.

Everything is deterministic: randomness comes from a seed the caller passes in, so a
rebuilt report shows the very same intervals as the first one.
"""

from __future__ import annotations

import math
import statistics
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Cap on resample-matrix elements built at once, so a large cell can't blow memory.
_CHUNK_ELEMENTS = 2_000_000


@dataclass(frozen=True, slots=True)
class Distribution:
    """Summary of a sample of one latency-like quantity (vLLM bench naming).

    All fields are None when the sample is empty.
    """

    n: int
    mean: float | None = None
    median: float | None = None
    std: float | None = None
    p90: float | None = None
    p99: float | None = None


EMPTY_DISTRIBUTION = Distribution(n=0)


def describe(values: Sequence[float]) -> Distribution:
    """Mean, median, population std, p90 and p99 (linear interpolation, as numpy).

    Args:
        values: The sample; may be empty.

    Returns:
        The summary, or :data:`EMPTY_DISTRIBUTION` when ``values`` is empty.
    """
    if not values:
        return EMPTY_DISTRIBUTION
    a = np.asarray(values, dtype=np.float64)
    p90, p99 = np.percentile(a, [90.0, 99.0])
    return Distribution(
        n=int(a.size),
        mean=float(a.mean()),
        median=float(np.median(a)),
        std=float(a.std()),
        p90=float(p90),
        p99=float(p99),
    )


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) with linear interpolation, or None if empty."""
    if not values:
        return None
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def derive_seed(seed: int, *labels: str) -> int:
    """A stable per-purpose seed: the same (seed, labels) always gives the same value.

    Python's ``hash`` is salted per process, so a CRC is used instead; this keeps a
    cell's interval independent of how many other cells the run has.
    """
    crc = zlib.crc32("\x1f".join(labels).encode("utf-8"))
    return (seed * 1_000_003 + crc) % (2**63)


def bootstrap_ci(
    values: Sequence[float], n_resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float] | None:
    """Percentile-bootstrap confidence interval for the mean of ``values``.

    Args:
        values: Per-call scores, usually 0/1 (a rate) or fractions in [0, 1].
        n_resamples: Number of bootstrap resamples; 0 disables the interval.
        seed: Seed for ``numpy.random.default_rng``.
        level: Coverage, e.g. 0.95.

    Returns:
        ``(low, high)``, or None when there are no values or no resamples.
    """
    n = len(values)
    if n == 0 or n_resamples <= 0:
        return None
    a = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    if bool(np.all((a == 0.0) | (a == 1.0))):
        # For 0/1 data, the count of ones in a resample is exactly Binomial(n, p):
        # the same distribution as index resampling, in O(n_resamples).
        means = rng.binomial(n, float(a.mean()), size=n_resamples) / n
    else:
        means = _resampled_means(a, n_resamples, rng)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def _resampled_means(
    a: np.ndarray, n_resamples: int, rng: np.random.Generator, q: float | None = None
) -> np.ndarray:
    """Means (or ``q``-th percentiles) of ``n_resamples`` with-replacement resamples, in bounded chunks."""
    n = a.size
    rows = max(1, _CHUNK_ELEMENTS // n)
    out = np.empty(n_resamples, dtype=np.float64)
    for start in range(0, n_resamples, rows):
        stop = min(n_resamples, start + rows)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = a[idx].mean(axis=1) if q is None else np.percentile(a[idx], q, axis=1)
    return out


def bootstrap_diff_ci(
    before: Sequence[float],
    after: Sequence[float],
    q: float | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
) -> tuple[float, float] | None:
    """95 % percentile-bootstrap interval of ``stat(after) - stat(before)``, two independent samples.

    ``stat`` is the mean, or the ``q``-th percentile (0..100) when ``q`` is given. When the
    interval holds 0, the samples cannot tell the two apart: the difference is noise.

    Returns:
        ``(low, high)``, or None when a sample is empty or ``n_resamples`` is 0.
    """
    if not before or not after or n_resamples <= 0:
        return None
    rng = np.random.default_rng(seed)
    a = _resampled_means(np.asarray(before, dtype=np.float64), n_resamples, rng, q)
    b = _resampled_means(np.asarray(after, dtype=np.float64), n_resamples, rng, q)
    low, high = np.quantile(b - a, [0.025, 0.975])
    return float(low), float(high)


def wilson_ci(successes: int, n: int, level: float = 0.95) -> tuple[float, float] | None:
    """Wilson score interval for a proportion ``successes / n``.

    A bootstrap of 0/1 data collapses to ``[1, 1]`` when every value is 1 (and to
    ``[0, 0]`` at 0), claiming certainty from two samples; Wilson's interval stays wide
    at small n and never leaves [0, 1].

    Returns:
        ``(low, high)``, or None when ``n`` is 0.
    """
    if n <= 0:
        return None
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, {n}], got {successes}")
    z = statistics.NormalDist().inv_cdf(0.5 + level / 2.0)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2.0 * n)) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n)) / denom
    # Clamped: rounding can put an end a hair outside [0, 1] at p = 0 or 1.
    return max(0.0, centre - half), min(1.0, centre + half)


def rate_ci(values: Sequence[float], n_resamples: int = 1000, seed: int = 0) -> tuple[float, float] | None:
    """95 % interval of a mean score: Wilson when every value is 0 or 1, else the bootstrap.

    ``n_resamples`` 0 turns intervals off for both, as it always did for the bootstrap.
    """
    if not values or n_resamples <= 0:
        return None
    if all(v in (0.0, 1.0) for v in values):
        return wilson_ci(sum(1 for v in values if v == 1.0), len(values))
    return bootstrap_ci(values, n_resamples=n_resamples, seed=seed)
