"""The corpus fast path gives node-for-node what graph.load gives for the real zoo models."""

from __future__ import annotations

import importlib

import pytest

from autogo_deploy import zoo
from autogo_deploy.graph import load
from autogo_deploy.segments.corpus import Item, load_struct
from autogo_deploy.segments.lite import NotEmulated, build_lite
from autogo_deploy.segments.structure import StructGraph
from autogo_deploy.segments.tokenize import graph_tokens

nb201 = importlib.import_module("autogo_deploy.zoo.nb201")

NB201_ARCHS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",  # all 'none': Mul-by-zero chains
    "|skip_connect~0|+|avg_pool_3x3~0|nor_conv_3x3~1|+|nor_conv_1x1~0|nor_conv_1x1~1|skip_connect~2|",  # CSE
    "|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|avg_pool_3x3~0|avg_pool_3x3~1|avg_pool_3x3~2|",
    "|none~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|skip_connect~2|",
]
NB101_CELL = (
    [[0, 1, 1, 0, 0, 1, 0], [0, 0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 1, 0, 0], [0, 0, 0, 0, 0, 0, 1],
     [0, 0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0]],
    ["input", "conv3x3-bn-relu", "maxpool3x3", "conv1x1-bn-relu", "conv3x3-bn-relu", "conv3x3-bn-relu", "output"],
)  # fmt: skip
FBNET_OPS = "k3_e1 k3_e1_g2 k5_e6 skip k3_e3 k5_e1_g2 k3_e6 skip k5_e3 k3_e1 k5_e6 k3_e3 k5_e1 skip k3_e6 k5_e3 k3_e1_g2 k5_e1 k3_e3 skip k5_e6 k3_e6".split()


def _node_view(sg: StructGraph) -> list[tuple]:
    """Everything tokenising and segmenting read; initializers by dims (onnxslim may tie names)."""
    rows = []
    for n in sg.nodes:
        ins = [("const", sg.consts[t].dims, sg.consts[t].values) if t in sg.consts else t for t in n.inputs]
        rows.append((n.index, n.name, n.op_type, ins, n.outputs, n.attrs, n.kernel, n.stride, n.dilation, n.pads,
                     n.group, n.in_shapes, n.out_shapes, n.macs, n.params, n.act_bytes))  # fmt: skip
    return rows


def _assert_same(real: StructGraph, lite: StructGraph) -> None:
    assert len(real.nodes) == len(lite.nodes)
    for a, b in zip(_node_view(real), _node_view(lite), strict=True):
        assert a == b
    assert graph_tokens(real) == graph_tokens(lite)
    assert real.output_names == lite.output_names and real.input_names == lite.input_names


@pytest.mark.parametrize("arch", NB201_ARCHS)
def test_nb201_lite_equals_graph_load(arch):
    real = StructGraph.from_graph(load(zoo.nb201(arch)))
    _assert_same(real, build_lite("nb201", arch))


def test_nb101_and_fbnet_lite_equal_graph_load():
    _assert_same(StructGraph.from_graph(load(zoo.nb101(*NB101_CELL))), build_lite("nb101", NB101_CELL))
    _assert_same(StructGraph.from_graph(load(zoo.fbnet(FBNET_OPS))), build_lite("fbnet", FBNET_OPS))


def test_zoo_model_lite_equals_graph_load():
    _assert_same(StructGraph.from_graph(load(zoo.build("resnet18"))), build_lite("resnet", "resnet18"))


def test_patterns_onnxslim_rewrites_fall_back_to_graph_load():
    # EDSR scales a conv output by a constant: onnxslim fuses it, the fast path refuses to guess
    with pytest.raises(NotEmulated):
        build_lite("edsr", "edsr")
    sg = load_struct(Item("edsr", "edsr", "edsr"))
    assert len(sg.nodes) > 0 and "Mul" not in {n.op_type for n in sg.nodes if n.inputs[0].endswith(".conv2")}


def test_lite_restores_the_zoo_builder():
    from autogo_deploy.zoo.builder import NetBuilder

    build_lite("nb201", NB201_ARCHS[0])
    assert nb201.NetBuilder is NetBuilder


def test_precomputed_descriptors_match_the_generic_ones():
    from autogo_deploy.segments.compact import describe_node

    for family, arch in (("nb201", NB201_ARCHS[2]), ("nb101", NB101_CELL), ("fbnet", FBNET_OPS)):
        sg = build_lite(family, arch)
        assert all(n.segment_desc == describe_node(sg, n) for n in sg.nodes)


@pytest.mark.slow
def test_lite_equals_graph_load_on_a_random_sample():
    import random

    from autogo_deploy.segments import corpus

    rng = random.Random(0)
    items = corpus.items(["nb201", "nb101", "fbnet", "vgg", "mobilenet_v2", "resnet"])
    by_family: dict[str, list] = {}
    for it in items:
        by_family.setdefault(it.family, []).append(it)
    sample = (
        rng.sample(by_family["nb201"], 40)
        + rng.sample(by_family["nb101"], 10)
        + rng.sample(by_family["fbnet"], 10)
    )
    sample += by_family["vgg"] + by_family["mobilenet_v2"] + by_family["resnet"][1:2]
    for it in sample:
        _assert_same(load_struct(it), build_lite(it.family, it.arch))
