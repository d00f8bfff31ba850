"""Segmenting: every node in exactly one convex, connected segment; hashes agree with Graph.extract."""

from __future__ import annotations

import pytest

from autogo_deploy import zoo
from autogo_deploy.graph import Graph, load
from autogo_deploy.segments.canon import segment_form
from autogo_deploy.segments.corpus import Item, load_struct
from autogo_deploy.segments.lite import build_lite
from autogo_deploy.segments.segment import segment_model, segment_struct
from autogo_deploy.segments.structure import StructGraph

ZOO_LITE = [("nb201", zoo.NB201_DEFAULT), ("nb101", zoo.NB101_DEFAULT), ("fbnet", zoo.FBNET_DEFAULT),
            ("resnet", "resnet18"), ("resnet", "resnet50"), ("resnet", "resnet101"), ("vgg", "vgg16_bn"),
            ("mobilenet_v2", "mobilenet_v2")]  # fmt: skip


def _check_partition(sg: StructGraph, groups: list[list[int]]) -> None:
    flat = sorted(i for g in groups for i in g)
    assert flat == list(range(len(sg.nodes))), "every node in exactly one segment"
    for g in groups:
        members = set(g)
        # convex: no path leaves the set and comes back (every descendant outside stays outside)
        outside = [
            c for i in g for t in sg.nodes[i].outputs for c, _ in sg.consumers.get(t, ()) if c not in members
        ]
        seen, stack = set(), outside
        while stack:
            v = stack.pop()
            if v in seen:
                continue
            seen.add(v)
            assert v not in members, "segment is not convex"
            stack.extend(c for t in sg.nodes[v].outputs for c, _ in sg.consumers.get(t, ()))


@pytest.mark.parametrize("family,arch", ZOO_LITE)
def test_every_zoo_model_is_covered_exactly_once(small_db, family, arch):
    sg = build_lite(family, arch)
    segs = segment_struct(sg, small_db.vocabulary(), small_db.merges())
    _check_partition(sg, [g for g, _, _ in segs])


def test_segment_model_on_loaded_models(small_db):
    for model in (zoo.build("edsr"), zoo.build("resnet18")):
        g = load(model)
        occ = segment_model(g, small_db)
        names = [n for o in occ for n in o.node_names]
        assert sorted(names) == sorted(n.name for n in g.nodes)
        # the corpus contains these models, so every structure is a stored segment
        assert all(o.segment_id is not None for o in occ)
        assert not any(o.unknown for o in occ)


def test_occurrence_hash_equals_graph_extract_hash(small_db):
    g = load(zoo.build("resnet18"))
    occ = segment_model(g, small_db)
    for o in [o for o in occ if len(o.node_names) > 1][:6]:
        sub = Graph(load(g.extract(o.node_names), cleanup=False).model)
        sg = StructGraph.from_graph(sub)
        assert segment_form(sg, list(range(len(sg.nodes)))).hash == o.hash
        rec = small_db.get(o.segment_id)
        assert rec.hash == o.hash and rec.n_inputs == len(o.inputs) and rec.n_outputs == len(o.outputs)


def test_unseen_ops_become_unknown_single_node_segments(small_db):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((4, 4, 1, 1), np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[1, 1]),
             helper.make_node("HardSwish", ["c"], ["h"], name="hs"),
             helper.make_node("Relu", ["h"], ["y"], name="relu")]  # fmt: skip
    graph = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], [w])  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    occ = segment_model(onnx.ModelProto.FromString(model.SerializeToString()), small_db)
    hs = [o for o in occ if "hs" in o.node_names]
    assert len(hs) == 1 and hs[0].node_names == ("hs",) and hs[0].unknown == ("<unk:HardSwish>",)
    assert sorted(n for o in occ for n in o.node_names) == ["conv", "hs", "relu"]


def test_fallback_struct_equals_graph_load_struct():
    sg = load_struct(Item("nb201", "x", zoo.NB201_DEFAULT))
    assert [n.name for n in sg.nodes] == [n.name for n in build_lite("nb201", zoo.NB201_DEFAULT).nodes]


def test_segmentation_widens_an_occurrence_to_a_convex_connected_superset(small_db):
    from autogo_deploy.segments.segment import segmentation

    g = load(zoo.build("resnet18"))
    seg = segmentation(g, small_db)
    assert [o.node_names for o in seg.occurrences] == [o.node_names for o in segment_model(g, small_db)]
    assert [p[1] for p in seg.pieces[:-1]] == [p[0] for p in seg.pieces[1:]]  # pieces tile the graph
    position = {n.name: i for i, n in enumerate(seg.sg.nodes)}
    grown = 0
    for k, occ in enumerate(seg.occurrences):
        for n_pieces in (2, 3, 4):
            for forward in (True, False):
                wide = seg.widened(k, n_pieces, forward=forward)
                if wide is None:
                    continue
                grown += 1
                assert set(occ.node_names) < set(wide.node_names)
                idxs = [position[n] for n in wide.node_names]
                _check_partition_member(seg.sg, idxs)
                # its boundary is what the graph says it is, so mutate.apply can cut it out
                ins, outs = g.boundary(list(wide.node_names))
                assert sorted(ins) == sorted(wide.inputs) and sorted(outs) == sorted(wide.outputs)
    assert grown > len(seg.occurrences)
    # the first piece cannot grow backwards, the last cannot grow forwards
    first = seg.piece_of.index(0)
    last = len(seg.piece_of) - 1 - seg.piece_of[::-1].index(len(seg.pieces) - 1)
    assert seg.widened(first, 3, forward=False) is None
    assert seg.widened(last, 3, forward=True) is None


def _check_partition_member(sg: StructGraph, idxs: list[int]) -> None:
    """One convex, connected node set."""
    members = set(idxs)
    _check_partition(sg, [idxs] + [[i] for i in range(len(sg.nodes)) if i not in members])
    linked = {idxs[0]}
    changed = True
    while changed:
        changed = False
        for i in idxs:
            if i in linked:
                continue
            node = sg.nodes[i]
            srcs = {sg.producer[t][0] for t in node.inputs if t in sg.producer}
            readers = {c for t in node.outputs for c, _ in sg.consumers.get(t, ())}
            shared = {j for j in linked if set(sg.nodes[j].inputs) & set(node.inputs) - set(sg.consts) - {""}}
            if (srcs | readers | shared) & linked:
                linked.add(i)
                changed = True
    assert linked == members, "widened segment is not connected"
