"""Latency statistics shared by `measure.py` and the profiler harnesses (standard library only).

The stopping rule runs inside the harness, which holds the samples: warm up, then time runs until
the distribution-free 95% confidence interval of the median is within ±rel_ci of the median, or
until max_runs / the time cap.

Median CI: with n samples sorted x_(1) <= ... <= x_(n), the interval [x_(l), x_(n-l+1)] covers the
population median with probability >= 1 - 2 P(Bin(n, 1/2) < l); l is the largest rank that keeps
that probability >= 95% (exact binomial sums up to n = 2000, normal approximation above). No
assumption about the latency distribution is needed (latencies are skewed and heavy-tailed).
Needs n >= 6; below that no 95% interval exists and the rule keeps running.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import lru_cache

CONFIDENCE = 0.95
MIN_RUNS_FOR_CI = 6
_EXACT_LIMIT = 2000
_Z95 = 1.959963984540054


def percentile(sorted_values: list[float], q: float) -> float:
    """Percentile q in [0, 100] of already sorted values, linear interpolation (numpy's default)."""
    if not sorted_values:
        raise ValueError("percentile of an empty sample")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q must be in [0, 100], got {q}")
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    frac = pos - lo
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac


@lru_cache(maxsize=4096)
def median_ci_rank(n: int) -> int | None:
    """Largest 1-based rank l with P(x_(l) <= median <= x_(n-l+1)) >= 95%, or None if n is too small."""
    if n < MIN_RUNS_FOR_CI:
        return None
    alpha = 1.0 - CONFIDENCE
    if n <= _EXACT_LIMIT:
        # P(Bin(n, 1/2) <= l - 1) <= alpha / 2, in exact integer arithmetic: sum C(n, k) * 2/alpha <= 2^n
        limit = 2**n
        scale = round(2.0 / alpha)  # 40 for 95%
        cum = 0
        rank = 0
        for k in range(n // 2 + 1):
            cum += math.comb(n, k)
            if cum * scale > limit:
                break
            rank = k + 1
        return rank if rank >= 1 else None
    rank = math.floor(n / 2.0 - _Z95 * math.sqrt(n) / 2.0)
    return max(rank, 1)


def median_ci(sorted_values: list[float]) -> tuple[float, float] | None:
    """Distribution-free 95% confidence interval of the median of sorted values (None if n < 6)."""
    rank = median_ci_rank(len(sorted_values))
    if rank is None:
        return None
    return sorted_values[rank - 1], sorted_values[len(sorted_values) - rank]


def ci_half_width_rel(sorted_values: list[float]) -> float | None:
    """Largest distance from the median to a CI bound, relative to the median (None if n < 6)."""
    ci = median_ci(sorted_values)
    if ci is None:
        return None
    med = percentile(sorted_values, 50.0)
    if med <= 0:
        return 0.0 if ci[0] == ci[1] else math.inf
    return max(med - ci[0], ci[1] - med) / med


@dataclass(frozen=True)
class Summary:
    """Descriptive statistics of latency samples (milliseconds)."""

    runs: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    max_ms: float
    ci95_lo_ms: float | None
    ci95_hi_ms: float | None
    ci95_rel: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def summarize(samples_ms: list[float]) -> Summary:
    """Percentiles, mean, sample standard deviation and the median's 95% CI."""
    if not samples_ms:
        raise ValueError("no samples")
    values = sorted(float(v) for v in samples_ms)
    n = len(values)
    mean = math.fsum(values) / n
    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    ci = median_ci(values)
    return Summary(
        runs=n,
        p50_ms=percentile(values, 50.0),
        p90_ms=percentile(values, 90.0),
        p99_ms=percentile(values, 99.0),
        mean_ms=mean,
        std_ms=math.sqrt(var),
        min_ms=values[0],
        max_ms=values[-1],
        ci95_lo_ms=ci[0] if ci else None,
        ci95_hi_ms=ci[1] if ci else None,
        ci95_rel=ci_half_width_rel(values),
    )


@dataclass(frozen=True)
class StopRule:
    """When to stop timing: CI of the median within ±rel_ci, else max_runs, else the time cap."""

    min_runs: int = 20
    max_runs: int = 2000
    rel_ci: float = 0.01
    time_cap_s: float = 60.0

    def __post_init__(self) -> None:
        if self.min_runs < 1 or self.max_runs < self.min_runs:
            raise ValueError(f"need 1 <= min_runs <= max_runs, got {self.min_runs}, {self.max_runs}")
        if not 0.0 < self.rel_ci < 1.0:
            raise ValueError(f"rel_ci must be in (0, 1), got {self.rel_ci}")
        if self.time_cap_s <= 0:
            raise ValueError(f"time_cap_s must be > 0, got {self.time_cap_s}")


@dataclass(frozen=True)
class TimedRuns:
    """What the timed phase produced."""

    samples_ms: list[float]
    stop_reason: str  # "converged" | "max_runs" | "time_cap"
    elapsed_s: float
    ci95_rel: float | None


def _check_due(n: int, last_checked: int) -> bool:
    # Sorting every run is O(n^2 log n) overall; check at ~5% growth steps instead.
    return n - last_checked >= max(1, n // 20)


def time_until_stable(
    run_once: Callable[[], object],
    rule: StopRule,
    *,
    on_progress: Callable[[dict], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    between: Callable[[], object] | None = None,
) -> TimedRuns:
    """Call `run_once` repeatedly, timing each call, until `rule` says stop. `between` (if given)
    runs after every timed call, outside the timed region (e.g. an interleaved reference workload
    that times itself); its time counts toward the rule's time cap."""
    samples: list[float] = []
    start = clock()
    last_checked = 0
    rel: float | None = None
    reason = "max_runs"
    while True:
        t0 = clock()
        run_once()
        t1 = clock()
        samples.append((t1 - t0) * 1000.0)
        if between is not None:
            between()
            t1 = clock()
        n = len(samples)
        elapsed = t1 - start
        if n >= rule.min_runs and (
            _check_due(n, last_checked) or n >= rule.max_runs or elapsed >= rule.time_cap_s
        ):
            last_checked = n
            rel = ci_half_width_rel(sorted(samples))
            if on_progress is not None:
                on_progress({"phase": "timing", "runs": n, "ci95_rel": rel, "elapsed_s": elapsed})
            if rel is not None and rel <= rule.rel_ci:
                reason = "converged"
                break
        elif on_progress is not None and n % 10 == 0:
            on_progress({"phase": "timing", "runs": n, "ci95_rel": rel, "elapsed_s": elapsed})
        if n >= rule.max_runs:
            reason = "max_runs"
            break
        if elapsed >= rule.time_cap_s:
            reason = "time_cap"
            break
    rel = ci_half_width_rel(sorted(samples))
    if reason != "converged" and rel is not None and rel <= rule.rel_ci:
        reason = "converged"
    return TimedRuns(samples_ms=samples, stop_reason=reason, elapsed_s=clock() - start, ci95_rel=rel)


def warm_up(
    run_once: Callable[[], object], runs: int, *, on_progress: Callable[[dict], None] | None = None
) -> float:
    """Run `runs` untimed iterations (caches, allocators, JIT); returns the seconds spent."""
    start = time.perf_counter()
    for i in range(runs):
        run_once()
        if on_progress is not None:
            on_progress({"phase": "warmup", "runs": i + 1, "elapsed_s": time.perf_counter() - start})
    return time.perf_counter() - start
