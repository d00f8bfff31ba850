"""Graph IR: loading, canonical order, features, extract/splice, save round trip."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from tiny_models import make_tiny_cnn

from autogo_deploy import graph
from autogo_deploy.errors import DynamicShapeError, ModelError
from autogo_deploy.onnx_run import random_inputs, run_ort


def test_load_pins_batch_and_infers_every_shape(tiny_model):
    g = graph.load(tiny_model)
    assert g.shape("x") == (1, 3, 16, 16)
    assert any("batch" in n for n in g.notes)
    for n in g.nodes:
        assert all(all(d > 0 for d in s) for s in n.out_shapes), n.name


def test_macs_params_grouped_conv(tiny_model):
    g = graph.load(tiny_model, cleanup=False)
    by = {n.name: n for n in g.nodes}
    assert by["conv1"].macs == 8 * 16 * 16 * 3 * 3 * 3
    assert by["dw"].macs == 8 * 16 * 16 * 1 * 3 * 3  # depthwise: C_in/group = 1
    assert by["dw"].group == 8 and by["dw"].kernel == (3, 3) and by["dw"].stride == (1, 1)
    assert by["fc"].macs == 8 * 10
    assert g.totals()["params"] == 8 * 27 + 4 * 8 + 8 * 9 + 80 + 10
    assert by["relu1"].act_bytes == 8 * 16 * 16 * 4


def test_fold_bn_keeps_outputs(tiny_model):
    g = graph.load(tiny_model, fold_bn=True, verify=True)
    assert "BatchNormalization" not in g.op_histogram()
    assert any("verified" in n for n in g.notes)


def test_canonical_order_ignores_file_order(tiny_model):
    a = graph.load(tiny_model, cleanup=False)
    shuffled = onnx.ModelProto()
    shuffled.CopyFrom(tiny_model)
    nodes = list(shuffled.graph.node)
    rng = np.random.default_rng(3)
    rng.shuffle(nodes)
    del shuffled.graph.node[:]
    shuffled.graph.node.extend(nodes)
    b = graph.load(shuffled, cleanup=False)
    assert [n.name for n in a.nodes] == [n.name for n in b.nodes]


def test_canonical_order_independent_of_names():
    m1 = make_tiny_cnn()
    m2 = make_tiny_cnn()
    for n in m2.graph.node:
        n.name = ""
    a = graph.load(m1, cleanup=False)
    b = graph.load(m2, cleanup=False)
    assert [n.op_type for n in a.nodes] == [n.op_type for n in b.nodes]
    assert len({n.name for n in b.nodes}) == len(b.nodes)


def test_extract_is_valid_and_splice_roundtrip(tiny_model):
    g = graph.load(tiny_model, cleanup=False)
    names = ["bn1", "relu1", "dw"]
    ins, outs = g.boundary(names)
    assert ins == ["c1"] and set(outs) == {"r1", "c2"}
    sub = g.extract(names)
    onnx.checker.check_model(sub, full_check=True)
    spliced = graph.load(g.splice(names, sub, ins, outs), cleanup=False)
    feeds = random_inputs(g.model)
    np.testing.assert_array_equal(run_ort(g.model, feeds)[0], run_ort(spliced.model, feeds)[0])


def test_splice_rejects_arity_mismatch(tiny_model):
    g = graph.load(tiny_model, cleanup=False)
    sub = g.extract(["relu1"])
    with pytest.raises(Exception, match="boundary needs"):
        g.splice(["bn1", "relu1", "dw"], sub, ["c1"], ["r1", "c2"])


def test_save_load_bit_identical_outputs(tmp_path, tiny_model):
    g = graph.load(tiny_model)
    path = g.save(tmp_path / "out.onnx")
    g2 = graph.load(path, cleanup=False)
    feeds = random_inputs(g.model)
    np.testing.assert_array_equal(run_ort(g.model, feeds)[0], run_ort(g2.model, feeds)[0])
    assert not list(tmp_path.glob("*.tmp"))


def test_input_shape_pin_and_errors():
    m = make_tiny_cnn(batch="N", size=16)
    m.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    m.graph.input[0].type.tensor_type.shape.dim[3].dim_param = "W"
    with pytest.raises(DynamicShapeError, match="--input-shape x="):
        graph.load(m)
    g = graph.load(m, input_shapes={"x": (2, 3, 32, 32)})
    assert g.shape("x") == (2, 3, 32, 32)
    assert g.nodes[0].out_shapes[0] == (2, 8, 32, 32)
    with pytest.raises(ModelError, match="not an input"):
        graph.load(m, input_shapes={"nope": (1, 3, 8, 8)})


def test_old_opset_is_converted():
    m = make_tiny_cnn()
    m.opset_import[0].version = 11
    g = graph.load(m, cleanup=False)
    assert any("converted from opset 11" in n for n in g.notes)


def test_from_verified_parses_a_checked_model_and_loads_anything_else(tiny_model):
    checked = graph.load(tiny_model.SerializeToString())
    fast = graph.from_verified(checked.to_bytes())
    assert [n.name for n in fast.nodes] == [n.name for n in checked.nodes]
    assert fast.totals() == checked.totals()
    bare = onnx.ModelProto()
    bare.CopyFrom(checked.model)
    del bare.graph.value_info[:]  # shapes missing: not a model this tool checked, so load() validates it
    again = graph.from_verified(bare.SerializeToString())
    assert len(again.model.graph.value_info) > 0 and again.totals() == checked.totals()
