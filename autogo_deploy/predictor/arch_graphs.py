"""Fast graph tensors for NAS-Bench-201 archs, without building ONNX.

Training needs the tensors of 10,000+ NB201 networks; building each with `autogo_deploy.zoo.nb201`
and loading it with `graph.load` (onnxslim cleanup) costs ~0.4 s per network. This module emits the
same nodes directly (~2 ms): it mirrors the zoo's NB201 builder op for op, including the cleanup's
common-subexpression elimination (ReLUs, pools and zero-Muls of the same tensor are shared).
tests/predictor/test_arch_graphs.py checks the result is identical (up to node order) to the
featurised zoo network for random archs.
"""

from __future__ import annotations

from autogo_deploy.predictor.features import GraphTensors, NodeSpec, from_specs

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))


class _SpecBuilder:
    """Node specs + edges; a tensor is the index of the node producing it (-1 = graph input)."""

    def __init__(self, input_shape: tuple[int, ...]):
        self.specs: list[NodeSpec] = []
        self.edges: list[tuple[int, int]] = []
        self.shapes: dict[int, tuple[int, ...]] = {-1: input_shape}
        self._cse: dict[tuple, int] = {}

    def _add(self, op, inputs, out_shape, *, kernel=None, stride=None, macs=0, params=0, cse_key=None):
        if cse_key is not None and cse_key in self._cse:
            return self._cse[cse_key]
        i = len(self.specs)
        self.specs.append(
            NodeSpec(
                op_type=op,
                kernel=kernel,
                stride=stride,
                group=1,
                in_shape=self.shapes[inputs[0]],
                out_shape=out_shape,
                macs=macs,
                params=params,
                act_bytes=4 * _prod(out_shape),
                data_inputs=len(inputs),
            )
        )
        self.edges += [(j, i) for j in inputs if j >= 0]
        self.shapes[i] = out_shape
        if cse_key is not None:
            self._cse[cse_key] = i
        return i

    def conv(self, x, cout, k, stride=1):
        n, cin, h, w = self.shapes[x]
        pad = (k - 1) // 2 if k > 1 else 0
        ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
        out = (n, cout, ho, wo)
        macs = n * cout * ho * wo * cin * k * k
        return self._add(
            "Conv", [x], out, kernel=(k, k), stride=(stride, stride), macs=macs, params=cout * cin * k * k
        )

    def conv_pad0(self, x, cout):
        n, cin, h, w = self.shapes[x]
        out = (n, cout, h, w)
        return self._add(
            "Conv", [x], out, kernel=(1, 1), stride=(1, 1), macs=n * cout * h * w * cin, params=cout * cin
        )

    def bn(self, x):
        return self._add("BatchNormalization", [x], self.shapes[x], params=4 * self.shapes[x][1])

    def relu(self, x):
        return self._add("Relu", [x], self.shapes[x], cse_key=("Relu", x))

    def avgpool(self, x, k, stride, pad, cip):
        n, c, h, w = self.shapes[x]
        out = (n, c, (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1)
        key = ("AveragePool", x, k, stride, pad, cip)
        return self._add("AveragePool", [x], out, kernel=(k, k), stride=(stride, stride), cse_key=key)

    def zero(self, x):
        i = self._add("Mul", [x], self.shapes[x], params=1, cse_key=("Mul0", x))
        self.specs[i].zero = True
        return i

    def add(self, a, b):
        return self._add("Add", [a, b], self.shapes[a], cse_key=("Add", a, b))


def _prod(shape) -> int:
    out = 1
    for d in shape:
        out *= int(d)
    return out


def parse_nb201(arch: str) -> tuple[str, ...]:
    """Six ops in arch-string order (the zoo's parser when present: same validation, same errors)."""
    from autogo_deploy.zoo.nb201 import parse_arch

    return parse_arch(arch)


def _edge(b: _SpecBuilder, op: str, x: int) -> int:
    c = b.shapes[x][1]
    if op in ("nor_conv_3x3", "nor_conv_1x1"):
        return b.bn(b.conv(b.relu(x), c, 3 if op == "nor_conv_3x3" else 1))
    if op == "avg_pool_3x3":
        return b.avgpool(x, 3, 1, 1, False)
    if op == "skip_connect":
        return x
    return b.zero(x)


def _cell(b: _SpecBuilder, x: int, ops: tuple[str, ...]) -> int:
    nodes = [x]
    for j in (1, 2, 3):
        terms, first_none = [], None
        for (src, dst), op in zip(EDGES, ops, strict=True):
            if dst != j:
                continue
            if op != "none" or _keeps_alive(ops, src, dst):
                terms.append(_edge(b, op, nodes[src]))
            elif first_none is None:
                first_none = src
        if not terms:
            terms.append(b.zero(nodes[first_none]))
        out = terms[0]
        for t in terms[1:]:
            out = b.add(out, t)
        nodes.append(out)
    return nodes[3]


def _keeps_alive(ops, src, dst) -> bool:
    out = [(s, d) for (s, d) in EDGES if s == src]
    if any(op != "none" for (s, _), op in zip(EDGES, ops, strict=True) if s == src):
        return False
    return out[0] == (src, dst)


def nb201_tensors(
    arch: str, *, num_classes: int = 10, input_size: int = 32, channels: int = 16
) -> GraphTensors:
    """Tensors of the zoo's NB201 network for `arch` after `graph.load` cleanup."""
    return from_specs(*nb201_specs(arch, num_classes=num_classes, input_size=input_size, channels=channels))


def nb201_specs(arch: str, *, num_classes: int = 10, input_size: int = 32, channels: int = 16):
    """(node specs, edges) of the zoo's NB201 network for `arch` after `graph.load` cleanup."""
    ops = parse_nb201(arch)
    b = _SpecBuilder((1, 3, input_size, input_size))
    x = b.bn(b.conv(-1, channels, 3))
    for stage in range(3):
        c = channels * 2**stage
        if stage:
            a = b.bn(b.conv(b.relu(x), c, 3, stride=2))
            a = b.bn(b.conv(b.relu(a), c, 3))
            r = b.conv_pad0(b.avgpool(x, 2, 2, 0, True), c)
            x = b.add(r, a)
        for _ in range(5):
            x = _cell(b, x, ops)
    x = b.relu(b.bn(x))
    n, c = b.shapes[x][:2]
    x = b._add("GlobalAveragePool", [x], (n, c, 1, 1), kernel=tuple(b.shapes[x][2:]))
    x = b._add("Flatten", [x], (n, c))
    b._add("Gemm", [x], (n, num_classes), macs=n * num_classes * c, params=num_classes * c + num_classes)
    return b.specs, b.edges


# ---- FBNet (HW-NAS-Bench CIFAR-100 configuration, as autogo_deploy.zoo.fbnet builds it) ------------
FBNET_LAYERS = (1, 4, 4, 4, 4, 4, 1)
FBNET_CHANNELS = (16, 24, 32, 64, 112, 184, 352)
FBNET_STRIDES = (1, 1, 2, 2, 1, 2, 1)


def _conv_g(b: _SpecBuilder, x: int, cout: int, k: int, stride: int = 1, group: int = 1) -> int:
    n, cin, h, w = b.shapes[x]
    pad = (k - 1) // 2
    ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    i = b._add(
        "Conv",
        [x],
        (n, cout, ho, wo),
        kernel=(k, k),
        stride=(stride, stride),
        macs=n * cout * ho * wo * (cin // group) * k * k,
        params=cout * (cin // group) * k * k,
    )
    b.specs[i].group = group
    return i


def _conv_bn(b: _SpecBuilder, x: int, cout: int, k: int, stride: int = 1, group: int = 1, relu=True) -> int:
    y = b.bn(_conv_g(b, x, cout, k, stride, group))
    return b.relu(y) if relu else y


def _shuffle(b: _SpecBuilder, x: int, groups: int) -> int:
    n, c, h, w = b.shapes[x]
    a = b._add("Reshape", [x], (n, groups, c // groups, h, w), params=5)
    t = b._add("Transpose", [a], (n, c // groups, groups, h, w))
    return b._add("Reshape", [t], (n, c, h, w), params=4)


def _fbnet_block(b: _SpecBuilder, x: int, op: str, cout: int, stride: int) -> int:
    cin = b.shapes[x][1]
    if op == "skip":
        return x if (cin == cout and stride == 1) else _conv_bn(b, x, cout, 1, stride)
    k, e = int(op[1]), int(op.split("_")[1][1:])
    group = 2 if op.endswith("_g2") else 1
    mid = cin * e
    y = _conv_bn(b, x, mid, 1, group=group)
    if group > 1:
        y = _shuffle(b, y, group)
    y = _conv_bn(b, y, mid, k, stride=stride, group=mid)
    y = _conv_bn(b, y, cout, 1, group=group, relu=False)
    return b.add(y, x) if (cin == cout and stride == 1) else y


def fbnet_tensors(ops, *, num_classes: int = 100, input_size: int = 32) -> GraphTensors:
    """Tensors of the zoo's FBNet network for 22 ops after `graph.load` cleanup."""
    from autogo_deploy.zoo.fbnet import parse_ops

    ops = parse_ops(ops)
    b = _SpecBuilder((1, 3, input_size, input_size))
    x = _conv_bn(b, -1, 16, 3)
    i = 0
    for n, cout, stride in zip(FBNET_LAYERS, FBNET_CHANNELS, FBNET_STRIDES, strict=True):
        for j in range(n):
            x = _fbnet_block(b, x, ops[i], cout, stride if j == 0 else 1)
            i += 1
    x = _conv_bn(b, x, 1504, 1)
    n, c = b.shapes[x][:2]
    x = b._add("GlobalAveragePool", [x], (n, c, 1, 1), kernel=tuple(b.shapes[x][2:]))
    x = b._add("Flatten", [x], (n, c))
    b._add("Gemm", [x], (n, num_classes), macs=n * num_classes * c, params=num_classes * c + num_classes)
    return from_specs(b.specs, b.edges)
