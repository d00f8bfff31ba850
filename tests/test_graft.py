"""graft: a mutation's delta replayed on another model (and the search's library of them)."""

from __future__ import annotations

import random

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from autogo_deploy import graft, zoo
from autogo_deploy.backends.npu_fuse import onnx_groups
from autogo_deploy.backends.npu_model import NpuConstants, cost_groups
from autogo_deploy.candidate import Candidate, candidate_id
from autogo_deploy.graph import load
from autogo_deploy.mutate import io_signature, verify_model
from autogo_deploy.proposers import GraphProposer, graph_stats
from autogo_deploy.target import load_target


def _chain(convs: dict[str, tuple[str, float]]) -> onnx.ModelProto:
    """x -> four 3x3 convs (+ ReLU each) -> y. `convs` overrides a conv by name: (new node name, weight
    scale), standing in for a mutation that replaced it (new names, new weights, like a splice)."""
    nodes, inits, t = [], [], "x"
    for k in range(4):
        name, scale = convs.get(f"conv{k}", (f"conv{k}", 1.0))
        w = np.full((4, 4, 3, 3), 0.05 * scale * (k + 1), np.float32)
        inits.append(numpy_helper.from_array(w, f"{name}.w"))
        mid = f"{name}.out" if name != f"conv{k}" else f"c{k}"
        nodes.append(helper.make_node("Conv", [t, f"{name}.w"], [mid], name=name, pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [mid], [f"r{k}"], name=f"relu{k}"))
        t = f"r{k}"
    nodes[-1].output[0] = "y"
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _run(model: onnx.ModelProto) -> np.ndarray:
    x = np.random.default_rng(0).standard_normal((1, 4, 8, 8)).astype(np.float32)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def test_a_change_replayed_elsewhere_gives_the_model_with_both_changes():
    base = _chain({})
    a = _chain({"conv0": ("m0/conv", 2.0)})  # one lineage changed the first conv
    b = _chain({"conv3": ("m0/conv", 3.0)})  # another the last one, with the same new names
    d = graft.delta(base, a)
    assert set(d.removed) == {"conv0", "relu0"}  # relu0 reads the new tensor: rewritten too
    out = graft.graft(b, d)
    assert isinstance(out, onnx.ModelProto)
    both = _chain({"conv0": ("x0", 2.0), "conv3": ("x3", 3.0)})
    np.testing.assert_allclose(_run(out), _run(both), rtol=1e-6)
    names = [n.name for n in out.graph.node]
    assert len(names) == len(set(names)) == 8 and "m0/conv" in names and "g0/m0/conv" in names
    assert verify_model(out, io_signature(base)) is None
    assert len(out.graph.initializer) == 4  # conv0's old weight is gone, both new ones are there


def test_a_delta_does_not_apply_where_its_nodes_were_rewritten():
    base = _chain({})
    a = _chain({"conv1": ("m0/conv", 2.0)})
    other = _chain({"conv1": ("m0/conv", 5.0)})  # the same conv replaced differently
    d = graft.delta(base, a)
    why = graft.graft(other, d)
    assert isinstance(why, str) and why.startswith("conflict")
    assert not graft.applies({k: graft._digest(v) for k, v in d.removed.items()}, graft.node_digests(other))
    assert graft.applies({k: graft._digest(v) for k, v in d.removed.items()}, graft.node_digests(base))
    assert graft.graft(a, graft.delta(a, a)) == "empty delta"


def test_a_graft_that_does_not_wire_up_is_refused():
    base = _chain({})
    a = _chain({"conv2": ("m0/conv", 2.0)})
    d = graft.delta(base, a)
    d.added = [
        b for b in d.added if graft._node(b).op_type != "Conv"
    ]  # the new conv lost: relu2 reads nothing
    why = graft.graft(base, d)
    assert isinstance(why, str) and "read but no longer made" in why


def test_a_delta_survives_its_onnx_form():
    base = _chain({})
    d = graft.delta(base, _chain({"conv2": ("m0/conv", 2.0)}))
    back = graft.from_bytes(graft.to_bytes(d))
    assert (back.removed, back.added, back.inits, back.produced) == (d.removed, d.added, d.inits, d.produced)
    with pytest.raises(ValueError):
        graft.from_bytes(base.SerializeToString())


def test_the_library_keeps_the_largest_gains_and_tries_each_pair_once():
    base = _chain({})
    digests = graft.node_digests(base)
    lib = graft.Library(keep=2)
    data = {k: graft.to_bytes(graft.delta(base, _chain({f"conv{k}": ("m0/conv", 2.0)}))) for k in range(4)}
    lib.offer("a", 0.1, data[0], {})
    lib.offer("b", -0.5, data[1], {})  # no gain: not kept
    lib.offer("c", 0.3, data[2], {})
    lib.offer("d", 0.2, data[3], {})
    assert sorted(lib.entries) == ["c", "d"]
    assert [e.source for e in lib.pick("r", 1, digests)] == ["c"]
    assert [e.source for e in lib.pick("r", 5, digests)] == ["d"]  # c was tried on r already
    assert lib.pick("r", 5, digests) == []
    assert [e.source for e in lib.pick("s", 5, graft.node_digests(_chain({"conv2": ("z", 1.0)})))] == ["d"]


@pytest.fixture(scope="module")
def resnet18():
    data = load(zoo.build("resnet18", input_size=64).SerializeToString(), cleanup=True).to_bytes()
    return Candidate(candidate_id(data), data, None, 0, **graph_stats(data))


def test_grafted_mutants_are_valid_and_their_npu_cost_adds_up(small_db_path, resnet18):
    """Two mutations of a ResNet-18 in different places: the graft of one onto the other is a valid
    network whose npu-sim latency saves what each saved alone (the cost is a sum over kernels)."""
    options = load_target("npu-sim").options
    proposer = GraphProposer(
        str(small_db_path), align=16, jobs=1, cost_targets=(1.0, 0.5), segment_weight="target",
        npu_options=options, cost_model=options, graft=True,
    )  # fmt: skip
    try:
        kids = proposer(resnet18, random.Random(5), 8)
        assert kids and all(k.delta for k in kids)
        consts = NpuConstants.from_options(options)

        def latency(data: bytes) -> float:
            return cost_groups(onnx_groups(onnx.load_from_string(data)), consts)["latency_ms"]

        base = latency(resnet18.model_bytes)
        pairs = [
            (i, j)
            for i, a in enumerate(kids)
            for j, b in enumerate(kids)
            if i != j
            and graft.applies(
                {k: graft._digest(v) for k, v in graft.from_bytes(b.delta).removed.items()},
                graft.node_digests(a.model_bytes),
            )
        ]
        assert pairs, "no two mutants changed different places"
        i, j = pairs[0]
        entry = graft.Entry(kids[j].cid, 1.0, kids[j].delta, kids[j].changes[-1])
        (child,) = proposer.graft(kids[i], [entry], random.Random(0))
    finally:
        proposer.close()
    assert child.parent == kids[i].cid and child.changes[-1]["grafted_from"] == kids[j].cid
    assert child.changes[:-1] == kids[i].changes
    io = io_signature(onnx.load_from_string(resnet18.model_bytes))
    assert verify_model(onnx.load_from_string(child.model_bytes), io) is None
    saved = (latency(kids[i].model_bytes) - base) + (latency(kids[j].model_bytes) - base)
    assert latency(child.model_bytes) - base == pytest.approx(saved, abs=1e-9)
    assert child.modeled["latency_ms"] == pytest.approx(latency(child.model_bytes))


def _npu_search(db_path, base: Candidate, tmp_path, generations: int):
    from autogo_deploy.constraints import Budgets
    from autogo_deploy.search import Search, SearchConfig

    options = load_target("npu-sim").options
    consts = NpuConstants.from_options(options)
    proposer = GraphProposer(
        str(db_path), align=16, jobs=1, cost_targets=(1.0, 0.5), segment_weight="target",
        npu_options=options, cost_model=options, graft=True,
    )  # fmt: skip

    def measure(c: Candidate) -> dict:
        cost = cost_groups(onnx_groups(onnx.load_from_string(c.model_bytes)), consts)
        return {"latency_ms": cost["latency_ms"], "energy_mj": cost["energy_mj"], "deterministic": True}

    search = Search(
        base,
        proposer=proposer,
        scorer=lambda cands: [{"acc": 0.5} for _ in cands],
        measurer=measure,
        budgets=Budgets({}),
        config=SearchConfig(generations=generations, population=6, graft=2, seed=1),
        checkpoint=tmp_path / "ck",
        grafter=proposer.graft,
    )
    return search, proposer


def test_the_search_grafts_paying_changes_onto_its_best_and_keeps_its_library(
    small_db_path, resnet18, tmp_path
):
    base = Candidate(resnet18.cid, resnet18.model_bytes, None, 0, **graph_stats(resnet18.model_bytes))
    base.predicted, base.acc_delta = {"acc": 0.5}, 0.0
    search, proposer = _npu_search(small_db_path, base, tmp_path, generations=6)
    try:
        search.run()
    finally:
        proposer.close()
    lib = search.library
    assert lib.entries and all(e.gain > 0 for e in lib.entries.values())
    grafted = [c for c in search.pool.values() if c.changes and "grafted_from" in c.changes[-1]]
    assert grafted, f"no graft admitted; rejections {proposer.rejections}"
    assert all(c.delta is None for c in search.pool.values())  # deltas live in the library only
    for c in grafted:  # a graft saves on its recipient what its change saved on its own parent
        src = search.pool[c.changes[-1]["grafted_from"]]
        parent, src_parent = search.pool[c.parent], search.pool[src.parent]
        expected = parent.cost("latency_ms") + src.cost("latency_ms") - src_parent.cost("latency_ms")
        assert c.cost("latency_ms") == pytest.approx(expected, abs=1e-9)
    state = (tmp_path / "ck" / "state.json").read_text()
    files = sorted(p.name for p in (tmp_path / "ck").glob("graft-*.onnx"))
    assert files == sorted(f"graft-{s}.onnx" for s in lib.entries)
    again, proposer = _npu_search(small_db_path, base, tmp_path, generations=8)
    proposer.close()
    again.load_checkpoint(tmp_path / "ck")
    assert '"grafts"' in state and again.library.tried == lib.tried
    assert {s: (e.gain, e.data, e.removed) for s, e in again.library.entries.items()} == {
        s: (e.gain, e.data, e.removed) for s, e in lib.entries.items()
    }


def test_gain_compares_like_with_like():
    def cand(cid, parent=None, modeled=None, measured=None, predicted=None, macs=10):
        c = Candidate(cid, b"x", parent, 0, macs=macs)
        c.modeled, c.measured, c.predicted = modeled, measured, predicted or {}
        return c

    base = cand("b", measured={"latency_ms": 2.0, "deterministic": True}, predicted={"latency_ms": 9.0})
    kid = cand("k", "b", modeled={"latency_ms": 1.5}, predicted={"latency_ms": 9.5})
    assert graft.gain(base, kid, "latency_ms") == pytest.approx(0.5)  # exact figures on both sides
    timed = cand("t", measured={"latency_ms": 2.0}, predicted={"latency_ms": 3.0})
    kid2 = cand("k2", "t", predicted={"latency_ms": 2.5})
    assert graft.gain(timed, kid2, "latency_ms") == pytest.approx(0.5)  # predictions, not 2.0 vs 2.5
    assert graft.gain(cand("n"), kid2, "latency_ms") is None
    assert graft.gain(base, cand("m", macs=4), "macs") == 6


def test_the_library_takes_paying_mutants_and_drops_every_delta():
    base_model = _chain({})
    parent = Candidate("p", b"x", None, 0, depth=10)
    parent.modeled = {"latency_ms": 2.0}
    kids = []
    for k, lat in enumerate((1.5, 2.5)):
        c = Candidate(f"k{k}", b"x", "p", 0, changes=[{"segment": k}])
        c.modeled = {"latency_ms": lat}
        c.delta = graft.to_bytes(graft.delta(base_model, _chain({f"conv{k}": ("m0/conv", 2.0)})))
        kids.append(c)
    deltas = [c.delta for c in kids]
    lib = graft.Library()
    lib.offer_mutants(kids, {"p": parent}, "latency_ms", feasible=lambda c: False)  # over a budget
    assert not lib.entries and all(c.delta is None for c in kids)
    for c, d in zip(kids, deltas, strict=True):
        c.delta = d
    kids[0].depth = parent.depth - 1  # shallower: a graft must not spend the depth budget
    lib.offer_mutants(kids, {"p": parent}, "latency_ms")
    assert not lib.entries
    for c, d in zip(kids, deltas, strict=True):
        c.delta, c.depth = d, parent.depth
    lib.offer_mutants(kids, {"p": parent}, "latency_ms")
    assert list(lib.entries) == ["k0"] and lib.entries["k0"].change == {"segment": 0}
    assert all(c.delta is None for c in kids)
