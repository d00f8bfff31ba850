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
NUM_NUMERIC = 23
NUM_FEATURES = NUM_OPS + NUM_NUMERIC
ZERO_COL = NUM_OPS + 21  # the node multiplies by a constant zero
ALIVE_COL = NUM_OPS + 22  # the node carries information from the input to the output (see alive())
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
    zero: bool = False  # multiplies by a constant zero (NB201's 'none' edge): its output is all zeros


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
        rows[i, NUM_OPS + 21] = 1.0 if s.zero else 0.0
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
    specs: list[NodeSpec],
    edges: list[tuple[int, int]],
    names=None,
    *,
    compact: bool = True,
    protect=None,
    members: list[list[int]] | None = None,
) -> GraphTensors:
    """Feature rows + edges; `compact` fuses Conv-BN-act chains and collapses repeated blocks.

    protect: member ids (original node indices) whose blocks must stay uncollapsed (a segment being
    replaced); members: initial member lists per spec (default: [[i]]).
    """
    from autogo_deploy.predictor import compact as cp

    members = members if members is not None else [[i] for i in range(len(specs))]
    if compact and specs:
        specs, edges, members = cp.fuse(specs, edges, members)
        keep = {i for i, m in enumerate(members) if protect and any(v in protect for v in m)}
        ids: dict[bytes, int] = {}
        row_id = [ids.setdefault(r.tobytes(), len(ids)) for r in node_rows(specs)]
        specs, edges, members = cp.collapse_repeats(specs, edges, members, row_id, protect=keep)
    x = node_rows(specs)
    e = np.asarray(edges, np.int64).reshape(-1, 2).T.copy() if edges else np.zeros((2, 0), np.int64)
    x[:, ALIVE_COL] = alive(x[:, ZERO_COL] > 0, e)
    rep = np.array([s.repeat for s in specs], np.float32)
    return GraphTensors(x=x, edges=e, depth=depths(len(specs), e), repeat=rep, members=members, names=names)


def alive(zero: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """1.0 for nodes on an input→output path that no zero-multiply cuts, else 0.0.

    A node fed only by zero (or dead) tensors computes a constant; a node whose result reaches the
    output only through zero-multiplies does not influence it. Such nodes still cost time (they run)
    but carry no information about what the network computes, so the accuracy head ignores them
    (model.py) and equivalent networks (NB201 cells that differ only in dead edges) look the same.
    """
    n = len(zero)
    succ: list[list[int]] = [[] for _ in range(n)]
    pred: list[list[int]] = [[] for _ in range(n)]
    for u, v in edges.T.tolist():
        succ[u].append(v)
        pred[v].append(u)
    order = np.argsort(depths(n, edges), kind="stable")
    live = np.zeros(n, bool)
    for v in order:
        live[v] = not zero[v] and (not pred[v] or any(live[u] for u in pred[v]))
    useful = np.zeros(n, bool)
    for v in order[::-1]:
        useful[v] = live[v] and (not succ[v] or any(useful[w] for w in succ[v]))
    return useful.astype(np.float32)


def from_graph(graph, *, compact: bool = True, protect_names=None) -> GraphTensors:
    """Tensors of an `autogo_deploy.graph.Graph`; members refer to positions in graph.nodes."""
    specs, edges, spec_of = graph_specs(graph)
    members: list[list[int]] = [[] for _ in specs]
    for i, j in enumerate(spec_of):
        members[j].append(i)
    protect = None
    if protect_names:
        index = {n.name: i for i, n in enumerate(graph.nodes)}
        protect = {index[nm] for nm in protect_names}  # members (and protect) use graph positions
    names = [n.name for n in graph.nodes]
    return from_specs(specs, edges, names=names, compact=compact, protect=protect, members=members)


def graph_specs(graph, *, cse: bool = True):
    """The raw node facts and data edges of a Graph (independent of the feature encoding).

    Returns (specs, edges, spec_of) where spec_of[i] is the spec index of graph node i. With `cse`,
    nodes with the same op, attributes and inputs are merged (what graph.load's onnxslim cleanup
    does), so a model loaded without cleanup reads like the cleaned ones the predictor trained on.
    """
    specs, edges = [], []
    zero_consts = _zero_initializers(graph)
    seen: dict[tuple, int] = {}
    spec_graph_index: list[int] = []  # spec index → the graph node it was made from
    alias: dict[str, str] = {}
    spec_of: list[int] = []
    producer: dict[str, int] = {}
    for n in graph.nodes:
        inputs = tuple(alias.get(t, t) for t in n.inputs)
        key = (n.op_type, inputs, repr(sorted(n.attrs.items()))) if cse else None
        if key is not None and key in seen:
            j = seen[key]
            first = graph.nodes[spec_graph_index[j]]
            alias.update({o: alias.get(f, f) for o, f in zip(n.outputs, first.outputs, strict=False) if o})
            spec_of.append(j)
            continue
        data = [t for t in inputs if t and not graph.is_initializer(t)]
        in_shape = graph.shape(data[0]) if data else (n.in_shapes[0] if n.in_shapes else ())
        j = len(specs)
        spec_graph_index.append(len(spec_of))
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
                zero=n.op_type == "Mul" and any(t in zero_consts for t in n.inputs),
            )
        )
        if key is not None:
            seen[key] = j
        spec_of.append(j)
        for t in data:
            if t in producer:
                edges.append((producer[t], j))
        for o in n.outputs:
            if o:
                producer[o] = j
    return specs, edges, spec_of


def specs_to_json(specs: list[NodeSpec], edges: list[tuple[int, int]]) -> str:
    import json
    from dataclasses import asdict

    return json.dumps({"nodes": [asdict(s) for s in specs], "edges": [list(e) for e in edges]})


def specs_from_json(text: str) -> tuple[list[NodeSpec], list[tuple[int, int]]]:
    import json

    doc = json.loads(text)
    specs = []
    for d in doc["nodes"]:
        for k in ("kernel", "stride", "in_shape", "out_shape"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        specs.append(NodeSpec(**d))
    return specs, [tuple(e) for e in doc["edges"]]


def _zero_initializers(graph) -> set[str]:
    """Names of small constant initializers that are all zeros (read only for Mul inputs)."""
    from onnx import numpy_helper

    wanted = {t for n in graph.nodes if n.op_type == "Mul" for t in n.inputs if t and graph.is_initializer(t)}
    out = set()
    for t in graph.model.graph.initializer:
        if t.name in wanted and np.prod(t.dims) <= 1024 and not np.any(numpy_helper.to_array(t)):
            out.add(t.name)
    return out


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
                row[ALIVE_COL] = base[ALIVE_COL]
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


OP_COUNT_NAMES = ("conv_k1", "conv_k3plus", "pool", "add", "zero_mul")


def op_counts(gt: GraphTensors) -> np.ndarray:
    """Repeat-weighted node counts by kind (OP_COUNT_NAMES): the per-op terms of the few-shot
    least-squares candidate (fewshot.fit_embedding), computable for any graph."""
    x = np.asarray(gt.x, np.float64)
    rep = np.asarray(gt.repeat, np.float64).reshape(-1)
    op = x[:, :NUM_OPS]
    conv = op[:, _OP_INDEX["Conv"]] + op[:, _OP_INDEX["ConvTranspose"]]
    kernel = np.round(x[:, NUM_OPS] * 7.0)
    pool = op[:, _OP_INDEX["AveragePool"]] + op[:, _OP_INDEX["MaxPool"]]
    add = op[:, _OP_INDEX["Add"]] + op[:, _OP_INDEX["Sum"]]
    zero = x[:, ZERO_COL]
    cols = (conv * (kernel <= 1), conv * (kernel > 1), pool, add, zero)
    return np.array([float((c * rep).sum()) for c in cols])
