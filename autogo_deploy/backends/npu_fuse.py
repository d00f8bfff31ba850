"""Fast path of the npu-sim cost model: TVM's operator-fusion rule applied directly to an ONNX graph.

Importing TVM and running its ONNX frontend costs seconds per model; the predictor and the search
cost thousands of candidates. This module reproduces, on the ONNX graph, what the TVM path
(`npu_sim.tvm_groups`: Relax ONNX import -> LegalizeOps -> AnnotateTIROpPattern -> FuseOps) groups:

- every ONNX node gets TVM's op pattern (as AnnotateTIROpPattern labels its legalised PrimFunc):
  elementwise 0, broadcast 1, injective 2 (reshape, transpose, concat, pad, slice, resize...),
  reduction 3, out-elementwise-fusable 4 (conv, matmul, pooling, mean, softmax), opaque 8;
- the post-dominator tree and the three fusion phases of TVM's GraphPartitioner: a conv/matmul/pool
  absorbs the elementwise ops up to its immediate post-dominator (conv+bias+relu, conv+add+relu of a
  residual block, x*sigmoid(x)); elementwise chains fuse forward into injective/reduction/fusable
  consumers; injective ops fuse with injective successors;
- the same primitive ops (names, loop-nest work) as TVM's legalisation, e.g. Conv with bias ->
  conv2d + add, Gemm -> matmul + add, Clip -> maximum, minimum.

A BatchNormalization whose input is a Conv output used by nothing else is folded into that Conv
(as `graph.load(fold_bn=True)` does before the TVM path). `benchmarks/npu_sim_agreement.py`
compares both paths on the zoo models.
"""

from __future__ import annotations

import math

import onnx

from autogo_deploy.backends.fusion_rule import (
    ELEMWISE,
    INJECTIVE,
    OPAQUE,
    OUT_EWISE,
    REDUCE,
    TUPLE,
    FusionNode,
    emission_order,
    partition,
)
from autogo_deploy.backends.npu_model import Group, Op, Tensor

# ONNX op -> the primitive ops TVM legalises it into (all elementwise; fused together anyway)
_ELEMENTWISE: dict[str, list[str]] = {
    "Relu": ["relu"],
    "Add": ["add"],
    "Sub": ["subtract"],
    "Mul": ["multiply"],
    "Div": ["divide"],
    "Sigmoid": ["sigmoid"],
    "Tanh": ["tanh"],
    "Exp": ["exp"],
    "Log": ["log"],
    "Sqrt": ["sqrt"],
    "Erf": ["erf"],
    "Pow": ["power"],
    "Neg": ["negative"],
    "Abs": ["abs"],
    "LeakyRelu": ["leaky_relu"],
    "Clip": ["maximum", "minimum"],
    "HardSigmoid": ["multiply", "add", "clip"],
    "HardSwish": ["add", "clip", "divide", "multiply"],
    "BatchNormalization": ["subtract", "divide", "multiply", "add"],
    "Elu": ["exp", "subtract", "relu", "multiply", "add"],
    "Max": ["maximum"],
    "Min": ["minimum"],
    "Where": ["where"],
    "Cast": ["cast"],
}
_INJECTIVE = {
    "Transpose": "transpose",
    "Concat": "concatenate",
    "Pad": "pad",
    "Slice": "strided_slice",
    "Split": "split",
    "Gather": "take",
    "Resize": "resize2d",
    "Expand": "broadcast_to",
    "Tile": "tile",
    "SpaceToDepth": "space_to_depth",
}
_VIEW = {"Reshape": "reshape", "Flatten": "reshape", "Squeeze": "squeeze", "Unsqueeze": "expand_dims"}
_REDUCE = {"ReduceMax": "max", "ReduceMin": "min", "ReduceSum": "sum", "GlobalMaxPool": "max"}
_SKIP = {"Identity", "Dropout", "Constant"}
# ONNX ops whose Relax converter emits its binding at once (bb.emit / bb.normalize); see _emission_order
_EAGER = {
    "Conv",
    "Clip",
    "Pad",
    "Resize",
    "Split",
    "Slice",
    "Gather",
    "Expand",
    "Tile",
    "Cast",
    "Squeeze",
    "Unsqueeze",
}


def _as_model(model) -> onnx.ModelProto:
    if hasattr(model, "model") and isinstance(model.model, onnx.ModelProto):  # autogo_deploy.graph.Graph
        return model.model
    if isinstance(model, onnx.ModelProto):
        return model
    from autogo_deploy.graph import load

    return load(model, fold_bn=True).model


def _shapes(model: onnx.ModelProto) -> tuple[dict[str, tuple[int, ...]], dict[str, object]]:
    """Static shape of every tensor (shape inference if the model lacks some) and the constants."""

    def collect(g) -> dict[str, tuple[int, ...]]:
        found = {}
        for vi in list(g.input) + list(g.value_info) + list(g.output):
            if vi.type.tensor_type.HasField("shape"):
                dims = vi.type.tensor_type.shape.dim
                found[vi.name] = tuple(int(d.dim_value) if d.HasField("dim_value") else 0 for d in dims)
        for t in g.initializer:
            found[t.name] = tuple(t.dims)
        return found

    shapes = collect(model.graph)
    wanted = [o for n in model.graph.node for o in n.output if o and n.op_type != "Constant"]
    if any(o not in shapes for o in wanted):
        shapes = collect(onnx.shape_inference.infer_shapes(model, data_prop=True).graph)
    unknown = [o for o in wanted if o not in shapes or 0 in shapes[o]]
    if unknown:
        from autogo_deploy.errors import DynamicShapeError

        raise DynamicShapeError(
            f"npu-sim needs static shapes; tensor {unknown[0]!r} has none",
            hint="load the model with autogo_deploy.graph.load(..., input_shapes=...)",
        )
    consts: dict[str, object] = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    consts[node.output[0]] = attr.t
                    shapes[node.output[0]] = tuple(attr.t.dims)
    return shapes, consts


def _attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _pool_lane_ops(node, in_shape, out_shape) -> int:
    kernel = _attr(node, "kernel_shape", [])
    pads = _attr(node, "pads", [0] * (2 * len(kernel)))
    window = math.prod(kernel) if kernel else 1
    work = math.prod(out_shape) * window
    if any(pads):  # TVM materialises the padded input (pad_temp loop nest)
        padded = list(in_shape[:2]) + [
            d + pads[i] + pads[i + len(kernel)] for i, d in enumerate(in_shape[2:])
        ]
        work += math.prod(padded)
    if node.op_type == "AveragePool":
        work += math.prod(out_shape)  # the division by the window size
    return work


# binary arithmetic whose 0-d constant operand TVM's legalisation turns into an immediate (a Clip's
# bounds stay tensors there)
_SCALAR_IMMEDIATE = frozenset({"Add", "Sub", "Mul", "Div"})
# ops whose primitive ops (in _ELEMENTWISE order) each read one of the node's inputs: its index
_OWN_CONSTANT = {"BatchNormalization": (3, 4, 1, 2), "Clip": (1, 2)}


def _node_ops(node, shapes, consts, tensors) -> tuple[int, list[Op]]:
    """(pattern, primitive ops) of one ONNX node; ops chain through internal tensors."""

    def t(name: str) -> Tensor:
        if name not in tensors:
            tensors[name] = Tensor(shapes.get(name, ()), const=name in consts)
        return tensors[name]

    op_type = node.op_type
    ins = [i for i in node.input if i]
    out = node.output[0]
    out_shape = shapes.get(out, ())
    elems = math.prod(out_shape) if out_shape else 1

    def chain(names: list[str], first_inputs: list[Tensor], kind: str = "vector", per_op=None) -> list[Op]:
        ops, current = [], first_inputs
        for i, name in enumerate(names):
            last = i == len(names) - 1
            result = t(out) if last else Tensor(out_shape)
            ops.append(Op(name, kind, current, result, lane_ops=per_op if per_op is not None else elems))
            current = [result]
        return ops

    if op_type in ("Conv", "ConvTranspose"):
        data, weight = t(ins[0]), t(ins[1])
        w = weight.shape
        if op_type == "ConvTranspose":
            groups = int(_attr(node, "group", 1))
            name, kind = "conv2d_transpose", "conv_transpose"
        else:
            groups = max(1, data.shape[1] // max(1, w[1]))
            name, kind = f"conv{len(w) - 2}d", "conv"
        has_bias = len(ins) > 2
        conv_out = Tensor(out_shape) if has_bias else t(out)
        ops = [Op(name, kind, [data, weight], conv_out, groups=groups)]
        if has_bias:
            ops.append(Op("add", "vector", [conv_out, t(ins[2])], t(out), lane_ops=elems))
        return OUT_EWISE, ops
    if op_type in ("Gemm", "MatMul"):
        a, b = t(ins[0]), t(ins[1])
        if op_type == "Gemm":
            if _attr(node, "transA", 0):
                a = Tensor(tuple(reversed(a.shape)), a.const)
            if _attr(node, "transB", 0):
                b = Tensor(tuple(reversed(b.shape)), b.const)
                tensors[ins[1] + "#T"] = b
        has_bias = op_type == "Gemm" and len(ins) > 2
        mm_out = Tensor(out_shape) if has_bias else t(out)
        ops = [Op("matmul", "matmul", [a, b], mm_out)]
        if has_bias:
            ops.append(Op("add", "vector", [mm_out, t(ins[2])], t(out), lane_ops=elems))
        return OUT_EWISE, ops
    if op_type in _OWN_CONSTANT and len(ins) == len(_OWN_CONSTANT[op_type]) + 1:
        # TVM's legalisation gives each primitive op its own constant operand (BatchNorm:
        # (x - mean) / sqrt(var + eps) * scale + bias with sqrt(var + eps) folded; Clip: maximum(x,
        # min), minimum(., max)), also where the model shares one initializer among them: two Clips
        # fused into one kernel read their bounds twice
        ops, current = [], t(ins[0])
        names = _ELEMENTWISE[op_type]
        for k, (name, i) in enumerate(zip(names, _OWN_CONSTANT[op_type], strict=True)):
            operand = Tensor(shapes.get(ins[i], ()), const=True) if ins[i] in consts else t(ins[i])
            result = t(out) if k == len(names) - 1 else Tensor(out_shape)
            ops.append(Op(name, "vector", [current, operand], result, lane_ops=elems))
            current = result
        return ELEMWISE, ops
    if op_type in _ELEMENTWISE:
        operands = [t(i) for i in ins]
        if op_type in _SCALAR_IMMEDIATE:  # TVM legalises x * 2 with 2 as an immediate, not a tensor
            operands = [t(i) for i in ins if not (i in consts and shapes.get(i) == ())] or operands
        return ELEMWISE, chain(_ELEMENTWISE[op_type], operands)
    if op_type in ("MaxPool", "AveragePool"):
        name = "max_pool2d" if op_type == "MaxPool" else "avg_pool2d"
        return OUT_EWISE, chain([name], [t(ins[0])], per_op=_pool_lane_ops(node, shapes[ins[0]], out_shape))
    if op_type in ("GlobalAveragePool", "ReduceMean"):
        return OUT_EWISE, chain(["mean"], [t(ins[0])], per_op=math.prod(shapes[ins[0]]) + elems)
    if op_type in _REDUCE:
        return REDUCE, chain([_REDUCE[op_type]], [t(ins[0])], per_op=math.prod(shapes[ins[0]]))
    if op_type == "Softmax":  # max, exp, sum, normalise
        n_in = math.prod(shapes[ins[0]])
        reduced = n_in // max(1, shapes[ins[0]][_attr(node, "axis", -1)])
        return OUT_EWISE, chain(["softmax"], [t(ins[0])], per_op=3 * n_in + 2 * reduced)
    if op_type == "DepthToSpace":  # TVM: reshape, 6-D transpose, reshape
        n, c, h, w = shapes[ins[0]]
        r = int(_attr(node, "blocksize"))
        mid = Tensor((n, c // (r * r), h, r, w, r))
        ops = [Op("reshape", "view", [t(ins[0])], Tensor((n, r, r, c // (r * r), h, w)))]
        ops.append(Op("transpose", "vector", [ops[0].output], mid))
        ops.append(Op("reshape", "view", [mid], t(out)))
        return INJECTIVE, ops
    if op_type in _VIEW:
        return INJECTIVE, chain([_VIEW[op_type]], [t(ins[0])], kind="view", per_op=0)
    if op_type in _INJECTIVE:
        data = [t(i) for i in ins if i not in consts or op_type == "Concat"]
        return INJECTIVE, chain([_INJECTIVE[op_type]], data, per_op=0)
    return OPAQUE, chain([op_type.lower()], [t(i) for i in ins])


def _fold_bn(model: onnx.ModelProto, consts) -> dict[str, str]:
    """BatchNorm nodes foldable into the Conv before them: {bn output: conv output}."""
    g = model.graph
    uses: dict[str, int] = {}
    for n in g.node:
        for i in n.input:
            uses[i] = uses.get(i, 0) + 1
    for o in g.output:
        uses[o.name] = uses.get(o.name, 0) + 1
    producer = {o: n for n in g.node for o in n.output}
    folded = {}
    for n in g.node:
        if n.op_type != "BatchNormalization" or len(n.output) > 1 and any(n.output[1:]):
            continue
        src = producer.get(n.input[0])
        if src is not None and src.op_type == "Conv" and uses.get(n.input[0]) == 1:
            if all(i in consts for i in n.input[1:]):
                folded[n.output[0]] = n.input[0]
    return folded


def onnx_groups(model) -> list[Group]:
    """Fused groups of an ONNX model (ModelProto with static shapes, a Graph, a path or bytes)."""
    model = _as_model(model)
    shapes, consts = _shapes(model)
    g = model.graph
    folded = _fold_bn(model, consts)
    alias: dict[str, str] = {}
    tensors: dict[str, Tensor] = {}
    producers: dict[str, int] = {}
    nodes: list[FusionNode] = []
    names: list[list[str]] = []  # per fusion node: the ONNX nodes it stands for (a folded BN joins its Conv)
    bn_bias: set[str] = set()
    eager: list[bool] = []
    for proto in g.node:
        if proto.op_type in _SKIP:
            if proto.op_type != "Constant" and proto.input:
                alias[proto.output[0]] = alias.get(proto.input[0], proto.input[0])
            continue
        if proto.output[0] in folded:
            # the Conv gets BN's shift as a bias add (the fold rewrites weights and bias)
            conv_out = alias.get(proto.input[0], proto.input[0])
            alias[proto.output[0]] = conv_out
            bn_bias.add(conv_out)
            if conv_out in producers:
                names[producers[conv_out]].append(proto.name)
            continue
        node = onnx.NodeProto()
        node.CopyFrom(proto)
        for k, name in enumerate(node.input):
            node.input[k] = alias.get(name, name)
        pattern, ops = _node_ops(node, shapes, consts, tensors)
        acts = [i for i in node.input if i and i not in consts]
        nodes.append(
            FusionNode(
                len(nodes),
                pattern,
                ops,
                acts,
                [o for o in node.output if o],
                bn=node.op_type == "BatchNormalization",
            )
        )
        eager.append(node.op_type in _EAGER)
        names.append([proto.name])
        for o in node.output:
            producers[o] = nodes[-1].index
    # a folded BN adds a bias to a Conv that had none
    for node in nodes:
        out = node.outputs[0]
        if out in bn_bias and node.ops[0].kind == "conv" and len(node.ops) == 1:
            conv = node.ops[0]
            inner = Tensor(conv.output.shape)
            bias = Tensor((conv.output.shape[1],), const=True)
            node.ops = [
                Op(conv.name, conv.kind, conv.inputs, inner, groups=conv.groups),
                Op("add", "vector", [inner, bias], conv.output, lane_ops=math.prod(conv.output.shape)),
            ]
    outputs = {alias.get(o.name, o.name) for o in g.output}
    for node in nodes:
        node.extern = any(o in outputs for o in node.outputs)
        for name in set(node.inputs):
            if name in producers:
                src = nodes[producers[name]]
                # an unfolded BatchNorm returns a tuple in Relax (out, mean, var): its consumers see
                # it through Tuple/TupleGetItem, which nothing fuses across
                pattern = TUPLE if src.ops[0].name == "subtract" and src.bn else node.pattern
                src.consumers.append((node.index, pattern))
    order, head = emission_order(nodes, producers, outputs, eager)
    return _build_groups(nodes, partition(nodes, order), head, producers, outputs, tensors, names)


def _group_order(nodes, roots, head, producers) -> list[int]:
    """Group roots in the order Relax FuseOps emits them (OperatorFusor.TopoSortByGroupDep): groups
    by their first binding, each preceded (depth first) by the groups it reads from."""
    deps: dict[int, list[int]] = {}
    for i in sorted(range(len(nodes)), key=head.__getitem__):
        for name in nodes[i].inputs:
            if name in producers and roots[producers[name]] != roots[i]:
                deps.setdefault(roots[i], []).append(roots[producers[name]])
    order: list[int] = []
    visited: set[int] = set()

    def visit(group: int) -> None:
        if group in visited:
            return
        visited.add(group)
        for dep in deps.get(group, []):
            visit(dep)
        order.append(group)

    for i in sorted(range(len(nodes)), key=head.__getitem__):
        visit(roots[i])
    return order


def _build_groups(nodes, roots, head, producers, outputs, tensors, names) -> list[Group]:
    """One Group per fused set, in the order TVM emits the fused calls; `names[i]`: the ONNX nodes
    fusion node i stands for."""
    members: dict[int, list[int]] = {}
    for i, r in enumerate(roots):
        members.setdefault(r, []).append(i)
    groups = []
    for r in _group_order(nodes, roots, head, producers):
        idx = sorted(members[r], key=head.__getitem__)
        ops: list[Op] = []
        ext_inputs: list[Tensor] = []
        seen: set[int] = set()
        produced: set[int] = set()
        for i in idx:
            for op in nodes[i].ops:
                flags = []
                for tns in op.inputs:
                    internal = id(tns) in produced
                    flags.append(not internal)
                    if not internal and id(tns) not in seen:
                        seen.add(id(tns))
                        ext_inputs.append(tns)
                op.external = tuple(flags)
                produced.add(id(op.output))
                ops.append(op)
        if len(ops) == 1:
            # TVM leaves a lone op as a call_tir in `main` whose arguments repeat a tensor passed
            # twice (x + x reads x twice); a fused group becomes a function taking each tensor once
            ext_inputs = list(ops[0].inputs)
        out_tensors = []
        for i in idx:
            for name in nodes[i].outputs:
                consumers = [c for c, _ in nodes[i].consumers if name in nodes[c].inputs]
                if name in outputs or not consumers or any(roots[c] != r for c in consumers):
                    out_tensors.append(tensors.get(name) or nodes[i].ops[-1].output)
        name = "fused_" + "_".join(op.name for op in ops) if len(idx) > 1 else ops[0].name
        groups.append(Group(name, ops, ext_inputs, out_tensors, [n for i in idx for n in names[i]]))
    return groups
