"""FBNet-space networks (HW-NAS-Bench CIFAR-100 configuration)."""

from __future__ import annotations

import importlib

import numpy as np
import onnx
import pytest
from zoo_reference import channel_shuffle_torch, run_ort

from autogo_deploy import graph
from autogo_deploy.errors import InputError
from autogo_deploy.zoo.builder import NetBuilder

fbnet = importlib.import_module("autogo_deploy.zoo.fbnet")


def test_structure_groups_and_skips():
    ops = (
        ["k3_e1_g2"]
        + ["skip"] * 4
        + ["k5_e6"] * 4
        + ["skip"] * 4
        + ["k3_e3"] * 4
        + ["k5_e1_g2"] * 4
        + ["skip"]
    )
    model = fbnet.fbnet(ops)
    onnx.checker.check_model(model, full_check=True)
    g = graph.load(model, cleanup=False)
    # block 0 (16 -> 16, stride 1): grouped 1x1 convs, shuffle, depthwise 3x3, identity residual
    b0 = {n.name: n for n in g.nodes if n.name.startswith("blocks.0.")}
    assert b0["blocks.0.pw1.conv"].group == 2 and b0["blocks.0.pw2.conv"].group == 2
    assert b0["blocks.0.dw.conv"].group == 16 and b0["blocks.0.dw.conv"].kernel == (3, 3)
    assert "blocks.0.add" in b0 and "blocks.0.shuffle.transpose" in b0
    # grouped 1x1: MACs = Cout * H * W * (Cin / 2)
    assert b0["blocks.0.pw1.conv"].macs == 16 * 32 * 32 * 8
    # block 1 is 'skip' 16 -> 24: HW-NAS-Bench's Conv1x1-BN-ReLU; blocks 2-4 are identities (no nodes)
    assert "blocks.1.skip.conv" in {n.name for n in g.nodes}
    assert not any(n.name.startswith(("blocks.2.", "blocks.3.", "blocks.4.")) for n in g.nodes)
    # block 9 is 'skip' with stride 2 (stage 3 starts): strided 1x1 conv
    assert g.node("blocks.9.skip.conv").stride == (2, 2)
    assert g.node("head.conv").out_shapes[0] == (1, 1504, 4, 4)
    out = run_ort(model, np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32))
    assert out.shape == (1, 100) and np.isfinite(out).all()


def test_channel_shuffle_matches_hw_nas_bench():
    b = NetBuilder("shuffle", (1, 12, 3, 3))
    model = b.finish(b.channel_shuffle("input", 2, name="s"))
    x = np.arange(12 * 9, dtype=np.float32).reshape(1, 12, 3, 3)
    np.testing.assert_array_equal(run_ort(model, x), channel_shuffle_torch(x, 2))


def test_op_forms():
    names = fbnet.parse_ops(" ".join(["k3_e1"] * 22))
    assert names == ["k3_e1"] * 22
    assert fbnet.parse_ops(list(range(9)) + [0] * 13)[:9] == list(fbnet.OPS)


@pytest.mark.parametrize(
    "ops, fragment",
    [
        (["k3_e1"] * 21, "needs 22 ops"),
        (["k3_e1"] * 21 + ["k7_e6"], "unknown FBNet op 'k7_e6'"),
        ([0] * 21 + [9], "out of range"),
        (5, "list of 22"),
    ],
)
def test_bad_ops(ops, fragment):
    with pytest.raises(InputError, match=fragment):
        fbnet.fbnet(ops)
