"""A small ONNX layer builder shared by every zoo family.

Each layer call appends ONNX nodes, tracks the static NCHW shape of what it produced and returns the
output tensor name. Weights are Kaiming-normal draws (std = gain / sqrt(fan_in), gain sqrt(2) by
default) from a stream seeded by (seed, tensor name), so a tensor's values depend only on the seed and
its name: two networks that share a layer name and shape share its weights, and a process-wide cache
of recent draws makes rebuilding related networks (the 15,625 NB201 cells) cheap without changing a
single byte of the result.

BatchNorm statistics come from a data-free per-channel moment propagation (see moments.py): each
BN's running mean/variance are the estimated statistics of its input for a standard-normal network
input, so activations stay O(1) like a calibrated network in eval mode. BN scale ~ U(0.8, 1.2) and
bias ~ N(0, 0.05^2) per channel, so BN is never the identity and folding it into Conv is a real test.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import onnx
from onnx import TensorProto, helper

from autogo_deploy.errors import InputError
from autogo_deploy.zoo import moments as mom

OPSET = 17
IR_VERSION = 8  # the IR version that introduced opset 17; every onnxruntime since 1.12 reads it
BN_EPSILON = 1e-5
PRODUCER = "autogo-deploy.zoo"

_CACHE: dict[tuple, np.ndarray] = {}
_CACHE_BYTES = 0
_CACHE_LIMIT_BYTES = 96 * 2**20
_CACHE_MAX_TENSOR_BYTES = 4 * 2**20


def check_seed(seed: object) -> int:
    """Seeds are non-negative Python ints (bools refused); anything else is an InputError."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or int(seed) < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _stream(seed: int, name: str) -> np.random.Generator:
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=16).digest()
    words = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, *words])))


def _cached(key: tuple, make) -> np.ndarray:
    global _CACHE_BYTES
    hit = _CACHE.get(key)
    if hit is not None:
        return hit
    arr = make()
    arr.setflags(write=False)
    if arr.nbytes <= _CACHE_MAX_TENSOR_BYTES:
        if _CACHE_BYTES + arr.nbytes > _CACHE_LIMIT_BYTES:
            _CACHE.clear()
            _CACHE_BYTES = 0
        _CACHE[key] = arr
        _CACHE_BYTES += arr.nbytes
    return arr


def draw(seed: int, name: str, shape: tuple[int, ...], kind: str) -> np.ndarray:
    """Deterministic float32 draw for tensor `name`: 'normal' (unit variance), 'sym' U(-1,1), 'bn-*'."""

    def make() -> np.ndarray:
        rng = _stream(seed, name)
        n = math.prod(shape)
        if kind == "normal":
            arr = rng.standard_normal(n, dtype=np.float32)
        elif kind == "bn-scale":
            arr = rng.uniform(0.8, 1.2, n).astype(np.float32)
        elif kind == "bn-bias":
            arr = (0.05 * rng.standard_normal(n, dtype=np.float32)).astype(np.float32)
        elif kind == "sym":
            arr = rng.uniform(-1.0, 1.0, n).astype(np.float32)
        else:  # pragma: no cover - programming error
            raise ValueError(kind)
        return arr.reshape(shape)

    return _cached((seed, name, shape, kind), make)


def tap_sums(seed: int, name: str, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Sum and sum of squares over the kernel taps of the unit draw of conv weight `name` (float64)."""
    z = draw(seed, name, shape, "normal")
    s1 = _cached((seed, name, shape, "tapsum"), lambda: z.sum(axis=(2, 3), dtype=np.float64))
    s2 = _cached((seed, name, shape, "tapsq"), lambda: np.square(z, dtype=np.float64).sum(axis=(2, 3)))
    return s1, s2


def _conv_out(size: int, k: int, s: int, p0: int, p1: int, d: int = 1, ceil: bool = False) -> int:
    span = size + p0 + p1 - d * (k - 1) - 1
    return (-(-span // s) if ceil else span // s) + 1


class NetBuilder:
    """Builds one ONNX graph layer by layer (batch 1, float32, NCHW)."""

    def __init__(self, name: str, input_shape: tuple[int, ...], *, seed: int = 0):
        self.name = name
        self.seed = check_seed(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[tuple[str, np.ndarray]] = []
        self.shapes: dict[str, tuple[int, ...]] = {"input": tuple(int(d) for d in input_shape)}
        # estimated per-channel (mean, var) of every tensor for a standard-normal input
        self.stats: dict[str, mom.Moments] = {"input": mom.standard(self.shapes["input"][1])}
        self._consts: dict[tuple, str] = {}
        self._names: set[str] = {"input"}

    # ------------------------------------------------------------------ bookkeeping
    def _node(self, op: str, name: str, inputs: list[str], shape: tuple[int, ...], stats, **attrs) -> str:
        if name in self._names:
            raise ValueError(f"duplicate layer name {name!r}")  # a bug in a family builder
        self._names.add(name)
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        self.shapes[name] = tuple(int(d) for d in shape)
        self.stats[name] = stats
        return name

    def _init(self, name: str, arr: np.ndarray) -> str:
        self._names.add(name)
        self.initializers.append((name, arr))
        return name

    def weight(self, name: str, shape: tuple[int, ...], std: float) -> np.ndarray:
        arr = (draw(self.seed, name, shape, "normal") * np.float32(std)).astype(np.float32, copy=False)
        self._init(name, arr)
        return arr

    def const(self, values, dtype=np.float32) -> str:
        """A shared constant initializer (scalars and small vectors: clip bounds, slice ends, shapes)."""
        arr = np.asarray(values, dtype=dtype)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self._consts:
            self._consts[key] = self._init(f"const.{len(self._consts)}", arr)
        return self._consts[key]

    def shape(self, x: str) -> tuple[int, ...]:
        return self.shapes[x]

    def channels(self, x: str) -> int:
        return self.shapes[x][1]

    # ------------------------------------------------------------------ layers
    def conv(
        self,
        x: str,
        cout: int,
        k: int,
        *,
        name: str,
        stride: int = 1,
        pad: int | None = None,
        group: int = 1,
        bias: bool = False,
        gain: float = math.sqrt(2.0),
    ) -> str:
        """Conv2d, Kaiming-normal weights; a bias (when asked) ~ U(+-1/sqrt(fan_in)) as PyTorch's default."""
        n, cin, h, w = self.shapes[x]
        if cin % group or cout % group:
            raise ValueError(f"{name}: channels {cin}->{cout} not divisible by group {group}")
        pad = (k - 1) // 2 if pad is None else pad
        fan_in = (cin // group) * k * k
        wshape, std = (cout, cin // group, k, k), gain / math.sqrt(fan_in)
        self.weight(f"{name}.weight", wshape, std)
        inputs, b = [x, f"{name}.weight"], None
        if bias:
            b = draw(self.seed, f"{name}.bias", (cout,), "sym") * np.float32(1.0 / math.sqrt(fan_in))
            inputs.append(self._init(f"{name}.bias", b))
        ho, wo = _conv_out(h, k, stride, pad, pad), _conv_out(w, k, stride, pad, pad)
        return self._node(
            "Conv",
            name,
            inputs,
            (n, cout, ho, wo),
            mom.conv(*tap_sums(self.seed, f"{name}.weight", wshape), std, b, group, self.stats[x]),
            kernel_shape=[k, k],
            strides=[stride, stride],
            pads=[pad, pad, pad, pad],
            group=group,
        )

    def bn(self, x: str, *, name: str, gamma: float = 1.0) -> str:
        """BatchNorm (eval) with running stats from the moment estimate; scale ~ gamma * U(0.8, 1.2)."""
        c = self.channels(x)
        scale = draw(self.seed, f"{name}.scale", (c,), "bn-scale")
        if gamma != 1.0:
            scale = (scale * np.float32(gamma)).astype(np.float32)
        bias = draw(self.seed, f"{name}.bias", (c,), "bn-bias")
        mean = self.stats[x][0].astype(np.float32)
        var = np.maximum(self.stats[x][1], 1e-3).astype(np.float32)
        inputs = [x] + [
            self._init(f"{name}.{f}", a)
            for f, a in (("scale", scale), ("bias", bias), ("mean", mean), ("var", var))
        ]
        out = (bias.astype(np.float64), scale.astype(np.float64) ** 2)
        return self._node("BatchNormalization", name, inputs, self.shapes[x], out, epsilon=BN_EPSILON)

    def relu(self, x: str, *, name: str) -> str:
        return self._node("Relu", name, [x], self.shapes[x], mom.relu(self.stats[x]))

    def relu6(self, x: str, *, name: str) -> str:
        return self._node(
            "Clip", name, [x, self.const(0.0), self.const(6.0)], self.shapes[x], mom.relu(self.stats[x])
        )

    def add(self, a: str, b: str, *, name: str) -> str:
        if self.shapes[a] != self.shapes[b]:
            raise ValueError(f"{name}: Add of {self.shapes[a]} and {self.shapes[b]}")
        return self._node("Add", name, [a, b], self.shapes[a], mom.add(self.stats[a], self.stats[b]))

    def add_all(self, xs: list[str], *, name: str) -> str:
        """Left-to-right chain of binary Adds (`name`, `name`.1, ...); one input passes through."""
        out = xs[0]
        for i, x in enumerate(xs[1:]):
            out = self.add(out, x, name=name if i == 0 else f"{name}.{i}")
        return out

    def scale(self, x: str, factor: float, *, name: str) -> str:
        return self._node(
            "Mul", name, [x, self.const(factor)], self.shapes[x], mom.scale(self.stats[x], factor)
        )

    def concat(self, xs: list[str], *, name: str) -> str:
        shapes = [self.shapes[x] for x in xs]
        n, _, h, w = shapes[0]
        if any((s[0], s[2], s[3]) != (n, h, w) for s in shapes):
            raise ValueError(f"{name}: Concat of {shapes}")
        c = sum(s[1] for s in shapes)
        return self._node("Concat", name, xs, (n, c, h, w), mom.concat([self.stats[x] for x in xs]), axis=1)

    def maxpool(self, x: str, k: int, *, name: str, stride: int = 1, pad: int = 0) -> str:
        n, c, h, w = self.shapes[x]
        out = (n, c, _conv_out(h, k, stride, pad, pad), _conv_out(w, k, stride, pad, pad))
        return self._node(
            "MaxPool",
            name,
            [x],
            out,
            mom.maxpool(self.stats[x], k),
            kernel_shape=[k, k],
            strides=[stride, stride],
            pads=[pad] * 4,
        )

    def avgpool(
        self, x: str, k: int, *, name: str, stride: int = 1, pad: int = 0, count_include_pad: bool = False
    ) -> str:
        n, c, h, w = self.shapes[x]
        out = (n, c, _conv_out(h, k, stride, pad, pad), _conv_out(w, k, stride, pad, pad))
        return self._node(
            "AveragePool",
            name,
            [x],
            out,
            self.stats[x],
            kernel_shape=[k, k],
            strides=[stride, stride],
            pads=[pad] * 4,
            count_include_pad=int(count_include_pad),
        )

    def global_avgpool(self, x: str, *, name: str) -> str:
        n, c = self.shapes[x][:2]
        return self._node("GlobalAveragePool", name, [x], (n, c, 1, 1), self.stats[x])

    def flatten(self, x: str, *, name: str) -> str:
        n = self.shapes[x][0]
        spatial = math.prod(self.shapes[x][2:])
        out = (n, math.prod(self.shapes[x][1:]))
        return self._node("Flatten", name, [x], out, mom.flatten(self.stats[x], spatial), axis=1)

    def gemm(self, x: str, out_features: int, *, name: str, gain: float = 1.0) -> str:
        n, fin = self.shapes[x]
        wt = self.weight(f"{name}.weight", (out_features, fin), gain / math.sqrt(fin))
        b = self._init(f"{name}.bias", np.zeros(out_features, np.float32))
        del wt  # no BatchNorm follows a Gemm in the zoo: its moments are taken in expectation over weights
        stats = mom.gemm_expected(out_features, gain, self.stats[x])
        return self._node("Gemm", name, [x, f"{name}.weight", b], (n, out_features), stats, transB=1)

    def slice_channels(self, x: str, channels: int, *, name: str) -> str:
        """Keep the first `channels` channels (NASBench-101's `truncate`)."""
        n, _, h, w = self.shapes[x]
        ins = [x, self.const([0], np.int64), self.const([channels], np.int64), self.const([1], np.int64)]
        m, v = self.stats[x]
        return self._node("Slice", name, ins, (n, channels, h, w), (m[:channels], v[:channels]))

    def channel_shuffle(self, x: str, groups: int, *, name: str) -> str:
        """[N,C,H,W] -> [N,g,C/g,H,W] -> transpose(0,2,1,3,4) -> [N,C,H,W], as in ShuffleNet."""
        n, c, h, w = self.shapes[x]
        a = self._node(
            "Reshape", f"{name}.split", [x, self.const([n, groups, c // groups, h, w], np.int64)],
            (n, groups, c // groups, h, w), None,
        )  # fmt: skip
        t = self._node(
            "Transpose",
            f"{name}.transpose",
            [a],
            (n, c // groups, groups, h, w),
            None,
            perm=[0, 2, 1, 3, 4],
        )
        stats = mom.channel_shuffle(self.stats[x], groups)
        return self._node("Reshape", name, [t, self.const([n, c, h, w], np.int64)], (n, c, h, w), stats)

    def depth_to_space(self, x: str, r: int, *, name: str) -> str:
        """PixelShuffle(r): DepthToSpace in CRD mode (PyTorch's channel order)."""
        n, c, h, w = self.shapes[x]
        shape = (n, c // (r * r), h * r, w * r)
        return self._node(
            "DepthToSpace", name, [x], shape, mom.depth_to_space(self.stats[x], r), blocksize=r, mode="CRD"
        )

    def shift(self, x: str, values: list[float], *, name: str, op: str) -> str:
        """Per-channel Sub/Add of a constant vector (EDSR's MeanShift with unit std)."""
        c = self.channels(x)
        vec = self.const(np.asarray(values, np.float32).reshape(1, c, 1, 1))
        m, v = self.stats[x]
        m = m - np.asarray(values) if op == "Sub" else m + np.asarray(values)
        return self._node(op, name, [x, vec], self.shapes[x], (m, v))

    # ------------------------------------------------------------------ composite helpers
    def conv_bn(
        self, x: str, cout: int, k: int, *, name: str, relu: bool = True, gamma: float = 1.0, **kw
    ) -> str:
        y = self.bn(self.conv(x, cout, k, name=f"{name}.conv", **kw), name=f"{name}.bn", gamma=gamma)
        return self.relu(y, name=f"{name}.relu") if relu else y

    # ------------------------------------------------------------------ output
    def finish(self, output: str, *, doc: str = "") -> onnx.ModelProto:
        """Rename `output` to "output" and wrap everything in an opset-17 ModelProto.

        Fields are filled in place (no make_graph/make_model copies): VGG's 550 MB of weights are
        copied once into the protobuf instead of three times.
        """
        last = self.nodes[-1]
        if last.output[0] != output:
            raise ValueError("the output must be produced by the last node")
        last.output[0] = "output"
        model = onnx.ModelProto()
        model.ir_version = IR_VERSION
        model.producer_name = PRODUCER
        model.model_version = 1
        model.opset_import.append(helper.make_opsetid("", OPSET))
        g = model.graph
        g.name = self.name
        if doc:
            g.doc_string = doc
        g.node.extend(self.nodes)
        g.input.append(helper.make_tensor_value_info("input", TensorProto.FLOAT, list(self.shapes["input"])))
        g.output.append(helper.make_tensor_value_info("output", TensorProto.FLOAT, list(self.shapes[output])))
        for name, arr in self.initializers:
            t = g.initializer.add()
            t.name = name
            t.data_type = helper.np_dtype_to_tensor_dtype(arr.dtype)
            t.dims.extend(arr.shape)
            t.raw_data = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        return model
