"""Graph → tensors: features, depth, PSC splits with boundary ports, compaction."""

from __future__ import annotations

import numpy as np

from autogo_deploy.graph import load
from autogo_deploy.predictor import features as F
from autogo_deploy.predictor.compact import cut_positions


def test_from_graph_rows_and_edges(tiny_model):
    g = load(tiny_model, input_shapes={"x": (1, 3, 16, 16)})
    gt = F.from_graph(g, compact=False)
    assert gt.x.shape == (len(g.nodes), F.NUM_FEATURES)
    assert gt.names == [n.name for n in g.nodes]
    # exactly one op one-hot per row
    assert np.all(gt.x[:, : F.NUM_OPS].sum(axis=1) == 1)
    # every edge follows the data flow and depth increases along it
    assert np.all(gt.depth[gt.edges[1]] > gt.depth[gt.edges[0]])
    assert gt.depth.min() == 0.0 and gt.depth.max() == 1.0


def test_fusion_keeps_members_and_shapes(tiny_model):
    g = load(tiny_model, input_shapes={"x": (1, 3, 16, 16)}, cleanup=False)
    full = F.from_graph(g, compact=False)
    small = F.from_graph(g)
    assert small.num_nodes < full.num_nodes
    covered = sorted(v for m in small.members for v in m)
    assert covered == list(range(full.num_nodes))  # every original node belongs to one compact node
    conv = next(i for i, m in enumerate(small.members) if g.nodes[m[0]].name == "conv1")
    assert {g.nodes[v].op_type for v in small.members[conv]} == {"Conv", "BatchNormalization", "Relu"}
    assert small.x[conv, F.NUM_OPS + 18] == 1.0 and small.x[conv, F.NUM_OPS + 19] == 1.0


def _chain(n_blocks: int):
    """input → Conv → (Relu → Conv) * n_blocks: identical consecutive blocks."""
    specs, edges = [], []
    shape = (1, 8, 8, 8)
    specs.append(F.NodeSpec("Conv", (3, 3), (1, 1), 1, (1, 3, 8, 8), shape, 1000, 10, 2048, 1))
    for _ in range(n_blocks):
        specs.append(F.NodeSpec("Relu", None, None, 1, shape, shape, 0, 0, 2048, 1))
        edges.append((len(specs) - 2, len(specs) - 1))
        specs.append(F.NodeSpec("Conv", (3, 3), (1, 1), 1, shape, shape, 5000, 576, 2048, 1))
        edges.append((len(specs) - 2, len(specs) - 1))
    return specs, edges


def test_repeated_blocks_collapse_exactly():
    specs, edges = _chain(6)
    gt = F.from_specs(specs, edges)
    assert gt.num_nodes < len(specs)
    # the run is kept once; nodes weighted by repeat reproduce the original op counts
    conv = gt.x[:, 0] == 1.0
    assert float(gt.repeat[conv].sum()) == 7
    assert float((gt.repeat * gt.x[:, F.NUM_OPS + 19]).sum()) == 6  # fused ReLUs
    assert sorted(v for m in gt.members for v in m) == list(range(len(specs)))


def test_protected_segment_is_not_collapsed():
    specs, edges = _chain(6)
    gt = F.from_specs(specs, edges, protect={5})
    holder = next(i for i, m in enumerate(gt.members) if 5 in m)
    assert gt.repeat[holder] == 1.0
    conv = gt.x[:, 0] == 1.0
    assert float(gt.repeat[conv].sum()) == 7


def test_cut_positions_of_chain():
    specs, edges = _chain(3)
    order, cuts = cut_positions(len(specs), edges)
    assert len(order) == len(specs) and len(cuts) == len(specs) - 1


def test_split_with_ports_carries_boundary_shapes():
    specs, edges = _chain(2)
    gt = F.from_specs(specs, edges, compact=False)
    parts = F.window_parts(gt, 0.3, 0.7)
    x, e, node_part, repeat = F.split_with_ports(gt, parts)
    n = gt.num_nodes
    ports = np.arange(n, x.shape[0])
    assert len(ports) > 0 and np.all(repeat[ports] == 0)
    assert np.all(x[ports, F.PORT_IN] + x[ports, F.PORT_OUT] == 1)
    # no edge crosses parts any more, and ports carry the crossing tensor's channel feature
    assert np.all(node_part[e[0]] == node_part[e[1]])
    assert np.all(x[ports, F.NUM_OPS + 9] == gt.x[0, F.NUM_OPS + 9])


def test_segment_parts_ancestors_and_descendants():
    specs, edges = _chain(3)
    gt = F.from_specs(specs, edges, compact=False)
    parts = F.segment_parts(gt, [3, 4])
    assert parts.tolist() == [0, 0, 0, 1, 1, 2, 2]
