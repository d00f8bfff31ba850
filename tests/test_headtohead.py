"""The final head-to-head (autogo_deploy.headtohead): alternating rounds, paired ratios, stopping."""

from __future__ import annotations

import math
import random

import pytest

from autogo_deploy.headtohead import head_to_head


def drifting_measurer(true_ms: dict[bytes, float], drift_per_call: float = 0.0, noise: float = 0.0, seed=0):
    """A runner that gets slower with every measurement (drift) plus per-process noise."""
    rng = random.Random(seed)
    calls = []

    def measure_one(data: bytes) -> dict:
        speed = 1.0 + drift_per_call * len(calls)
        calls.append(data)
        return {"latency_ms": true_ms[data] * speed * math.exp(rng.gauss(0, noise)), "energy_mj": 1.0}

    return measure_one, calls


def test_rounds_alternate_order_and_a_clear_gain_is_confirmed():
    measure_one, calls = drifting_measurer({b"a": 10.0, b"b": 8.0}, noise=0.01)
    h = head_to_head(measure_one, b"a", b"b", rounds=4)
    assert calls == [b"a", b"b", b"b", b"a", b"a", b"b", b"b", b"a"]
    assert h.rounds == 4 and h.faster
    assert h.ratio == pytest.approx(0.8, rel=0.03)
    lo, hi = h.ratio_ci95()
    assert lo < 0.8 < hi < 1.0
    doc = h.to_dict()
    assert doc["faster"] is True and doc["latency_change_pct"] == pytest.approx(-20, abs=3)


def test_drift_does_not_fake_a_gain():
    # the runner gets 3% faster with every measurement: a search-style comparison (input measured at
    # the start, result much later) would credit the drift to the result. Alternating rounds cancel
    # it: an identical model is not found faster.
    measure_one, _ = drifting_measurer({b"a": 10.0, b"b": 10.0}, drift_per_call=-0.03)
    h = head_to_head(measure_one, b"a", b"b", rounds=10)
    assert not h.faster
    assert h.ratio == pytest.approx(1.0, abs=0.02)


def test_a_slower_result_is_not_faster():
    measure_one, calls = drifting_measurer({b"a": 10.0, b"b": 12.0}, noise=0.01)
    h = head_to_head(measure_one, b"a", b"b")
    assert h.rounds == 6 and len(calls) == 12 and not h.faster and h.ratio_ci95()[0] > 1.0


def test_false_confirmations_of_an_identical_model_are_rare():
    hits = 0
    for seed in range(400):
        measure_one, _ = drifting_measurer({b"a": 10.0, b"b": 10.0}, noise=0.04, seed=seed)
        hits += head_to_head(measure_one, b"a", b"b").faster
    assert hits / 400 < 0.05  # one-sided 2.5% in theory


def test_bad_round_settings():
    with pytest.raises(ValueError):
        head_to_head(lambda _: {}, b"a", b"b", rounds=1)


def _result(front_ms: dict[str, float], best: str, deterministic=False):
    from autogo_deploy.candidate import Candidate
    from autogo_deploy.search import SearchResult

    def cand(name, ms):
        m = {"latency_ms": ms, "deterministic": deterministic, "ci95_rel": 0.01}
        return Candidate(cid=name, model_bytes=name.encode(), parent=None, generation=1, measured=m)

    base = cand("input", 10.0)
    front = [cand(n, ms) for n, ms in front_ms.items()]
    best_c = next(c for c in front if c.cid == best)
    return SearchResult(base, front, best_c, [], 0, "generations", 1.0)


def test_confirm_best_keeps_a_real_gain():
    from autogo_deploy.headtohead import confirm_best

    result = _result({"r1": 8.0}, "r1")
    measure_one, _ = drifting_measurer({b"input": 10.0, b"r1": 8.0}, noise=0.01)
    doc = confirm_best(result, measure_one, objective="latency")
    assert doc["confirmed"] == "r1" and result.best.cid == "r1"
    assert doc["tries"][0]["accepted"] and doc["tries"][0]["latency_ratio"] == pytest.approx(0.8, rel=0.03)


def test_confirm_best_falls_back_to_the_next_front_member_or_emits_nothing():
    from autogo_deploy.headtohead import confirm_best

    # r1 looked fastest during the search (a fast moment of the runner); head to head it is not faster
    result = _result({"r1": 7.0, "r2": 9.0}, "r1")
    measure_one, _ = drifting_measurer({b"input": 10.0, b"r1": 10.0, b"r2": 9.0}, noise=0.005)
    doc = confirm_best(result, measure_one, objective="latency")
    assert [t["accepted"] for t in doc["tries"]] == [False, True]
    assert doc["confirmed"] == "r2" and result.best.cid == "r2"
    result = _result({"r1": 7.0}, "r1")
    measure_one, _ = drifting_measurer({b"input": 10.0, b"r1": 10.2}, noise=0.005)
    doc = confirm_best(result, measure_one, objective="latency")
    assert doc["confirmed"] is None and result.best is None and "head-to-head" in result.stopped


def test_macs_objective_needs_only_not_slower_and_simulated_targets_skip():
    from autogo_deploy.headtohead import confirm_best

    result = _result({"r1": 10.0}, "r1")
    measure_one, _ = drifting_measurer({b"input": 10.0, b"r1": 10.0})
    assert confirm_best(result, measure_one, objective="macs")["confirmed"] == "r1"
    result = _result({"r1": 8.0}, "r1", deterministic=True)
    doc = confirm_best(result, lambda _: pytest.fail("nothing to measure"), objective="latency")
    assert "simulated" in doc["skipped"] and result.best.cid == "r1"


def test_ctrl_c_during_the_head_to_head_keeps_the_finished_tries():
    from autogo_deploy.headtohead import INTERRUPTED, confirm_best

    result = _result({"r1": 7.0, "r2": 9.0}, "r1")
    inner, calls = drifting_measurer({b"input": 10.0, b"r1": 10.0, b"r2": 9.0}, noise=0.005)

    def measure_one(data: bytes) -> dict:
        if len(calls) == 14:  # the first try (6 rounds, 12 measurements) is over, the second under way
            raise KeyboardInterrupt
        return inner(data)

    doc = confirm_best(result, measure_one, objective="latency")
    assert doc["skipped"] == INTERRUPTED and [t["candidate"] for t in doc["tries"]] == ["r1"]
    assert not doc["tries"][0]["accepted"] and result.best.cid == "r1"
    assert result.stopped.endswith("head-to-head interrupted")
