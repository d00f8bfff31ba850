"""The search engine with a synthetic proposer/scorer/measurer (real engine, fake world).

Candidates are integers encoded as bytes; 'latency' = value, 'accuracy' falls when value drops below 40.
"""

from __future__ import annotations

import random

from autogo_deploy.candidate import Candidate, candidate_id
from autogo_deploy.constraints import parse_budgets
from autogo_deploy.search import Search, SearchConfig


def _cand(v: int, parent=None) -> Candidate:
    data = str(v).encode()
    return Candidate(candidate_id(data), data, parent, 0, macs=v * 10, params=v)


def _value(c: Candidate) -> int:
    return int(c.model_bytes.decode())


def proposer(parent, rng: random.Random, n: int):
    v = _value(parent)
    return [_cand(max(1, v - rng.randint(-3, 12)), parent.cid) for _ in range(n)]


def scorer(cands):
    # predicted latency is biased (x2) so the measured/predicted rescaling matters
    return [
        {"acc": 90.0 - max(0, 40 - _value(c)), "latency_ms": 2.0 * _value(c), "energy_mj": None}
        for c in cands
    ]


def make(
    budgets=("acc_drop=0",),
    seed=0,
    generations=5,
    *,
    extra=None,
    propose=proposer,
    score=scorer,
    cfg=None,
    **kw,
):
    """A search over the synthetic world; `extra`: fields added to every measurement, `propose` /
    `score`: the proposer and the scorer, `cfg`: more SearchConfig fields. Returns the search and the
    measured values in order."""
    measured = []

    def measurer(c):
        measured.append(_value(c))
        return {"latency_ms": float(_value(c)), "energy_mj": None, "power_w": None, **(extra or {})}

    base = _cand(100)
    base.predicted = score([base])[0]
    base.acc_delta = 0.0
    s = Search(
        base,
        proposer=propose,
        scorer=score,
        measurer=measurer,
        budgets=parse_budgets(list(budgets)),
        config=SearchConfig(generations=generations, population=8, measure_top=2, seed=seed, **(cfg or {})),
        **kw,
    )
    return s, measured


def test_finds_faster_candidate_within_accuracy_budget():
    s, measured = make()
    r = s.run()
    assert r.best is not None
    assert r.best.measured["latency_ms"] < 100
    assert _value(r.best) >= 40  # acc_drop=0: never accept a predicted accuracy loss
    assert all(c.measured for c in r.front)  # the final front is always measured
    assert measured[0] == 100  # the input is measured first


def test_deterministic_for_a_seed():
    a, _ = make(seed=3)
    b, _ = make(seed=3)
    ra, rb = a.run(), b.run()
    assert ra.best.cid == rb.best.cid
    assert [h["best_cid"] for h in ra.history] == [h["best_cid"] for h in rb.history]


def test_hard_latency_budget_and_no_slower_emission():
    s, _ = make(budgets=("latency_ms=60", "acc_drop=100"))
    r = s.run()
    assert r.best is None or r.best.measured["latency_ms"] <= 60
    s2, _ = make(budgets=("latency_ms=0.5", "acc_drop=100"))
    assert s2.run().best is None  # impossible budget: nothing is emitted


def test_rescaling_uses_measurements():
    s, _ = make(generations=2)
    s.run()
    assert abs(s.scale() - 0.5) < 1e-9  # measured = predicted / 2


def test_interrupt_keeps_best_so_far():
    calls = {"n": 0}

    def flaky(parent, rng, n):
        calls["n"] += 1
        if calls["n"] > 2:
            raise KeyboardInterrupt
        return proposer(parent, rng, n)

    s, _ = make(generations=10)
    s.propose = flaky
    r = s.run()
    assert r.stopped.startswith("interrupted")
    assert r.best is not None and r.best.measured


def test_checkpoint_resume(tmp_path):
    s, _ = make(generations=2, checkpoint=tmp_path / "ck")
    r1 = s.run()
    assert (tmp_path / "ck" / "state.json").is_file()
    s2, measured = make(generations=4, checkpoint=tmp_path / "ck")
    s2.load_checkpoint(tmp_path / "ck")
    assert s2.start_generation == 2
    r2 = s2.run()
    assert len(r2.history) == 4
    assert r2.best.measured["latency_ms"] <= r1.best.measured["latency_ms"]


def test_a_gain_inside_the_measurement_noise_is_not_emitted():
    """Every mutant measures 2% faster than the input; with a ±3% CI on the medians that is noise
    and nothing is emitted, with ±1% it is a real gain and the best is emitted."""

    def run(ci):
        base = _cand(100)
        base.predicted, base.acc_delta = scorer([base])[0], 0.0

        def measurer(c):
            value = 100.0 if c is base or _value(c) == 100 else 98.0
            return {"latency_ms": value, "energy_mj": None, "power_w": None, "ci95_rel": ci}

        s = Search(
            base,
            proposer=lambda p, rng, n: [_cand(200 + i + 10 * rng.randint(0, 99), p.cid) for i in range(n)],
            scorer=lambda cs: [{"acc": 90.0, "latency_ms": 1.0, "energy_mj": None} for _ in cs],
            measurer=measurer,
            budgets=parse_budgets(["acc_drop=0"]),
            config=SearchConfig(generations=2, population=4, measure_top=2, seed=0),
        )
        return s.run().best

    assert run(0.03) is None
    best = run(0.01)
    assert best is not None and best.measured["latency_ms"] == 98.0


# ---- exact (deterministic) targets: measure every feasible mutant, parents shared by rank ----------
def make_exact(deterministic: bool, seed=0, generations=3, **cfg):
    """Like make(), but the measurer answers like a simulated target when `deterministic`; the
    proposer records how many children each parent was asked for."""
    asked = []

    def counting_proposer(parent, rng, n):
        asked.append((parent.cid, n))
        return proposer(parent, rng, n)

    s, measured = make(
        seed=seed,
        generations=generations,
        extra={"deterministic": deterministic},
        propose=counting_proposer,
        cfg=cfg,
    )
    return s, measured, asked


def test_exact_target_can_measure_every_feasible_mutant():
    s, measured, _ = make_exact(True, measure_top_exact=8)  # >= population: every feasible mutant
    r = s.run()
    for h in r.history:  # every feasible mutant of every generation was measured
        gen_feasible = [c for c in s.pool.values() if c.generation == h["generation"] and s.feasible(c)]
        assert gen_feasible and all(c.measured for c in gen_feasible)
    # a timed target keeps measure_top per generation (+ the input + the final front)
    t, measured_t, _ = make_exact(False)
    rt = t.run()
    assert rt.history[-1]["measured_total"] <= 1 + 2 * len(rt.history)
    assert len(measured) > len(measured_t)


def test_exact_target_measures_measure_top_unless_told_otherwise():
    s, _, _ = make_exact(True)
    r = s.run()
    counts = [h["measured_total"] for h in r.history]
    assert [b - a for a, b in zip([1] + counts, counts, strict=False)] == [2] * len(counts)


def test_exact_target_measurement_cap():
    s, _, _ = make_exact(True, measure_top_exact=3)
    r = s.run()
    counts = [h["measured_total"] for h in r.history]
    steps = [b - a for a, b in zip([1] + counts, counts, strict=False)]
    assert max(steps) <= 3 and max(steps) == 3


def make_wide(
    deterministic: bool, *, generations: int, budget: str, on_generation, on_propose=None
) -> Search:
    """A world where cheaper means more params, so the front holds several members; the measurer
    answers like a simulated target when `deterministic`; `on_propose(n)` sees each request."""

    def cand(v):
        data = str(v).encode()
        return Candidate(candidate_id(data), data, None, 0, macs=v * 10, params=1000 - v)

    def prop(parent, rng, n):
        if on_propose:
            on_propose(n)
        return [cand(max(1, _value(parent) - rng.randint(-3, 12))) for _ in range(n)]

    base = cand(100)
    base.predicted, base.acc_delta = scorer([base])[0], 0.0
    return Search(
        base,
        proposer=prop,
        scorer=scorer,
        measurer=lambda c: {"latency_ms": float(_value(c)), "deterministic": deterministic},
        budgets=parse_budgets([budget]),
        config=SearchConfig(generations=generations, population=8, measure_top=2, seed=0),
        on_generation=on_generation,
    )


def test_exact_target_gives_the_cheapest_front_member_the_most_children():
    """A world where cheaper means more params, so the front holds several members; on an exact
    target the cheapest one is asked for the most children, on a timed one all get the same."""

    def run(deterministic):
        asked: list = [[]]
        s = make_wide(
            deterministic,
            generations=4,
            budget="acc_drop=0",
            on_generation=lambda _e: asked.append([]),
            on_propose=lambda n: asked[-1].append(n),
        )
        s.run()
        return [g for g in asked if len(g) > 1]

    exact = run(True)
    assert exact and all(g[0] == max(g) and g[0] > min(g) and sum(g) == 8 for g in exact)
    timed = run(False)
    assert timed and all(len(set(g)) == 1 for g in timed)  # even shares, as before


def test_spilled_candidates_are_searched_and_their_files_released(tmp_path):
    """Candidates whose bytes wait in spill files behave as in memory; released ones lose their file."""

    def spilling(parent, rng, n):
        out = proposer(parent, rng, n)
        for c in out:
            c.spill(tmp_path)
        return out

    s, _ = make(generations=6)
    s.propose = spilling
    r = s.run()
    assert r.best is not None and r.best.spill_path is not None
    assert _value(r.best) >= 40 and r.best.measured["latency_ms"] < 100
    kept = {c.spill_path for c in s.pool.values() if c.spill_path is not None}
    assert set(tmp_path.glob("*.onnx")) == kept  # every released candidate's file is gone
    assert len(kept) <= s.cfg.front_size + s.KEEP_MEASURED


def _intermediate_calls(escape_after, generations=30):
    """Generations (0-based) in which the proposer was handed an intermediate mutant (a child that was
    never admitted: generation 0 and not the input) as the parent, and the finished search."""
    calls = []
    holder = {}

    def propose(parent, rng, n):
        s = holder["s"]
        if parent.generation == 0 and parent.cid != s.baseline.cid:
            calls.append(len(s.history))
        return proposer(parent, rng, n)

    s, _ = make(generations=generations, propose=propose, cfg={"escape_after": escape_after})
    holder["s"] = s
    result = s.run()
    return set(calls), result


def test_a_stalled_search_gives_children_two_changes():
    compound, r = _intermediate_calls(3)
    stalled_before = {g for g in range(1, len(r.history)) if r.history[g - 1]["stalled"] >= 3}
    assert stalled_before, "the synthetic world stalls at its accuracy floor"
    assert compound == stalled_before  # exactly the generations that follow 3 without a better best
    # the count grows by one per generation without a better measured objective, or starts again at 0
    assert all(b["stalled"] in (0, a["stalled"] + 1) for a, b in zip(r.history, r.history[1:], strict=False))
    assert any(h["stalled"] == 0 for h in r.history[1:])
    again_compound, again = _intermediate_calls(3)
    assert again_compound == compound and again.best.cid == r.best.cid  # still seeded


def test_no_two_change_children_unless_asked():
    compound, r = _intermediate_calls(None)
    assert not compound and any(h["stalled"] >= 3 for h in r.history)


def test_exact_target_front_holds_measured_figures_only():
    """A world where cheaper means more params, so the front holds several members: after every
    generation on an exact target each of them is measured; on a timed one some stay predictions."""

    def run(deterministic):
        unmeasured: list[int] = []
        s = make_wide(
            deterministic,
            generations=6,
            budget="acc_drop=100",
            on_generation=lambda _e: unmeasured.append(sum(c.measured is None for c in s.front())),
        )
        s.run()
        return unmeasured, s

    exact, s = run(True)
    assert exact and not any(exact)
    assert all(h["best_measured"] for h in s.history)
    timed, _ = run(False)
    assert any(timed)  # the world does put predictions on the front


def test_depth_budget_keeps_every_result_near_the_input():
    """'depth' falls with the value (value // 10 layers): a depth_drop budget of 0.3 holds the
    search to values >= 70, while without it the search goes further."""

    def deep(v: int, parent=None) -> Candidate:
        c = _cand(v, parent)
        c.depth = v // 10
        return c

    def propose(parent, rng, n):
        return [deep(max(1, _value(parent) - rng.randint(-3, 12)), parent.cid) for _ in range(n)]

    free, _ = make(budgets=("acc_drop=100",), generations=8, propose=propose)
    free.baseline.depth = 10
    free.baseline.depth_drop = 0.0
    leashed, _ = make(budgets=("acc_drop=100", "depth_drop=0.3"), generations=8, propose=propose)
    leashed.baseline.depth = 10
    leashed.baseline.depth_drop = 0.0
    rf, rl = free.run(), leashed.run()
    assert rf.best is not None and rf.best.depth_drop > 0.3  # the free search went further
    assert rl.best is not None and rl.best.depth_drop <= 0.3 and _value(rl.best) >= 70
    assert all(c.depth_drop <= 0.3 for c in rl.front if c is not leashed.baseline)


def test_children_carrying_the_targets_cost_model_are_ranked_by_it():
    """A predictor that ranks the world backwards: on its own the search needs its exact target's
    front-entrant measurements to recover; when the proposer attaches the target's cost-model
    figures (Candidate.modeled, npu-sim), the search ranks by those, keeps the cheapest network it
    ever proposed and measures only measure_top per generation (and the final front)."""

    def backwards(cands):
        return [{"acc": 90.0, "latency_ms": 1000.0 - _value(c), "energy_mj": None} for c in cands]

    def run(modeled: bool):
        proposed: list[int] = []

        def propose(parent, rng, n):
            kids = proposer(parent, rng, n)
            for k in kids:
                proposed.append(_value(k))
                k.modeled = {"latency_ms": float(_value(k)), "energy_mj": None} if modeled else None
            return kids

        s, measured = make(generations=4, extra={"deterministic": True}, propose=propose, score=backwards)
        return s.run(), measured, proposed, s

    blind, measured_blind, _, s_blind = run(False)
    ranked, measured, proposed, s_ranked = run(True)
    # the gaps between the proposer's figures and the measurements (both exact here) are recorded
    assert not s_blind.modeled_gaps and s_ranked.modeled_gaps and max(s_ranked.modeled_gaps) == 0.0
    assert ranked.best is not None and _value(ranked.best) == min(proposed)
    assert blind.best is None or _value(ranked.best) <= _value(blind.best)
    assert len(measured) < len(measured_blind)
    # in the loop: the input and measure_top per generation; then the final front
    assert len(measured) <= 1 + 4 * 2 + len(ranked.front)


def _front_world(strata: str, deterministic: bool = True, strategy: str = "pareto"):
    """The input (latency 100, depth 10) and measured mutants: six cuts to depth 8 that trade latency
    for params (so all six are on the plain front), and one at depth 10, slower than all of them with
    more params: the plain front drops it, a depth-stratified one keeps it as depth 10's cheapest."""
    cfg = {"front_strata": strata, "front_size": 6, "strategy": strategy}
    s, _ = make(cfg=cfg, extra={"deterministic": deterministic})
    s.baseline.depth = 10
    s.baseline.measured = {"latency_ms": 100.0, "deterministic": deterministic}
    world = [(60 + i, 40 - i, 8) for i in range(6)] + [(80, 50, 10)]  # (latency, params, depth)
    for lat, params, depth in world:
        c = _cand(lat)
        c.params, c.depth, c.acc_delta = params, depth, 0.0
        c.predicted = {"acc": 90.0, "latency_ms": float(lat), "energy_mj": None}
        c.measured = {"latency_ms": float(lat), "deterministic": deterministic}
        s.pool[c.cid] = c
    return s


def test_depth_strata_keep_the_cheapest_member_of_each_depth():
    plain = _front_world("off").front()
    assert [_value(c) for c in plain] == [60, 61, 62, 63, 64, 65]  # six cuts to depth 8, cheapest first
    world = _front_world("depth")
    stratified = world.front()
    assert [_value(c) for c in stratified] == [60, 61, 62, 63, 64, 80]  # depth 10's cheapest took a slot
    # the input (depth 10, latency 100) is dominated by the depth-10 mutant on all four objectives
    assert world.baseline not in stratified


def test_front_strata_auto_means_depth_on_exact_targets_only():
    def has_depth10(**kw):
        return any(c.depth == 10 for c in _front_world("auto", **kw).front())

    assert has_depth10(deterministic=True)
    assert not has_depth10(deterministic=False)  # timed targets: the plain front
    assert not has_depth10(deterministic=True, strategy="random")  # the random baseline: unchanged
