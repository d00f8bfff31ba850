"""The optimize report names where each candidate's objective value comes from."""

from __future__ import annotations

from autogo_deploy.candidate import Candidate
from autogo_deploy.report.optimize_report import _source


def test_objective_source_follows_the_figure_the_search_used():
    c = Candidate("c1", b"m", None, 0, predicted={"acc": 90.0, "latency_ms": 2.0})
    assert _source(c, "latency_ms") == "predicted"
    assert _source(c, "macs") == "exact"
    c.modeled = {"latency_ms": 1.9, "energy_mj": 8.0}
    assert _source(c, "latency_ms").startswith("modeled")
    c.measured = {"latency_ms": 1.9, "energy_mj": None}
    assert _source(c, "latency_ms") == "measured"
    assert _source(c, "energy_mj").startswith("modeled")  # no measured energy: the cost model's
    assert _source(c, "neg_acc") == "predicted"
