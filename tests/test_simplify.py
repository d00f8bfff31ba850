"""Exact rewrites after a splice: BatchNormalization chains merged, twin nodes merged, ReLUs of
non-negative tensors dropped."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from test_mutate import run, small
from test_resolve import bn, bn_inits, conv, make_segment

from autogo_deploy import mutate
from autogo_deploy.mutate import Mutant, apply
from autogo_deploy.simplify import drop_redundant_relus, merge_batchnorm_chains, merge_duplicate_nodes


def random_bn(p: str, c: int, rng) -> dict:
    return {
        f"{p}s": rng.uniform(0.5, 2.0, c).astype(np.float32),
        f"{p}b": rng.standard_normal(c).astype(np.float32),
        f"{p}m": rng.standard_normal(c).astype(np.float32),
        f"{p}v": rng.uniform(0.2, 3.0, c).astype(np.float32),
    }


def chain_model(*, extra_reader: bool = False, first_is_output: bool = False) -> onnx.ModelProto:
    """x -> Conv -> BN b1 -> BN b2 -> Relu -> y (b1 optionally also read by an Add, or an output)."""
    rng = np.random.default_rng(3)
    nodes = [conv("x", "w", "c"), bn("c", "n1", "b1"), bn("b1", "n2", "b2")]
    if extra_reader:
        nodes.append(helper.make_node("Add", ["b1", "b2"], ["s"], name="add"))
        nodes.append(helper.make_node("Relu", ["s"], ["y"], name="relu"))
    else:
        nodes.append(helper.make_node("Relu", ["b2"], ["y"], name="relu"))
    inits = {"w": rng.standard_normal((8, 4, 3, 3)).astype(np.float32)}
    inits |= random_bn("n1", 8, rng) | random_bn("n2", 8, rng)
    model = make_segment(nodes, {"x": [1, 4, 6, 6]}, {"y": [1, 8, 6, 6]}, inits)
    if first_is_output:
        model.graph.output.append(helper.make_tensor_value_info("b1", TensorProto.FLOAT, [1, 8, 6, 6]))
    return model


def bn_count(model: onnx.ModelProto) -> int:
    return sum(n.op_type == "BatchNormalization" for n in model.graph.node)


def test_two_batchnorms_merge_into_one_with_the_same_outputs():
    original = chain_model()
    model = onnx.ModelProto()
    model.CopyFrom(original)
    assert merge_batchnorm_chains(model, {"b2"}) == [["b1", "b2"]]
    onnx.checker.check_model(model, full_check=True)
    assert bn_count(model) == 1
    assert [n.name for n in model.graph.node] == ["c", "b2", "relu"]
    assert next(n for n in model.graph.node if n.name == "b2").input[0] == "c"
    # the old parameters are gone, the merged ones are new initializers
    names = {t.name for t in model.graph.initializer}
    assert not names & {"n1s", "n1b", "n1m", "n1v", "n2s", "n2b", "n2m", "n2v"}
    np.testing.assert_allclose(run(model)[0], run(original)[0], rtol=1e-5, atol=1e-5)


def test_chains_of_three_merge_and_the_result_is_exact():
    rng = np.random.default_rng(4)
    nodes = [bn("x", "n1", "b1"), bn("b1", "n2", "b2"), bn("b2", "n3", "y")]
    inits = random_bn("n1", 5, rng) | random_bn("n2", 5, rng) | random_bn("n3", 5, rng)
    original = make_segment(nodes, {"x": [2, 5, 3, 3]}, {"y": [2, 5, 3, 3]}, inits)
    model = onnx.ModelProto()
    model.CopyFrom(original)
    assert len(merge_batchnorm_chains(model, {"b1", "b2", "y"})) == 2
    assert bn_count(model) == 1
    np.testing.assert_allclose(run(model)[0], run(original)[0], rtol=1e-5, atol=1e-5)


def test_nothing_merges_that_another_node_or_the_caller_still_reads():
    for model, new in (
        (chain_model(extra_reader=True), {"b1", "b2"}),  # b1's output also feeds the Add
        (chain_model(first_is_output=True), {"b1", "b2"}),  # b1's output is a graph output
        (chain_model(), set()),  # neither node came from the splice: the user's graph as written
    ):
        before = model.SerializeToString()
        assert merge_batchnorm_chains(model, new) == []
        assert model.SerializeToString() == before


def test_a_training_mode_batchnorm_is_left_alone():
    model = chain_model()
    first = next(n for n in model.graph.node if n.name == "b1")
    first.attribute.append(helper.make_attribute("training_mode", 0))
    second = next(n for n in model.graph.node if n.name == "b2")
    second.attribute.append(helper.make_attribute("training_mode", 1))
    assert merge_batchnorm_chains(model, {"b2"}) == []
    # non-constant parameters are left alone too
    model = chain_model()
    arr = numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == "n2s"))
    model.graph.input.append(helper.make_tensor_value_info("n2s", TensorProto.FLOAT, list(arr.shape)))
    kept = [t for t in model.graph.initializer if t.name != "n2s"]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    assert merge_batchnorm_chains(model, {"b2"}) == []


def test_a_splice_ending_in_batchnorm_before_a_batchnorm_leaves_one_node(monkeypatch):
    """Replacing ResNet-18's first block Conv (its BatchNormalization stays outside the segment)
    by a Conv-BN segment: the mutant has a single BatchNormalization there and computes what the
    same mutant with the chain left in computes."""
    g = small("resnet18")
    seg = make_segment(
        [conv("x", "w", "c"), bn("c", "n", "y")],
        {"x": [1, 64, 8, 8]},
        {"y": [1, 64, 8, 8]},
        {"w": (64, 64, 3, 3), **bn_inits("n", 64)},
    )
    m = apply(g, ["layer1.0.1.conv"], seg, seed=0, align=16)
    assert isinstance(m, Mutant), m
    merged = m.changes["merged_batchnorms"]
    assert len(merged) == 1 and merged[0][1] == "layer1.0.1.bn"
    assert bn_count(m.model) == bn_count(g.model)
    bn_node = next(n for n in m.model.graph.node if n.name == "layer1.0.1.bn")
    assert bn_node.input[0] == next(n for n in m.model.graph.node if n.name.endswith("/c")).output[0]
    # the same mutation with the merge switched off: one node more, the same function
    monkeypatch.setattr(mutate, "merge_batchnorm_chains", lambda model, new: [])
    chained = apply(g, ["layer1.0.1.conv"], seg, seed=0, align=16)
    assert isinstance(chained, Mutant) and "merged_batchnorms" not in chained.changes
    assert bn_count(chained.model) == bn_count(g.model) + 1
    assert chained.inherited_param_share == m.inherited_param_share
    for a, b in zip(run(m.model), run(chained.model), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


# ---- twin nodes: the same op on the same inputs with the same attributes ------------------------
def twins_model(*, k2: int = 2, relu_twins: bool = False, twin_is_output: bool = False) -> onnx.ModelProto:
    """x -> Conv -> c; MaxPool p1(c) and p2(c) (kernel 2 and k2) -> [Relu r1, r2] -> Add -> y."""
    rng = np.random.default_rng(5)
    pool = dict(kernel_shape=[2, 2], strides=[2, 2])
    nodes = [
        conv("x", "w", "c"),
        helper.make_node("MaxPool", ["c"], ["a1"], name="p1", **pool),
        helper.make_node("MaxPool", ["c"], ["a2"], name="p2", kernel_shape=[k2, k2], strides=[2, 2]),
    ]
    left, right = "a1", "a2"
    if relu_twins:
        nodes += [
            helper.make_node("Relu", ["a1"], ["r1"], name="r1"),
            helper.make_node("Relu", ["a2"], ["r2"], name="r2"),
        ]
        left, right = "r1", "r2"
    nodes.append(helper.make_node("Add", [left, right], ["y"], name="add"))
    inits = {"w": rng.standard_normal((8, 4, 3, 3)).astype(np.float32)}
    model = make_segment(nodes, {"x": [1, 4, 6, 6]}, {"y": [1, 8, 3, 3]}, inits)
    if twin_is_output:
        model.graph.output.append(helper.make_tensor_value_info("a2", TensorProto.FLOAT, [1, 8, 3, 3]))
    return model


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


def test_a_new_twin_is_merged_and_the_outputs_stay_the_same():
    original = twins_model()
    model = _copy(original)
    assert merge_duplicate_nodes(model, {"p2"}) == [["p1", "p2"]]
    onnx.checker.check_model(model, full_check=True)
    assert [n.name for n in model.graph.node] == ["c", "p1", "add"]
    assert list(next(n for n in model.graph.node if n.name == "add").input) == ["a1", "a1"]
    np.testing.assert_array_equal(run(model)[0], run(original)[0])


def test_merges_cascade_and_keep_the_earlier_node():
    original = twins_model(relu_twins=True)
    model = _copy(original)
    # p1 is the new one: the earlier node stays all the same, so every reader follows its producer
    assert merge_duplicate_nodes(model, {"p1"}) == [["p1", "p2"], ["r1", "r2"]]
    assert [n.name for n in model.graph.node] == ["c", "p1", "r1", "add"]
    np.testing.assert_array_equal(run(model)[0], run(original)[0])


def test_nothing_merges_unless_a_new_node_has_an_exact_twin_that_is_no_output():
    for model, new in (
        (twins_model(), set()),  # both nodes are the user's
        (twins_model(k2=3), {"p2"}),  # different attributes
        (twins_model(twin_is_output=True), {"p2"}),  # the later twin's output is a graph output
    ):
        before = model.SerializeToString()
        assert merge_duplicate_nodes(model, new) == []
        assert model.SerializeToString() == before


# ---- ReLUs of tensors that are never negative ---------------------------------------------------
def relu_model(*, last_is_output: bool = False) -> onnx.ModelProto:
    """x -> Conv -> Relu r1 -> Relu r2 -> MaxPool -> Relu r3 -> Conv -> Add(negative constant)
    -> Relu r4 -> y: r2 and r3 read tensors that are never negative, r4 does not."""
    rng = np.random.default_rng(7)
    nodes = [
        conv("x", "w", "c"),
        helper.make_node("Relu", ["c"], ["t1"], name="r1"),
        helper.make_node("Relu", ["t1"], ["t2"], name="r2"),
        helper.make_node("MaxPool", ["t2"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Relu", ["p"], ["t3"], name="r3"),
        conv("t3", "w2", "c2"),
        helper.make_node("Add", ["c2", "k"], ["s"], name="add"),
        helper.make_node("Relu", ["s"], ["y"], name="r4"),
    ]
    inits = {
        "w": rng.standard_normal((8, 4, 3, 3)).astype(np.float32),
        "w2": rng.standard_normal((8, 8, 3, 3)).astype(np.float32),
        "k": -np.abs(rng.standard_normal((1, 8, 1, 1))).astype(np.float32),
    }
    outputs = {"y": [1, 8, 3, 3]}
    if last_is_output:
        outputs = {"t3": [1, 8, 3, 3], **outputs}
    return make_segment(nodes, {"x": [1, 4, 6, 6]}, outputs, inits)


def test_relus_of_non_negative_tensors_go_and_the_outputs_are_identical():
    original = relu_model()
    model = _copy(original)
    assert drop_redundant_relus(model, {"r2", "r3", "r4"}) == ["r2", "r3"]
    onnx.checker.check_model(model, full_check=True)
    assert [n.name for n in model.graph.node] == ["c", "r1", "pool", "c2", "add", "r4"]
    assert list(next(n for n in model.graph.node if n.name == "c2").input)[0] == "p"
    np.testing.assert_array_equal(run(model)[0], run(original)[0])


def test_only_relus_the_splice_added_or_fed_and_no_graph_output_go():
    model = relu_model()
    before = model.SerializeToString()
    assert drop_redundant_relus(model, set()) == []  # all the user's
    assert drop_redundant_relus(model, {"c2"}) == []  # r4 is fed by a new node but may see negatives
    assert model.SerializeToString() == before
    assert drop_redundant_relus(model, {"r1"}) == ["r2"]  # r2 reads a new node's output
    model = relu_model(last_is_output=True)
    assert drop_redundant_relus(model, {"r2", "r3"}) == ["r2"]  # r3's output is a graph output


def test_an_old_relu_goes_when_a_new_node_made_its_input_non_negative():
    """An old block's ReLU after an old Add whose operands are now both ReLU outputs, one of them
    new: the proof looks through the Add to the new node, so the old ReLU counts as touched."""
    nodes = [
        conv("x", "wa", "a"), helper.make_node("Relu", ["a"], ["ra"], name="ra"),
        conv("x", "wb", "b"), helper.make_node("Relu", ["b"], ["rb"], name="rb"),
        helper.make_node("Add", ["ra", "rb"], ["s"], name="add"),
        helper.make_node("Relu", ["s"], ["r"], name="block_relu"),
        conv("r", "wc", "y"),
    ]  # fmt: skip
    shapes = {"wa": (4, 4, 3, 3), "wb": (4, 4, 3, 3), "wc": (4, 4, 3, 3)}
    model = make_segment(nodes, {"x": [1, 4, 6, 6]}, {"y": [1, 4, 6, 6]}, shapes)
    assert drop_redundant_relus(_copy(model), {"a", "b"}) == []  # no proof node is new
    m = _copy(model)
    assert drop_redundant_relus(m, {"rb"}) == ["block_relu"]
    for a, b in zip(run(model), run(m), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_splice_starting_with_relu_after_a_relu_drops_it(monkeypatch):
    """NAS-Bench-201 style ReLU-Conv-BN replacing a ResNet-18 block's first Conv, whose input
    already went through a ReLU: the mutant has no second ReLU and computes the same."""
    g = small("resnet18")
    seg = make_segment(
        [helper.make_node("Relu", ["x"], ["r"], name="r"), conv("r", "w", "c"), bn("c", "n", "y")],
        {"x": [1, 64, 8, 8]},
        {"y": [1, 64, 8, 8]},
        {"w": (64, 64, 3, 3), **bn_inits("n", 64)},
    )
    m = apply(g, ["layer1.0.1.conv", "layer1.0.1.bn"], seg, seed=0, align=16)
    assert isinstance(m, Mutant), m
    assert [name.rsplit("/", 1)[-1] for name in m.changes["dropped_relus"]] == ["r"]
    relus = sum(n.op_type == "Relu" for n in m.model.graph.node)
    assert relus == sum(n.op_type == "Relu" for n in g.model.graph.node)
    monkeypatch.setattr(mutate, "drop_redundant_relus", lambda model, new: [])
    kept = apply(g, ["layer1.0.1.conv", "layer1.0.1.bn"], seg, seed=0, align=16)
    assert isinstance(kept, Mutant) and "dropped_relus" not in kept.changes
    assert sum(n.op_type == "Relu" for n in kept.model.graph.node) == relus + 1
    for a, b in zip(run(m.model), run(kept.model), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_segment_replaced_by_a_lone_relu_leaves_no_relu_chain():
    """ResNet-18's first block Conv+BN (after the stem's ReLU and max pool) replaced by a lone ReLU:
    the new ReLU and the block's own ReLU, now reading the pooled ReLU output, both go."""
    g = small("resnet18")
    seg = make_segment(
        [helper.make_node("Relu", ["x"], ["y"], name="r")], {"x": [1, 64, 8, 8]}, {"y": [1, 64, 8, 8]}
    )
    m = apply(g, ["layer1.0.1.conv", "layer1.0.1.bn"], seg, seed=0, align=16)
    assert isinstance(m, Mutant), m
    dropped = m.changes["dropped_relus"]
    assert any(name.endswith("/r") or name == "r" for name in dropped) and "layer1.0.1.relu" in dropped
    prod = {o: n for n in m.model.graph.node for o in n.output}
    for n in m.model.graph.node:
        if n.op_type == "Relu" and n.input[0] in prod:
            assert prod[n.input[0]].op_type not in ("Relu", "MaxPool"), n.name
