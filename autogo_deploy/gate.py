"""The statistical pass/fail decision of `check`: confidence bounds, sequential looks, verdicts.

A budget `metric <= limit` on a noisy quantity is never judged on a single number:

* percentiles (latency p50/p90/p99): two bounds (autogo_deploy/bounds.py), both must agree:
  distribution-free order-statistic bounds on the pooled runs (right for i.i.d. runs) and batch-means
  Student-t bounds over per-batch estimates (right when each harness process has its own speed,
  which is what real machines do). The reported lower bound is the smaller of the two lower bounds,
  the upper bound the larger of the two upper bounds;
* means over batches (energy per inference, average power: one value per batch): Student-t bounds;
* observed values (peak memory) and exact counts (params, MACs, file size) are compared directly.

A budget *fails* when the lower bound exceeds the limit, *passes* when the upper bound is within it,
and otherwise *straddles*. Runs are measured in batches of `batch_runs`, each in a fresh harness
process; the gate looks at the evidence only at planned batch counts (`look_schedule`: the first at
`min_batches`, then about x1.5 each time, up to `max_runs`); while a bound straddles, it measures on,
and at the run or time cap the verdict is *inconclusive* (exit code 5). A statistical fail is
only final once it is *confirmed*: after a short pause the gate measures `confirm_batches` fresh
batches and judges them alone; the fail stands when their estimate is over the limit too, otherwise
the fail was a burst of a neighbour (a shared runner's transient) and the gate measures on (the
fresh batches join the evidence). Confirmation can only turn fails into further measuring, so the
error bounds below still hold. Error rates are controlled
across the planned looks and the budgets by Bonferroni: each look tests each statistical budget at
`fail_alpha / (looks * m)`, so the chance that any look wrongly fails a model meeting all its
budgets is at most `fail_alpha` (1% by default); the same for wrongly passing with `pass_alpha`.
A deterministic backend (simulator, predictor) decides after its single evaluation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from autogo_deploy.budgets import METRICS, Budget
from autogo_deploy.errors import EnvironmentError_, InputError
from autogo_deploy.gate_evidence import (  # the gate's vocabulary, imported from here by its users
    FAIL,
    INCONCLUSIVE,
    MEASURED_MEM,
    PASS,
    STRADDLE,
    Batch,
    BudgetResult,
    Evidence,
    bounds_for,
    is_statistical,
    judge,
)

__all__ = [
    "FAIL",
    "INCONCLUSIVE",
    "MEASURED_MEM",
    "PASS",
    "STRADDLE",
    "Batch",
    "BudgetResult",
    "Evidence",
    "GateOutcome",
    "GateSettings",
    "is_statistical",
    "judge",
    "run_gate",
]


@dataclass(frozen=True)
class GateSettings:
    """How hard `check` looks before it decides; see the module docstring."""

    fail_alpha: float = 0.01  # family-wise false-fail rate over looks and budgets
    pass_alpha: float = 0.05  # family-wise false-pass rate over looks and budgets
    batch_runs: int = 100  # runs per batch (one harness process)
    max_runs: int = 3000  # cap on runs; with batch_runs it fixes the planned looks
    max_seconds: float = 120.0  # cap on measuring time; then inconclusive
    min_batches: int = 3  # first look: batch means need a few processes to see their spread
    confirm_batches: int = 3  # fresh batches that must agree with a statistical fail (0: no confirmation)
    confirm_pause_s: float = 1.0  # pause before them, so a neighbour's burst can pass

    def __post_init__(self) -> None:
        for name in ("fail_alpha", "pass_alpha"):
            value = getattr(self, name)
            if not 0.0 < value < 0.5:
                raise InputError(f"gate setting {name} must be in (0, 0.5), got {value}")
        if self.batch_runs < 1 or self.max_runs < self.batch_runs:
            raise InputError(
                f"gate settings need 1 <= batch_runs <= max_runs, got {self.batch_runs} and {self.max_runs}"
            )
        if not self.max_seconds > 0:
            raise InputError(f"gate setting max_seconds must be > 0, got {self.max_seconds}")
        if self.confirm_batches < 0 or self.confirm_pause_s < 0:
            raise InputError(
                "gate settings confirm_batches and confirm_pause_s must be >= 0, "
                f"got {self.confirm_batches} and {self.confirm_pause_s}"
            )
        if self.min_batches < 1:
            raise InputError(f"gate setting min_batches must be >= 1, got {self.min_batches}")

    @property
    def max_batches(self) -> int:
        return math.ceil(self.max_runs / self.batch_runs)

    def look_schedule(self) -> tuple[int, ...]:
        """Batch counts at which the gate judges: min_batches, then x1.5 (at least +1), up to the cap."""
        last = self.max_batches
        looks = [min(self.min_batches, last)]
        while looks[-1] < last:
            looks.append(min(last, max(looks[-1] + 1, math.ceil(looks[-1] * 1.5))))
        return tuple(looks)

    @property
    def looks(self) -> int:
        """Planned looks; the Bonferroni divisor."""
        return len(self.look_schedule())

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> GateSettings:
        known = {f for f in cls.__dataclass_fields__}
        kwargs = {}
        for key, value in values.items():
            if key not in known:
                raise InputError(f"unknown gate setting {key!r}", hint=f"valid: {', '.join(sorted(known))}")
            kwargs[key] = (
                int(value)
                if key in {"batch_runs", "max_runs", "min_batches", "confirm_batches"}
                else float(value)
            )
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__} | {
            "looks": list(self.look_schedule())
        }


# ---------------------------------------------------------------- the sequential loop


@dataclass
class GateOutcome:
    verdict: str  # pass | fail | inconclusive
    results: list[BudgetResult]
    evidence: Evidence
    settings: GateSettings
    alpha_fail_per_look: float
    alpha_pass_per_look: float
    elapsed_s: float
    reason: str

    @property
    def runs(self) -> int:
        return len(self.evidence.samples_ms)

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "reason": self.reason,
            "runs": self.runs,
            "batches": self.evidence.batches,
            "elapsed_s": round(self.elapsed_s, 3),
            "alpha_fail_per_look": self.alpha_fail_per_look,
            "alpha_pass_per_look": self.alpha_pass_per_look,
            "settings": self.settings.to_dict(),
            "results": [r.to_dict() for r in self.results],
        }


def run_gate(
    budgets: Sequence[Budget],
    exact: Mapping[str, tuple[float, str]],
    sample_batch: Callable[[int], Batch] | None,
    settings: GateSettings = GateSettings(),
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[str], None] | None = None,
) -> GateOutcome:
    """Measure batch after batch until every budget is decided or the caps are reached.

    `sample_batch(runs)` measures `runs` more inferences; it is not called when no budget needs
    measurements. `exact` maps exact/observed metrics to (value, how it was obtained); observed
    metrics measured by the batches (peak memory) override it once a batch reports them."""
    for b in budgets:
        if b.limit is None:
            raise InputError(f"budget on {b.metric} has no limit (a relative budget needs --baseline)")
    start = clock()
    n_stat = sum(1 for b in budgets if is_statistical(b.metric))
    has_stat, n_stat = n_stat > 0, max(n_stat, 1)
    a_fail = settings.fail_alpha / (settings.looks * n_stat)
    a_pass = settings.pass_alpha / (settings.looks * n_stat)
    schedule = set(settings.look_schedule())
    evidence = Evidence()
    exact_now = dict(exact)
    need_runs = sample_batch is not None and any(METRICS[b.metric].kind != "exact" for b in budgets)
    results = judge(budgets, evidence, exact_now, a_fail, a_pass)

    def outcome(verdict: str, reason: str) -> GateOutcome:
        final = [
            BudgetResult(r.budget, r.estimate, r.lower, r.upper, INCONCLUSIVE, r.method)
            if r.status == STRADDLE or (verdict != FAIL and r.status == FAIL)
            else r
            for r in results
        ]
        return GateOutcome(verdict, final, evidence, settings, a_fail, a_pass, clock() - start, reason)

    def capped() -> bool:
        return evidence_runs(evidence) >= settings.max_runs or clock() - start >= settings.max_seconds

    if not need_runs:
        if any(r.status == FAIL for r in results):
            return outcome(FAIL, "an exact budget is broken")
        if all(r.status == PASS for r in results):
            return outcome(PASS, "all budgets met")
        return outcome(INCONCLUSIVE, "a metric is not available without measuring")
    while True:
        runs = min(settings.batch_runs, settings.max_runs - evidence_runs(evidence))
        evidence.add(sample_batch(runs))
        if evidence.peak_mem_mb is not None:
            exact_now["peak_mem_mb"] = (evidence.peak_mem_mb, MEASURED_MEM)
        results = judge(budgets, evidence, exact_now, a_fail, a_pass)
        _require_available(results, evidence)
        look = f"look at {evidence.batches} batch(es), {evidence_runs(evidence)} runs"
        failing = [r for r in results if r.status == FAIL]
        if any(not is_statistical(r.budget.metric) for r in failing):  # exact figures need no look
            return outcome(FAIL, f"budget broken: {_names(failing)} ({look})")
        if has_stat and not (evidence.deterministic or capped() or evidence.batches in schedule):
            continue  # between planned looks: measure on
        if progress:
            progress(f"{look}: " + ", ".join(f"{r.budget.metric} {r.status}" for r in results))
        if failing and (evidence.deterministic or settings.confirm_batches == 0):
            return outcome(FAIL, f"budget broken: {_names(failing)} ({look})")
        if failing:
            window = _confirm(failing, settings, sample_batch, sleep)
            for batch in window.batches:
                evidence.add(batch)
            results = judge(budgets, evidence, exact_now, a_fail, a_pass)
            if window.confirmed:
                return outcome(
                    FAIL,
                    f"budget broken: {_names(failing)} ({look}; confirmed by {window.describe()})",
                )
            if progress:
                progress(f"fail not confirmed by {window.describe()}: measuring on")
            if not capped():  # measure on to the next planned look; at a cap, decide below
                continue
        if all(r.status == PASS for r in results):
            return outcome(PASS, f"all budgets met ({look})")
        if evidence.deterministic:
            return outcome(INCONCLUSIVE, f"a figure is missing from the deterministic backend ({look})")
        if evidence_runs(evidence) >= settings.max_runs:
            return outcome(INCONCLUSIVE, f"a bound still straddles its budget at the run cap ({look})")
        if clock() - start >= settings.max_seconds:
            return outcome(INCONCLUSIVE, f"a bound still straddles its budget at the time cap ({look})")


@dataclass
class ConfirmWindow:
    batches: list[Batch]
    estimates: dict[str, float]
    confirmed: bool

    def describe(self) -> str:
        runs = sum(len(b.samples_ms) for b in self.batches)
        figures = ", ".join(f"{k} {v:.4g}" for k, v in self.estimates.items())
        return f"{len(self.batches)} fresh batch(es), {runs} runs: {figures}"


def _confirm(
    failing: Sequence[BudgetResult],
    settings: GateSettings,
    sample_batch: Callable[[int], Batch],
    sleep: Callable[[float], None],
) -> ConfirmWindow:
    """Measure a fresh window after a pause; a fail is confirmed when every failing budget's
    estimate from that window alone is over its limit too."""
    if settings.confirm_pause_s:
        sleep(settings.confirm_pause_s)
    window = Evidence()
    batches = []
    for _ in range(settings.confirm_batches):
        batch = sample_batch(settings.batch_runs)
        batches.append(batch)
        window.add(batch)
    estimates, confirmed = {}, True
    for r in failing:
        estimate = bounds_for(r.budget.metric, window, 0.5, 0.5)[0]
        estimates[r.budget.metric] = math.nan if estimate is None else estimate
        confirmed = confirmed and estimate is not None and estimate > r.budget.limit
    return ConfirmWindow(batches, estimates, confirmed)


def _names(results: Sequence[BudgetResult]) -> str:
    return ", ".join(sorted({r.budget.metric for r in results}))


def _require_available(results: Sequence[BudgetResult], evidence: Evidence) -> None:
    """A budget on a metric the backend does not report is an environment error, not a verdict."""
    for r in results:
        if r.estimate is None and r.method in {"not reported by the backend", "not available"}:
            raise EnvironmentError_(
                f"budget on {r.budget.metric} cannot be checked: {r.method}",
                hint="drop that budget or use a target whose backend reports it",
            )


def evidence_runs(evidence: Evidence) -> int:
    return len(evidence.samples_ms)
