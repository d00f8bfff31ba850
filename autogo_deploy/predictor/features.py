"""Graph → tensors for the PSC predictor (numpy only; torch stays in model.py).

Every node of a computation graph becomes one feature row: op type (one-hot over a fixed vocabulary),
kernel, stride, group, depthwise flag, log-scaled input/output shapes, log-scaled MACs, parameters
and activation bytes, and the number of data inputs. Edges follow the data flow (producer → consumer,
one per consumed tensor). `depth` is the longest-path depth of each node, normalised to [0, 1]; the
PSC split is defined on depth, so it does not depend on how ties in the topological order are broken.

PSC split (AutoGO): a segment S cuts a graph into predecessor P, S and successor C. The three parts
are encoded separately by one shared encoder. Unlike AutoGO, the cut edges are not simply dropped:
every cut edge u → v becomes an output *port* node after u (in u's part) and an input *port* node
before v (in v's part), both carrying the shape of the tensor that crossed the cut.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

OP_VOCAB = (
    "Conv", "ConvTranspose", "BatchNormalization", "Relu", "Clip", "Sigmoid", "HardSigmoid",
    "HardSwish", "Tanh", "LeakyRelu", "PRelu", "Gelu", "Erf", "Add", "Sub", "Mul", "Div", "Sum",
    "Pow", "Sqrt", "Concat", "Split", "Slice", "AveragePool", "MaxPool", "GlobalAveragePool",
    "GlobalMaxPool", "Gemm", "MatMul", "Flatten", "Reshape", "Transpose", "Pad", "Resize",
    "DepthToSpace", "SpaceToDepth", "Softmax", "ReduceMean", "LayerNormalization", "Identity",
)  # fmt: skip
OTHER, PORT_IN, PORT_OUT = len(OP_VOCAB), len(OP_VOCAB) + 1, len(OP_VOCAB) + 2
NUM_OPS = len(OP_VOCAB) + 3
_OP_INDEX = {op: i for i, op in enumerate(OP_VOCAB)}
NUM_NUMERIC = 21
NUM_FEATURES = NUM_OPS + NUM_NUMERIC
PART_P, PART_S, PART_C = 0, 1, 2


@dataclass
class NodeSpec:
    """What the featuriser needs of one node (a subset of autogo_deploy.graph.Node)."""

    op_type: str
    kernel: tuple[int, ...] | None
    stride: tuple[int, ...] | None
    group: int
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    macs: int
    params: int
    act_bytes: int
    data_inputs: int
    bn: bool = False  # a BatchNormalization fused into this node (compact.fuse)
    act: bool = False  # an activation fused into this node
    repeat: int = 1  # identical consecutive blocks collapsed into this one (compact.collapse_repeats)


@dataclass
class GraphTensors:
    """One compact graph: x [N, F] float32, edges [2, E] int64, depth [N] in [0, 1], repeat [N].

    members[i] lists the original node indices (positions in `names`) that compact node i stands for.
    """

    x: np.ndarray
    edges: np.ndarray
    depth: np.ndarray
    repeat: np.ndarray
    members: list[list[int]]
    names: list[str] | None = None

    @property
    def num_nodes(self) -> int:
        return int(self.x.shape[0])


def _chw(shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) >= 3:
        return int(shape[1]), int(shape[2]), int(math.prod(shape[3:]))
    if len(shape) == 2:
        return int(shape[1]), 1, 1
    return (int(shape[0]) if shape else 1), 1, 1


def node_rows(specs: list[NodeSpec], op_index: list[int] | None = None) -> np.ndarray:
    """Feature rows of nodes, vectorised (port nodes are built in split_with_ports)."""
    n = len(specs)
    rows = np.zeros((n, NUM_FEATURES), np.float32)
    if not n:
        return rows
    ops = op_index or [_OP_INDEX.get(s.op_type, OTHER) for s in specs]
    rows[np.arange(n), ops] = 1.0
    num = np.zeros((n, 19), np.float64)
    for i, s in enumerate(specs):
        k = s.kernel or ()
        st = s.stride or ()
        cin, hin, win = _chw(s.in_shape)
        cout, hout, wout = _chw(s.out_shape)
        g = max(int(s.group), 1)
        num[i] = (
            k[0] if k else 0, k[-1] if k else 0, st[0] if st else 0, st[-1] if st else 0, g - 1,
            1.0 if g > 1 and g == cin else 0.0, cin, hin, win, cout, hout, wout, s.macs, s.params,
            s.act_bytes, s.data_inputs, cin * hin * win, s.repeat - 1,
            1.0 if (cout * hout * wout) != (cin * hin * win) else 0.0,
        )  # fmt: skip
        rows[i, NUM_OPS + 18] = 1.0 if s.bn else 0.0
        rows[i, NUM_OPS + 19] = 1.0 if s.act else 0.0
    lg = np.log2(1.0 + np.maximum(num, 0.0))
    o = NUM_OPS
    rows[:, o + 0 : o + 2] = num[:, 0:2] / 7.0
    rows[:, o + 2 : o + 4] = num[:, 2:4] / 4.0
    rows[:, o + 4] = lg[:, 4] / 10.0
    rows[:, o + 5] = num[:, 5]
    rows[:, o + 6] = lg[:, 6] / 12.0
    rows[:, o + 7 : o + 9] = lg[:, 7:9] / 10.0
    rows[:, o + 9] = lg[:, 9] / 12.0
    rows[:, o + 10 : o + 12] = lg[:, 10:12] / 10.0
    rows[:, o + 12] = lg[:, 12] / 32.0
    rows[:, o + 13] = lg[:, 13] / 28.0
    rows[:, o + 14] = lg[:, 14] / 32.0
    rows[:, o + 15] = num[:, 15] / 4.0
    rows[:, o + 16] = lg[:, 16] / 24.0
    rows[:, o + 17] = num[:, 18]
    rows[:, o + 20] = lg[:, 17] / 4.0
    return rows


def depths(num_nodes: int, edges: np.ndarray) -> np.ndarray:
    """Longest-path depth of each node, normalised to [0, 1] (edges must form a DAG)."""
    preds: list[list[int]] = [[] for _ in range(num_nodes)]
    indeg = np.zeros(num_nodes, np.int64)
    succ: list[list[int]] = [[] for _ in range(num_nodes)]
    for u, v in edges.T.tolist():
        preds[v].append(u)
        succ[u].append(v)
        indeg[v] += 1
    depth = np.zeros(num_nodes, np.float64)
    stack = [i for i in range(num_nodes) if indeg[i] == 0]
    seen = 0
    while stack:
        u = stack.pop()
        seen += 1
        for v in succ[u]:
            depth[v] = max(depth[v], depth[u] + 1)
            indeg[v] -= 1
            if indeg[v] == 0:
                stack.append(v)
    if seen != num_nodes:
        raise ValueError("graph has a cycle")
    top = depth.max() if num_nodes else 0.0
    return (depth / top if top > 0 else depth).astype(np.float32)


def from_specs(
    specs: list[NodeSpec], edges: list[tuple[int, int]], names=None, *, compact: bool = True, protect=None
) -> GraphTensors:
    """Feature rows + edges; `compact` fuses Conv-BN-act chains and collapses repeated blocks.

    protect: original node indices whose blocks must stay uncollapsed (a segment being replaced).
    """
    from autogo_deploy.predictor import compact as cp

    members = [[i] for i in range(len(specs))]
    if compact and specs:
        specs, edges, members = cp.fuse(specs, edges, members)
        keep = {i for i, m in enumerate(members) if protect and any(v in protect for v in m)}
        ids: dict[bytes, int] = {}
        row_id = [ids.setdefault(r.tobytes(), len(ids)) for r in node_rows(specs)]
        specs, edges, members = cp.collapse_repeats(specs, edges, members, row_id, protect=keep)
    x = node_rows(specs)
    e = np.asarray(edges, np.int64).reshape(-1, 2).T.copy() if edges else np.zeros((2, 0), np.int64)
    rep = np.array([s.repeat for s in specs], np.float32)
    return GraphTensors(x=x, edges=e, depth=depths(len(specs), e), repeat=rep, members=members, names=names)


def from_graph(graph, *, compact: bool = True, protect_names=None) -> GraphTensors:
    """Tensors of an `autogo_deploy.graph.Graph` (node order = the graph's canonical order)."""
    specs, edges = [], []
    index = {n.name: i for i, n in enumerate(graph.nodes)}
    for i, n in enumerate(graph.nodes):
        data = [t for t in n.inputs if t and not graph.is_initializer(t)]
        in_shape = graph.shape(data[0]) if data else (n.in_shapes[0] if n.in_shapes else ())
        specs.append(
            NodeSpec(
                op_type=n.op_type,
                kernel=n.kernel,
                stride=n.stride,
                group=n.group,
                in_shape=tuple(in_shape),
                out_shape=tuple(n.out_shapes[0]) if n.out_shapes else (),
                macs=n.macs,
                params=n.params,
                act_bytes=n.act_bytes,
                data_inputs=len(data),
            )
        )
        for t in data:
            p = graph.producer(t)
            if p is not None:
                edges.append((index[p.name], i))
    protect = {index[nm] for nm in protect_names} if protect_names else None
    return from_specs(specs, edges, names=[n.name for n in graph.nodes], compact=compact, protect=protect)


# ---- PSC split ---------------------------------------------------------------------------------
def default_parts(gt: GraphTensors) -> np.ndarray:
    """Whole-graph prediction: S = the middle third by depth, P before it, C after it."""
    return window_parts(gt, 1.0 / 3.0, 2.0 / 3.0)


def window_parts(gt: GraphTensors, lo: float, hi: float) -> np.ndarray:
    d = gt.depth
    parts = np.full(gt.num_nodes, PART_S, np.int64)
    parts[d < lo] = PART_P
    parts[d >= hi] = PART_C
    return parts


def segment_parts(gt: GraphTensors, segment: list[int]) -> np.ndarray:
    """P/S/C for an explicit segment: ancestors of S → P, descendants → C, parallel nodes by depth."""
    n = gt.num_nodes
    in_s = np.zeros(n, bool)
    in_s[np.asarray(segment, np.int64)] = True
    succ: list[list[int]] = [[] for _ in range(n)]
    pred: list[list[int]] = [[] for _ in range(n)]
    for u, v in gt.edges.T.tolist():
        succ[u].append(v)
        pred[v].append(u)

    def reach(start, nbrs):
        seen = np.zeros(n, bool)
        stack = list(start)
        while stack:
            u = stack.pop()
            for v in nbrs[u]:
                if not seen[v]:
                    seen[v] = True
                    stack.append(v)
        return seen

    seg = np.flatnonzero(in_s).tolist()
    desc, anc = reach(seg, succ), reach(seg, pred)
    mid = float(gt.depth[in_s].mean()) if seg else 0.5
    parts = np.where(gt.depth <= mid, PART_P, PART_C).astype(np.int64)
    parts[anc & ~in_s] = PART_P
    parts[desc & ~in_s] = PART_C
    parts[in_s] = PART_S
    return parts


def split_with_ports(gt: GraphTensors, parts: np.ndarray):
    """Cut the graph at part boundaries, adding port nodes that keep the crossing tensor's shape.

    Returns (x, edges, node_part, repeat): the first N rows are the graph's nodes; port rows have
    repeat 0 (they carry shape information, no cost).
    """
    n = gt.num_nodes
    e = gt.edges
    cut = parts[e[0]] != parts[e[1]] if e.size else np.zeros(0, bool)
    keep = e[:, ~cut]
    rows, new_parts, new_edges = [], [], [keep]
    out_port: dict[tuple[int, int], int] = {}
    in_port: dict[tuple[int, int], int] = {}
    nxt = n
    for u, v in e[:, cut].T.tolist():
        key = (u, int(parts[v]))
        if key not in out_port:
            base = gt.x[u]
            for op, part in ((PORT_OUT, parts[u]), (PORT_IN, parts[v])):
                row = np.zeros(NUM_FEATURES, np.float32)
                row[op] = 1.0
                # the crossing tensor's shape, as both input and output shape of the port
                row[NUM_OPS + 6 : NUM_OPS + 9] = base[NUM_OPS + 9 : NUM_OPS + 12]
                row[NUM_OPS + 9 : NUM_OPS + 12] = base[NUM_OPS + 9 : NUM_OPS + 12]
                row[NUM_OPS + 14] = base[NUM_OPS + 14]
                row[NUM_OPS + 16] = base[NUM_OPS + 14]
                rows.append(row)
                new_parts.append(part)
            out_port[key], in_port[key] = nxt, nxt + 1
            new_edges.append(np.array([[u], [nxt]], np.int64))
            nxt += 2
        new_edges.append(np.array([[in_port[key]], [v]], np.int64))
    x = np.concatenate([gt.x, np.stack(rows)]) if rows else gt.x
    node_part = np.concatenate([parts, np.asarray(new_parts, np.int64)]) if rows else parts
    repeat = np.zeros(x.shape[0], np.float32)
    repeat[:n] = gt.repeat
    return x, np.concatenate(new_edges, axis=1), node_part, repeat
