"""GraphProposer: segment-database mutations of a real network, with either source-segment weighting."""

from __future__ import annotations

import random

import onnx
import pytest

from autogo_deploy import zoo
from autogo_deploy.candidate import Candidate, candidate_id
from autogo_deploy.errors import InputError
from autogo_deploy.graph import load
from autogo_deploy.mutate import io_signature
from autogo_deploy.proposers import GraphProposer, graph_stats
from autogo_deploy.target import load_target


@pytest.fixture(scope="module")
def parent():
    data = load(zoo.build("resnet18", input_size=64).SerializeToString(), cleanup=True).to_bytes()
    return Candidate(candidate_id(data), data, None, 0, **graph_stats(data))


def _propose(
    db_path,
    parent,
    weight: str,
    seed: int = 3,
    widen_share: float = 0.0,
    n: int = 6,
    min_depth=None,
    cost_model=None,
):
    proposer = GraphProposer(
        str(db_path),
        align=16,
        jobs=1,
        cost_targets=(1.0, 0.5),
        macs_per_param=160,
        segment_weight=weight,
        npu_options=load_target("npu-sim").options if weight == "target" else None,
        widen_share=widen_share,
        min_depth=min_depth,
        cost_model=cost_model,
    )
    try:
        return proposer(parent, random.Random(seed), n), proposer
    finally:
        proposer.close()


@pytest.mark.parametrize("weight", ["macs", "target"])
def test_mutants_are_valid_networks_with_the_parents_interface(small_db_path, parent, weight):
    mutants, proposer = _propose(small_db_path, parent, weight)
    assert mutants, f"no mutant proposed; rejections: {proposer.rejections}"
    assert proposer.accepted == len(mutants)
    io = io_signature(onnx.load_from_string(parent.model_bytes))
    for m in mutants:
        model = onnx.load_from_string(m.model_bytes)
        onnx.checker.check_model(model)
        assert io_signature(model) == io
        assert m.cid == candidate_id(m.model_bytes) != parent.cid
        assert m.parent == parent.cid and len(m.changes) == 1
        change = m.changes[0]
        assert change["cost_target"] in (1.0, 0.5) and change["certificate"]
        assert set(change["nodes"]) <= {n.name for n in onnx.load_from_string(parent.model_bytes).graph.node}


def test_proposals_are_seeded(small_db_path, parent):
    first, _ = _propose(small_db_path, parent, "target", seed=5)
    again, _ = _propose(small_db_path, parent, "target", seed=5)
    assert [m.cid for m in first] == [m.cid for m in again]


def test_big_mutants_are_handed_over_as_files(small_db_path, parent, tmp_path):
    proposer = GraphProposer(str(small_db_path), align=16, jobs=1, spill=(str(tmp_path), 0))
    try:
        mutants = proposer(parent, random.Random(3), 4)
        assert mutants and all(m.spill_path is not None and m.spill_path.parent == tmp_path for m in mutants)
        for m in mutants:
            assert m.cid == candidate_id(m.model_bytes)
        child = mutants[0]
        grandchildren = proposer(child, random.Random(4), 2)  # a spilled parent is read from its file
        assert grandchildren and all(g.parent == child.cid for g in grandchildren)
    finally:
        proposer.close()


def _same_graph(a, b) -> None:
    assert [n.name for n in a.nodes] == [n.name for n in b.nodes]
    assert [(n.op_type, n.out_shapes, n.macs) for n in a.nodes] == [
        (n.op_type, n.out_shapes, n.macs) for n in b.nodes
    ]
    assert a.totals() == b.totals()


def test_mutants_are_marked_verified_and_parse_as_load_would(small_db_path, parent):
    from autogo_deploy.graph import from_verified

    mutants, _ = _propose(small_db_path, parent, "macs")
    assert mutants and all(m.verified for m in mutants)
    for m in mutants:  # the fast path sees exactly the graph the validating load builds
        _same_graph(from_verified(m.model_bytes), load(m.model_bytes, cleanup=False))


def test_a_verified_parent_gives_the_same_mutants(small_db_path, parent):
    """The parent's graph parsed without validation (verified) or loaded in full: same proposals."""
    checked = Candidate(parent.cid, parent.model_bytes, None, 0, verified=True)
    unchecked = Candidate(parent.cid, parent.model_bytes, None, 0, verified=False)
    a, _ = _propose(small_db_path, checked, "macs", seed=7)
    b, _ = _propose(small_db_path, unchecked, "macs", seed=7)
    assert a and [m.cid for m in a] == [m.cid for m in b]


def test_predictions_of_verified_candidates_match_the_loaded_path(small_db_path, parent):
    from autogo_deploy.predictor import Predictor

    mutants, _ = _propose(small_db_path, parent, "macs")
    twins = [Candidate(m.cid, m.model_bytes, None, 0, verified=False) for m in mutants]
    predictor = Predictor.load_default()
    fast = predictor.predict(mutants, ids=[m.cid for m in mutants])
    slow = predictor.predict(twins, ids=[m.cid for m in twins])
    assert [(p.id, p.acc) for p in fast] == [(p.id, p.acc) for p in slow]


def test_widened_mutations_replace_more_of_the_parent(small_db_path, parent):
    plain, _ = _propose(small_db_path, parent, "macs", seed=7, n=10)
    wide, proposer = _propose(small_db_path, parent, "macs", seed=7, widen_share=1.0, n=10)
    assert wide, f"no widened mutant; rejections: {proposer.rejections}"
    assert not any(m.changes[0]["widened"] for m in plain)
    widened = [m.changes[0] for m in wide if m.changes[0]["widened"]]
    assert widened, "widen_share=1 widened no mutation"
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    assert mean([c["n_nodes"] for c in widened]) > mean([m.changes[0]["n_nodes"] for m in plain])
    io = io_signature(onnx.load_from_string(parent.model_bytes))
    for m in wide:
        model = onnx.load_from_string(m.model_bytes)
        onnx.checker.check_model(model)
        assert io_signature(model) == io
    with pytest.raises(InputError, match="widen share"):
        GraphProposer(str(small_db_path), jobs=1, widen_share=1.5)


def test_a_depth_floor_keeps_every_mutant_at_least_that_deep(small_db_path, parent):
    """depth_drop=0 on ResNet-18 (depth 18): no mutant loses a layer of its longest path, and the
    replacements that could only lose one are skipped (most before the MILP)."""
    free, _ = _propose(small_db_path, parent, "macs", seed=3, n=24)
    assert min(m.depth for m in free) < 18  # without a floor the same draws make shallower mutants
    kept, proposer = _propose(small_db_path, parent, "macs", seed=3, n=24, min_depth=18)
    assert kept and all(m.depth >= 18 for m in kept)
    assert proposer.rejections.get("depth bound", 0) + proposer.rejections.get("depth", 0) > 0
    for m in kept:  # the depth the proposer reports is the exact one
        assert m.depth == graph_stats(m.model_bytes)["depth"]


def test_mutants_carry_the_targets_cost_model_figures(small_db_path, parent):
    """With npu-sim's options the proposer costs every mutant with the target's own cost model:
    the figures the in-process harness measures (which cleans the model first) to 1e-5 relative,
    so the search ranks children by exact figures, not by a prediction. Without, none."""
    from autogo_deploy import loop_measure
    from autogo_deploy.backends.npu_sim import fast_stand_in

    tgt = load_target("npu-sim")
    plain, _ = _propose(small_db_path, parent, "macs")
    assert plain and all(m.modeled is None for m in plain)
    mutants, proposer = _propose(small_db_path, parent, "macs", cost_model=tgt.options)
    assert mutants, f"no mutant proposed; rejections: {proposer.rejections}"
    simulate = loop_measure.in_process_measurer(fast_stand_in(tgt)[0], seed=0)
    parent_ms = simulate(parent.model_bytes)["latency_ms"]
    for m in mutants:
        measured = simulate(m.model_bytes)
        for key in ("latency_ms", "energy_mj", "power_w"):
            assert m.modeled[key] == pytest.approx(measured[key], rel=1e-5), key
    # the figures tell the mutants apart: not all the parent's latency
    assert {round(m.modeled["latency_ms"], 9) for m in mutants} != {round(parent_ms, 9)}
