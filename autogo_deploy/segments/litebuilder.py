"""`LiteBuilder`: a structure-only mirror of the zoo's NetBuilder (see lite.py for why).

Same public layer API and the same emitted nodes (names, inputs, attributes, output shapes) as
zoo/builder.py, but weights are recorded as dims only and no weight statistics are tracked.
tests/segments/test_lite.py checks the mirror node-for-node against graph.load of the real model.
"""

from __future__ import annotations

from math import prod

import numpy as np
from onnx import TensorProto, helper

from autogo_deploy.segments.structure import ConstInfo, carries_value, const_values
from autogo_deploy.zoo.builder import BN_EPSILON, _conv_out


class NotEmulated(Exception):
    """The network contains a pattern whose onnxslim rewrite the fast path does not reproduce."""


def _norm_attr(value):
    """The value `node_features.attrs_of` reads back from an attribute made by helper.make_node."""
    kind = type(value)
    if kind is int or kind is str:
        return value
    if kind is list or kind is tuple:
        if all(type(v) is int for v in value):
            return tuple(value)
        return tuple(_norm_attr(v) for v in value)
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(np.float32(value))
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise NotEmulated(f"attribute value {value!r}")


class LiteBuilder:
    """Structure-only stand-in for the zoo's NetBuilder: the same public layer API and the same
    emitted nodes (names, inputs, attributes, shapes), but weights are recorded as dims only and no
    statistics are tracked. Mirrors zoo/builder.py; test_lite.py checks the mirror node-for-node."""

    def __init__(self, name: str, input_shape: tuple[int, ...], *, seed: int = 0):
        self.name = name
        self.shapes: dict[str, tuple[int, ...]] = {"input": tuple(int(d) for d in input_shape)}
        self.raw: list[list] = []  # [op, name, inputs, outputs, attrs, sorted attr reprs]
        self.inits: dict[str, ConstInfo] = {}
        self._consts: dict[tuple, str] = {}
        self._names: set[str] = {"input"}
        self._attr_cache: dict[str, tuple] = {}

    # ---------------------------------------------------------------- bookkeeping
    def _node(self, op: str, name: str, inputs: list[str], shape: tuple[int, ...], **attrs) -> str:
        if name in self._names:
            raise ValueError(f"duplicate layer name {name!r}")
        self._names.add(name)
        key = repr(attrs)
        cached = self._attr_cache.get(key)
        if cached is None:
            norm = {k: _norm_attr(v) for k, v in attrs.items()}
            cached = self._attr_cache[key] = (norm, tuple(sorted((k, repr(v)) for k, v in norm.items())))
        self.raw.append([op, name, list(inputs), [name], cached[0], cached[1]])
        self.shapes[name] = shape
        return name

    def _init(self, name: str, arr) -> str:
        self._names.add(name)
        arr = np.asarray(arr)
        dims = tuple(int(d) for d in arr.shape)
        dtype = int(helper.np_dtype_to_tensor_dtype(arr.dtype))
        self.inits[name] = ConstInfo(dims, dtype, const_values(arr) if carries_value(dims, dtype) else None)
        return name

    def _weight(self, name: str, shape: tuple[int, ...]) -> str:
        if prod(shape) == 1:  # value-carrying scalar: the only case where values matter here
            raise NotEmulated(f"1-element weight {name}")
        self._names.add(name)
        self.inits[name] = ConstInfo(tuple(shape), TensorProto.FLOAT, None)
        return name

    def const(self, values, dtype=np.float32) -> str:
        arr = np.asarray(values, dtype=dtype)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self._consts:
            self._consts[key] = self._init(f"const.{len(self._consts)}", arr)
        return self._consts[key]

    def shape(self, x: str) -> tuple[int, ...]:
        return self.shapes[x]

    def channels(self, x: str) -> int:
        return self.shapes[x][1]

    # ---------------------------------------------------------------- layers
    def conv(self, x, cout, k, *, name, stride=1, pad=None, group=1, bias=False, gain=None) -> str:
        n, cin, h, w = self.shapes[x]
        if cin % group or cout % group:
            raise ValueError(f"{name}: channels {cin}->{cout} not divisible by group {group}")
        pad = (k - 1) // 2 if pad is None else pad
        inputs = [x, self._weight(f"{name}.weight", (cout, cin // group, k, k))]
        if bias:
            inputs.append(self._weight(f"{name}.bias", (cout,)))
        ho, wo = _conv_out(h, k, stride, pad, pad), _conv_out(w, k, stride, pad, pad)
        return self._node("Conv", name, inputs, (n, cout, ho, wo), kernel_shape=[k, k], strides=[stride, stride],
                          pads=[pad, pad, pad, pad], group=group)  # fmt: skip

    def bn(self, x: str, *, name: str, gamma: float = 1.0) -> str:  # gamma only scales weight values
        c = self.channels(x)
        inputs = [x] + [self._weight(f"{name}.{f}", (c,)) for f in ("scale", "bias", "mean", "var")]
        return self._node("BatchNormalization", name, inputs, self.shapes[x], epsilon=BN_EPSILON)

    def relu(self, x: str, *, name: str) -> str:
        return self._node("Relu", name, [x], self.shapes[x])

    def relu6(self, x: str, *, name: str) -> str:
        return self._node("Clip", name, [x, self.const(0.0), self.const(6.0)], self.shapes[x])

    def add(self, a: str, b: str, *, name: str) -> str:
        if self.shapes[a] != self.shapes[b]:
            raise ValueError(f"{name}: Add of {self.shapes[a]} and {self.shapes[b]}")
        return self._node("Add", name, [a, b], self.shapes[a])

    def add_all(self, xs: list[str], *, name: str) -> str:
        out = xs[0]
        for i, x in enumerate(xs[1:]):
            out = self.add(out, x, name=name if i == 0 else f"{name}.{i}")
        return out

    def scale(self, x: str, factor: float, *, name: str) -> str:
        return self._node("Mul", name, [x, self.const(factor)], self.shapes[x])

    def concat(self, xs: list[str], *, name: str) -> str:
        shapes = [self.shapes[x] for x in xs]
        n, _, h, w = shapes[0]
        return self._node("Concat", name, xs, (n, sum(s[1] for s in shapes), h, w), axis=1)

    def _pool(self, op, x, k, name, stride, pad, **extra) -> str:
        n, c, h, w = self.shapes[x]
        out = (n, c, _conv_out(h, k, stride, pad, pad), _conv_out(w, k, stride, pad, pad))
        return self._node(
            op, name, [x], out, kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4, **extra
        )

    def maxpool(self, x: str, k: int, *, name: str, stride: int = 1, pad: int = 0) -> str:
        return self._pool("MaxPool", x, k, name, stride, pad)

    def avgpool(self, x, k, *, name, stride=1, pad=0, count_include_pad=False) -> str:
        return self._pool("AveragePool", x, k, name, stride, pad, count_include_pad=int(count_include_pad))

    def global_avgpool(self, x: str, *, name: str) -> str:
        n, c = self.shapes[x][:2]
        return self._node("GlobalAveragePool", name, [x], (n, c, 1, 1))

    def flatten(self, x: str, *, name: str) -> str:
        n = self.shapes[x][0]
        return self._node("Flatten", name, [x], (n, prod(self.shapes[x][1:])), axis=1)

    def gemm(self, x: str, out_features: int, *, name: str, gain: float = 1.0) -> str:
        n, fin = self.shapes[x]
        w = self._weight(f"{name}.weight", (out_features, fin))
        b = self._init(f"{name}.bias", np.zeros(out_features, np.float32))
        return self._node("Gemm", name, [x, w, b], (n, out_features), transB=1)

    def slice_channels(self, x: str, channels: int, *, name: str) -> str:
        n, _, h, w = self.shapes[x]
        ins = [x, self.const([0], np.int64), self.const([channels], np.int64), self.const([1], np.int64)]
        return self._node("Slice", name, ins, (n, channels, h, w))

    def channel_shuffle(self, x: str, groups: int, *, name: str) -> str:
        n, c, h, w = self.shapes[x]
        split = (n, groups, c // groups, h, w)
        a = self._node("Reshape", f"{name}.split", [x, self.const(list(split), np.int64)], split)
        t = self._node(
            "Transpose", f"{name}.transpose", [a], (n, c // groups, groups, h, w), perm=[0, 2, 1, 3, 4]
        )
        return self._node("Reshape", name, [t, self.const([n, c, h, w], np.int64)], (n, c, h, w))

    def depth_to_space(self, x: str, r: int, *, name: str) -> str:
        n, c, h, w = self.shapes[x]
        return self._node("DepthToSpace", name, [x], (n, c // (r * r), h * r, w * r), blocksize=r, mode="CRD")

    def shift(self, x: str, values: list[float], *, name: str, op: str) -> str:
        c = self.channels(x)
        vec = self.const(np.asarray(values, np.float32).reshape(1, c, 1, 1))
        return self._node(op, name, [x, vec], self.shapes[x])

    def conv_bn(
        self, x: str, cout: int, k: int, *, name: str, relu: bool = True, gamma: float = 1.0, **kw
    ) -> str:
        y = self.bn(self.conv(x, cout, k, name=f"{name}.conv", **kw), name=f"{name}.bn")
        return self.relu(y, name=f"{name}.relu") if relu else y

    def finish(self, output: str, *, doc: str = ""):
        last = self.raw[-1]
        if last[3][0] != output:
            raise ValueError("the output must be produced by the last node")
        last[3][0] = "output"
        self.shapes["output"] = self.shapes[output]
        return self
