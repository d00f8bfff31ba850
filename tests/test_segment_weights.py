"""Source-segment weights: MACs-based everywhere, npu-sim's modeled latency where it has a model."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from autogo_deploy import segment_weights as sw
from autogo_deploy import zoo
from autogo_deploy.backends.npu_fuse import onnx_groups
from autogo_deploy.backends.npu_model import NpuConstants, cost_model
from autogo_deploy.errors import InputError
from autogo_deploy.graph import load
from autogo_deploy.target import load_target


@pytest.fixture(scope="module")
def resnet18():
    return load(zoo.build("resnet18", input_size=64).SerializeToString(), cleanup=False)


@pytest.fixture(scope="module")
def constants():
    return NpuConstants.from_options(load_target("npu-sim").options)


def test_fused_groups_name_every_onnx_node_once_including_folded_batchnorms(resnet18):
    names = [n for group in onnx_groups(resnet18) for n in group.nodes]
    all_nodes = [n.name for n in resnet18.model.graph.node]
    assert sorted(names) == sorted(all_nodes)
    bn = next(n for n in all_nodes if n.endswith(".bn"))
    group = next(gr for gr in onnx_groups(resnet18) if bn in gr.nodes)
    assert group.ops[0].kind == "conv"  # the BN travels with its Conv's kernel


def test_node_latencies_add_up_to_the_models_modeled_latency(resnet18, constants):
    per_node = sw.npu_node_latency_ns(resnet18, constants)
    total = cost_model(resnet18, constants)["latency_ms"] * 1e6
    assert sum(per_node.values()) == pytest.approx(total, rel=1e-9)
    # inside a Conv+BN+ReLU kernel the Conv carries (nearly) all of it
    conv = next(n.name for n in resnet18.model.graph.node if n.op_type == "Conv")
    group = next(gr for gr in onnx_groups(resnet18) if conv in gr.nodes)
    kernel_ns = sum(per_node[n] for n in group.nodes)
    assert per_node[conv] > 0.99 * kernel_ns


def test_target_weights_follow_modeled_latency_and_macs_weights_follow_macs(resnet18, constants):
    per_node = sw.npu_node_latency_ns(resnet18, constants)
    pool = next(n.name for n in resnet18.model.graph.node if n.op_type == "MaxPool")
    conv = max(
        (n for n in resnet18.model.graph.node if n.op_type == "Conv"),
        key=lambda n: resnet18.node(n.name).macs,
    ).name
    occ = [SimpleNamespace(node_names=[pool]), SimpleNamespace(node_names=[conv])]
    by_latency = sw.weights(resnet18, occ, mode="target", constants=constants)
    assert by_latency == pytest.approx([(1 + per_node[pool]) ** 0.5, (1 + per_node[conv]) ** 0.5])
    by_macs = sw.weights(resnet18, occ, mode="macs", macs_per_param=160)
    conv_node = resnet18.node(conv)
    assert by_macs[1] == pytest.approx((1 + conv_node.macs + 160 * conv_node.params) ** 0.5)
    # a pooling layer has no MACs but real memory time on the NPU: only the latency weights see it
    assert by_macs[0] / by_macs[1] < by_latency[0] / by_latency[1]


def test_resolve_mode():
    assert sw.resolve_mode("target", "npu-sim") == "target"
    assert sw.resolve_mode("macs", "npu-sim") == "macs"
    assert sw.resolve_mode("macs", "ort") == "macs"
    with pytest.raises(InputError, match="cost model"):
        sw.resolve_mode("target", "ort")
    with pytest.raises(InputError, match="valid: macs, target"):
        sw.resolve_mode("flops", "ort")
