"""One-sided confidence bounds used by the `check` gate (autogo_deploy/gate.py). Pure functions.

* Order statistics (distribution-free, for i.i.d. runs). With n runs sorted x(1) <= ... <= x(n),
  P(x(k) < q-quantile) = P(Binomial(n, q) >= k): the smallest k with P(Bin(n, q) >= k) <= a makes
  x(k) an upper bound at level 1 - a; the largest j with P(Bin(n, q) <= j - 1) <= a makes x(j) a
  lower bound.
* Batch means (for runs that are not independent across processes). Each harness process has its
  own speed (memory placement, frequency, neighbours): on the development machine the medians of
  back-to-back 100-run batches of one model spread by ~4% (standard deviation) while each batch's
  own 95% interval was only ±1.7%. Pooled order-statistic bounds then claim far more precision than
  the data hold. The batch-means method (standard in simulation output analysis) treats each batch
  (or group of consecutive batches) as one observation: the statistic is estimated per group and a
  Student-t bound is put on the mean of those estimates, so the process-to-process spread is in the
  bound. Groups hold at least `5 / (1 - q)` runs so a tail quantile is estimated from >= 5 runs above
  it (p99: >= 500 runs per group).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np


@lru_cache(maxsize=4096)
def order_stat_upper(n: int, q: float, alpha: float) -> int | None:
    """0-based index k of the sorted sample that is an upper (1 - alpha) bound on the q-quantile,
    or None when n is too small for any finite bound."""
    from scipy.stats import binom

    # smallest k (1-based) with P(Bin(n, q) >= k) <= alpha, i.e. cdf(k - 1) >= 1 - alpha
    k = int(binom.ppf(1.0 - alpha, n, q)) + 1
    while k > 1 and binom.sf(k - 2, n, q) <= alpha:  # guard against ppf rounding
        k -= 1
    while k <= n and binom.sf(k - 1, n, q) > alpha:
        k += 1
    return k - 1 if k <= n else None


@lru_cache(maxsize=4096)
def order_stat_lower(n: int, q: float, alpha: float) -> int | None:
    """0-based index j of the sorted sample that is a lower (1 - alpha) bound on the q-quantile,
    or None when n is too small for any finite bound."""
    from scipy.stats import binom

    # largest j (1-based) with P(Bin(n, q) <= j - 1) <= alpha
    j = int(binom.ppf(alpha, n, q))  # a starting point; the loops make the condition exact
    while j >= 1 and binom.cdf(j - 1, n, q) > alpha:
        j -= 1
    while j + 1 <= n and binom.cdf(j, n, q) <= alpha:
        j += 1
    return j - 1 if j >= 1 else None


def quantile_bounds(
    samples: Sequence[float], q: float, alpha_low: float, alpha_high: float
) -> tuple[float, float]:
    """(lower, upper) distribution-free bounds on the q-quantile of i.i.d. samples; +-inf where none."""
    xs = np.sort(np.asarray(samples, dtype=float))
    n = len(xs)
    lo_i = order_stat_lower(n, q, alpha_low) if n else None
    hi_i = order_stat_upper(n, q, alpha_high) if n else None
    lower = float(xs[lo_i]) if lo_i is not None else -math.inf
    upper = float(xs[hi_i]) if hi_i is not None else math.inf
    return lower, upper


def mean_bounds(values: Sequence[float], alpha_low: float, alpha_high: float) -> tuple[float, float]:
    """(lower, upper) Student-t bounds on the mean of independent values; +-inf with fewer than 2."""
    from scipy.stats import t

    xs = np.asarray(values, dtype=float)
    if len(xs) < 2:
        return -math.inf, math.inf
    sem = float(np.std(xs, ddof=1)) / math.sqrt(len(xs))
    mean = float(np.mean(xs))
    df = len(xs) - 1
    return mean - float(t.ppf(1.0 - alpha_low, df)) * sem, mean + float(t.ppf(1.0 - alpha_high, df)) * sem


def group_runs(q: float) -> int:
    """Fewest runs a batch-means group needs for the q-quantile (>= 5 runs above it, >= 10 in all)."""
    return max(10, math.ceil(5.0 / (1.0 - q) - 1e-9))


def group_estimates(samples: Sequence[float], sizes: Sequence[int], q: float) -> list[float]:
    """The q-quantile of each group of consecutive batches (`sizes` = runs per batch, in order);
    consecutive batches are merged until a group holds `group_runs(q)` runs; a short tail group is
    merged into the previous one."""
    need = group_runs(q)
    groups: list[list[float]] = []
    current: list[float] = []
    start = 0
    for size in sizes:
        current.extend(samples[start : start + size])
        start += size
        if len(current) >= need:
            groups.append(current)
            current = []
    if current:
        if groups:
            groups[-1].extend(current)
        else:
            groups.append(current)
    return [float(np.quantile(g, q)) for g in groups if len(g) >= need]


def batch_means_bounds(
    samples: Sequence[float], sizes: Sequence[int], q: float, alpha_low: float, alpha_high: float
) -> tuple[float, float, int]:
    """(lower, upper, groups): Student-t bounds on the mean of the per-group q-quantiles."""
    estimates = group_estimates(samples, sizes, q)
    lower, upper = mean_bounds(estimates, alpha_low, alpha_high)
    return lower, upper, len(estimates)
