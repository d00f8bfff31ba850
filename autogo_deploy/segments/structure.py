"""The structural view of a graph that tokenising and segmenting read: `StructGraph`.

It holds exactly what `graph.Graph` exposes about structure (nodes in canonical order with their
`node_features.Node` records, tensor shapes, initializer dims) plus the values of tiny constants, and
nothing about weights. Two producers exist:

- `StructGraph.from_graph(g)`: any model loaded through `graph.load` (the zoo's big models, a user's
  model in `db segment` / the optimizer);
- `segments.lite.build_lite(...)`: the corpus fast path that replays the zoo's family builders without
  drawing weights (see lite.py); tests prove it yields the same StructGraph as `graph.load`.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import numpy as np
import onnx
from onnx import helper, numpy_helper

from autogo_deploy.node_features import Node

_VALUE_CONST_INT = 64  # integer initializers up to this size are read by value (shapes, axes, ...)


@dataclass(frozen=True)
class ConstInfo:
    """An initializer: dims, ONNX dtype and, for value-carrying constants, its values.

    Value-carrying: non-float tensors (shapes, axes, slice bounds) and float scalars/1-element tensors
    (Clip bounds, scale factors). Float tensors with more elements are weights: shape only.
    """

    dims: tuple[int, ...]
    dtype: int
    values: tuple | None

    @property
    def numel(self) -> int:
        return prod(self.dims)


def carries_value(dims: tuple[int, ...], dtype: int) -> bool:
    n = prod(dims)
    if dtype in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE,
                 onnx.TensorProto.BFLOAT16):  # fmt: skip
        return n == 1
    return n <= _VALUE_CONST_INT


def const_values(arr: np.ndarray) -> tuple:
    flat = np.asarray(arr).reshape(-1)
    if flat.dtype.kind == "f":
        return tuple(float(f"{float(v):.7g}") for v in flat)
    if flat.dtype.kind in "iub":
        return tuple(int(v) for v in flat)
    return tuple(str(v) for v in flat)


class StructGraph:
    """Nodes in canonical order + shapes + initializer info; producer/consumer indices."""

    def __init__(
        self,
        nodes: list[Node],
        shapes: dict[str, tuple[int, ...]],
        consts: dict[str, ConstInfo],
        input_names: list[str],
        output_names: list[str],
        *,
        source: str = "",
        proto_of=None,
        opset: int = 17,
        dtypes: dict[str, int] | None = None,
    ):
        self.nodes = nodes
        self.shapes = shapes
        self.consts = consts
        self.input_names = list(input_names)
        self.output_names = list(output_names)
        self.source = source
        self.opset = opset
        self.dtypes = dict(dtypes or {})  # non-float activation tensors only
        self._proto_of = proto_of
        self.producer: dict[str, tuple[int, int]] = {}
        self.consumers: dict[str, list[tuple[int, int]]] = {}
        for i, n in enumerate(nodes):
            for q, t in enumerate(n.outputs):
                if t:
                    self.producer[t] = (i, q)
            for p, t in enumerate(n.inputs):
                if t and t not in consts:
                    self.consumers.setdefault(t, []).append((i, p))
        self.input_set = set(self.input_names)
        self.output_set = set(self.output_names)

    @classmethod
    def from_graph(cls, graph, source: str = "") -> StructGraph:
        """The structural view of a loaded `graph.Graph`."""
        consts: dict[str, ConstInfo] = {}
        for t in graph.model.graph.initializer:
            dims = tuple(int(d) for d in t.dims)
            values = const_values(numpy_helper.to_array(t)) if carries_value(dims, t.data_type) else None
            consts[t.name] = ConstInfo(dims, int(t.data_type), values)
        shapes = {}
        dtypes = {}
        for n in graph.nodes:
            for t in list(n.inputs) + list(n.outputs):
                if t and t not in shapes:
                    shapes[t] = tuple(graph.shape(t))
                    if t not in consts and graph.dtype(t) != onnx.TensorProto.FLOAT:
                        dtypes[t] = int(graph.dtype(t))
        protos = graph.model.graph.node
        opset = next((i.version for i in graph.model.opset_import if i.domain in ("", "ai.onnx")), 17)
        return cls(
            list(graph.nodes),
            shapes,
            consts,
            graph.input_names,
            graph.output_names,
            source=source,
            proto_of=lambda node: protos[node.index],
            opset=int(opset),
            dtypes=dtypes,
        )

    def node_proto(self, node: Node) -> onnx.NodeProto:
        """The NodeProto of a node (the loaded model's own, or rebuilt from the attributes)."""
        if self._proto_of is not None:
            return self._proto_of(node)
        return helper.make_node(
            node.op_type, list(node.inputs), list(node.outputs), name=node.name, **node.attrs
        )

    def dtype(self, tensor: str) -> int:
        info = self.consts.get(tensor)
        if info is not None:
            return info.dtype
        return self.dtypes.get(tensor, onnx.TensorProto.FLOAT)

    def __len__(self) -> int:
        return len(self.nodes)
