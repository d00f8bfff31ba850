"""Property: every (zoo model, segment occurrence, replacement) triple gives a valid mutant or a
clean rejection — never an exception, never an invalid model."""

from __future__ import annotations

import functools

import numpy as np
import onnx
import onnxruntime as ort
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from onnx import helper
from test_resolve import make_segment

from autogo_deploy import zoo
from autogo_deploy.graph import load
from autogo_deploy.mutate import Mutant, Rejection, apply, io_signature

MODELS = {
    "nb201": {},
    "fbnet": {},
    "mobilenet_v2": {"input_size": 32},
    "edsr": {"input_size": 16, "n_resblocks": 4},
}
CLEAN_STAGES = {"boundary", "analyse", "resolve"}  # where a legitimate rejection happens
SETTINGS = settings(
    max_examples=16,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@functools.cache
def graph(name: str):
    return load(zoo.build(name, seed=0, **MODELS[name]))


@functools.cache
def pool() -> dict[tuple[int, int], list[tuple[str, int, int]]]:
    """Contiguous windows (convex in topological order) of every model, by boundary arity."""
    out: dict[tuple[int, int], list[tuple[str, int, int]]] = {}
    rng = np.random.default_rng(0)
    for name in MODELS:
        g = graph(name)
        for _ in range(60):
            k = int(rng.integers(1, 13))
            i = int(rng.integers(0, len(g.nodes) - k + 1))
            ins, outs = g.boundary([n.name for n in g.nodes[i : i + k]])
            out.setdefault((len(ins), len(outs)), []).append((name, i, k))
    return out


def check_outcome(g, occ, result) -> None:
    if isinstance(result, Rejection):
        event(f"rejected: {result.code}")
        assert result.reason and result.stage in CLEAN_STAGES, result
        return
    event("accepted")
    assert isinstance(result, Mutant)
    onnx.checker.check_model(result.model, full_check=True)
    assert io_signature(result.model) == io_signature(g.model)
    feeds = {
        n: np.random.default_rng(1).standard_normal(s).astype(np.float32)
        for n, _, s in io_signature(g.model)["inputs"]
    }
    sess = ort.InferenceSession(result.model.SerializeToString(), providers=["CPUExecutionProvider"])
    for (name, _, shape), value in zip(io_signature(g.model)["outputs"], sess.run(None, feeds), strict=True):
        assert value.shape == shape and np.isfinite(value).all(), name
    assert result.certificate.status == "optimal"
    assert 0.0 <= result.inherited_param_share <= 1.0
    assert result.changes["removed"] == occ


@SETTINGS
@given(data=st.data())
def test_zoo_segment_triples(data):
    target = data.draw(st.sampled_from(sorted(MODELS)), label="target")
    g = graph(target)
    k = data.draw(st.integers(1, 12), label="occurrence length")
    i = data.draw(st.integers(0, len(g.nodes) - k), label="occurrence start")
    occ = [n.name for n in g.nodes[i : i + k]]
    ins, outs = g.boundary(occ)
    same_arity = pool().get((len(ins), len(outs)))
    if same_arity and data.draw(st.booleans(), label="arity-matched replacement"):
        src, j, m = data.draw(st.sampled_from(same_arity), label="replacement window")
    else:
        src = data.draw(st.sampled_from(sorted(MODELS)), label="replacement model")
        m = data.draw(st.integers(1, 12))
        j = data.draw(st.integers(0, len(graph(src).nodes) - m))
    s = graph(src)
    replacement = s.extract([n.name for n in s.nodes[j : j + m]])
    align = data.draw(st.sampled_from([1, 8, 16]), label="align")
    result = apply(g, occ, replacement, seed=data.draw(st.integers(0, 1000)), align=align)
    check_outcome(g, occ, result)


@st.composite
def chain_segment(draw) -> onnx.ModelProto:
    """A hand-written single-input chain: convs (dense/depthwise, k, stride), BN, ReLU, pools."""
    c, hw = 8, 16
    rng = np.random.default_rng(draw(st.integers(0, 99)))
    nodes, inits, x = [], {}, "x"
    for i in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["conv", "dw", "bn", "relu", "maxpool", "avgpool", "res"]))
        y = f"t{i}"
        if kind in ("conv", "dw"):
            k, s = draw(st.sampled_from([1, 3, 5])), draw(st.sampled_from([1, 2]))
            cout = c if kind == "dw" else draw(st.sampled_from([4, 8, 16]))
            g = c if kind == "dw" else 1
            inits[f"w{i}"] = rng.standard_normal((cout, c // g, k, k)).astype(np.float32)
            nodes.append(helper.make_node("Conv", [x, f"w{i}"], [y], kernel_shape=[k, k], strides=[s, s],
                                          pads=[k // 2] * 4, group=g, name=f"n{i}"))  # fmt: skip
            c, hw = cout, (hw + 2 * (k // 2) - k) // s + 1
        elif kind == "bn":
            for p, v in (("s", 1.0), ("b", 0.0), ("m", 0.0), ("v", 1.0)):
                inits[f"{p}{i}"] = np.full(c, v, np.float32)
            nodes.append(
                helper.make_node(
                    "BatchNormalization", [x, f"s{i}", f"b{i}", f"m{i}", f"v{i}"], [y], name=f"n{i}"
                )
            )
        elif kind == "relu":
            nodes.append(helper.make_node("Relu", [x], [y], name=f"n{i}"))
        elif kind in ("maxpool", "avgpool"):
            ceil = draw(st.sampled_from([0, 1]))
            op = "MaxPool" if kind == "maxpool" else "AveragePool"
            nodes.append(
                helper.make_node(
                    op, [x], [y], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=ceil, name=f"n{i}"
                )
            )
            hw = -(-hw // 2) if ceil else hw // 2
        else:  # residual 3x3 conv + Add
            inits[f"w{i}"] = rng.standard_normal((c, c, 3, 3)).astype(np.float32)
            nodes.append(
                helper.make_node(
                    "Conv", [x, f"w{i}"], [f"r{i}"], kernel_shape=[3, 3], pads=[1] * 4, name=f"n{i}c"
                )
            )
            nodes.append(helper.make_node("Add", [f"r{i}", x], [y], name=f"n{i}"))
        x = y
        if hw < 1:
            break
    return make_segment(nodes, {"x": [1, 8, 16, 16]}, {x: [1, c, max(hw, 1), max(hw, 1)]}, inits)


@SETTINGS
@given(data=st.data(), replacement=chain_segment())
def test_hand_written_chain_replacements(data, replacement):
    target = data.draw(st.sampled_from(["nb201", "mobilenet_v2", "fbnet"]), label="target")
    g = graph(target)
    single = [(name, i, k) for name, i, k in pool().get((1, 1), []) if name == target]
    _, i, k = data.draw(st.sampled_from(single), label="occurrence")
    occ = [n.name for n in g.nodes[i : i + k]]
    try:
        onnx.checker.check_model(replacement, full_check=True)
    except Exception:
        return  # the strategy produced an invalid chain (spatial size collapsed); nothing to test
    result = apply(g, occ, replacement, seed=0, align=data.draw(st.sampled_from([1, 16])))
    check_outcome(g, occ, result)
