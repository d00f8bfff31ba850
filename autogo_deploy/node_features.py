"""Per-node features of a computation graph: kernel, stride, group, shapes, MACs, params, bytes.

MAC conventions (one multiply-accumulate = 1):
- Conv: N * C_out * prod(out spatial) * (C_in / group) * prod(kernel)  (grouped/depthwise correct)
- ConvTranspose: N * C_in * prod(in spatial) * (C_out / group) * prod(kernel)
- Gemm: M * N * K; MatMul: prod(batch dims) * M * N * K
- everything else (BN, pooling, element-wise, activations): 0 MACs
Parameters: elements of the initializers a node reads (shared initializers count once per graph).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import prod

import numpy as np
import onnx
from onnx import helper


@dataclass
class Node:
    name: str
    op_type: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict
    index: int = -1
    kernel: tuple[int, ...] | None = None
    stride: tuple[int, ...] | None = None
    dilation: tuple[int, ...] | None = None
    pads: tuple[int, ...] | None = None
    group: int = 1
    in_shapes: list[tuple[int, ...]] = field(default_factory=list)
    out_shapes: list[tuple[int, ...]] = field(default_factory=list)
    macs: int = 0
    params: int = 0
    act_bytes: int = 0

    def to_dict(self) -> dict:
        return {
            "index": self.index,
            "name": self.name,
            "op_type": self.op_type,
            "kernel": list(self.kernel) if self.kernel else None,
            "stride": list(self.stride) if self.stride else None,
            "dilation": list(self.dilation) if self.dilation else None,
            "pads": list(self.pads) if self.pads else None,
            "group": self.group,
            "in_shapes": [list(s) for s in self.in_shapes],
            "out_shapes": [list(s) for s in self.out_shapes],
            "macs": self.macs,
            "params": self.params,
            "act_bytes": self.act_bytes,
        }


def attrs_of(node: onnx.NodeProto) -> dict:
    out = {}
    for attr in node.attribute:
        value = helper.get_attribute_value(attr)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        elif isinstance(value, onnx.TensorProto):
            value = ("tensor", tuple(value.dims), int(value.data_type))
        elif isinstance(value, list):
            value = tuple(v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in value)
        elif isinstance(value, onnx.GraphProto):
            value = ("graph", value.name)
        out[attr.name] = value
    return out


_SPATIAL_OPS = {"Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool"}


def describe(
    proto: onnx.NodeProto,
    shapes: dict[str, tuple[int, ...]],
    dtypes: dict[str, int],
    init_sizes: dict[str, int],
) -> Node:
    """Build the feature record of one node from known tensor shapes."""
    attrs = attrs_of(proto)
    node = Node(proto.name, proto.op_type, list(proto.input), list(proto.output), attrs)
    node.in_shapes = [shapes.get(t, ()) for t in proto.input if t]
    node.out_shapes = [shapes.get(t, ()) for t in proto.output if t]
    op = proto.op_type
    if op in _SPATIAL_OPS:
        kernel = attrs.get("kernel_shape")
        if kernel is None and op in ("Conv", "ConvTranspose") and len(proto.input) > 1:
            wshape = shapes.get(proto.input[1], ())
            kernel = tuple(wshape[2:]) if len(wshape) > 2 else None
        nsp = len(kernel) if kernel else max(len(node.in_shapes[0]) - 2, 0) if node.in_shapes else 0
        node.kernel = tuple(int(k) for k in kernel) if kernel else None
        node.stride = tuple(attrs.get("strides", (1,) * nsp))
        node.dilation = tuple(attrs.get("dilations", (1,) * nsp))
        node.pads = tuple(attrs.get("pads", (0,) * (2 * nsp)))
        node.group = int(attrs.get("group", 1))
    elif op in ("GlobalAveragePool", "GlobalMaxPool") and node.in_shapes:
        node.kernel = tuple(node.in_shapes[0][2:])
    _check_consistency(node, shapes, proto)
    node.macs = _macs(op, node, shapes, proto)
    node.params = sum(init_sizes.get(t, 0) for t in proto.input if t)
    node.act_bytes = sum(
        prod(shapes.get(t, ())) * _itemsize(dtypes.get(t, onnx.TensorProto.FLOAT)) for t in proto.output if t
    )
    return node


def _check_consistency(node: Node, shapes: dict, proto: onnx.NodeProto) -> None:
    """Catch what ONNX shape inference lets through but no runtime accepts."""
    from autogo_deploy.errors import ModelError

    if node.op_type in ("Conv", "ConvTranspose") and len(proto.input) > 1 and node.in_shapes:
        x, w = node.in_shapes[0], shapes.get(proto.input[1], ())
        if len(w) != len(x):
            raise ModelError(
                f"node {node.name} ({node.op_type}): weight rank {len(w)} does not match input rank {len(x)}"
            )
        if node.op_type == "Conv" and len(x) > 1 and w[1] * node.group != x[1]:
            raise ModelError(
                f"node {node.name} (Conv): input has {x[1]} channels but weight expects "
                f"{w[1]} x group {node.group} = {w[1] * node.group}"
            )
        if node.kernel and tuple(w[2:]) != tuple(node.kernel):
            raise ModelError(
                f"node {node.name}: kernel_shape {node.kernel} differs from weight {tuple(w[2:])}"
            )


def _itemsize(elem_type: int) -> int:
    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)).itemsize
    except Exception:
        return 4


def _macs(op: str, node: Node, shapes: dict, proto: onnx.NodeProto) -> int:
    if not node.in_shapes or not node.out_shapes:
        return 0
    x, y = node.in_shapes[0], node.out_shapes[0]
    if op == "Conv" and len(proto.input) > 1:
        w = shapes.get(proto.input[1], ())
        if len(w) < 2 or len(y) < 2:
            return 0
        return int(y[0] * y[1] * prod(y[2:]) * w[1] * prod(w[2:]))
    if op == "ConvTranspose" and len(proto.input) > 1:
        w = shapes.get(proto.input[1], ())
        if len(w) < 2 or len(x) < 2:
            return 0
        return int(x[0] * x[1] * prod(x[2:]) * w[1] * prod(w[2:]))
    if op == "Gemm":
        a = x
        trans_a = int(node.attrs.get("transA", 0))
        k = a[0] if trans_a else a[-1]
        return int(prod(y) * k) if len(a) == 2 else 0
    if op == "MatMul" and len(node.in_shapes) > 1:
        a = x
        k = a[-1] if a else 0
        return int(prod(y) * k)
    if op == "Einsum":
        return 0
    return 0
