"""Materialise S' for a resolved plan: the MILP's channels, strides and options written into the
replacement's nodes, and weights for every parameterised node. A node of S' whose parameter shapes
exactly match an unused node of S of the same type (and group) inherits that node's weights; every
other one gets Kaiming-normal weights drawn from the mutation's seed (biases zero, normalisation
identity; broadcast constants tiled to their new width).
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import numpy_helper

from autogo_deploy.resolve import Plan
from autogo_deploy.resolve_ops import PARAM_OPS, Op, Segment


def materialise(seg: Segment, plan: Plan, graph, members, seed: int):
    """S' with the plan's attributes and fresh or inherited weights.

    Returns (model, fresh_param_count, [(S' node, inherited-from S node)])."""
    model = onnx.ModelProto()
    model.CopyFrom(seg.model)
    g = model.graph
    shapes = plan.shapes
    arrays = dict(seg.consts)
    new_arrays: dict[str, np.ndarray] = {}
    fresh = 0
    inherited: list[tuple[str, str]] = []
    donors = [n for n in members if n.op_type in PARAM_OPS]
    used_donors: set[str] = set()
    protos = {n.name: n for n in g.node}
    for pos, op in enumerate(seg.ops):
        node = protos[op.name]
        rng = np.random.default_rng([seed, pos])
        cin, cout = shapes[op.acts[0]][1], shapes[op.out][1]
        params = _param_shapes(op, node, plan, cin, cout, arrays)
        if op.kind == "window":
            _set_attr(node, "strides", list(plan.options[op.name]))
        if op.kind == "resize":  # always expressed with scales: (X, roi, scales)
            while len(node.input) < 3:
                node.input.append("")
            del node.input[3:]
        if op.op_type in ("Conv", "ConvTranspose"):
            _set_attr(node, "group", int(plan.groups[op.name]))
        donor = _find_donor(op, node, params, donors, used_donors, graph, plan)
        for idx, shape in params.items():
            name = f"{node.input[idx]}__{op.name}" if node.input[idx] else f"{op.name}__in{idx}"
            if donor is not None:
                value = graph.initializers[donor.inputs[idx]]
            else:
                value = _init_value(op, idx, shape, arrays.get(node.input[idx]), rng, plan)
                fresh += int(np.prod(shape))
            while len(node.input) <= idx:
                node.input.append("")
            node.input[idx] = name
            new_arrays[name] = np.ascontiguousarray(value)
        if donor is not None:
            inherited.append((op.name, donor.name))
    used = {t for n in g.node for t in n.input}
    keep = [t for t in g.initializer if t.name in used and t.name not in new_arrays]
    del g.initializer[:]
    g.initializer.extend(keep)
    g.initializer.extend(numpy_helper.from_array(a, n) for n, a in new_arrays.items())
    for vi in list(g.input) + list(g.output):
        if vi.name in shapes:
            dims = vi.type.tensor_type.shape.dim
            for d, v in zip(dims, shapes[vi.name], strict=True):
                d.Clear()
                d.dim_value = int(v)
    del g.value_info[:]
    return model, fresh, inherited


def _set_attr(node: onnx.NodeProto, name: str, value) -> None:
    for i, a in enumerate(node.attribute):
        if a.name == name:
            del node.attribute[i]
            break
    node.attribute.append(onnx.helper.make_attribute(name, value))


def _param_shapes(op: Op, node, plan: Plan, cin: int, cout: int, arrays) -> dict[int, tuple[int, ...]]:
    """Input index -> new shape, for every constant input that changes with the plan."""
    t, out = op.op_type, plan.shapes[op.out]
    if t in ("Conv", "ConvTranspose"):
        g = plan.groups[op.name]
        k = tuple(op.wshape[2:])
        w = (cout, cin // g, *k) if t == "Conv" else (cin, cout // g, *k)
        res = {1: w}
        if len(node.input) > 2 and node.input[2]:
            res[2] = (cout,)
        return res
    if t in ("Gemm", "MatMul"):
        trans_b = op.attrs.get("transB", 0)
        res = {1: (cout, cin) if trans_b else (cin, cout)}
        if t == "Gemm" and len(node.input) > 2 and node.input[2]:
            old = arrays[node.input[2]].shape
            res[2] = tuple(cout if d != 1 else 1 for d in old) if old else ()
        return res
    if t in ("BatchNormalization", "InstanceNormalization"):
        return {i: (cout,) for i in range(1, len(node.input)) if node.input[i]}
    if op.kind == "flatten" and t == "Reshape":
        return {1: (2,)}
    if op.kind == "resize":
        return {2: (len(out),)}
    res = {}
    for i, name in enumerate(node.input):  # broadcast constants: resize the channel axis
        if i == 0 and op.kind != "nary" or name not in arrays or name in op.acts:
            continue
        old = arrays[name].shape
        ax = 1 - (len(out) - len(old))
        if old and 0 <= ax < len(old) and old[ax] != 1 and old[ax] != out[1]:
            res[i] = tuple(out[1] if j == ax else d for j, d in enumerate(old))
    return res


def _init_value(op: Op, idx: int, shape, old, rng, plan: Plan) -> np.ndarray:
    t = op.op_type
    if t in ("Conv", "ConvTranspose", "Gemm", "MatMul") and idx == 1:
        if t in ("Conv", "ConvTranspose"):
            fan_in = shape[1] * math.prod(shape[2:])
        else:
            fan_in = shape[1] if op.attrs.get("transB", 0) else shape[0]
        return (rng.standard_normal(shape) * math.sqrt(2.0 / max(fan_in, 1))).astype(np.float32)
    if t in ("Conv", "ConvTranspose", "Gemm", "MatMul"):  # biases start at zero
        return np.zeros(shape, np.float32)
    if t in ("BatchNormalization", "InstanceNormalization"):
        one = idx == 1 or (t == "BatchNormalization" and idx == 4)  # scale and variance 1, others 0
        return np.full(shape, 1.0 if one else 0.0, np.float32)
    if t == "Reshape":
        return np.array(plan.shapes[op.out], np.int64)
    if op.kind == "resize":
        return np.array((1.0, 1.0, *plan.options[op.name]), np.float32)
    if old is not None and old.shape and tuple(shape) == old.shape:
        return old
    if old is not None and old.shape and shape:  # broadcast constant: tile along its channel axis
        ax = next(i for i, (a, b) in enumerate(zip(old.shape, shape, strict=True)) if a != b)
        return np.take(old, np.arange(shape[ax]) % old.shape[ax], axis=ax).astype(old.dtype)
    return np.zeros(shape, np.float32)


def _find_donor(op: Op, node, params, donors, used: set, graph, plan: Plan):
    """An unused node of S with the same op type and exactly these parameter shapes."""
    if op.op_type not in PARAM_OPS or op.op_type == "Resize":
        return None
    for d in donors:
        if d.name in used or d.op_type != op.op_type or len(d.inputs) < len(node.input):
            continue
        if op.op_type in ("Conv", "ConvTranspose") and d.group != plan.groups[op.name]:
            continue
        if all(
            d.inputs[i] and graph.is_initializer(d.inputs[i]) and graph.shape(d.inputs[i]) == tuple(s)
            for i, s in params.items()
        ):
            used.add(d.name)
            return d
    return None
