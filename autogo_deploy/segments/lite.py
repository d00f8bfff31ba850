"""Corpus fast path: the zoo's own family builders replayed without weights, straight to a StructGraph.

`graph.load` on a zoo network costs ~0.5 s (checker, onnxslim, shape inference) and drawing weights
costs more; 26,000 corpus networks would take far beyond the 2-minute budget. The structure alone is
cheap, so this module:

1. runs the zoo family function with `LiteBuilder` (litebuilder.py) in place of `NetBuilder`: the
   same layer API, nodes recorded as plain tuples and initializers as dims (values only for
   value-carrying constants), so node names, attributes, shapes and order are the zoo's own;
2. applies what `graph.load`'s onnxslim cleanup does to these networks: common-subexpression
   elimination (identical op + attributes + inputs; the survivor is the smallest name, which is what
   onnxslim keeps after graph.load's canonical sort) and the no-op removals (Identity/Dropout, x*1, x+0, x-0, x/1,
   identity Transpose, single-input Concat). Anything else onnxslim might rewrite (Conv followed by a
   constant Add/Mul, Pad, MatMul+Add, ...) raises `NotEmulated` and the caller falls back to
   `graph.load`;
3. computes the canonical order with graph.py's rule (topo.py: Kahn by depth, op, structural
   signature, name) and the per-node features with node_features' conventions.

tests/segments/test_lite.py proves node-for-node equality with `graph.load` on sampled archs of every
family, so the corpus tokenises exactly what graph.py gives for the real zoo models.
"""

from __future__ import annotations

import contextlib
import heapq
from math import prod

from autogo_deploy.errors import InputError
from autogo_deploy.node_features import Node
from autogo_deploy.segments.litebuilder import LiteBuilder, NotEmulated
from autogo_deploy.segments.structure import ConstInfo, StructGraph
from autogo_deploy.topo import _h as topo_hash  # the exact signature hash graph.py's order uses
from autogo_deploy.zoo.builder import OPSET, NetBuilder

__all__ = ["LiteBuilder", "NotEmulated", "build_lite"]

_SAFE_OPS = frozenset(
    "Conv BatchNormalization Relu Add Mul Sub Div AveragePool MaxPool GlobalAveragePool Flatten Gemm "
    "Concat Slice Reshape Transpose Clip".split()
)
_FUSED_AFTER_CONV = frozenset({"Add", "Mul", "Sub", "Div"})


_ZOO_MODULES = ("nb201", "nb101", "fbnet", "resnet", "vgg", "mobilenet", "edsr")


@contextlib.contextmanager
def _lite_zoo():
    """Temporarily make the zoo family modules build with LiteBuilder (this process only)."""
    import importlib

    modules = []
    for name in _ZOO_MODULES:
        try:
            module = importlib.import_module(f"autogo_deploy.zoo.{name}")
        except ImportError:  # pragma: no cover - a family the zoo does not ship
            continue
        if getattr(module, "NetBuilder", None) is NetBuilder:
            modules.append(module)
    try:
        for m in modules:
            m.NetBuilder = LiteBuilder
        yield
    finally:
        for m in modules:
            m.NetBuilder = NetBuilder


def build_lite(family: str, arch, *, source: str = "") -> StructGraph:
    """StructGraph of a zoo network without weights: family nb201/nb101/fbnet with its arch, or any
    other family with the zoo model name as `arch` (resnet50, vgg16_bn, ...).

    Raises NotEmulated when the network needs graph.load (a pattern onnxslim rewrites, or a zoo
    builder API this mirror does not know yet)."""
    from autogo_deploy import zoo

    try:
        with _lite_zoo():
            if family == "nb201":
                b = zoo.nb201(arch)
            elif family == "nb101":
                matrix, ops = arch
                b = zoo.nb101(matrix, ops)
            elif family == "fbnet":
                b = zoo.fbnet(arch)
            else:
                b = zoo.build(arch)
    except (TypeError, AttributeError) as exc:  # the zoo uses a builder feature the mirror lacks
        raise NotEmulated(f"zoo builder API: {exc}") from None
    except InputError as exc:
        if "unexpected keyword" in str(exc):
            raise NotEmulated(f"zoo builder API: {exc}") from None
        raise
    if not isinstance(b, LiteBuilder):  # pragma: no cover - the zoo bypassed NetBuilder
        raise NotEmulated(f"{family} did not build through NetBuilder")
    return _to_struct(b, source)


def _is_const_all(info: ConstInfo | None, value: float, out_shape, in_shape) -> bool:
    if info is None or info.values is None or not all(v == value for v in info.values):
        return False
    return len(info.dims) == 0 or tuple(in_shape) == tuple(out_shape)


def _simplify(b: LiteBuilder) -> list[list]:
    """onnxslim's effect on zoo networks: no-op removal, then CSE.

    CSE survivor: graph.load sorts nodes canonically before onnxslim, and duplicates tie on depth,
    op and structural signature, so the survivor of a group of identical nodes is the one with the
    smallest name (onnxslim keeps the first of a bucket in its stable toposort)."""
    inits, shapes = b.inits, b.shapes
    conv_outs: set[str] = set()
    rename: dict[str, str] = {}
    seen: dict[tuple, int] = {}
    out: list[list] = []
    best: dict[int, list] = {}  # kept index -> [name, outputs] of the group's smallest-named member
    for op, name, ins, outs, attrs, items in b.raw:
        if op not in _SAFE_OPS:
            raise NotEmulated(f"op {op}")
        ins = [rename.get(t, t) for t in ins]
        if op in _FUSED_AFTER_CONV and any(t in conv_outs for t in ins) and any(t in inits for t in ins):
            raise NotEmulated(f"Conv followed by {op} with a constant (onnxslim may fuse it)")
        if op == "Conv":
            conv_outs.add(outs[0])
        if op in ("Mul", "Div", "Add", "Sub") and outs[0] != "output":
            var = [t for t in ins if t not in inits]
            const = [inits[t] for t in ins if t in inits]
            if len(var) == 1 and len(const) == 1:
                neutral = 1.0 if op in ("Mul", "Div") else 0.0
                if (op in ("Mul", "Add") or ins[1] in inits) and _is_const_all(
                    const[0], neutral, shapes[outs[0]], shapes[var[0]]
                ):
                    rename[outs[0]] = var[0]
                    continue
        if op == "Transpose" and attrs.get("perm") == tuple(range(len(attrs.get("perm", ())))):
            rename[outs[0]] = ins[0]
            continue
        if op == "Concat" and len(ins) == 1 and outs[0] != "output":
            rename[outs[0]] = ins[0]
            continue
        if op == "Slice" and shapes[ins[0]] == shapes[outs[0]]:
            raise NotEmulated("Slice that keeps the shape")
        if op == "Reshape" and shapes[ins[0]] == shapes[outs[0]]:
            raise NotEmulated("Reshape that keeps the shape")
        key = (op, items, tuple(inits[t].values or t if t in inits else t for t in ins))
        hit = seen.get(key)
        if hit is not None and outs[0] != "output" and "output" not in out[hit][3]:
            kept = out[hit]
            for a, c in zip(outs, kept[3], strict=True):
                rename[a] = c
            if name < best[hit][0]:
                best[hit] = [name, outs]
            continue
        seen[key] = len(out)
        best[len(out)] = [name, outs]
        out.append([op, name, ins, outs, attrs, items])
    # relabel groups whose smallest-named member is not the first one built
    final: dict[str, str] = {}
    for k, (name, outs) in best.items():
        node = out[k]
        if name != node[1]:
            for a, c in zip(node[3], outs, strict=True):
                final[a] = c
            node[1], node[3] = name, list(outs)
    if final:
        for node in out:
            node[2] = [final.get(t, t) for t in node[2]]
    return out


def _canonical(raw: list[list], inits: dict[str, ConstInfo], graph_inputs: list[str]) -> list[int]:
    """topo.canonical_order on raw nodes (same depth, signature and tie-break rule)."""
    producer = {}
    for i, node in enumerate(raw):
        for q, t in enumerate(node[3]):
            producer[t] = (i, q)
    inputs = {name: k for k, name in enumerate(graph_inputs)}
    n = len(raw)
    preds: list[set[int]] = [set() for _ in range(n)]
    succs: list[set[int]] = [set() for _ in range(n)]
    for i, node in enumerate(raw):
        for t in node[2]:
            hit = producer.get(t)
            if hit is not None:
                preds[i].add(hit[0])
                succs[hit[0]].add(i)
    indeg = [len(p) for p in preds]
    ready = [i for i in range(n) if indeg[i] == 0]
    topo: list[int] = []
    while ready:
        i = ready.pop()
        topo.append(i)
        for j in succs[i]:
            indeg[j] -= 1
            if indeg[j] == 0:
                ready.append(j)
    if len(topo) != n:  # pragma: no cover - zoo networks are DAGs
        raise NotEmulated("cycle")
    depth = [0] * n
    sig = [""] * n
    for i in topo:
        op, _name, ins, _outs, _attrs, items = raw[i]
        parts = []
        for t in ins:
            if not t:
                parts.append("-")
            elif t in producer:
                p, q = producer[t]
                parts.append((sig[p], q))
            elif t in inits:
                parts.append(("init", inits[t].dims))
            elif t in inputs:
                parts.append(("input", inputs[t]))
            else:
                parts.append(("free", t))
        depth[i] = 1 + max((depth[p] for p in preds[i]), default=-1)
        sig[i] = topo_hash(op, "", list(items), parts)
    indeg = [len(p) for p in preds]
    heap = [(depth[i], raw[i][0], sig[i], raw[i][1], i) for i in range(n) if indeg[i] == 0]
    heapq.heapify(heap)
    order: list[int] = []
    while heap:
        i = heapq.heappop(heap)[-1]
        order.append(i)
        for j in sorted(succs[i]):
            indeg[j] -= 1
            if indeg[j] == 0:
                heapq.heappush(heap, (depth[j], raw[j][0], sig[j], raw[j][1], j))
    return order


_SPATIAL = {"Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool"}


_FEATURES: dict[tuple, tuple] = {}  # memo: identical layers recur across thousands of networks


def _describe(op, name, ins, outs, attrs, items, shapes, inits) -> Node:
    """node_features.describe for the ops the fast path admits."""
    in_shapes = [shapes[t] for t in ins if t]
    out_shapes = [shapes[t] for t in outs if t]
    consts = tuple(inits.get(t) for t in ins)
    key = (op, items, tuple(in_shapes), tuple(out_shapes), consts)
    feats = _FEATURES.get(key)
    if feats is None:
        feats = _features(op, ins, attrs, in_shapes, out_shapes, inits)
        ispec = tuple(
            ("a", shapes[t], 1) if c is None else ("c", c.dims, c.dtype, c.values)
            for t, c in zip(ins, consts, strict=True)
        )
        ospec = tuple((s, 1) for s in out_shapes)
        # the compact-record descriptor (compact.describe_node), shared by every identical layer
        desc = (op, tuple(sorted(attrs.items())), *feats[:5], ispec, ospec, *feats[5:])
        if len(_FEATURES) > 200_000:
            _FEATURES.clear()
        feats = _FEATURES[key] = (*feats, desc)
    kernel, stride, dilation, pads, group, macs, params, act, desc = feats
    node = Node(name, op, list(ins), list(outs), attrs, kernel=kernel, stride=stride, dilation=dilation, pads=pads,
                group=group, in_shapes=in_shapes, out_shapes=out_shapes, macs=macs, params=params, act_bytes=act)  # fmt: skip
    node.segment_desc = desc
    return node


def _features(op, ins, attrs, in_shapes, out_shapes, inits) -> tuple:
    kernel = stride = dilation = pads = None
    group, macs = 1, 0
    if op in _SPATIAL:
        k = attrs.get("kernel_shape")
        nsp = len(k) if k else max(len(in_shapes[0]) - 2, 0) if in_shapes else 0
        kernel = tuple(k) if k else None
        stride = attrs.get("strides", (1,) * nsp)
        dilation = attrs.get("dilations", (1,) * nsp)
        pads = attrs.get("pads", (0,) * (2 * nsp))
        group = attrs.get("group", 1)
        if op == "Conv" and len(ins) > 1:
            y, w = out_shapes[0], in_shapes[1]
            macs = y[0] * y[1] * prod(y[2:]) * w[1] * prod(w[2:])
    elif op in ("GlobalAveragePool", "GlobalMaxPool"):
        kernel = tuple(in_shapes[0][2:])
    elif op == "Gemm":
        a = in_shapes[0]
        k = a[0] if attrs.get("transA", 0) else a[-1]
        macs = prod(out_shapes[0]) * k if len(a) == 2 else 0
    params = sum(inits[t].numel for t in ins if t in inits)
    act = sum(prod(s) * 4 for s in out_shapes)
    return kernel, stride, dilation, pads, group, macs, params, act


def _to_struct(b: LiteBuilder, source: str) -> StructGraph:
    inits = b.inits
    raw = _simplify(b)
    shapes = b.shapes
    for name, info in inits.items():
        shapes[name] = info.dims
    order = _canonical(raw, inits, ["input"])
    nodes = []
    used_inits = set()
    for k, i in enumerate(order):
        op, name, ins, outs, attrs, items = raw[i]
        node = _describe(op, name, ins, outs, attrs, items, shapes, inits)
        node.index = k
        nodes.append(node)
        used_inits.update(t for t in ins if t in inits)
    consts = {t: inits[t] for t in used_inits}
    return StructGraph(nodes, shapes, consts, ["input"], ["output"], source=source, opset=OPSET)
