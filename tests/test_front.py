"""The Pareto front's helpers: depth strata and the children each front member is asked for."""

from __future__ import annotations

from autogo_deploy.candidate import Candidate, candidate_id
from autogo_deploy.front import children_per_parent, depth_strata, pareto_front


def _cand(latency: int, params: int, depth: int) -> tuple[Candidate, float]:
    data = f"{latency}/{params}/{depth}".encode()
    c = Candidate(candidate_id(data), data, None, 0, macs=latency, params=params)
    c.depth, c.acc_delta = depth, 0.0
    return c, float(latency)


def test_depth_strata_heads_first_in_cost_order():
    """Heads (the cheapest of each depth) in cost order, then the others; a slot count below the
    number of depths keeps the cheapest heads."""
    cands = [_cand(60 + i, 40 - i, 8)[0] for i in range(6)] + [_cand(80, 50, 10)[0], _cand(100, 100, 10)[0]]
    assert [(c.macs, c.depth) for c in depth_strata(cands, 3)] == [(60, 8), (80, 10), (61, 8)]
    assert [c.macs for c in depth_strata(cands, 1)] == [60]
    assert [c.macs for c in depth_strata(cands, 10)] == [60, 80, 61, 62, 63, 64, 65, 100]


def test_pareto_front_by_depth_keeps_a_deeper_slower_model():
    cands = [_cand(60 + i, 40 - i, 8) for i in range(6)] + [_cand(80, 50, 10), _cand(100, 100, 10)]
    assert [c.macs for c in pareto_front(cands, size=6)] == [60, 61, 62, 63, 64, 65]
    # the 100/depth-10 one is dominated by the 80/depth-10 one on all four objectives
    assert [c.macs for c in pareto_front(cands, size=6, by_depth=True)] == [60, 61, 62, 63, 64, 80]


def test_children_per_parent_rules():
    assert children_per_parent(6, 12, "even") == [2] * 6  # the original rule
    assert children_per_parent(5, 12, "even") == [3] * 5
    for n in range(1, 9):
        shares = children_per_parent(n, 12, "rank")
        assert sum(shares) == 12 and len(shares) == n
        assert shares[0] == max(shares) and min(shares) >= 1  # cheapest first, nobody starved
        assert shares == sorted(shares, reverse=True) or n > 4  # monotone until rounding ties
    assert children_per_parent(6, 12, "rank") == [5, 2, 2, 1, 1, 1]
    assert sum(children_per_parent(6, 4, "rank")) == 4  # fewer children than parents: the cheapest get them
    assert children_per_parent(0, 12, "rank") == []
