"""Splice + resolve + materialise + verify on hand-written segments and zoo networks."""

from __future__ import annotations

import functools

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper
from test_resolve import bn, bn_inits, conv, make_segment, res_block

from autogo_deploy import zoo
from autogo_deploy.errors import InputError
from autogo_deploy.graph import load
from autogo_deploy.mutate import Mutant, Rejection, apply, io_signature, verify_model


@functools.cache
def small(name: str):
    kw = {"nb201": {}, "resnet18": {"input_size": 32}, "mobilenet_v2": {"input_size": 32}}[name]
    return load(zoo.build(name, seed=0, **kw))


def run(model: onnx.ModelProto, seed: int = 0) -> list[np.ndarray]:
    feeds = {}
    rng = np.random.default_rng(seed)
    for name, _, shape in io_signature(model)["inputs"]:
        feeds[name] = rng.standard_normal(shape).astype(np.float32)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def block_names(g, prefix: str) -> list[str]:
    return [n.name for n in g.nodes if n.name.startswith(prefix)]


def test_replace_a_basic_block_of_resnet18(tiny_model):
    g = small("resnet18")
    occ = block_names(g, "layer2.0.")  # the downsampling block 64@8x8 -> 128@4x4
    m = apply(g, occ, res_block(), seed=1, align=16)
    assert isinstance(m, Mutant), m
    assert verify_model(m.model, io_signature(g.model)) is None  # independent re-check
    assert m.data == m.model.SerializeToString()  # the verified bytes, kept for the caller
    assert m.certificate.status == "optimal"
    ch = m.changes
    # S' has the shape of ResNet's own basic block: where the MILP picks the same widths, the
    # parameters of the removed block are inherited (matched by op type and exact shapes)
    assert 0.0 < m.inherited_param_share <= 1.0
    assert all(src in occ for _, src in ch["inherited_nodes"])
    assert ch["removed"] == occ
    assert ch["nodes"]["c1"]["out_shape"][1] % 16 == 0
    assert ch["nodes"]["y"]["out_shape"] == list(g.shape(g.boundary(occ)[1][0]))
    assert {"resolve", "milp_solve", "splice", "verify"} <= set(m.timings_ms)
    mg = m.graph()  # loads back as a Graph with static shapes
    assert mg.totals()["macs"] > 0


def test_replacing_a_segment_by_itself_inherits_everything_and_keeps_outputs():
    g = small("nb201")
    occ = [n.name for n in g.nodes[10:22]]
    same = g.extract(occ)
    m = apply(g, occ, same, seed=0)
    assert isinstance(m, Mutant), m
    assert m.inherited_param_share == pytest.approx(1.0)
    assert all(e.get("option", [0]) == e.get("source_option", [0]) for e in m.changes["nodes"].values())
    for a, b in zip(run(g.model), run(m.model), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_same_seed_same_mutant_and_seed_changes_fresh_weights():
    g = small("mobilenet_v2")
    occ = block_names(g, "features.5.")
    a = apply(g, occ, res_block(stride=1, cin=8, cout=8), seed=5, align=8)
    b = apply(g, occ, res_block(stride=1, cin=8, cout=8), seed=5, align=8)
    c = apply(g, occ, res_block(stride=1, cin=8, cout=8), seed=6, align=8)
    assert isinstance(a, Mutant) and isinstance(c, Mutant)
    assert a.model.SerializeToString() == b.model.SerializeToString()
    assert a.changes == c.changes and a.model.SerializeToString() != c.model.SerializeToString()


def test_kaiming_init_of_new_weights():
    g = small("resnet18")
    occ = block_names(g, "layer4.1.")
    m = apply(g, occ, res_block(stride=1, cin=8, cout=8), seed=0)
    assert isinstance(m, Mutant), m
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in m.model.graph.initializer}
    w = next(v for k, v in inits.items() if k.endswith("w1__c1"))
    fan_in = w.shape[1] * w.shape[2] * w.shape[3]
    assert w.std() == pytest.approx(np.sqrt(2.0 / fan_in), rel=0.1)


def test_depthwise_replacement_in_mobilenet():
    g = small("mobilenet_v2")
    occ = block_names(g, "features.5.")  # inverted residual with skip: 32 -> 32, same size
    nodes = [
        conv("x", "w1", "e", k=1),
        bn("e", "n1", "eb"),
        helper.make_node("Relu", ["eb"], ["r"], name="relu"),
        conv("r", "wd", "d", k=5, group=24),
        conv("d", "w2", "p", k=1),
        helper.make_node("Add", ["p", "x"], ["y"], name="add"),
    ]
    inits = {"w1": (24, 8, 1, 1), "wd": (24, 1, 5, 5), "w2": (8, 24, 1, 1), **bn_inits("n1", 24)}
    seg = make_segment(nodes, {"x": [1, 8, 8, 8]}, {"y": [1, 8, 8, 8]}, inits)
    ins, outs = g.boundary(occ)
    assert len(ins) == 1 and len(outs) == 1
    m = apply(g, occ, seg, seed=0, align=16)
    assert isinstance(m, Mutant), m
    assert m.changes["nodes"]["d"]["group"] == m.changes["nodes"]["d"]["out_shape"][1]
    assert 0.0 < m.inherited_param_share < 1.0  # the new 5x5 depthwise weights are fresh


def test_rejections_are_values_not_exceptions():
    g = small("nb201")
    occ = [n.name for n in g.nodes[10:14]]
    two_in = make_segment(
        [helper.make_node("Add", ["a", "b"], ["y"], name="add")],
        {"a": [1, 4, 8, 8], "b": [1, 4, 8, 8]},
        {"y": [1, 4, 8, 8]},
    )
    r = apply(g, occ, two_in, seed=0)
    assert isinstance(r, Rejection) and r.stage == "resolve" and r.code == "arity"
    assert r.to_dict()["reason"]
    weird = make_segment(
        [helper.make_node("Transpose", ["x"], ["y"], perm=[0, 1, 3, 2], name="t")],
        {"x": [1, 4, 4, 4]},
        {"y": [1, 4, 4, 4]},
    )
    r = apply(g, occ, weird, seed=0)
    assert isinstance(r, Rejection) and r.stage == "analyse" and r.code == "unsupported"
    with pytest.raises(InputError):
        apply(g, ["no-such-node"], res_block(), seed=0)


def test_a_replacement_without_parameter_values_gives_the_same_mutants(small_db):
    """The proposer builds replacements with params=False (a segment cut from VGG-16's classifier
    would draw 103 M random weights): materialise draws or inherits every parameter, so each mutant
    (or rejection) is byte for byte the one the fully weighted replacement gives."""
    import random

    from autogo_deploy.segments.segment import segmentation

    g = small("resnet18")
    rng = random.Random(0)
    occurrences = [o for o in segmentation(g, small_db).occurrences if len(o.node_names) <= 30]
    mutants = 0
    for k in range(40):
        occ = rng.choice(occurrences)
        reps = small_db.replacements(occ, limit=24, channel_ratio_range=(0.25, 4.0))
        if not reps:
            continue
        rep = rng.choice(reps)
        out = []
        for params in (True, False):
            m = apply(g, list(occ.node_names), rep.model(seed=k, params=params), seed=k, align=8,
                      time_limit_s=5.0, inputs=list(occ.inputs), outputs=list(occ.outputs))  # fmt: skip
            out.append(m.data if isinstance(m, Mutant) else (m.stage, m.reason))
        assert out[0] == out[1]
        mutants += isinstance(out[0], bytes)
    assert mutants >= 10


def test_head_replacement_keeps_output_name_and_shape():
    g = small("resnet18")
    occ = [n.name for n in g.nodes if n.name in ("avgpool", "flatten", "fc")]
    nodes = [
        helper.make_node("GlobalAveragePool", ["x"], ["gp"], name="gap"),
        helper.make_node("Flatten", ["gp"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "w", "b"], ["h"], transB=1, name="fc1"),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], transB=1, name="fc2"),
    ]
    inits = {"w": (32, 16), "b": (32,), "w2": (10, 32), "b2": (10,)}
    seg = make_segment(nodes, {"x": [1, 16, 4, 4]}, {"y": [1, 10]}, inits)
    m = apply(g, occ, seg, seed=0, align=16)
    assert isinstance(m, Mutant), m
    assert io_signature(m.model) == io_signature(g.model)
    assert m.changes["nodes"]["fc1"]["out_shape"][1] % 16 == 0


def test_alignment_from_the_npu_target():
    from autogo_deploy.target import load_target

    align = load_target("npu-sim").channel_multiple
    assert align == 16
    g = small("resnet18")
    occ = block_names(g, "layer1.1.")
    m = apply(g, occ, res_block(stride=1, cin=24, cout=24), seed=0, align=align)
    assert isinstance(m, Mutant), m
    assert m.changes["nodes"]["c1"]["out_shape"][1] % 16 == 0


def two_input_graph():
    """x -> conv -> t2 (16x16) -> maxpool -> t1 (8x8); S = {pool2(t2) + t1}; head Relu."""
    nodes = [
        conv("x", "w0", "t2", k=3, name="c0"),
        helper.make_node("MaxPool", ["t2"], ["t1"], kernel_shape=[2, 2], strides=[2, 2], name="p0"),
        helper.make_node("MaxPool", ["t2"], ["p"], kernel_shape=[2, 2], strides=[2, 2], name="s_pool"),
        helper.make_node("Add", ["p", "t1"], ["s"], name="s_add"),
        helper.make_node("Relu", ["s"], ["out"], name="head"),
    ]
    model = make_segment(nodes, {"x": [1, 4, 16, 16]}, {"out": [1, 8, 8, 8]}, {"w0": (8, 4, 3, 3)})
    return load(model, cleanup=False)  # cleanup would merge the two identical MaxPools


def test_port_binding_is_permuted_when_the_given_order_cannot_resolve():
    g = two_input_graph()
    occ = ["s_pool", "s_add"]
    assert g.boundary(occ)[0] == ["t2", "t1"]
    # S' declares its inputs as (b, a): a is pooled, so it must receive the 16x16 tensor t2
    nodes = [
        helper.make_node("AveragePool", ["a"], ["q"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
        helper.make_node("Add", ["q", "b"], ["y"], name="add"),
    ]
    seg = make_segment(nodes, {"b": [1, 8, 4, 4], "a": [1, 8, 8, 8]}, {"y": [1, 8, 4, 4]})
    m = apply(g, occ, seg, seed=0)
    assert isinstance(m, Mutant), m
    assert list(m.changes["inputs"]) == ["t1", "t2"]  # b <- t1, a <- t2
    m2 = apply(g, occ, seg, seed=0, inputs=["t1", "t2"], outputs=["s"])
    assert isinstance(m2, Mutant) and m2.model.SerializeToString() == m.model.SerializeToString()
    with pytest.raises(InputError):
        apply(g, occ, seg, seed=0, inputs=["t1", "x"])


def test_cost_target_asks_the_milp_for_a_cheaper_segment():
    """cost_target < 1 aims S' below S's MACs: the mutant is valid and lighter than the cost-neutral one."""
    g = small("resnet18")
    occ = block_names(g, "layer3.1.")  # a 256-wide basic block: S' channels are free inside
    neutral = apply(g, occ, res_block(stride=1, cin=8, cout=8), seed=0, align=16)
    cheaper = apply(g, occ, res_block(stride=1, cin=8, cout=8), seed=0, align=16, cost_target=0.5)
    assert isinstance(neutral, Mutant) and isinstance(cheaper, Mutant), (neutral, cheaper)
    assert verify_model(cheaper.model, io_signature(g.model)) is None
    macs = [load(m.model).totals()["macs"] for m in (neutral, cheaper)]
    segment_macs = sum(g.node(n).macs for n in occ)
    # only the inner width of S' is free (its output must match the 256-wide successor)
    assert macs[0] - macs[1] > 0.05 * segment_macs, (macs, segment_macs)
    with pytest.raises(InputError):
        apply(g, occ, res_block(stride=1, cin=8, cout=8), seed=0, cost_target=0.0)


def test_max_macs_growth_drops_a_replacement_the_milp_cannot_make_cheap():
    """A dense 3x3 conv in place of MobileNetV2's depthwise conv keeps the channel counts: many times
    the MACs. With a growth limit that plan is rejected before it is materialised; without, it is
    a valid (costly) mutant."""
    g = small("mobilenet_v2")
    dw = next(
        n
        for n in g.nodes
        if n.op_type == "Conv" and n.name.startswith("features.5.") and n.attrs.get("group", 1) > 1
    )
    dense = make_segment(
        [conv("x", "w", "y", k=3)], {"x": [1, 8, 8, 8]}, {"y": [1, 8, 8, 8]}, {"w": (8, 8, 3, 3)}
    )
    free = apply(g, [dw.name], dense, seed=0)
    assert isinstance(free, Mutant), free
    grown = free.changes["macs_after"] / free.changes["macs_before"]
    assert grown > 10, grown
    limited = apply(g, [dw.name], dense, seed=0, max_macs_growth=1.5)
    assert isinstance(limited, Rejection) and limited.stage == "cost" and limited.code == "macs_growth"
    assert "1.5x" in limited.reason
    # a limit above what the plan costs lets it through unchanged
    assert isinstance(apply(g, [dw.name], dense, seed=0, max_macs_growth=grown + 1), Mutant)
