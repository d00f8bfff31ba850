"""The analytical NPU model: constants and sources, cube padding, tiling, energy, the ONNX fusion rule."""

from __future__ import annotations

import math
import tomllib

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from tiny_models import make_tiny_cnn

from autogo_deploy.backends.npu_fuse import onnx_groups
from autogo_deploy.backends.npu_model import (
    CONSTANT_KEYS,
    Group,
    NpuConstants,
    Op,
    Tensor,
    cost_group,
    cost_model,
    cube_cycles,
)
from autogo_deploy.paths import targets_dir

N = helper.make_node


def make_model(nodes, inputs, output, inits=(), out_shape=None) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "m",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, out_shape)],
        list(inits),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return onnx.shape_inference.infer_shapes(model)


def weights(name, shape, seed=0):
    return numpy_helper.from_array(
        np.random.default_rng(seed).standard_normal(shape).astype(np.float32), name
    )


def conv_model(cin: int, cout: int, size: int = 28, k: int = 3) -> onnx.ModelProto:
    """A Conv(+bias)+ReLU layer with the given channel counts."""
    nodes = [
        N("Conv", ["x", "w", "b"], ["c"], pads=[k // 2] * 4, name="conv"),
        N("Relu", ["c"], ["y"], name="relu"),
    ]
    inits = [weights("w", (cout, cin, k, k)), weights("b", (cout,))]
    return make_model(nodes, [("x", [1, cin, size, size])], "y", inits)


@pytest.fixture(scope="module")
def consts() -> NpuConstants:
    return NpuConstants.default()


def test_every_constant_has_a_value_and_a_source():
    with (targets_dir() / "npu-sim.toml").open("rb") as fh:
        doc = tomllib.load(fh)
    table = doc["backend"]["constants"]
    assert set(table) == set(CONSTANT_KEYS)
    for key, entry in table.items():
        assert isinstance(entry["value"], int | float) and entry["value"] >= 0, key
        assert len(entry["source"]) > 15 and entry.get("unit"), key
    c = NpuConstants.from_options(doc["backend"])
    assert c.cube_macs_per_cycle == 4096 and c.channel_align == 16
    assert doc["target"]["backend"] == "npu-sim" and doc["hardware"]["channel_multiple"] == 16


def _conv_group(model, consts):
    result = cost_model(model, consts, fusion="onnx-rules")
    (conv,) = [g for g in result["groups"] if "conv2d" in g["ops"]]
    return conv


@pytest.mark.parametrize("axis", ["cin", "cout"])
def test_channels_off_the_cube_multiple_cost_the_padding(consts, axis):
    def cube_ms(c):
        cin, cout = (c, 32) if axis == "cin" else (32, c)
        return _conv_group(conv_model(cin, cout), consts)["cube_ms"]

    assert cube_ms(15) == cube_ms(16)
    assert cube_ms(17) == cube_ms(32)
    assert cube_ms(17) == pytest.approx(2 * cube_ms(16))
    # the whole layer costs the same too: on chip, tensors are padded to C0 = 16
    whole = {
        c: _conv_group(conv_model(c, 32) if axis == "cin" else conv_model(32, c), consts) for c in (15, 16)
    }
    assert whole[15]["latency_ms"] == whole[16]["latency_ms"]
    assert whole[15]["padded_macs"] == whole[16]["padded_macs"] and whole[15]["macs"] < whole[16]["macs"]


def test_cube_cycles_by_hand(consts):
    # 1x16x8x8 -> 32 channels, 3x3, same padding: M = 64 px, K = 16*9, N = 32
    conv = Op("conv2d", "conv", [Tensor((1, 16, 8, 8)), Tensor((32, 16, 3, 3), True)], Tensor((1, 32, 8, 8)))
    assert cube_cycles(conv, consts) == (4 * 9 * 2, 64 * 32 * 16 * 9)
    # depthwise: diagonal 16x16 blocks, pixels/16 x window x C/16
    dw = Op("conv2d", "conv", [Tensor((1, 32, 8, 8)), Tensor((32, 1, 3, 3), True)], Tensor((1, 32, 8, 8)))
    assert cube_cycles(dw, consts) == (4 * 9 * 2, 64 * 32 * 9)
    # matmul at batch 1 pads M = 1 to 16
    mm = Op("matmul", "matmul", [Tensor((1, 100)), Tensor((100, 10), True)], Tensor((1, 10)))
    assert cube_cycles(mm, consts) == (1 * 7 * 1, 1000)


def test_latency_is_max_of_compute_and_memory_plus_overhead(consts):
    row = _conv_group(conv_model(64, 64, size=56), consts)
    assert row["latency_ms"] == pytest.approx(max(row["compute_ms"], row["memory_ms"]) + row["overhead_ms"])
    assert row["overhead_ms"] == pytest.approx(consts.launch_overhead_us / 1000)
    assert sum(row["energy_breakdown_mj"].values()) == pytest.approx(row["energy_mj"])
    static = consts.static_power_w * row["latency_ms"] / 1000 * 1000  # W * s = J -> mJ
    assert row["energy_breakdown_mj"]["static"] == pytest.approx(static)


def test_operands_larger_than_l1_are_reread(consts):
    def dram(act_shape, w_shape):
        out = (1, w_shape[0], act_shape[2], act_shape[3])
        op = Op("conv2d", "conv", [Tensor(act_shape), Tensor(w_shape, True)], Tensor(out))
        op.external = (True, True)
        group = Group("g", [op], list(op.inputs), [op.output])
        return cost_group(group, consts)["dram_bytes"]

    bpe = consts.bytes_per_element
    small_act, small_w = (1, 64, 56, 56), (64, 64, 3, 3)
    plain = (math.prod(small_act) + 64 * 64 * 9 + 64 * 56 * 56) * bpe
    assert dram(small_act, small_w) == plain  # weights fit in half of L1: each operand read once
    big_act, big_w = (1, 512, 64, 64), (512, 512, 3, 3)  # 4 MiB activations, 4.5 MiB weights
    once = (math.prod(big_act) + 512 * 512 * 9 + 512 * 64 * 64) * bpe
    assert dram(big_act, big_w) > once


def test_cost_model_is_deterministic_and_accepts_paths(consts, tmp_path):
    model = make_tiny_cnn(batch=1)
    path = tmp_path / "tiny.onnx"
    onnx.save(model, path)
    a = cost_model(model, consts)
    b = cost_model(model, consts)
    c = cost_model(str(path), consts)
    assert a == b and a["latency_ms"] == c["latency_ms"] and a["energy_mj"] == c["energy_mj"]
    assert a["power_w"] == pytest.approx(a["energy_mj"] / a["latency_ms"])


def _names(model):
    return ["+".join(op.name for op in g.ops) for g in onnx_groups(model)]


def test_fusion_rule_groups():
    # conv + BN (folded) + ReLU -> one kernel; depthwise conv + residual add -> one kernel
    names = _names(make_tiny_cnn(batch=1))
    assert names[0] == "conv2d+add+relu" and names[1] == "conv2d+add"
    assert names[2:] == ["mean", "reshape", "matmul+add"]
    # x * sigmoid(x) after a conv (diamond) fuses; an elementwise op before a conv does not
    nodes = [
        N("Relu", ["x"], ["r"]),
        N("Conv", ["r", "w"], ["c"], pads=[1, 1, 1, 1]),
        N("Sigmoid", ["c"], ["s"]),
        N("Mul", ["c", "s"], ["y"]),
    ]
    model = make_model(nodes, [("x", [1, 8, 8, 8])], "y", [weights("w", (8, 8, 3, 3))])
    assert _names(model) == ["relu", "conv2d+sigmoid+multiply"]
