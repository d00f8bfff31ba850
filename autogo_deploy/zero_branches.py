"""Zero branches: NAS-Bench-201's 'none' edge, spliced into another network, computes a constant.

`zoo.nb201` emits a 'none' edge as `Mul(x, 0)` where NB201 computes one (a node whose inputs are all
'none', or whose outgoing edges all are), so that the ONNX network computes what NB201 computes and
its MACs and latency match NB201's figures. A replacement cut from such a cell carries the same
pattern into the user's network: `Mul(x, 0) -> ReLU -> Conv -> BN -> Add(y, .)` convolves the zero
tensor, and what reaches the Add is the same whatever the input: a constant (the Conv's bias through
the BN, per channel). That is work that changes nothing the network computes beyond a bias, and the
accuracy head scores the dead Conv as capacity (as it did the redundant ReLUs, `simplify`); a
search left to itself finds such convolutions and keeps them.

`fold_zero_branches` takes the *data-free region* of each zero tensor: the nodes whose every
non-constant input comes from the zero tensor or from the region itself (any op). Nothing in it
depends on the network's input, so it is evaluated once (onnxruntime, on the region alone, the zero
tensor as a constant) and each value a node outside reads is replaced by that constant:

- `y` itself, where the reader is `Add(y, c)` and c is zero;
- the bias of the Conv or BatchNormalization that makes `y`, where the reader is `Add(y, c)`, c is
  the same at every pixel and nothing else reads `y`;
- else an initializer: [1, C, 1, 1] where c is the same at every pixel and the reader broadcasts it
  (Add/Sub/Mul/Div/Max/Min with an operand of the output's shape), the full tensor otherwise.

The region's nodes, and whatever only fed them, go. Exact for finite inputs (x * 0 = 0), up to
float rounding. Left alone: branches the splice did not touch (neither the seed, a node of the
region nor a reader is new), regions that reach a graph output, regions with subgraph or random ops,
and constants over MAX_CONST_BYTES.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from autogo_deploy.resolve_ops import static_shapes
from autogo_deploy.simplify import _affine, _bypass, _drop_unused_initializers

MAX_CONST_BYTES = 8 << 20  # a full-size constant this big is kept as the branch that computes it
_BROADCASTING = frozenset({"Add", "Sub", "Mul", "Div", "Max", "Min"})
_NOT_FOLDABLE = frozenset(
    {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial",
     "Bernoulli", "Dropout", "If", "Loop", "Scan"}
)  # fmt: skip


class _Graph:
    """Lookups over one state of the graph."""

    def __init__(self, model: onnx.ModelProto):
        self.model, self.g = model, model.graph
        self.inits = {t.name: t for t in self.g.initializer}
        self.shapes = static_shapes(model)
        self.readers: dict[str, list[onnx.NodeProto]] = {}
        for n in self.g.node:
            for name in n.input:
                self.readers.setdefault(name, []).append(n)

    def is_seed(self, node: onnx.NodeProto) -> bool:
        """Mul by an all-zero float constant whose output has a static shape and is not broadcast
        up from the constant (so it is the zero tensor of that shape)."""
        if node.op_type != "Mul" or node.domain not in ("", "ai.onnx") or len(node.input) != 2:
            return False
        shape = self.shapes.get(node.output[0])
        if not shape:
            return False
        consts = [self.inits.get(i) for i in node.input]
        zero = any(
            c is not None and c.data_type == onnx.TensorProto.FLOAT and not numpy_helper.to_array(c).any()
            for c in consts
        )
        others = [i for i, c in zip(node.input, consts, strict=True) if c is None]
        return zero and all(self.shapes.get(i) == shape for i in others)

    def region(self, seed: onnx.NodeProto) -> list[onnx.NodeProto]:
        """The seed and every node whose non-constant inputs all come from the region (graph
        order, so topological)."""
        tensors = {seed.output[0]}
        nodes = [seed]
        for n in self.g.node:
            if n is seed or n.domain not in ("", "ai.onnx") or n.op_type in _NOT_FOLDABLE:
                continue
            acts = [i for i in n.input if i and i not in self.inits]
            if acts and all(i in tensors for i in acts):
                nodes.append(n)
                tensors.update(o for o in n.output if o)
        return nodes


def _evaluate(
    model: onnx.ModelProto, seed: onnx.NodeProto, region: list, wanted: list[str], shapes
) -> list | None:
    """The values of `wanted` computed by the region alone, the seed's output a zero constant; None
    when onnxruntime cannot run it."""
    import onnxruntime as ort

    used = {i for n in region[1:] for i in n.input}
    inits = [t for t in model.graph.initializer if t.name in used]
    zero = numpy_helper.from_array(np.zeros(shapes[seed.output[0]], np.float32), seed.output[0])
    graph = helper.make_graph(
        list(region[1:]),
        "data_free_region",
        [],
        [helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None) for t in wanted],
        [*inits, zero],
    )
    sub = helper.make_model(graph, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        sess = ort.InferenceSession(sub.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        values = sess.run(wanted, {})
    except Exception:  # an op onnxruntime rejects alone: the branch stays as it is
        return None
    return values if all(np.isfinite(v).all() for v in values) else None


def _per_channel(v: np.ndarray) -> np.ndarray | None:
    """v as [1, C, 1, ...] when it is the same at every spatial position (up to float rounding: an
    average pool of a constant sums 4 or 9 copies), else None."""
    if v.ndim < 3:
        return None
    corner = v[(slice(None), slice(None)) + (slice(0, 1),) * (v.ndim - 2)]
    scale = max(1.0, float(np.abs(v).max()))
    return corner if np.allclose(v, corner, rtol=1e-6, atol=1e-6 * scale) else None


def fold_zero_branches(model: onnx.ModelProto, new_nodes: set[str]) -> list[dict]:
    """In place, on a shape-inferred model: fold the data-free region of every zero tensor the
    splice touched (its seed, one of its nodes or one of its readers is in `new_nodes`: a branch
    an earlier mutation left folds once a later one touches it). Module docstring. Returns one
    record per folded region: its seed, the nodes removed, how its values were given to their
    readers, and the nodes that read another tensor now (`rewired`)."""
    if not any(n.op_type == "Mul" for n in model.graph.node):  # most mutants: nothing to look at
        return []
    graph_outputs = {o.name for o in model.graph.output}
    folded: list[dict] = []
    tried: set[str] = set()
    while True:  # one region at a time: each fold rewires readers the next one must see
        gr = _Graph(model)
        record = None
        for seed in list(gr.g.node):
            if seed.name in tried or not gr.is_seed(seed):
                continue
            tried.add(seed.name)
            record = _fold_region(gr, seed, new_nodes, graph_outputs)
            if record is not None:
                folded.append(record)
                break
        if record is None:
            return folded


def _fold_region(gr: _Graph, seed: onnx.NodeProto, new_nodes: set[str], graph_outputs: set[str]):
    region = gr.region(seed)
    inside = {id(n) for n in region}
    made = {o for n in region for o in n.output if o}
    if made & graph_outputs:
        return None
    uses = [(r, k) for t in sorted(made) for r in gr.readers.get(t, []) if id(r) not in inside
            for k, i in enumerate(r.input) if i == t]  # fmt: skip
    if not uses or not any(n.name in new_nodes for n in [*region, *(r for r, _ in uses)]):
        return None
    wanted = sorted({r.input[k] for r, k in uses})
    values = _evaluate(gr.model, seed, region, wanted, gr.shapes)
    if values is None:
        return None
    value = dict(zip(wanted, values, strict=True))
    small = {t: _per_channel(v) for t, v in value.items()}
    for r, k in uses:  # each full-size constant must fit, each small one must broadcast
        t = r.input[k]
        if small[t] is not None and not _broadcasts(gr, r, k):
            small[t] = None
        if small[t] is None and value[t].nbytes > MAX_CONST_BYTES:
            return None
    counts = {"absorbed_in_bias": 0, "zero_adds_bypassed": 0, "constants": 0}
    rewired: set[str] = set()
    added: dict[str, str] = {}
    for r, k in uses:
        t = r.input[k]
        c = small[t]
        readers = None
        if c is not None and r.op_type == "Add" and r.output[0] not in graph_outputs:
            if not c.any():
                readers = _bypass(gr.g, r, {r.output[0]: r.input[1 - k]})  # y + 0
                counts["zero_adds_bypassed"] += 1
            else:
                readers = _absorb(gr, r, k, c, graph_outputs)  # Conv(...) + b + c: bias b + c
                counts["absorbed_in_bias"] += readers is not None
        if readers is not None:
            rewired |= readers
            continue
        if t not in added:
            added[t] = f"{t}/folded_const"
            v = c if c is not None else value[t]
            gr.g.initializer.append(numpy_helper.from_array(v.astype(np.float32), added[t]))
            counts["constants"] += 1
        r.input[k] = added[t]
        rewired.add(r.name)
    for n in region:
        gr.g.node.remove(n)
    removed = [n.name for n in region] + _drop_dead_nodes(gr.g)
    live = {i for n in gr.g.node for i in n.input} | graph_outputs
    for i in reversed(range(len(gr.g.value_info))):
        if gr.g.value_info[i].name not in live:
            del gr.g.value_info[i]
    _drop_unused_initializers(gr.g, gr.inits)
    return {"seed": seed.name, "removed": removed, **counts, "rewired": sorted(rewired)}


def _broadcasts(gr: _Graph, reader: onnx.NodeProto, k: int) -> bool:
    """Whether `reader` can take a [1, C, 1, ...] constant at input k and keep its output shape."""
    if reader.op_type not in _BROADCASTING or len(reader.input) != 2 or reader.domain not in ("", "ai.onnx"):
        return False
    out = gr.shapes.get(reader.output[0])
    return bool(out) and gr.shapes.get(reader.input[1 - k]) == out


def _absorb(gr: _Graph, add: onnx.NodeProto, k: int, c: np.ndarray, graph_outputs) -> set[str] | None:
    """Add the per-channel constant into the bias of the Conv or BatchNormalization that makes the
    Add's other operand, when nothing else reads that operand; the Add goes. Returns the Add's
    readers (now reading the producer), or None when it cannot."""
    y = add.input[1 - k]
    p = next((n for n in gr.g.node if y in n.output), None)
    if p is None or y in graph_outputs or len(gr.readers.get(y, [])) != 1 or p.domain not in ("", "ai.onnx"):
        return None
    if p.op_type == "Conv" and len(p.input) >= 2 and p.input[1] in gr.inits:
        channels = int(gr.inits[p.input[1]].dims[0])
    elif p.op_type == "BatchNormalization" and _affine(p, gr.inits) is not None:
        channels = int(gr.inits[p.input[2]].dims[0])
    else:
        return None
    c = c.reshape(-1).astype(np.float64)
    if c.size != channels:
        return None
    if len(p.input) > 2 and p.input[2]:
        if p.input[2] not in gr.inits:
            return None
        bias = numpy_helper.to_array(gr.inits[p.input[2]]).astype(np.float64)
    else:
        bias = np.zeros(channels)
    name = f"{p.name}/bias_with_folded_const"
    gr.g.initializer.append(numpy_helper.from_array((bias + c).astype(np.float32), name))
    if len(p.input) > 2:
        p.input[2] = name
    else:
        p.input.append(name)
    return _bypass(gr.g, add, {add.output[0]: y})


def _drop_dead_nodes(g: onnx.GraphProto) -> list[str]:
    """Remove nodes none of whose outputs is read or a graph output, until none is left."""
    removed: list[str] = []
    while True:
        used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
        dead = [n for n in g.node if not any(o in used for o in n.output if o)]
        if not dead:
            return removed
        for n in dead:
            g.node.remove(n)
            removed.append(n.name)
