"""canonicalise: every exact rewrite over the whole graph, to a fixpoint."""

from __future__ import annotations

import numpy as np
from onnx import helper
from test_mutate import run
from test_resolve import conv, make_segment

from autogo_deploy.canonical import canonicalise


def leftovers_model():
    """x -> Conv -> Relu -> Relu (redundant) -> Conv y0; Mul(r, 0) -> Conv -> Add(y0, .) -> out."""
    nodes = [
        conv("x", "wa", "a"), helper.make_node("Relu", ["a"], ["r0"], name="r0"),
        helper.make_node("Relu", ["r0"], ["r"], name="r_again"), conv("r", "wk", "y0"),
        helper.make_node("Mul", ["r", "zero"], ["z"], name="none"),
        helper.make_node("Conv", ["z", "wz", "bz"], ["cz"], name="cz", kernel_shape=[3, 3], pads=[1] * 4),
        helper.make_node("Add", ["y0", "cz"], ["out"], name="sum"),
    ]  # fmt: skip
    rng = np.random.default_rng(1)
    inits = {"wa": (8, 4, 3, 3), "wk": (8, 8, 3, 3), "wz": (8, 8, 3, 3), "zero": np.zeros((), np.float32)}
    inits["bz"] = rng.standard_normal(8).astype(np.float32)
    return make_segment(nodes, {"x": [1, 4, 6, 6]}, {"out": [1, 8, 6, 6]}, inits)


def test_leftovers_are_rewritten_and_a_canonical_graph_is_a_fixpoint():
    model = leftovers_model()
    canon, counts = canonicalise(model)
    assert counts == {
        "merged_duplicates": 0,
        "dropped_relus": 1,
        "merged_batchnorms": 0,
        "folded_zero_branches": 1,
    }
    assert [n.op_type for n in canon.graph.node] == ["Conv", "Relu", "Conv", "Add"]
    for a, b in zip(run(model), run(canon), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    again, counts = canonicalise(canon)
    assert not any(counts.values())
    assert [n.op_type for n in again.graph.node] == [n.op_type for n in canon.graph.node]
    assert len(model.graph.node) == 7  # the input is not changed
