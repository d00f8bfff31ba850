"""Depth (weighted layers on the longest path) and the bound the proposer checks before the MILP."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from autogo_deploy import zoo
from autogo_deploy.depth import DepthMap, layer_count_and_depth


def _chain_with_shortcut() -> onnx.ModelProto:
    """x → c1 → c2 → c3 → add(·, s1(x)) → y: depth 3 through the branch, 1 through the shortcut."""
    w = numpy_helper.from_array(np.zeros((4, 4, 1, 1), np.float32), "w")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["a"], name="c1"),
        helper.make_node("Conv", ["a", "w"], ["b"], name="c2"),
        helper.make_node("Relu", ["b"], ["b2"], name="r"),
        helper.make_node("Conv", ["b2", "w"], ["c"], name="c3"),
        helper.make_node("Conv", ["x", "w"], ["s"], name="s1"),
        helper.make_node("Add", ["c", "s"], ["y"], name="add"),
    ]
    vi = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4, 8, 8])  # noqa: E731
    graph = helper.make_graph(nodes, "g", [vi("x")], [vi("y")], initializer=[w])
    return helper.make_model(graph)


def test_depth_and_the_paths_to_and_from_each_tensor():
    m = _chain_with_shortcut()
    assert layer_count_and_depth(m) == (4, 3)
    dm = DepthMap(m)
    assert dm.to["a"] == 1 and dm.to["b2"] == 2 and dm.to["s"] == 1 and dm.depth == 3
    assert dm.after["x"] == 3 and dm.after["a"] == 2 and dm.after["c"] == 0 and dm.after["s"] == 0
    # without c2 (and the Relu after it) only the shortcut is left: depth 1
    assert dm.avoiding({"c2", "r"}) == 1
    assert dm.avoiding({"s1"}) == 3


def test_what_a_replacement_needs_to_keep_a_floor():
    dm = DepthMap(_chain_with_shortcut())
    # replacing c2+relu (from a to b2): 1 layer before, 1 after; keeping depth 3 needs 1 layer in S'
    assert dm.needed({"c2", "r"}, ["a"], ["b2"], 3) == 1
    # a floor of 2 needs none: 1 + 0 + 1 still reaches it
    assert dm.needed({"c2", "r"}, ["a"], ["b2"], 2) == 0
    # the shortcut is off the longest path: any replacement keeps depth 3
    assert dm.needed({"s1"}, ["x"], ["s"], 3) == 0


def test_every_resnet_block_is_on_the_longest_path():
    model = zoo.build("resnet18", input_size=64)
    dm = DepthMap(model)
    assert dm.depth == 18
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    first = convs[1]  # the first block's first 3x3 convolution
    # replacing it by nothing (an identity-like segment) loses a layer: keeping 18 needs one
    assert dm.needed({first.name}, [first.input[0]], [first.output[0]], 18) == 1
    assert dm.needed({first.name}, [first.input[0]], [first.output[0]], 17) == 0
