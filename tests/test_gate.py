"""The statistical decision: order-statistic bounds, sequential looks, error rates on synthetic data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom

from autogo_deploy.budgets import Budget
from autogo_deploy.errors import EnvironmentError_, InputError
from autogo_deploy.gate import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    Batch,
    GateSettings,
    mean_bounds,
    order_stat_lower,
    order_stat_upper,
    quantile_bounds,
    run_gate,
)


def _brute_upper(n, q, a):
    return next((k - 1 for k in range(1, n + 1) if binom.sf(k - 1, n, q) <= a), None)


def _brute_lower(n, q, a):
    found = [j - 1 for j in range(1, n + 1) if binom.cdf(j - 1, n, q) <= a]
    return found[-1] if found else None


@pytest.mark.parametrize("n", [1, 3, 10, 59, 200, 1000])
@pytest.mark.parametrize("q", [0.5, 0.9, 0.99])
@pytest.mark.parametrize("alpha", [0.05, 1e-3])
def test_order_statistic_indices_match_definition(n, q, alpha):
    assert order_stat_upper(n, q, alpha) == _brute_upper(n, q, alpha)
    assert order_stat_lower(n, q, alpha) == _brute_lower(n, q, alpha)


def test_too_few_samples_give_infinite_bounds():
    # p99 with 10 runs: no sample is a 95% upper bound
    lo, hi = quantile_bounds(list(range(10)), 0.99, 0.05, 0.05)
    assert hi == math.inf and lo > -math.inf
    assert quantile_bounds([], 0.5, 0.05, 0.05) == (-math.inf, math.inf)


@pytest.mark.parametrize("q", [0.5, 0.9])
def test_bounds_cover_the_true_quantile(q):
    """Coverage on skewed data: each one-sided bound misses at most alpha of the time."""
    rng = np.random.default_rng(7)
    alpha, reps, n = 0.05, 2000, 120
    true_q = float(np.exp(0.3 * _norm_ppf(q)))  # lognormal(0, 0.3) quantile
    miss_lo = miss_hi = 0
    for _ in range(reps):
        lo, hi = quantile_bounds(rng.lognormal(0.0, 0.3, n), q, alpha, alpha)
        miss_lo += lo > true_q
        miss_hi += hi < true_q
    # binomial 99.9% upper limit of a 5% miss rate over 2000 trials is ~6.6%
    assert miss_lo / reps <= 0.066 and miss_hi / reps <= 0.066
    assert miss_lo > 0 and miss_hi > 0  # the bounds are not absurdly wide either


def _norm_ppf(q):
    from scipy.stats import norm

    return norm.ppf(q)


def test_mean_bounds():
    assert mean_bounds([3.0], 0.01, 0.01) == (-math.inf, math.inf)
    assert mean_bounds([2.0, 2.0, 2.0], 0.01, 0.01) == (2.0, 2.0)  # no spread: the mean is known
    lo, hi = mean_bounds([1.0, 2.0, 3.0], 0.05, 0.05)
    assert lo < 2.0 < hi and hi - 2.0 == pytest.approx(2.0 - lo)


class Source:
    """Synthetic measurement batches: lognormal latencies with a given median."""

    def __init__(self, median_ms, sigma=0.05, seed=0, energy_per_ms=None, deterministic=False, mem=None):
        self.rng = np.random.default_rng(seed)
        self.median_ms, self.sigma = median_ms, sigma
        self.energy_per_ms, self.deterministic, self.mem = energy_per_ms, deterministic, mem
        self.calls: list[int] = []

    def __call__(self, runs):
        self.calls.append(runs)
        if self.deterministic:
            xs = np.full(runs, self.median_ms)
        else:
            xs = self.median_ms * self.rng.lognormal(0.0, self.sigma, runs)
        energy = None if self.energy_per_ms is None else float(np.mean(xs)) * self.energy_per_ms
        return Batch(
            list(xs),
            energy_mj=energy,
            power_method="modeled" if energy is not None else None,
            peak_mem_mb=self.mem,
            deterministic=self.deterministic,
        )


FAST = GateSettings(batch_runs=100, max_runs=800, max_seconds=1e9)


def test_clear_pass_in_one_look():
    src = Source(10.0)
    out = run_gate([Budget("latency_p50_ms", limit=12.0)], {}, src, FAST)
    assert out.verdict == PASS and src.calls == [100]
    (r,) = out.results
    assert r.status == PASS and r.lower <= r.estimate <= r.upper <= 12.0


def test_clear_fail_is_confirmed_by_a_second_batch():
    src = Source(10.0)
    out = run_gate([Budget("latency_p90_ms", limit=9.0)], {}, src, FAST)
    assert out.verdict == FAIL and src.calls == [100, 100]
    assert out.results[0].lower > 9.0
    one = run_gate(
        [Budget("latency_p90_ms", limit=9.0)],
        {},
        Source(10.0),
        GateSettings(batch_runs=100, max_runs=800, min_fail_batches=1),
    )
    assert one.verdict == FAIL and one.evidence.batches == 1


def test_straddle_measures_more_then_inconclusive():
    src = Source(10.0, sigma=0.1)
    out = run_gate([Budget("latency_p50_ms", limit=10.0)], {}, src, FAST)
    assert out.verdict == INCONCLUSIVE and sum(src.calls) == 800 and len(src.calls) == 8
    r = out.results[0]
    assert r.status == INCONCLUSIVE and r.lower <= 10.0 < r.upper
    assert "run cap" in out.reason


def test_time_cap_gives_inconclusive():
    ticks = iter(range(1000))
    out = run_gate(
        [Budget("latency_p50_ms", limit=10.0)],
        {},
        Source(10.0),
        GateSettings(batch_runs=100, max_runs=10_000, max_seconds=2.5),
        clock=lambda: float(next(ticks)),
    )
    assert out.verdict == INCONCLUSIVE and "time cap" in out.reason and out.evidence.batches < 100


def test_near_budget_needs_more_looks_but_decides():
    src = Source(10.0, sigma=0.08, seed=3)
    out = run_gate([Budget("latency_p50_ms", limit=10.2)], {}, src, FAST)
    assert out.verdict == PASS and len(src.calls) > 1


def test_exact_budgets_need_no_measurement():
    called = []
    out = run_gate(
        [Budget("params", limit=100.0), Budget("macs", limit=1e6)],
        {"params": (50.0, "counted"), "macs": (2e6, "counted")},
        lambda runs: called.append(runs),
        FAST,
    )
    assert out.verdict == FAIL and called == []
    assert [r.status for r in out.results] == [PASS, FAIL]


def test_exact_fail_stops_after_first_batch_without_confirmation():
    src = Source(10.0)
    out = run_gate(
        [Budget("latency_p50_ms", limit=10.0), Budget("params", limit=1.0)],
        {"params": (5.0, "counted")},
        src,
        FAST,
    )
    assert out.verdict == FAIL and src.calls == [100]
    assert out.results[0].status == INCONCLUSIVE  # still straddling when the gate stopped


def test_deterministic_backend_decides_at_once():
    src = Source(10.0, deterministic=True, energy_per_ms=0.5)
    budgets = [Budget("latency_p99_ms", limit=10.0), Budget("energy_mj", limit=5.0)]
    out = run_gate(budgets, {}, src, FAST)
    assert out.verdict == PASS and src.calls == [100]
    assert [(r.lower, r.upper) for r in out.results] == [(10.0, 10.0), (5.0, 5.0)]
    out = run_gate([Budget("latency_p50_ms", limit=9.99)], {}, Source(10.0, deterministic=True), FAST)
    assert out.verdict == FAIL and out.evidence.batches == 1


def test_energy_needs_two_batches():
    src = Source(10.0, energy_per_ms=0.1)
    out = run_gate([Budget("energy_mj", limit=2.0)], {}, src, FAST)
    assert out.verdict == PASS and len(src.calls) == 2 and "Student-t" in out.results[0].method


def test_measured_peak_memory_overrides_estimate():
    budgets = [Budget("peak_mem_mb", limit=50.0)]
    est = {"peak_mem_mb": (10.0, "estimated from the model")}
    assert run_gate(budgets, est, Source(1.0, mem=80.0), FAST).verdict == FAIL
    out = run_gate(budgets, est, Source(1.0, mem=None), FAST)
    assert out.verdict == PASS and out.results[0].method == "estimated from the model"


def test_unreported_metric_is_an_environment_error():
    with pytest.raises(EnvironmentError_, match="energy_mj cannot be checked"):
        run_gate([Budget("energy_mj", limit=1.0)], {}, Source(1.0), FAST)


def test_settings_validation():
    with pytest.raises(InputError):
        GateSettings(fail_alpha=0.0)
    with pytest.raises(InputError):
        GateSettings(batch_runs=100, max_runs=50)
    with pytest.raises(InputError, match="unknown gate setting"):
        GateSettings.from_mapping({"alpha": 0.1})
    s = GateSettings.from_mapping({"max_runs": 1000.0, "batch_runs": 250})
    assert s.looks == 4 and isinstance(s.max_runs, int)
    with pytest.raises(InputError, match="needs --baseline"):
        run_gate([Budget("latency_p50_ms", relative_pct=5.0)], {}, Source(1.0), FAST)


def _false_fail_rate(make_source, budgets, settings, reps):
    fails = inconclusive = 0
    for seed in range(reps):
        out = run_gate(budgets, {}, make_source(seed), settings)
        fails += out.verdict == FAIL
        inconclusive += out.verdict == INCONCLUSIVE
    return fails / reps, inconclusive / reps


def test_false_fail_rate_at_the_boundary_is_controlled():
    """Worst case for false fails: the true quantile sits exactly on the limit, all looks used.
    The family-wise false-fail rate over 8 looks and 2 budgets must stay <= fail_alpha (1%)."""
    sigma = 0.1
    limit_p50 = 10.0
    limit_p90 = 10.0 * math.exp(sigma * _norm_ppf(0.9))  # exactly the true p90
    budgets = [Budget("latency_p50_ms", limit=limit_p50), Budget("latency_p90_ms", limit=limit_p90)]
    settings = GateSettings(batch_runs=100, max_runs=800, min_fail_batches=1)  # no confirmation help
    rate, inconclusive = _false_fail_rate(lambda s: Source(10.0, sigma, seed=s), budgets, settings, 300)
    assert rate <= 0.01
    assert inconclusive >= 0.9  # at the boundary the honest answer is "cannot tell"


def test_noisy_runner_false_fail_and_detection():
    """Simulated noisy runner (lognormal body + 5% slow outliers): a model 5% under budget passes,
    one 5% over budget is detected; false fails stay <= 1% with the fixed seeds."""

    class Noisy(Source):
        def __call__(self, runs):
            batch = super().__call__(runs)
            xs = np.array(batch.samples_ms)
            slow = self.rng.random(runs) < 0.05
            xs[slow] *= self.rng.uniform(1.5, 3.0, slow.sum())
            return Batch(list(xs))

    budgets = [Budget("latency_p50_ms", limit=10.5)]
    settings = GateSettings(batch_runs=100, max_runs=1000)
    ok_fail, _ = _false_fail_rate(lambda s: Noisy(10.0, 0.06, seed=s), budgets, settings, 200)
    assert ok_fail <= 0.01
    slow = [run_gate(budgets, {}, Noisy(11.0, 0.06, seed=1000 + s), settings).verdict for s in range(200)]
    assert slow.count(FAIL) / len(slow) >= 0.95


class _Transient(Source):
    """The first harness process runs 30% slow (a neighbour's burst), the rest are normal."""

    def __call__(self, runs):
        batch = super().__call__(runs)
        if len(self.calls) == 1:
            batch.samples_ms = [x * 1.3 for x in batch.samples_ms]
        return batch


def test_one_slow_process_cannot_fail_the_gate():
    budgets = [Budget("latency_p50_ms", limit=10.5)]
    strict = GateSettings(batch_runs=100, max_runs=1000, min_fail_batches=1)
    assert run_gate(budgets, {}, _Transient(10.0, 0.03), strict).verdict == FAIL  # without the rule
    out = run_gate(budgets, {}, _Transient(10.0, 0.03), GateSettings(batch_runs=100, max_runs=1000))
    assert out.verdict != FAIL and out.evidence.batches >= 3
    # a model that is really slow is still failed after two consistent batches
    out = run_gate(budgets, {}, Source(11.5, 0.03), GateSettings(batch_runs=100, max_runs=1000))
    assert out.verdict == FAIL and out.evidence.batches == 2


def test_p99_needs_enough_runs_for_an_upper_bound():
    # pass side per look: 0.05 / 10 looks = 0.005; the max of n runs bounds p99 only once
    # 0.99^n <= 0.005, i.e. n >= 528: the gate keeps measuring until then, however far the limit
    out = run_gate(
        [Budget("latency_p99_ms", limit=100.0)], {}, Source(1.0), GateSettings(batch_runs=100, max_runs=1000)
    )
    assert out.verdict == PASS and out.runs == 600
