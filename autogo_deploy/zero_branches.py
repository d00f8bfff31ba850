"""Zero branches: NAS-Bench-201's 'none' edge, spliced into another network, computes a constant.

`zoo.nb201` emits a 'none' edge as `Mul(x, 0)` where NB201 computes one (a node whose inputs are all
'none', or whose outgoing edges all are), so that the ONNX network computes what NB201 computes and
its MACs and latency match NB201's figures. A replacement cut from such a cell carries the same
pattern into the user's network: `Mul(x, 0) -> ReLU -> Conv -> BN -> Add(y, .)` convolves the zero
tensor, and what reaches the Add is the same per-channel constant at every pixel (the Conv's bias
through the BN). That is work that changes nothing the network computes beyond a bias, and the
accuracy head scores the dead Conv as capacity (as it did the redundant ReLUs, `simplify`).

`fold_zero_branches` evaluates such a branch to its per-channel constant and gives the reader that
constant instead: `y` itself when the constant is zero, the bias of the Conv or BatchNormalization
that makes `y` (when nothing else reads `y`), else `Add(y, c)` with a [1, C, 1, 1] initializer; the
branch's nodes and whatever only fed them go. Exact for finite inputs (x * 0 = 0), up to
float rounding in the constant. A branch is folded only when every value in it is provably uniform
over the spatial positions:

- the zero tensor (`Mul` by an all-zero constant: the seed; only branches the splice touched);
- Conv of the zero tensor (its bias, whatever the padding, stride or group);
- BatchNormalization, Relu, Identity, MaxPool, GlobalAveragePool, GlobalMaxPool of a uniform value;
  AveragePool with count_include_pad=0 (or of zero);
- Add, Sub, Mul, Div, Max, Min of uniform values and constants that are uniform themselves.

Everything else that reads the branch (a Concat, a Conv of a non-zero constant, a graph output, a
broadcast that would change the reader's shape) leaves the branch as it is.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from autogo_deploy.node_features import attrs_of
from autogo_deploy.simplify import _affine, _bypass, _drop_unused_initializers

_PASS_THROUGH = frozenset({"Identity", "MaxPool", "GlobalAveragePool", "GlobalMaxPool"})
_BINARY = {
    "Add": np.add,
    "Sub": np.subtract,
    "Mul": np.multiply,
    "Div": np.divide,
    "Max": np.maximum,
    "Min": np.minimum,
}


def _shapes(model: onnx.ModelProto) -> dict[str, tuple]:
    """Tensor name -> static shape (dims without a value as None), from the inferred value_info."""
    out = {}
    for v in [*model.graph.value_info, *model.graph.output, *model.graph.input]:
        if v.type.HasField("tensor_type") and v.type.tensor_type.HasField("shape"):
            dims = v.type.tensor_type.shape.dim
            out[v.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)
    return out


def _uniform_const(t: onnx.TensorProto | None, rank: int) -> np.ndarray | None:
    """A float initializer that is the same at every spatial position, as a rank-`rank` array."""
    if t is None or t.data_type != onnx.TensorProto.FLOAT:
        return None
    a = numpy_helper.to_array(t).astype(np.float64)
    if a.ndim > rank:
        return None
    a = a.reshape((1,) * (rank - a.ndim) + a.shape)
    return a if all(d == 1 for d in a.shape[2:]) else None


class _Branch:
    """The uniform values reachable from one zero seed."""

    def __init__(self, model: onnx.ModelProto, shapes: dict[str, tuple]):
        self.g = model.graph
        self.inits = {t.name: t for t in self.g.initializer}
        self.shapes = shapes
        self.readers: dict[str, list[onnx.NodeProto]] = {}
        for n in self.g.node:
            for name in n.input:
                self.readers.setdefault(name, []).append(n)

    def seed_value(self, node: onnx.NodeProto) -> np.ndarray | None:
        """Zeros of the output's rank when `node` is Mul by an all-zero float constant."""
        if node.op_type != "Mul" or node.domain not in ("", "ai.onnx") or len(node.input) != 2:
            return None
        shape = self.shapes.get(node.output[0])
        if shape is None or len(shape) < 3:
            return None
        consts = [self.inits.get(i) for i in node.input]
        if not any(
            c is not None and c.data_type == onnx.TensorProto.FLOAT and not numpy_helper.to_array(c).any()
            for c in consts
        ):
            return None
        # the zero tensor has the output's shape: the other operand must not be broadcast up
        other = [i for i, c in zip(node.input, consts, strict=True) if c is None]
        if any(self.shapes.get(i) != shape for i in other):
            return None
        return np.zeros((1,) * len(shape))

    def value(self, node: onnx.NodeProto, values: dict[str, np.ndarray]) -> np.ndarray | None:
        """The output of `node` when its activation inputs are the uniform `values`; None when it
        is not provably uniform (or not an op this module knows)."""
        if node.domain not in ("", "ai.onnx") or len(node.output) != 1:
            return None
        op, ins = node.op_type, [i for i in node.input if i]
        v = values.get(ins[0]) if ins else None
        if op == "Relu" and v is not None:
            return np.maximum(v, 0.0)
        if op in _PASS_THROUGH and v is not None:
            return v
        if op == "AveragePool" and v is not None:
            a = attrs_of(node)
            padded = any(a.get("pads", ())) or a.get("auto_pad", "NOTSET") != "NOTSET"
            return None if a.get("count_include_pad", 0) and padded and v.any() else v
        if op == "BatchNormalization" and v is not None and all(i in self.inits for i in ins[1:]):
            affine = _affine(node, self.inits)
            if affine is None:
                return None
            shape = (1, -1) + (1,) * (v.ndim - 2)
            return affine[0].reshape(shape) * v + affine[1].reshape(shape)
        if op == "Conv" and v is not None and not v.any() and all(i in self.inits for i in ins[1:]):
            w = self.inits[ins[1]]
            shape = (1, -1) + (1,) * (v.ndim - 2)
            if len(ins) > 2:
                return numpy_helper.to_array(self.inits[ins[2]]).astype(np.float64).reshape(shape)
            return np.zeros((1, int(w.dims[0])) + (1,) * (v.ndim - 2))
        if op in _BINARY and len(ins) == 2:
            args = []
            for i in ins:
                a = values.get(i)
                if a is None:
                    a = _uniform_const(self.inits.get(i), len(self.shapes.get(node.output[0], ())))
                if a is None:
                    return None
                args.append(a)
            with np.errstate(divide="ignore", invalid="ignore"):
                out = _BINARY[op](*args)
            return out if np.isfinite(out).all() else None
        return None

    def grow(self, seed: onnx.NodeProto, value: np.ndarray):
        """(region nodes, tensor values) closed forward from the seed: a node joins when every
        activation input it has is a region value and its output is provably uniform."""
        values = {seed.output[0]: value}
        region, inside = [seed], {id(seed)}
        frontier = [seed.output[0]]
        while frontier:
            t = frontier.pop()
            for n in self.readers.get(t, []):
                if id(n) in inside:
                    continue
                acts = [i for i in n.input if i and i not in self.inits]
                if not all(i in values for i in acts):
                    continue  # reads the branch and something else: a reader, settled by fold()
                out = self.value(n, values)
                if out is None:
                    continue
                values[n.output[0]] = out
                region.append(n)
                inside.add(id(n))
                frontier.append(n.output[0])
        return region, values


def _reader_plan(branch: _Branch, region: list, values: dict[str, np.ndarray], graph_outputs: set[str]):
    """[(reader, input index, constant)] for every use of a region value outside the region, or
    None when one of them cannot take a broadcast constant in its place."""
    inside = {id(n) for n in region}
    plan = []
    for t, v in values.items():
        if t in graph_outputs:
            return None
        for n in branch.readers.get(t, []):
            if id(n) in inside:
                continue
            if n.op_type not in _BINARY or len(n.input) != 2 or n.domain not in ("", "ai.onnx"):
                return None
            out_shape = branch.shapes.get(n.output[0])
            k = list(n.input).index(t)
            other = n.input[1 - k]
            if other in values:
                return None  # both operands from the branch, yet not provably uniform (x / 0)
            if out_shape is None or branch.shapes.get(other) != out_shape or None in out_shape:
                return None  # the constant must not change the reader's output shape
            if len(out_shape) != v.ndim or any(d != 1 for d in v.shape[2:]):
                return None
            plan.append((n, k, v))
    return plan


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


def fold_zero_branches(model: onnx.ModelProto, new_nodes: set[str]) -> list[dict]:
    """In place, on a shape-inferred model: fold every zero branch (module docstring) the splice
    touched: its seed, one of its nodes or one of its readers is in `new_nodes` (a branch an earlier
    mutation brought in, whose reader was a Concat then and is an Add now, folds when it is
    touched again). Returns one record per folded branch: its seed, the nodes removed, and how many
    readers got a constant or were bypassed (a zero constant added)."""
    g = model.graph
    graph_outputs = {o.name for o in g.output}
    folded: list[dict] = []
    done = False
    while not done:  # one branch at a time: each fold rewires readers the next search must see
        done = True
        branch = _Branch(model, _shapes(model))
        for seed in list(g.node):
            zero = branch.seed_value(seed)
            if zero is None:
                continue
            region, values = branch.grow(seed, zero)
            plan = _reader_plan(branch, region, values, graph_outputs)
            if plan is None or not any(n.name in new_nodes for n in [*region, *(r for r, _, _ in plan)]):
                continue
            record = _fold(g, branch, region, plan, graph_outputs)
            record["seed"] = seed.name
            folded.append(record)
            done = False
            break
    return folded


def _absorb(
    g: onnx.GraphProto, branch: _Branch, add: onnx.NodeProto, k: int, v: np.ndarray, graph_outputs
) -> bool:
    """Add the constant into the bias of the Conv or BatchNormalization that makes the Add's other
    operand, when nothing else reads that operand; the Add goes. Returns the Add's readers (now
    reading the producer), or None when it cannot."""
    y = add.input[1 - k]
    p = next((n for n in g.node if y in n.output), None)
    if (
        p is None
        or y in graph_outputs
        or len(branch.readers.get(y, [])) != 1
        or p.domain not in ("", "ai.onnx")
    ):
        return None
    if p.op_type == "Conv" and len(p.input) >= 2 and p.input[1] in branch.inits:
        channels, slot = int(branch.inits[p.input[1]].dims[0]), 2
    elif p.op_type == "BatchNormalization" and _affine(p, branch.inits) is not None:
        channels, slot = int(branch.inits[p.input[2]].dims[0]), 2
    else:
        return None
    c = v.reshape(-1)
    if c.size not in (1, channels):
        return None
    bias = np.zeros(channels) if len(p.input) <= slot or not p.input[slot] else None
    if bias is None:
        if p.input[slot] not in branch.inits:
            return None
        bias = numpy_helper.to_array(branch.inits[p.input[slot]]).astype(np.float64)
    name = f"{p.name}/bias_with_folded_const"
    g.initializer.append(numpy_helper.from_array((bias + c).astype(np.float32), name))
    if len(p.input) <= slot:
        p.input.append(name)
    else:
        p.input[slot] = name
    return _bypass(g, add, {add.output[0]: y})


def _fold(g: onnx.GraphProto, branch: _Branch, region: list, plan: list, graph_outputs: set[str]) -> dict:
    bypassed = absorbed = constants = 0
    rewired: set[str] = set()  # nodes that read another tensor now
    for n, k, v in plan:
        readers = None
        if n.op_type == "Add" and not v.any() and n.output[0] not in graph_outputs:
            readers = _bypass(g, n, {n.output[0]: n.input[1 - k]})  # y + 0
            bypassed += 1
        elif n.op_type == "Add" and n.output[0] not in graph_outputs:
            readers = _absorb(g, branch, n, k, v, graph_outputs)  # Conv(...) + b + c: bias b + c
            absorbed += readers is not None
        if readers is not None:
            rewired |= readers
        else:
            name = f"{n.name}/folded_const{k}"
            g.initializer.append(numpy_helper.from_array(v.astype(np.float32), name))
            n.input[k] = name
            constants += 1
    for n in region:
        g.node.remove(n)
    removed = [n.name for n in region] + _drop_dead_nodes(g)
    live = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    for i in reversed(range(len(g.value_info))):
        if g.value_info[i].name not in live:
            del g.value_info[i]
    _drop_unused_initializers(g, branch.inits)
    return {
        "removed": removed,
        "constants": constants,
        "absorbed_in_bias": absorbed,
        "zero_adds_bypassed": bypassed,
        "rewired": sorted(rewired),
    }
