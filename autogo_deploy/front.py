"""The search's Pareto front and how a generation's children are shared among its members."""

from __future__ import annotations

import math

from autogo_deploy.candidate import Candidate


def pareto_front(
    cands: list[tuple[Candidate, float]], *, size: int, by_depth: bool = False
) -> list[Candidate]:
    """At most `size` non-dominated candidates on (predicted accuracy ↑, objective cost ↓, params ↓),
    cheapest first; `cands` = (candidate, its objective cost). by_depth: depth ↑ is a fourth
    objective and the cheapest member of each depth holds a slot before the rest (depth_strata)."""
    dims = 4 if by_depth else 3
    pts = [(c, (-(c.acc_delta or 0.0), cost, float(c.params), -float(c.depth))) for c, cost in cands]
    front = [
        c
        for c, p in pts
        if not any(
            all(q[i] <= p[i] for i in range(dims)) and any(q[i] < p[i] for i in range(dims))
            for d, q in pts
            if d is not c
        )
    ]
    key = {c.cid: (cost, -(c.acc_delta or 0.0), c.cid) for c, cost in cands}
    front.sort(key=lambda c: key[c.cid])
    if by_depth:
        return sorted(depth_strata(front, size), key=lambda c: key[c.cid])
    return front[:size]


def depth_strata(front: list[Candidate], size: int) -> list[Candidate]:
    """`size` members of a front sorted cheapest first: the cheapest member of each depth (in cost
    order, so with more depths than slots the costliest depths are left out), then the others by cost."""
    heads: dict[int, Candidate] = {}
    for c in front:
        heads.setdefault(c.depth, c)
    picked = {c.cid for c in heads.values()}
    return (list(heads.values()) + [c for c in front if c.cid not in picked])[:size]


def children_per_parent(n_parents: int, population: int, share: str = "even") -> list[int]:
    """How many mutants each parent (front order: cheapest first) is asked for.

    "even": ceil(population / n_parents) each (the original rule). "rank": population split in
    proportion to 1/rank (largest remainders; ties to the cheaper parent), so the cheapest member
    gets the most children and every member at least one while population >= n_parents."""
    if n_parents <= 0:
        return []
    if share == "even":
        return [max(1, math.ceil(population / n_parents))] * n_parents
    if share != "rank":
        raise ValueError(f"unknown parent share {share!r}; valid: auto, even, rank")
    weights = [1.0 / (i + 1) for i in range(n_parents)]
    total = sum(weights)
    exact = [population * w / total for w in weights]
    counts = [max(1, int(x)) if population >= n_parents else int(x) for x in exact]
    order = sorted(range(n_parents), key=lambda i: (counts[i] - exact[i], i))
    for i in order:
        if sum(counts) >= population:
            break
        counts[i] += 1
    return counts
