"""Canonical form of a segment (a node set of a StructGraph): hash, ports, signature, skeleton.

Hash. Weisfeiler-Lehman refinement over the segment's nodes and its external input tensors. A node's
initial label is its op, attributes (group as `g1`/`dw`/`gN`), value-carrying constants (by value),
weights (by rank) and the *relative* shapes of its tensors; edges carry their port numbers and exposed
outputs (used outside the segment) are marked. Refinement runs until the partition stops splitting.
The hash covers the multiset of final labels, so it does not depend on node names, the graph around
the segment or the absolute sizes; the same 3x3 conv-BN block at 16 and at 64 channels is one segment.

Relative shapes. Every dimension k >= 1 of every tensor is divided by dimension k of the reference
input (the largest external input by element count; ties by canonical position): a stride-2
channel-doubling block has output (C x2, H /2, W /2) whatever its input size.

Ports. Inputs and outputs are ordered largest tensor first, ties by canonical position, so port 0 is
the reference on both sides. Signature = (#inputs, #outputs, spatial ratio = H_out/H_in, channel
ratio = C_out/C_in) of port 0 (a rank-2 tensor counts as 1x1 spatially).
"""

from __future__ import annotations

import hashlib
import heapq
from dataclasses import dataclass
from fractions import Fraction
from math import prod

import onnx
from onnx import helper

from autogo_deploy.segments.structure import StructGraph
from autogo_deploy.segments.tokenize import group_class


def _h(obj) -> str:
    return hashlib.blake2b(repr(obj).encode(), digest_size=12).hexdigest()


@dataclass
class SegmentForm:
    hash: str
    order: list[int]  # node indices of the StructGraph, canonical order within the segment
    inputs: list[str]  # external input tensors, port order
    outputs: list[str]  # exposed output tensors, port order
    spatial_ratio: Fraction
    channel_ratio: Fraction
    rel_inputs: list[str]  # relative shapes of the ports, e.g. "1x1x1x1"
    rel_outputs: list[str]
    abs_inputs: list[tuple[int, ...]]
    abs_outputs: list[tuple[int, ...]]
    macs: int
    params: int

    @property
    def n_inputs(self) -> int:
        return len(self.inputs)

    @property
    def n_outputs(self) -> int:
        return len(self.outputs)


def _spatial(shape: tuple[int, ...]) -> int:
    return shape[2] if len(shape) >= 3 else 1


def _channels(shape: tuple[int, ...]) -> int:
    return shape[1] if len(shape) >= 2 else (shape[0] if shape else 1)


def _rel(shape: tuple[int, ...], ref: tuple[int, ...] | None) -> str:
    """Batch as is, then every dim divided by the reference input's dim (`=d`: no reference dim)."""
    parts = []
    for k, d in enumerate(shape):
        if k == 0:
            parts.append(str(d))
        elif ref is not None and k < len(ref) and ref[k]:
            parts.append(str(Fraction(d, ref[k])))
        else:
            parts.append(f"={d}")
    return ",".join(parts)


def _size_key(shape: tuple[int, ...]) -> tuple:
    return (-prod(shape), tuple(-d for d in shape))


def segment_form(sg: StructGraph, idxs: list[int]) -> SegmentForm:
    """The canonical form of nodes `idxs` (positions in sg.nodes, any order)."""
    idxs = sorted(idxs)
    members = set(idxs)
    local = {i: k for k, i in enumerate(idxs)}
    nodes = [sg.nodes[i] for i in idxs]
    consts, shapes, producer, consumers = sg.consts, sg.shapes, sg.producer, sg.consumers
    ext: dict[str, list[tuple[int, int]]] = {}  # external tensor -> [(local consumer, port)]
    in_edges: list[list] = [[] for _ in idxs]  # (port, kind, src, src_port)
    out_edges: list[list] = [[] for _ in idxs]  # (out_port, dst_local, in_port)
    exposed: list[tuple[int, int, str]] = []  # (local, out_port, tensor)
    for k, n in enumerate(nodes):
        for p, t in enumerate(n.inputs):
            if not t or t in consts:
                continue
            src = producer.get(t)
            if src is not None and src[0] in members:
                sl = local[src[0]]
                in_edges[k].append((p, "n", sl, src[1]))
                out_edges[sl].append((src[1], k, p))
            else:
                ext.setdefault(t, []).append((k, p))
        for q, t in enumerate(n.outputs):
            if not t:
                continue
            outside = t in sg.output_set or any(c not in members for c, _ in consumers.get(t, ()))
            if outside:
                exposed.append((k, q, t))
    ext_names = sorted(ext, key=lambda t: (_size_key(shapes[t]), min(ext[t])))
    ref = shapes[ext_names[0]] if ext_names else None
    rel_cache: dict[tuple, str] = {}

    def rel(shape):
        r = rel_cache.get(shape)
        if r is None:
            r = rel_cache[shape] = _rel(shape, ref)
        return r

    labels = []
    for k, n in enumerate(nodes):
        cparts = []
        for p, t in enumerate(n.inputs):
            info = consts.get(t) if t else None
            if info is not None:
                cparts.append((p, info.values) if info.values is not None else (p, len(info.dims)))
        attrs = tuple(sorted((a, repr(v)) for a, v in n.attrs.items() if a != "group"))
        ins = tuple(rel(shapes[t]) for t in n.inputs if t and t not in consts)
        outs = tuple(rel(shapes[t]) for t in n.outputs if t)
        expo = tuple(sorted(q for kk, q, _ in exposed if kk == k))
        labels.append(
            _h((n.op_type, attrs, group_class(n) if n.group != 1 else "", tuple(cparts), ins, outs, expo))
        )
    ext_labels = {t: _h(("in", rel(shapes[t]))) for t in ext}
    ext_by_node: list[list[tuple[int, str]]] = [[] for _ in idxs]
    for t, uses in ext.items():
        for kk, p in uses:
            ext_by_node[kk].append((p, t))
    # Weisfeiler-Lehman refinement until the number of classes stops growing
    classes = len(set(labels)) + len(set(ext_labels.values()))
    for _ in range(len(nodes) + 1):
        new = []
        for k in range(len(nodes)):
            ins = sorted((p, labels[s], q) if kind == "n" else (p, "x") for p, kind, s, q in in_edges[k])
            ext_in = sorted((p, ext_labels[t]) for p, t in ext_by_node[k])
            outs = sorted((q, labels[d], p) for q, d, p in out_edges[k])
            new.append(_h((labels[k], ins, ext_in, outs)))
        new_ext = {
            t: _h((ext_labels[t], sorted((p, labels[kk]) for kk, p in uses))) for t, uses in ext.items()
        }
        labels, ext_labels = new, new_ext
        count = len(set(labels)) + len(set(ext_labels.values()))
        if count == classes:
            break
        classes = count
    digest = _h((sorted(labels), sorted(ext_labels.values())))
    # canonical order inside the segment: Kahn, ready nodes by (label, position)
    indeg = [len({s for _, kind, s, _ in in_edges[k] if kind == "n"}) for k in range(len(nodes))]
    succ = [sorted({d for _, d, _ in out_edges[k]}) for k in range(len(nodes))]
    heap = [(labels[k], k) for k in range(len(nodes)) if indeg[k] == 0]
    heapq.heapify(heap)
    order_local: list[int] = []
    while heap:
        _, k = heapq.heappop(heap)
        order_local.append(k)
        for d in succ[k]:
            indeg[d] -= 1
            if indeg[d] == 0:
                heapq.heappush(heap, (labels[d], d))
    pos = {k: r for r, k in enumerate(order_local)}
    inputs = sorted(ext, key=lambda t: (_size_key(shapes[t]), min((pos[kk], p) for kk, p in ext[t])))
    outputs = [t for _, _, t in sorted(exposed, key=lambda e: (_size_key(shapes[e[2]]), pos[e[0]], e[1]))]
    if inputs and outputs:
        xi, yo = shapes[inputs[0]], shapes[outputs[0]]
        spatial = Fraction(_spatial(yo), _spatial(xi))
        chan = Fraction(_channels(yo), _channels(xi))
    else:
        spatial = chan = Fraction(1)
    return SegmentForm(
        hash=digest,
        order=[idxs[k] for k in order_local],
        inputs=inputs,
        outputs=outputs,
        spatial_ratio=spatial,
        channel_ratio=chan,
        rel_inputs=[rel(shapes[t]) for t in inputs],
        rel_outputs=[rel(shapes[t]) for t in outputs],
        abs_inputs=[shapes[t] for t in inputs],
        abs_outputs=[shapes[t] for t in outputs],
        macs=sum(n.macs for n in nodes),
        params=sum(n.params for n in nodes),
    )


def skeleton(sg: StructGraph, form: SegmentForm, name: str = "segment") -> onnx.ModelProto:
    """The segment as a standalone ONNX model without weight values (dims kept; see fill_weights).

    Value-carrying constants keep their values; tensors are renamed in/out/t<k>, weights w<k>_<port>."""
    rename = {t: f"in{k}" for k, t in enumerate(form.inputs)}
    rename.update({t: f"out{k}" for k, t in enumerate(form.outputs)})
    protos, inits, value_info = [], [], []
    count = 0
    for r, i in enumerate(form.order):
        node = sg.nodes[i]
        src = sg.node_proto(node)
        ins = []
        for p, t in enumerate(src.input):
            if not t:
                ins.append("")
            elif t in sg.consts:
                info = sg.consts[t]
                wname = f"w{r}_{p}"
                ins.append(wname)
                if info.values is not None:
                    tensor = helper.make_tensor(wname, info.dtype, list(info.dims), list(info.values))
                else:
                    tensor = onnx.TensorProto(name=wname, data_type=info.dtype, dims=list(info.dims))
                inits.append(tensor)
            else:
                ins.append(rename[t])
        outs = []
        for t in src.output:
            if t and t not in rename:
                rename[t] = f"t{count}"
                count += 1
                if t in sg.shapes:
                    value_info.append(
                        helper.make_tensor_value_info(rename[t], sg.dtype(t), list(sg.shapes[t]))
                    )
            outs.append(rename[t] if t else "")
        node_proto = onnx.NodeProto()
        node_proto.CopyFrom(src)
        node_proto.name = f"n{r}_{src.op_type}"
        del node_proto.input[:]
        node_proto.input.extend(ins)
        del node_proto.output[:]
        node_proto.output.extend(outs)
        protos.append(node_proto)
    graph = helper.make_graph(
        protos,
        name,
        [
            helper.make_tensor_value_info(f"in{k}", sg.dtype(t), list(sg.shapes[t]))
            for k, t in enumerate(form.inputs)
        ],
        [
            helper.make_tensor_value_info(f"out{k}", sg.dtype(t), list(sg.shapes[t]))
            for k, t in enumerate(form.outputs)
        ],
        initializer=inits,
        value_info=value_info,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", sg.opset)], producer_name="autogo-deploy.segments"
    )
    model.ir_version = 8
    return model
