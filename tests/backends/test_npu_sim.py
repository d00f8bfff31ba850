"""npu-sim target end to end: the harness (TVM fusion), determinism, and the fast ONNX-rule path agreeing
with TVM's FuseOps on small models."""

from __future__ import annotations

import importlib.util

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from test_npu_model import make_model, weights
from tiny_models import make_tiny_cnn

from autogo_deploy.backends import availability, harness
from autogo_deploy.backends.npu_model import NpuConstants, cost_model
from autogo_deploy.graph import load
from autogo_deploy.measure import measure
from autogo_deploy.target import load_target

needs_tvm = pytest.mark.skipif(importlib.util.find_spec("tvm") is None, reason="apache-tvm not installed")
N = helper.make_node


def _residual_downsample() -> onnx.ModelProto:
    """A ResNet basic block with a 1x1 downsample branch, BN after every conv, and a ReLU6 (Clip)."""
    c, o = 16, 32
    nodes = [
        N("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2]),
        N("BatchNormalization", ["c1", "s1", "b1", "m1", "v1"], ["n1"]),
        N("Relu", ["n1"], ["r1"]),
        N("Conv", ["x", "wd"], ["cd"], strides=[2, 2]),
        N("BatchNormalization", ["cd", "sd", "bd", "md", "vd"], ["nd"]),
        N("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
        N("BatchNormalization", ["c2", "s2", "b2", "m2", "v2"], ["n2"]),
        N("Add", ["n2", "nd"], ["a"]),
        N("Clip", ["a", "lo", "hi"], ["y"]),
    ]
    inits = [weights("w1", (o, c, 3, 3)), weights("wd", (o, c, 1, 1)), weights("w2", (o, o, 3, 3))]
    for tag in "1d2":
        inits += [weights(f"s{tag}", (o,)), weights(f"b{tag}", (o,)), weights(f"m{tag}", (o,))]
        variance = np.abs(numpy_helper.to_array(weights(f"v{tag}", (o,)))) + 1
        inits.append(numpy_helper.from_array(variance, f"v{tag}"))
    inits += [numpy_helper.from_array(np.float32(0), "lo"), numpy_helper.from_array(np.float32(6), "hi")]
    return make_model(nodes, [("x", [1, c, 16, 16])], "y", inits)


def test_npu_sim_target_file_and_availability():
    target = load_target("npu-sim")
    assert target.backend == "npu-sim" and target.device == "npu-sim" and target.channel_multiple == 16
    assert target.power["method"] == "npu-model" and target.options["fusion"] in ("tvm", "onnx-rules")
    assert harness(target).name == "npu_harness.py"
    ok, reason = availability(target)
    assert ok == (importlib.util.find_spec("tvm") is not None or target.options["fusion"] != "tvm"), reason


@needs_tvm
def test_npu_harness_deterministic_and_equal_to_the_library(tmp_path):
    model = make_tiny_cnn(batch=1)
    path = tmp_path / "tiny.onnx"
    onnx.save(model, path)
    first = measure(path, "npu-sim", per_node=True)  # fusion by TVM
    assert first.deterministic and first.power_method == "modeled-npu-sim"
    assert len(set(first.samples_ms)) == 1 and first.samples_ms[0] > 0 and first.energy_mj > 0
    assert first.method["fusion"] == "tvm" and first.method["tuned"] is False
    assert {"bound", "ops", "compute_ms", "memory_ms", "energy_mj"} <= set(first.per_node[0])
    # a second run (fast fusion path, through a target file given by path) gives the same figures
    text = open(load_target("npu-sim").path).read().replace('fusion = "tvm"', 'fusion = "onnx-rules"')
    fast_target = tmp_path / "npu-fast.toml"
    fast_target.write_text(text)
    second = measure(path, str(fast_target), per_node=True)
    assert second.method["fusion"] == "onnx-rules"
    assert second.samples_ms == first.samples_ms and second.energy_mj == first.energy_mj
    assert [p["ops"] for p in second.per_node] == [p["ops"] for p in first.per_node]
    assert [p["ms"] for p in second.per_node] == [p["ms"] for p in first.per_node]
    # and the library call without a subprocess agrees with both
    again = cost_model(load(path, fold_bn=True), NpuConstants.default())
    assert again["latency_ms"] == first.p50_ms and again["energy_mj"] == first.energy_mj


def _mutant_patterns() -> onnx.ModelProto:
    """What spliced mutants contain and the zoo does not: a lone x + x, a BatchNorm after a ReLU
    (not folded) whose mean and bias are one initializer, two Clips in one kernel sharing their
    bounds, and a product with a 0-d constant."""
    c, o = 16, 32
    nodes = [
        N("Add", ["x", "x"], ["x2"]),
        N("Conv", ["x2", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        N("Relu", ["c1"], ["r1"]),
        N("BatchNormalization", ["r1", "s1", "z", "z", "v1"], ["n1"]),
        N("MaxPool", ["n1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        N("Conv", ["p1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
        N("Clip", ["c2", "lo", "hi"], ["k1"]),
        N("Clip", ["k1", "lo", "hi"], ["k2"]),
        N("Mul", ["k2", "two"], ["y"]),
    ]
    variance = np.abs(numpy_helper.to_array(weights("v1", (o,)))) + 1
    inits = [weights("w1", (o, c, 3, 3)), weights("w2", (c, o, 3, 3)), weights("s1", (o,))]
    inits += [numpy_helper.from_array(np.zeros(o, np.float32), "z"), numpy_helper.from_array(variance, "v1")]
    inits.append(numpy_helper.from_array(np.float32(2), "two"))
    inits += [numpy_helper.from_array(np.float32(0), "lo"), numpy_helper.from_array(np.float32(6), "hi")]
    return make_model(nodes, [("x", [1, c, 16, 16])], "y", inits)


def _pool_against_bias_free_conv() -> onnx.ModelProto:
    """An Add whose first argument is an average pool and whose second a conv without bias (no BN after
    it), then a BatchNorm (not foldable: it follows the Add), as AutoGO mutants of ResNet-50 build:
    TVM binds the pool first (Conv's converter binds only the conv's arguments at once), so the pool,
    not the conv, takes the Add and the BatchNorm's arithmetic."""
    c = 16
    nodes = [
        N("Relu", ["x"], ["r"]),
        N("Conv", ["r", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        N("BatchNormalization", ["c1", "s1", "b1", "m1", "v1"], ["n1"]),
        N("Relu", ["n1"], ["r1"]),
        N("Conv", ["r1", "w2"], ["c2"]),
        N("AveragePool", ["r"], ["p"], kernel_shape=[1, 1]),
        N("Add", ["p", "c2"], ["a"]),
        N("BatchNormalization", ["a", "s2", "b2", "m2", "v2"], ["n2"]),
        N("Relu", ["n2"], ["y"]),
    ]
    inits = [weights("w1", (c, c, 3, 3)), weights("w2", (c, c, 1, 1))]
    for tag in "12":
        inits += [weights(f"s{tag}", (c,)), weights(f"b{tag}", (c,)), weights(f"m{tag}", (c,))]
        variance = np.abs(numpy_helper.to_array(weights(f"v{tag}", (c,)))) + 1
        inits.append(numpy_helper.from_array(variance, f"v{tag}"))
    return make_model(nodes, [("x", [1, c, 14, 14])], "y", inits)


@needs_tvm
@pytest.mark.parametrize(
    "build",
    [lambda: make_tiny_cnn(batch=1), _residual_downsample, _mutant_patterns, _pool_against_bias_free_conv],
)
def test_onnx_rule_fusion_agrees_with_tvm(build):
    graph = load(build(), fold_bn=True)
    consts = NpuConstants.default()
    fast = cost_model(graph, consts, fusion="onnx-rules")
    slow = cost_model(graph, consts, fusion="tvm")
    assert [g["ops"] for g in fast["groups"]] == [g["ops"] for g in slow["groups"]]
    assert fast["latency_ms"] == pytest.approx(slow["latency_ms"], rel=1e-12)
    assert fast["energy_mj"] == pytest.approx(slow["energy_mj"], rel=1e-12)


def test_fast_stand_in_swaps_only_tvm_fusion_on_npu_sim():
    from autogo_deploy.backends.npu_sim import fast_stand_in

    npu = load_target("npu-sim")
    loop, swapped = fast_stand_in(npu)
    assert swapped == (npu.options["fusion"] == "tvm")
    assert loop.options["fusion"] == "onnx-rules" and loop.name == npu.name
    assert {k: v for k, v in loop.options.items() if k != "fusion"} == {
        k: v for k, v in npu.options.items() if k != "fusion"
    }
    assert npu.options["fusion"] == load_target("npu-sim").options["fusion"]  # the original is untouched
    ort = load_target("ort-cpu")
    assert fast_stand_in(ort) == (ort, False)


@needs_tvm
def test_optimize_verifies_the_fast_fusion_with_tvm(tmp_path):
    """`verify_fast_fusion` re-costs the input and the result with TVM and finds the same figures."""
    from types import SimpleNamespace

    from autogo_deploy.backends.npu_sim import fast_stand_in
    from autogo_deploy.loop_measure import measurement_summary, verify_fast_fusion

    npu = load_target("npu-sim")
    loop, _ = fast_stand_in(npu)
    data = _residual_downsample().SerializeToString()
    cand = SimpleNamespace(model_bytes=data, measured=measurement_summary(measure(data, loop)))
    check = verify_fast_fusion(SimpleNamespace(baseline=cand, best=None), npu)
    assert check["agree"] and set(check["models"]) == {"input"}
    assert check["models"]["input"]["latency_ms"]["tvm"] == cand.measured["latency_ms"]
