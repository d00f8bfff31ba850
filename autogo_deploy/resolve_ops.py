"""The replacement segment S' analysed for shape resolution: op kinds, option menus, exact sizes.

`analyse(model)` normalises S' (Constant nodes folded, unique node names, inferred shapes) and
classifies every node into a kind the MILP in `resolve.py` knows how to constrain; anything else is
`Unsupported` with a one-line reason (which becomes the mutant's rejection reason).

Menus: Conv/MaxPool/AveragePool choose a stride from {1, 2, S' own stride} (same in every spatial
dim); Resize chooses spatial scales from {S' own, 1, 2}; every other op has one option.
`spatial_out` gives the exact ONNX output size for an option (pads, dilations, ceil_mode, auto_pad).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

UNARY = {
    "Relu", "LeakyRelu", "Elu", "Selu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Softplus",
    "Softsign", "Gelu", "Mish", "Clip", "Identity", "Dropout", "Neg", "Abs", "Exp", "Sqrt", "Erf",
    "Reciprocal", "BatchNormalization", "InstanceNormalization", "LRN", "Softmax", "LogSoftmax",
}  # fmt: skip
NARY = {"Add", "Sub", "Mul", "Div", "Max", "Min", "Sum", "Mean", "Pow", "PRelu"}
WINDOW = {"Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool"}
# Weighted ops: every input after the first is a parameter, which a mutation always draws afresh or
# inherits from the replaced segment (materialise.py); the replacement's own values are never used.
PARAM_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul", "BatchNormalization", "InstanceNormalization"}
STRIDE_MENU = (1, 2)
MAX_STATES = 256  # reachable spatial sizes per tensor


class Unsupported(Exception):
    """The replacement cannot be resolved at this boundary; the message is the rejection reason.

    `code` names the category: unsupported (an op or structure the resolver does not model), arity,
    rank, batch, spatial (a boundary size no option reaches), channels (a channel conflict)."""

    def __init__(self, message: str, code: str = "unsupported"):
        super().__init__(message)
        self.code = code


@dataclass
class Op:
    name: str
    op_type: str
    node: onnx.NodeProto
    acts: list[str]  # activation inputs, in order
    out: str  # the activation output
    attrs: dict
    menu: list[tuple] = field(default_factory=lambda: [()])
    orig: int = 0  # index of S' own option in menu
    kind: str = "unary"
    wshape: tuple[int, ...] = ()  # Conv/ConvTranspose/Gemm/MatMul weight shape in S'


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def normalise(segment: onnx.ModelProto) -> onnx.ModelProto:
    """Copy with Constant nodes folded into initializers, unique node names and inferred shapes."""
    model = onnx.ModelProto()
    model.CopyFrom(segment)
    g = model.graph
    keep, seen = [], set()
    for i, node in enumerate(g.node):
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            t = onnx.TensorProto()
            t.CopyFrom(node.attribute[0].t)
            t.name = node.output[0]
            g.initializer.append(t)
            continue
        if not node.name or node.name in seen:
            node.name = f"{node.op_type.lower()}_{i}"
        seen.add(node.name)
        keep.append(node)
    del g.node[:]
    g.node.extend(keep)
    del g.value_info[:]
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


def static_shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape, for the graph's inputs, value_info and outputs whose dims all have values."""
    out = {}
    g = model.graph
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        dims = vi.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims) and vi.type.tensor_type.HasField("shape"):
            out[vi.name] = tuple(d.dim_value for d in dims)
    return out


def has_values(t: onnx.TensorProto) -> bool:
    """Whether an initializer stores values (raw or typed), not only its dims."""
    typed = t.float_data or t.int32_data or t.int64_data or t.double_data or t.uint64_data or t.string_data
    return bool(t.raw_data or typed)


def _constant(t: onnx.TensorProto):
    """An initializer's array; for one stored without values (a weighted op's parameter that
    `SegmentRecord.model(params=False)` left out: only its shape is ever read) a read-only
    zero-strided view of that shape, which costs no memory."""
    if t.data_location == onnx.TensorProto.EXTERNAL or has_values(t) or not math.prod(t.dims):
        return numpy_helper.to_array(t)
    dtype = onnx.helper.tensor_dtype_to_np_dtype(t.data_type)
    return np.broadcast_to(np.zeros((), dtype), tuple(t.dims))


class Segment:
    """S' analysed: activation tensors, ops with kinds and menus, constants, source shapes."""

    def __init__(self, model: onnx.ModelProto):
        self.model = model
        g = model.graph
        self.consts = {t.name: _constant(t) for t in g.initializer}
        self.inputs = [vi.name for vi in g.input if vi.name not in self.consts]
        self.outputs = [vi.name for vi in g.output]
        self.src = static_shapes(model)
        if not g.node:
            raise Unsupported("replacement has no nodes")
        acts = set(self.inputs)
        self.ops: list[Op] = []
        for node in g.node:
            ins = [t for t in node.input if t in acts]
            if not ins:
                raise Unsupported(f"{node.op_type} node {node.name} has no activation input")
            op = Op(node.name, node.op_type, node, ins, node.output[0], _attrs(node))
            for extra in node.output[1:]:
                if extra and any(extra in n.input for n in g.node) or extra in self.outputs:
                    raise Unsupported(f"{node.op_type} node {node.name}: secondary output is used")
            self._classify(op)
            acts.add(op.out)
            self.ops.append(op)
        for t in acts:
            if t not in self.src or len(self.src[t]) < 2:
                raise Unsupported(f"tensor {t} has no static shape of rank >= 2")
        for t in self.outputs:
            if t in self.inputs:
                raise Unsupported("a replacement output is one of its inputs")

    def rank(self, t: str) -> int:
        return len(self.src[t])

    def _classify(self, op: Op) -> None:
        t, a, node = op.op_type, op.attrs, op.node
        if t in UNARY:
            op.kind = "unary"
        elif t in NARY:
            op.kind = "nary"
        elif t == "Concat":
            if len(op.acts) != len(node.input) or a.get("axis") not in (1, -self.rank(op.acts[0]) + 1):
                raise Unsupported("Concat other than along channels of activations")
            op.kind = "concat"
        elif t in WINDOW:
            op.kind = "window"
            if node.input[0] != op.acts[0] or len(op.acts) != 1:
                raise Unsupported(f"{t} node {op.name} with a non-constant weight")
            if t in ("Conv", "ConvTranspose"):
                op.wshape = tuple(self.consts[node.input[1]].shape)
            if t == "ConvTranspose" and ("output_shape" in a or a.get("auto_pad", b"NOTSET") != b"NOTSET"):
                raise Unsupported("ConvTranspose with output_shape/auto_pad")
            nsp = self.rank(op.acts[0]) - 2
            stride = tuple(a.get("strides", (1,) * nsp))
            if t in ("Conv", "MaxPool", "AveragePool") and len(set(stride)) == 1:
                values = sorted(set(STRIDE_MENU) | {stride[0]})
                op.menu = [(s,) * nsp for s in values]
            else:
                op.menu = [stride]
            op.orig = op.menu.index(stride)
        elif t in ("GlobalAveragePool", "GlobalMaxPool"):
            op.kind = "global"
        elif t in ("ReduceMean", "ReduceMax", "ReduceSum"):
            axes = a.get("axes")
            if axes is None and len(node.input) > 1 and node.input[1] in self.consts:
                axes = self.consts[node.input[1]].tolist()
            r = self.rank(op.acts[0])
            if axes is None or sorted(x % r for x in axes) != list(range(2, r)):
                raise Unsupported(f"{t} not over all spatial axes")
            op.kind = "global" if a.get("keepdims", 1) else "flatten"
        elif t == "Flatten":
            if a.get("axis", 1) != 1:
                raise Unsupported("Flatten with axis != 1")
            op.kind = "flatten"
        elif t == "Reshape":
            shape = self.src.get(op.out, ())
            if len(shape) != 2 or node.input[1] not in self.consts:
                raise Unsupported("Reshape other than flattening to 2-D")
            op.kind = "flatten"
        elif t in ("Gemm", "MatMul"):
            w = node.input[1] if len(node.input) > 1 else ""
            if len(op.acts) != 1 or op.acts[0] != node.input[0] or w not in self.consts:
                raise Unsupported(f"{t} between two activations")
            if self.rank(op.acts[0]) != 2 or a.get("transA", 0) or self.consts[w].ndim != 2:
                raise Unsupported(f"{t} on a non-2-D activation")
            op.kind = "gemm"
            op.wshape = tuple(self.consts[w].shape)
        elif t == "Resize":
            op.kind = "resize"
            src_in, src_out = self.src.get(op.acts[0]), self.src.get(op.out)
            if src_in is None or src_out is None or src_in[:2] != src_out[:2]:
                raise Unsupported("Resize that changes batch or channels")
            orig = tuple(o / i for i, o in zip(src_in[2:], src_out[2:], strict=True))
            ones, twos = (1.0,) * len(orig), (2.0,) * len(orig)
            op.menu = list(dict.fromkeys([orig, ones, twos]))
        elif t in ("DepthToSpace", "SpaceToDepth"):
            op.kind = "d2s" if t == "DepthToSpace" else "s2d"
        elif t == "Pad":
            pads = self.consts.get(node.input[1]) if len(node.input) > 1 else None
            r = self.rank(op.acts[0])
            if pads is None or len(node.input) > 3 or pads[[0, 1, r, r + 1]].any():
                raise Unsupported("Pad other than constant spatial padding")
            op.kind = "pad"
        else:
            raise Unsupported(f"unsupported op {t} in replacement")


def window_out(op: Op, option: tuple, size: tuple[int, ...]) -> tuple[int, ...] | None:
    """Exact ONNX output spatial size of Conv/ConvTranspose/pooling; None when invalid/ambiguous."""
    a, nsp = op.attrs, len(size)
    kernel = a.get("kernel_shape")
    if kernel is None:  # weight [C_out, C_in/g, *k]
        kernel = op.wshape[2:]
    dil = a.get("dilations", (1,) * nsp)
    pads = a.get("pads", (0,) * (2 * nsp))
    auto = a.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    out = []
    for i in range(nsp):
        s, k, d, n = option[i], kernel[i], dil[i], size[i]
        dk = (k - 1) * d + 1
        if op.op_type == "ConvTranspose":
            opad = a.get("output_padding", (0,) * nsp)[i]
            o = s * (n - 1) + opad + dk - pads[i] - pads[i + nsp]
        elif auto in ("SAME_UPPER", "SAME_LOWER"):
            o = -(-n // s)
        else:
            p = 0 if auto == "VALID" else pads[i] + pads[i + nsp]
            num = n + p - dk
            if num < 0:
                return None
            if a.get("ceil_mode", 0):
                o = -(-num // s) + 1
                if (o - 1) * s >= n + (0 if auto == "VALID" else pads[i]):
                    return None  # runtimes disagree on this edge case: never choose it
            else:
                o = num // s + 1
        if o < 1:
            return None
        out.append(o)
    return tuple(out)


def spatial_out(seg: Segment, op: Op, option: tuple, size: tuple[int, ...]) -> tuple[int, ...] | None:
    """Output spatial size of a single-input op for one option; None when invalid."""
    k = op.kind
    if k == "window":
        return window_out(op, option, size)
    if k == "global":
        return (1,) * len(size)
    if k in ("flatten", "gemm"):
        return ()
    if k == "resize":
        out = tuple(int(math.floor(n * f + 1e-9)) for n, f in zip(size, option, strict=True))
        return out if all(o >= 1 for o in out) else None
    if k == "pad":
        pads, r = seg.consts[op.node.input[1]], len(size) + 2
        return tuple(int(n + pads[2 + i] + pads[r + 2 + i]) for i, n in enumerate(size))
    if k in ("d2s", "s2d"):
        bs = op.attrs["blocksize"]
        if k == "d2s":
            return tuple(n * bs for n in size)
        return tuple(n // bs for n in size) if all(n % bs == 0 for n in size) else None
    return size


def analyse(segment: onnx.ModelProto) -> Segment:
    """Normalise and analyse S'; raises Unsupported with the rejection reason."""
    try:
        model = normalise(segment)
    except Exception as exc:  # shape inference failed on the replacement itself
        raise Unsupported(f"replacement fails shape inference: {str(exc).splitlines()[0][:200]}") from None
    return Segment(model)


class UnionFind:
    def __init__(self):
        self.parent: dict[str, str] = {}

    def find(self, a: str) -> str:
        self.parent.setdefault(a, a)
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def spatial_of(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(shape[2:])


def broadcasts(src: dict, op: Op, a: str) -> bool:
    """Operand a of an n-ary op broadcasts spatially (size 1 in S' where the output is not)."""
    return all(d == 1 for d in spatial_of(src[a])) and not all(d == 1 for d in spatial_of(src[op.out]))


def reachable(seg: Segment, fixed_in: dict, fixed_out: dict):
    """Spatial sizes each tensor can take from the boundary inputs through every op's menu, and a
    reference size per tensor (S' own options where valid); Unsupported if an output is unreachable."""
    R: dict[str, list[tuple[int, ...]]] = {t: [spatial_of(s)] for t, s in fixed_in.items()}
    ref: dict[str, tuple[int, ...]] = {t: spatial_of(s) for t, s in fixed_in.items()}
    for op in seg.ops:
        if op.kind in ("nary", "concat"):
            full = [a for a in op.acts if not (op.kind == "nary" and broadcasts(seg.src, op, a))] or op.acts[
                :1
            ]
            common = [v for v in R[full[0]] if all(v in R[a] for a in full[1:])]
            for c in op.node.input:  # a constant with real spatial extent pins the size
                if c in seg.consts and seg.consts[c].ndim == len(seg.src[op.out]):
                    if any(d != 1 for d in seg.consts[c].shape[2:]):
                        common = [v for v in common if v == spatial_of(seg.src[op.out])]
            out, guess = common, ref[full[0]]
        else:
            src_in = R[op.acts[0]]
            seen = {spatial_out(seg, op, o, v) for v in src_in for o in op.menu}
            out = sorted((v for v in seen if v is not None), key=lambda v: (-math.prod(v), v))
            guess = spatial_out(seg, op, op.menu[op.orig], ref[op.acts[0]])
        if not out:
            raise Unsupported(f"{op.op_type} {op.name}: no valid output size for its inputs", "spatial")
        if len(out) > MAX_STATES:
            raise Unsupported(f"{op.name}: too many reachable sizes ({len(out)})")
        R[op.out] = out
        ref[op.out] = guess if guess in out else out[0]
    for t, shape in fixed_out.items():
        if spatial_of(shape) not in R[t]:
            raise Unsupported(
                f"output {t}: size {spatial_of(shape)} unreachable with the stride menus (reachable {R[t][:6]})",
                "spatial",
            )
    return R, ref


def exact_macs(op: Op, shapes: dict[str, tuple[int, ...]], group: int) -> int:
    a, out = shapes[op.acts[0]], shapes[op.out]
    if op.op_type == "Conv":
        return out[0] * out[1] * math.prod(out[2:]) * (a[1] // group) * math.prod(op.wshape[2:])
    if op.op_type == "ConvTranspose":
        return a[0] * a[1] * math.prod(a[2:]) * (out[1] // group) * math.prod(op.wshape[2:])
    if op.op_type in ("Gemm", "MatMul"):
        return a[0] * a[1] * out[1]
    return 0
