"""Final head-to-head: the input and a search result measured in alternating rounds.

During a search the input is measured once at the start and each candidate whenever it is reached, so
their figures are minutes apart; a shared runner drifts by more than 5% in that time. Before a result
is emitted, `head_to_head` measures the input (A) and the result (B) in rounds ordered A B, B A, A B,
... — each measurement its own harness process — and judges the paired per-round ratios B/A: the
result counts as faster only when the upper 95% bound of the mean log ratio (Student t over rounds)
is below 1. Rounds are the unit because a process's own offset (~3-4% here) is the dominant noise;
more runs inside one process do not shrink it. A fixed number of rounds and one look: no sequential
testing, so the 95% bound means what it says.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from scipy import stats as sps


@dataclass
class HeadToHead:
    input_ms: list[float] = field(default_factory=list)  # per-round medians
    result_ms: list[float] = field(default_factory=list)
    input_energy_mj: list[float] = field(default_factory=list)
    result_energy_mj: list[float] = field(default_factory=list)

    @property
    def rounds(self) -> int:
        return len(self.ratios)

    @property
    def ratios(self) -> list[float]:
        return [b / a for a, b in zip(self.input_ms, self.result_ms, strict=False) if a > 0]

    @property
    def ratio(self) -> float:
        """Geometric mean of the per-round result/input latency ratios."""
        logs = [math.log(r) for r in self.ratios]
        return math.exp(sum(logs) / len(logs)) if logs else math.nan

    def ratio_ci95(self) -> tuple[float, float]:
        logs = [math.log(r) for r in self.ratios]
        n = len(logs)
        if n < 2:
            return (-math.inf, math.inf)
        mean = sum(logs) / n
        sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / (n - 1))
        half = float(sps.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
        return (math.exp(mean - half), math.exp(mean + half))

    @property
    def faster(self) -> bool:
        return self.ratio_ci95()[1] < 1.0

    def to_dict(self) -> dict[str, Any]:
        lo, hi = self.ratio_ci95()
        med = lambda xs: sorted(xs)[len(xs) // 2] if xs else None  # noqa: E731
        doc = {
            "method": "input and result measured in alternating rounds (A B, B A, ...), each measurement "
            "its own harness process; ratio = geometric mean of per-round p50 ratios, 95% t-interval",
            "rounds": self.rounds,
            "input_p50_ms": med(self.input_ms),
            "result_p50_ms": med(self.result_ms),
            "latency_ratio": self.ratio,
            "latency_ratio_ci95": [lo, hi],
            "latency_change_pct": 100.0 * (self.ratio - 1.0),
            "faster": self.faster,
            "input_round_p50_ms": self.input_ms,
            "result_round_p50_ms": self.result_ms,
        }
        if self.input_energy_mj and self.result_energy_mj:
            doc["energy_ratio"] = med(self.result_energy_mj) / med(self.input_energy_mj)
        return doc


def head_to_head(
    measure_one: Callable[[bytes], dict],
    input_bytes: bytes,
    result_bytes: bytes,
    *,
    rounds: int = 6,
    progress: Callable[[str], None] | None = None,
) -> HeadToHead:
    """`measure_one(model_bytes)` returns a measurement summary with `latency_ms` (p50) and optionally
    `energy_mj` (loop_measure.measurement_summary); `rounds` pairs of measurements, order alternating."""
    if rounds < 2:
        raise ValueError(f"a head-to-head needs at least 2 rounds, got {rounds}")
    h = HeadToHead()
    for r in range(rounds):
        pair = (("input", input_bytes), ("result", result_bytes))
        for which, data in pair if r % 2 == 0 else reversed(pair):
            m = measure_one(data)
            getattr(h, f"{which}_ms").append(float(m["latency_ms"]))
            if m.get("energy_mj") is not None:
                getattr(h, f"{which}_energy_mj").append(float(m["energy_mj"]))
        if progress:
            progress(f"head-to-head round {r + 1}/{rounds}: result/input {h.ratio:.3f}")
    return h


INTERRUPTED = "interrupted (Ctrl-C) during the head-to-head: the search's figures stand"


def confirm_best(
    result,
    measure_bytes: Callable[[bytes], dict],
    *,
    objective: str,
    max_tries: int = 3,
    rounds: int = 6,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Confirm a search's best candidate against the input head to head before it is emitted.

    `result` is a search.SearchResult; its `best` is replaced by the first candidate (best first, then
    the other measured front members by objective) that the head-to-head confirms, or set to None
    when none is. Timed objectives (latency, energy) need a confirmed gain (upper bound < 1); the MACs
    objective needs only that the result is not proven slower (lower bound <= 1). Deterministic
    (simulated) figures need no head-to-head. Returns the record for the report."""
    best, base = result.best, result.baseline
    if best is None:
        return {"skipped": "no candidate to confirm"}
    if (base.measured or {}).get("deterministic"):
        return {"skipped": "simulated target: figures are deterministic, no drift to rule out"}
    key = {"latency": "latency_ms", "energy": "energy_mj"}.get(objective, "macs")
    others = sorted(
        (c for c in result.front if c is not best and c is not base and c.measured and c.has_model),
        key=lambda c: (c.cost(key), c.cid),
    )
    tries = []
    try:
        for cand in [best, *others][:max_tries]:
            if progress:
                progress(f"head-to-head: input vs {cand.cid} in alternating rounds")
            h = head_to_head(
                measure_bytes,
                base.model_bytes,
                cand.model_bytes,
                rounds=rounds,
                progress=progress,
            )
            lo, hi = h.ratio_ci95()
            accepted = hi < 1.0 if key != "macs" else lo <= 1.0
            tries.append({"candidate": cand.cid, "accepted": accepted, **h.to_dict()})
            if accepted:
                result.best = cand
                return {"confirmed": cand.cid, "rule": _rule(key), "tries": tries}
    except KeyboardInterrupt:  # Ctrl-C keeps the search's best; the finished tries stay in the record
        result.stopped += "; head-to-head interrupted"
        return {"skipped": INTERRUPTED, "rule": _rule(key), "tries": tries}
    result.best = None
    result.stopped += "; head-to-head: no candidate confirmed against the input"
    return {"confirmed": None, "rule": _rule(key), "tries": tries}


def _rule(key: str) -> str:
    if key == "macs":
        return "emit when the result is not proven slower (lower 95% bound of result/input latency <= 1)"
    return "emit when the result is proven faster (upper 95% bound of result/input latency < 1)"
