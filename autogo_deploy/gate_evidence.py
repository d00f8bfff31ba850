"""The evidence `check` gathers and one look's judgement of it: batches pooled into evidence, and each
budget judged pass / fail / straddle by confidence bounds (autogo_deploy/bounds.py) at the per-look
error levels the sequential loop in gate.py sets (see gate.py's docstring for the whole procedure).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autogo_deploy.bounds import batch_means_bounds, mean_bounds, quantile_bounds
from autogo_deploy.budgets import METRICS, Budget

PASS, FAIL, INCONCLUSIVE, STRADDLE = "pass", "fail", "inconclusive", "straddle"
MEASURED_MEM = "measured: peak RSS of the harness process (model, runtime and Python), max over batches"


@dataclass
class Batch:
    """One measurement batch as the gate needs it (built from a measure.Measurement)."""

    samples_ms: list[float]
    energy_mj: float | None = None
    power_w: float | None = None
    power_method: str | None = None
    peak_mem_mb: float | None = None
    deterministic: bool = False
    origin: str | None = None  # where deterministic figures come from, e.g. "predicted by ..."


@dataclass
class Evidence:
    """Everything measured so far, pooled over batches."""

    samples_ms: list[float] = field(default_factory=list)
    energy_mj: list[float] = field(default_factory=list)
    power_w: list[float] = field(default_factory=list)
    power_methods: set[str] = field(default_factory=set)
    peak_mem_mb: float | None = None
    batches: int = 0
    batch_sizes: list[int] = field(default_factory=list)
    deterministic: bool = True
    origin: str | None = None

    def add(self, batch: Batch) -> None:
        if not batch.samples_ms:
            raise ValueError("a measurement batch without samples")
        self.samples_ms.extend(float(x) for x in batch.samples_ms)
        if batch.energy_mj is not None:
            self.energy_mj.append(float(batch.energy_mj))
        if batch.power_w is not None:
            self.power_w.append(float(batch.power_w))
        if batch.power_method:
            self.power_methods.add(batch.power_method)
        if batch.peak_mem_mb is not None:
            self.peak_mem_mb = max(self.peak_mem_mb or 0.0, float(batch.peak_mem_mb))
        self.deterministic = self.deterministic and batch.deterministic
        self.batches += 1
        self.batch_sizes.append(len(batch.samples_ms))
        self.origin = batch.origin or self.origin


@dataclass
class BudgetResult:
    """The judgement of one budget at the latest look."""

    budget: Budget
    estimate: float | None
    lower: float | None
    upper: float | None
    status: str  # pass | fail | straddle (while measuring) | inconclusive (final)
    method: str

    def to_dict(self) -> dict[str, Any]:
        def num(x: float | None) -> float | None:
            return None if x is None or not math.isfinite(x) else float(x)

        return self.budget.to_dict() | {
            "estimate": num(self.estimate),
            "lower": num(self.lower),
            "upper": num(self.upper),
            "status": self.status,
            "method": self.method,
        }


def is_statistical(metric_name: str) -> bool:
    return METRICS[metric_name].kind in {"percentile", "mean"}


def judge(
    budgets: Sequence[Budget],
    evidence: Evidence,
    exact: Mapping[str, tuple[float, str]],
    alpha_fail: float,
    alpha_pass: float,
) -> list[BudgetResult]:
    """One look: judge every budget with bounds at the per-look levels."""
    results = []
    for b in budgets:
        spec = METRICS[b.metric]
        if spec.kind in {"exact", "observed"}:
            value, how = exact.get(b.metric, (None, "not available"))
            if value is None:
                results.append(BudgetResult(b, None, None, None, STRADDLE, how))
                continue
            status = PASS if value <= b.limit else FAIL
            results.append(BudgetResult(b, value, value, value, status, how))
            continue
        estimate, lower, upper, method = bounds_for(spec.name, evidence, alpha_fail, alpha_pass)
        if estimate is None:
            results.append(BudgetResult(b, None, None, None, STRADDLE, method))
            continue
        status = FAIL if lower > b.limit else PASS if upper <= b.limit else STRADDLE
        results.append(BudgetResult(b, estimate, lower, upper, status, method))
    return results


def bounds_for(
    name: str, ev: Evidence, alpha_fail: float, alpha_pass: float
) -> tuple[float | None, float, float, str]:
    spec = METRICS[name]
    if spec.kind == "percentile":
        if not ev.samples_ms:
            return None, -math.inf, math.inf, "no samples"
        estimate = float(np.quantile(ev.samples_ms, spec.quantile))
        if ev.deterministic:
            return (
                estimate,
                estimate,
                estimate,
                ev.origin or f"deterministic backend, {len(ev.samples_ms)} runs",
            )
        lo, hi = quantile_bounds(ev.samples_ms, spec.quantile, alpha_fail, alpha_pass)
        lo_b, hi_b, groups = batch_means_bounds(
            ev.samples_ms, ev.batch_sizes, spec.quantile, alpha_fail, alpha_pass
        )
        how = f"order-statistic and batch-means bounds, {len(ev.samples_ms)} runs in {ev.batches} batch(es)"
        return (
            estimate,
            max(min(lo, lo_b), 0.0),  # a t-bound on a few spread batches can dip below 0; latency cannot
            max(hi, hi_b),
            how + (f", {groups} groups" if groups != ev.batches else ""),
        )
    values = ev.energy_mj if name == "energy_mj" else ev.power_w
    if not values:
        return None, -math.inf, math.inf, "not reported by the backend"
    how = "/".join(sorted(ev.power_methods)) or "unknown method"
    estimate = float(np.mean(values))
    if ev.deterministic:
        return estimate, estimate, estimate, ev.origin or f"deterministic backend, {how}"
    lo, hi = mean_bounds(values, alpha_fail, alpha_pass)
    return estimate, max(lo, 0.0), hi, f"Student-t over {len(values)} batch mean(s), {how}"
