"""Exact rewrites of a spliced graph: what splicing S' into a graph leaves redundant.

A segment boundary often falls between a Conv and its BatchNormalization, and many replacements
end in their own normalisation (NAS-Bench-201's ReLU-Conv-BN, NB101's Conv-BN-ReLU), so a splice
leaves BatchNormalization(BatchNormalization(x)). Two inference-mode BatchNormalizations in a row
are one per-channel affine map, y = a2 * (a1 * x + c1) + c2, so they merge into one without
changing what the network computes (up to float rounding). The written model and the graph the
predictor scores are then the simple one. A target's figures do not change: the measuring harnesses
clean a model with onnxslim, whose Conv+BN fusion, applied repeatedly, folds a Conv-BN-BN chain
too (ResNet-50 after 150 generations on npu-sim: 1.802 ms measured either way; the bare cost model,
which folds one BatchNormalization per Conv, gives 1.861 ms for the chained graph). The merged node
keeps the second node's name and output; its parameters are new initializers.

The same holds for a node that computes exactly what another one does (same op, same inputs,
same attributes): two replacements made in different generations can pool the same tensor, and
the harnesses' onnxslim cleanup merges such twins by common-subexpression elimination, so the
figures are measured on the graph without them. `merge_duplicate_nodes` merges them in the mutant
itself: the written model does not compute anything twice, and the cost model run on a mutant in
the proposer (npu-sim, `proposers._modeled`) sees the graph the measurement sees.

A ReLU whose input can never be negative is the identity: NAS-Bench-201's ReLU-Conv-BN cells
start with one, so a replacement spliced after a Conv+ReLU computes ReLU(ReLU(x)). onnxslim keeps
such chains (39 of them in one ResNet-50 search result, 1.7% of its ort-cpu latency, outputs
bit-identical without them). `drop_redundant_relus` removes the ones the splice added or fed.

Only pairs with a node the splice added are touched: the rest of the graph is the user's and
stays as they wrote it.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from autogo_deploy.node_features import attrs_of


def _affine(node: onnx.NodeProto, inits: dict[str, onnx.TensorProto]) -> tuple[np.ndarray, np.ndarray] | None:
    """(a, c) with BN(x) = a * x + c per channel, or None when the node is not a plain
    inference-mode float BatchNormalization with constant parameters."""
    if node.op_type != "BatchNormalization" or len(node.input) != 5 or len(node.output) != 1:
        return None
    if attrs_of(node).get("training_mode", 0):
        return None
    if any(name not in inits or inits[name].data_type != onnx.TensorProto.FLOAT for name in node.input[1:]):
        return None
    scale, bias, mean, var = (numpy_helper.to_array(inits[n]).astype(np.float64) for n in node.input[1:])
    if not scale.ndim == bias.ndim == mean.ndim == var.ndim == 1:
        return None
    a = scale / np.sqrt(var + float(attrs_of(node).get("epsilon", 1e-5)))
    return a, bias - mean * a


def merge_batchnorm_chains(model: onnx.ModelProto, new_nodes: set[str]) -> list[list[str]]:
    """In place: every BatchNormalization fed by another one whose output nothing else reads (and
    that is no graph output), where at least one of the two is in `new_nodes`, becomes one
    BatchNormalization. Returns the merged [first, second] node names."""
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    graph_outputs = {o.name for o in g.output}
    merged: list[list[str]] = []
    while True:
        producer = {o: n for n in g.node for o in n.output}
        readers: dict[str, int] = {}
        for n in g.node:
            for t in n.input:
                readers[t] = readers.get(t, 0) + 1
        pair = None
        for second in g.node:
            first = producer.get(second.input[0]) if second.op_type == "BatchNormalization" else None
            if first is None or first.op_type != "BatchNormalization":
                continue
            if first.name not in new_nodes and second.name not in new_nodes:
                continue
            if readers.get(first.output[0], 0) != 1 or first.output[0] in graph_outputs:
                continue
            one, two = _affine(first, inits), _affine(second, inits)
            if one is None or two is None or one[0].shape != two[0].shape:
                continue
            pair = first, second, one, two
            break
        if pair is None:
            return merged
        first, second, (a1, c1), (a2, c2) = pair
        first_name, first_out, first_in = first.name, first.output[0], first.input[0]
        eps = float(attrs_of(second).get("epsilon", 1e-5))
        # as a BatchNormalization with mean 0 and variance 1: scale * x / sqrt(1 + eps) + bias
        values = {
            "scale": a1 * a2 * np.sqrt(1.0 + eps),
            "bias": a2 * c1 + c2,
            "mean": np.zeros_like(a1),
            "var": np.ones_like(a1),
        }
        names = []
        for key, value in values.items():
            name = f"{second.name}/merged_{key}"
            tensor = numpy_helper.from_array(value.astype(np.float32), name)
            g.initializer.append(tensor)
            inits[name] = tensor
            names.append(name)
        second.input[:] = [first_in, *names]
        g.node.remove(first)
        for i in reversed(range(len(g.value_info))):  # the tensor between the two is gone
            if g.value_info[i].name == first_out:
                del g.value_info[i]
        merged.append([first_name, second.name])
        _drop_unused_initializers(g, inits)


# ops whose two calls with the same inputs need not agree
_NONDETERMINISTIC = ("Random", "Multinomial", "Dropout")


def merge_duplicate_nodes(model: onnx.ModelProto, new_nodes: set[str]) -> list[list[str]]:
    """In place: where two nodes, at least one in `new_nodes`, have the same op, domain, inputs and
    attributes, the later one (graph order, so readers stay after their producer) goes and its
    readers read the earlier one's outputs; repeated until none is left (a merge can make its
    readers twins, which then count as touched by the splice too). A node whose output is a graph
    output stays. Returns the [kept, removed] node names."""
    g = model.graph
    graph_outputs = {o.name for o in g.output}
    touched = set(new_nodes)  # grows by the readers a merge rewires: their twins are its doing
    merged: list[list[str]] = []
    while True:
        seen: dict[tuple, onnx.NodeProto] = {}
        pair = None
        for node in g.node:
            if node.op_type.startswith(_NONDETERMINISTIC) or any(
                a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute
            ):
                continue
            attrs = tuple(sorted(a.SerializeToString(deterministic=True) for a in node.attribute))
            key = (node.domain, node.op_type, tuple(node.input), len(node.output), attrs)
            first = seen.setdefault(key, node)
            if first is node:
                continue
            if (first.name in touched or node.name in touched) and not graph_outputs & set(node.output):
                pair = first, node
                break
        if pair is None:
            return merged
        keep, drop = pair
        touched |= _bypass(g, drop, {o: k for o, k in zip(drop.output, keep.output, strict=True) if o})
        merged.append([keep.name, drop.name])


def _bypass(g: onnx.GraphProto, node: onnx.NodeProto, rename: dict[str, str]) -> set[str]:
    """Remove `node`; its readers read `rename[output]` instead. Returns the readers' names."""
    g.node.remove(node)
    readers = set()
    for n in g.node:
        for k, name in enumerate(n.input):
            if name in rename:
                n.input[k] = rename[name]
                readers.add(n.name)
    for i in reversed(range(len(g.value_info))):
        if g.value_info[i].name in rename:
            del g.value_info[i]
    return readers


# Outputs that are >= 0 whatever the input; ops that keep their first input's sign (pools over
# windows of it, layout changes); ops that are >= 0 when every input is (constants included).
_NONNEG_OPS = frozenset({"Relu", "Sigmoid", "Softmax", "Abs", "Exp", "Softplus"})
_SIGN_OF_FIRST = frozenset(
    {"MaxPool", "GlobalMaxPool", "AveragePool", "GlobalAveragePool", "Identity", "Reshape", "Flatten",
     "Transpose", "Squeeze", "Unsqueeze"}
)  # fmt: skip
_NONNEG_IF_ALL = frozenset({"Add", "Mul", "Concat", "Max", "Min"})


def _non_negative(model: onnx.ModelProto):
    """is_nonneg(tensor name): whether the graph proves the tensor is never negative."""
    g = model.graph
    producer = {o: n for n in g.node for o in n.output if o}
    inits = {t.name: t for t in g.initializer}
    memo: dict[str, bool] = {}

    def const_nonneg(name: str) -> bool:
        t = inits.get(name)
        return (
            t is not None
            and t.data_type == onnx.TensorProto.FLOAT
            and bool((numpy_helper.to_array(t) >= 0).all())
        )

    def is_nonneg(name: str) -> bool:
        if name in memo:
            return memo[name]
        memo[name] = False  # a cycle (none in a valid graph) proves nothing
        n = producer.get(name)
        result = False
        if n is not None and n.domain in ("", "ai.onnx"):
            if n.op_type in _NONNEG_OPS:
                result = True
            elif n.op_type in _SIGN_OF_FIRST:
                result = is_nonneg(n.input[0])
            elif n.op_type in _NONNEG_IF_ALL:
                result = all(const_nonneg(i) or is_nonneg(i) for i in n.input)
            elif n.op_type == "Clip" and len(n.input) > 1 and n.input[1]:
                result = const_nonneg(n.input[1])
        memo[name] = result
        return result

    return is_nonneg, producer


def _proof_nodes(name: str, producer: dict) -> set[str]:
    """The nodes `is_nonneg(name)` looks through (its producer, and theirs through sign-keeping and
    all-non-negative ops)."""
    seen: set[str] = set()
    stack = [name]
    while stack:
        n = producer.get(stack.pop())
        if n is None or n.name in seen:
            continue
        seen.add(n.name)
        if n.op_type in _SIGN_OF_FIRST:
            stack.append(n.input[0])
        elif n.op_type in _NONNEG_IF_ALL:
            stack.extend(n.input)
    return seen


def drop_redundant_relus(model: onnx.ModelProto, new_nodes: set[str]) -> list[str]:
    """In place: remove each ReLU whose input is provably never negative (ReLU(ReLU(x)), a ReLU
    after a max pool of a ReLU, ...) when it, or a node its proof looks through, is in `new_nodes`
    (an old block's ReLU after an Add whose operands a splice made non-negative counts); its readers
    read its input. Which ReLUs qualify is settled first, so an old ReLU after a new one that goes
    is still checked. A ReLU whose output is a graph output stays. Returns the removed node names."""
    g = model.graph
    is_nonneg, producer = _non_negative(model)
    graph_outputs = {o.name for o in g.output}
    relus = [
        n
        for n in g.node
        if n.op_type == "Relu" and n.domain in ("", "ai.onnx") and n.output[0] not in graph_outputs
    ]
    eligible = [
        n
        for n in relus
        if is_nonneg(n.input[0]) and (n.name in new_nodes or _proof_nodes(n.input[0], producer) & new_nodes)
    ]
    dropped: list[str] = []
    for node in eligible:  # graph order: a chain's later ReLU sees its rewired input
        if is_nonneg(node.input[0]):
            _bypass(g, node, {node.output[0]: node.input[0]})
            dropped.append(node.name)
    return dropped


def _drop_unused_initializers(g: onnx.GraphProto, inits: dict[str, onnx.TensorProto]) -> None:
    """Initializers no node reads any more (a merged node's old parameters), unless the graph
    also lists them as inputs."""
    used = {t for n in g.node for t in n.input} | {o.name for o in g.output} | {i.name for i in g.input}
    for i in reversed(range(len(g.initializer))):
        if g.initializer[i].name not in used:
            inits.pop(g.initializer[i].name, None)
            del g.initializer[i]
