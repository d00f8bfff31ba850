"""Zero branches (NB201 'none' edges spliced into a network) fold to their per-channel constant."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper
from test_mutate import run, small
from test_resolve import bn, bn_inits, conv, make_segment
from test_simplify import random_bn

from autogo_deploy import mutate, zero_branches
from autogo_deploy.mutate import Mutant, apply
from autogo_deploy.zero_branches import fold_zero_branches

ZERO = np.zeros((), np.float32)


def branch_model(after: list, reader: str = "Add", extra_output: str | None = None) -> onnx.ModelProto:
    """x -> Conv a -> Relu r -> {Conv y0 (the kept path), Mul(r, 0) -> `after` ops -> t};
    out = Relu(reader(y0, t)). `after` is a list of (op, attrs) applied in order to the zero tensor."""
    rng = np.random.default_rng(5)
    nodes = [conv("x", "wa", "a"), helper.make_node("Relu", ["a"], ["r"], name="r")]
    nodes.append(conv("r", "wk", "y0"))
    nodes.append(helper.make_node("Mul", ["r", "zero"], ["z"], name="seed"))
    inits = {"wa": (8, 4, 3, 3), "wk": (8, 8, 3, 3), "zero": ZERO}
    t = "z"
    for i, (op, attrs) in enumerate(after):
        out = f"t{i}"
        if op == "Conv":
            nodes.append(
                helper.make_node(
                    "Conv", [t, f"w{i}", f"b{i}"], [out], name=out, kernel_shape=[3, 3], pads=[1] * 4
                )
            )
            inits |= {f"w{i}": (8, 8, 3, 3), f"b{i}": rng.standard_normal(8).astype(np.float32)}
        elif op == "BatchNormalization":
            nodes.append(bn(t, f"n{i}", out))
            inits |= random_bn(f"n{i}", 8, rng)
        else:
            nodes.append(helper.make_node(op, [t], [out], name=out, **attrs))
        t = out
    if reader == "Concat":
        nodes.append(helper.make_node("Concat", ["y0", t], ["s"], name="read", axis=1))
        shape = [1, 16, 6, 6]
    else:
        nodes.append(helper.make_node(reader, ["y0", t], ["s"], name="read"))
        shape = [1, 8, 6, 6]
    nodes.append(helper.make_node("Relu", ["s"], ["out"], name="last"))
    model = make_segment(nodes, {"x": [1, 4, 6, 6]}, {"out": shape}, inits)
    if extra_output:
        model.graph.output.append(
            helper.make_tensor_value_info(extra_output, onnx.TensorProto.FLOAT, [1, 8, 6, 6])
        )
    return onnx.shape_inference.infer_shapes(model)


def folded(model: onnx.ModelProto, new: set[str] | None = None):
    m = onnx.ModelProto()
    m.CopyFrom(model)
    records = fold_zero_branches(m, {n.name for n in m.graph.node} if new is None else new)
    onnx.checker.check_model(m, full_check=True)
    return m, records


def ops(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node]


def assert_same_outputs(a: onnx.ModelProto, b: onnx.ModelProto) -> None:
    for x, y in zip(run(a), run(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5)


def test_relu_conv_bn_of_zero_goes_into_the_conv_bias_and_outputs_stay():
    model = branch_model([("Relu", {}), ("Conv", {}), ("BatchNormalization", {})])
    m, records = folded(model)
    assert len(records) == 1 and records[0]["seed"] == "seed" and records[0]["absorbed_in_bias"] == 1
    assert set(records[0]["removed"]) == {"seed", "t0", "t1", "t2"}
    assert ops(m) == ["Conv", "Relu", "Conv", "Relu"]  # one Conv less, no Mul, no Add
    assert_same_outputs(model, m)


def test_a_constant_add_stays_when_the_other_operand_is_read_elsewhere():
    model = branch_model([("Relu", {}), ("Conv", {}), ("BatchNormalization", {})], extra_output="y0")
    m, records = folded(model)
    assert records[0]["constants"] == 1 and ops(m) == ["Conv", "Relu", "Conv", "Add", "Relu"]
    const = next(i for i in m.graph.initializer if "folded_const" in i.name)
    assert list(const.dims) == [1, 8, 1, 1]
    assert_same_outputs(model, m)


def test_a_zero_tensor_added_is_bypassed():
    model = branch_model([])
    m, records = folded(model)
    assert records[0]["zero_adds_bypassed"] == 1 and "Add" not in ops(m) and "Mul" not in ops(m)
    assert records[0]["rewired"] == ["last"]  # the Add's reader: mutate.apply re-checks its ReLUs
    assert_same_outputs(model, m)


def full_constants(m: onnx.ModelProto) -> list[list[int]]:
    return [list(i.dims) for i in m.graph.initializer if i.name.endswith("/folded_const")]


def test_pools_keep_a_per_channel_value_and_a_padded_average_gives_a_full_constant():
    kept = [("Conv", {}), ("MaxPool", {"kernel_shape": [3, 3], "pads": [1] * 4}),
            ("AveragePool", {"kernel_shape": [3, 3], "pads": [1] * 4})]  # fmt: skip
    m, records = folded(branch_model(kept))
    assert records[0]["absorbed_in_bias"] == 1 and "Mul" not in ops(m)
    assert_same_outputs(branch_model(kept), m)
    # a padded average counting the pads differs at the border: the reader gets the whole tensor
    border = [
        ("Conv", {}),
        ("AveragePool", {"kernel_shape": [3, 3], "pads": [1] * 4, "count_include_pad": 1}),
    ]
    m, records = folded(branch_model(border))
    assert records[0]["constants"] == 1 and full_constants(m) == [[1, 8, 6, 6]]
    assert_same_outputs(branch_model(border), m)


def test_a_conv_of_a_non_zero_constant_is_data_free_too():
    """Conv(Conv(0)) is not the same at every pixel (zero padding) but depends on no input."""
    model = branch_model([("Conv", {}), ("Conv", {})])
    m, records = folded(model)
    assert set(records[0]["removed"]) == {"seed", "t0", "t1"} and ops(m).count("Conv") == 2
    assert full_constants(m) == [[1, 8, 6, 6]]
    assert_same_outputs(model, m)


def test_a_concat_reads_the_full_constant():
    model = branch_model([("Conv", {})], reader="Concat")
    m, records = folded(model)
    assert records[0]["constants"] == 1 and full_constants(m) == [[1, 8, 6, 6]] and "Concat" in ops(m)
    assert_same_outputs(model, m)


def test_nothing_folds_into_an_output_from_an_old_branch_or_over_the_size_limit(monkeypatch):
    for model, new in [
        (branch_model([("Conv", {})], extra_output="t0"), None),
        (branch_model([("Conv", {})]), {"a", "last"}),  # neither the branch nor its reader is new
    ]:
        m, records = folded(model, new)
        assert records == [] and ops(m) == ops(model)
    monkeypatch.setattr(zero_branches, "MAX_CONST_BYTES", 100)
    model = branch_model([("Conv", {})], reader="Concat")  # needs a 1x8x6x6 constant: 1,152 bytes
    m, records = folded(model)
    assert records == [] and ops(m) == ops(model)


def test_an_old_branch_folds_when_its_reader_is_new():
    model = branch_model([("Relu", {}), ("Conv", {})])
    m, records = folded(model, {"read"})
    assert [r["seed"] for r in records] == ["seed"] and "Mul" not in ops(m)
    assert_same_outputs(model, m)


def test_a_spliced_none_edge_is_folded_in_the_mutant(monkeypatch):
    """An NB201-style cell (a = ReLU-Conv-BN(x); b = ReLU-Conv-BN(a * 0); y = a + b) replacing a
    ResNet-18 Conv+BN: the mutant has no Mul and no dead Conv, and computes what the unfolded one does."""
    g = small("resnet18")
    nodes = [
        helper.make_node("Relu", ["x"], ["r1"], name="r1"), conv("r1", "w1", "c1"), bn("c1", "n1", "a"),
        helper.make_node("Mul", ["a", "zero"], ["z"], name="none"),
        helper.make_node("Relu", ["z"], ["r2"], name="r2"), conv("r2", "w2", "c2"), bn("c2", "n2", "b"),
        helper.make_node("Add", ["a", "b"], ["y"], name="sum"),
    ]  # fmt: skip
    inits = {
        "w1": (64, 64, 3, 3),
        "w2": (64, 64, 3, 3),
        "zero": ZERO,
        **bn_inits("n1", 64),
        **bn_inits("n2", 64),
    }
    seg = make_segment(nodes, {"x": [1, 64, 8, 8]}, {"y": [1, 64, 8, 8]}, inits)
    m = apply(g, ["layer1.0.1.conv", "layer1.0.1.bn"], seg, seed=0, align=16)
    assert isinstance(m, Mutant), m
    (record,) = m.changes["folded_zero_branches"]
    assert record["seed"].endswith("none")
    assert "Mul" not in ops(m.model)
    monkeypatch.setattr(mutate, "fold_zero_branches", lambda model, new: [])
    kept = apply(g, ["layer1.0.1.conv", "layer1.0.1.bn"], seg, seed=0, align=16)
    assert isinstance(kept, Mutant) and "folded_zero_branches" not in kept.changes
    assert ops(kept.model).count("Conv") == ops(m.model).count("Conv") + 1
    for a, b in zip(run(m.model), run(kept.model), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
