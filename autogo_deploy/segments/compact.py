"""A compact, picklable-free-of-objects record of a tokenised network, for the second build pass.

Rebuilding 26,000 networks twice would double the corpus cost, so the first pass keeps, per network,
only small integer arrays: token ids, node-descriptor ids, node-name ids and the wiring. A descriptor
holds everything a node contributes to a segment's canonical form (op, attributes, kernel, group,
constant inputs, tensor shapes, MACs, params); descriptors and names are interned per chunk, so the
thousands of identical nodes of a NAS family cost one table entry. The second pass rebuilds, for a
segment only, a mini StructGraph with exactly the information `canon.segment_form` reads.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from math import gcd

from autogo_deploy.node_features import Node
from autogo_deploy.segments.structure import StructGraph

_PORTS = 16  # output ports per node encodable in the wiring code
EMPTY = -1  # an absent optional input or a constant (described by the descriptor)


@dataclass
class Tables:
    """Per-chunk interning tables (descriptor tuples, node names, tokens)."""

    descs: list[tuple]
    names: list[str]
    tokens: list[str]


@dataclass
class NetRecord:
    idx: int
    family: str
    source: str
    tokens: bytes  # array('I') of token ids (chunk-local)
    descs: bytes  # array('I') of descriptor ids
    names: bytes  # array('I') of name ids
    wiring: bytes  # array('i'): per node, per input port: EMPTY, -2-k (graph input k) or src*16+port
    outputs: tuple[tuple[int, int], ...]  # (node, port) that are graph outputs
    opset: int


class Interner:
    def __init__(self):
        self.descs: dict[tuple, int] = {}
        self.names: dict[str, int] = {}
        self.tokens: dict[str, int] = {}
        self._by_id: dict[int, tuple[tuple, int]] = {}  # id(shared descriptor object) -> (object, id)

    def desc_id(self, d: tuple) -> int:
        hit = self._by_id.get(id(d))
        if hit is not None and hit[0] is d:
            return hit[1]
        k = self.descs.setdefault(d, len(self.descs))
        self._by_id[id(d)] = (d, k)
        return k

    def tables(self) -> Tables:
        return Tables(list(self.descs), list(self.names), list(self.tokens))


def describe_node(sg: StructGraph, n: Node) -> tuple:
    ins = []
    for t in n.inputs:
        if not t:
            ins.append(None)
        elif t in sg.consts:
            c = sg.consts[t]
            ins.append(("c", c.dims, c.dtype, c.values))
        else:
            ins.append(("a", sg.shapes[t], sg.dtype(t)))
    outs = tuple((sg.shapes[t], sg.dtype(t)) if t else None for t in n.outputs)
    attrs = tuple(sorted(n.attrs.items()))
    return (n.op_type, attrs, n.kernel, n.stride, n.dilation, n.pads, n.group, tuple(ins), outs,
            n.macs, n.params, n.act_bytes)  # fmt: skip


def encode(
    sg: StructGraph, tokens: list[str], it: Interner, *, idx: int, family: str, source: str
) -> NetRecord:
    inputs = {name: k for k, name in enumerate(sg.input_names)}
    tok = array("I", (it.tokens.setdefault(t, len(it.tokens)) for t in tokens))
    desc, names, wiring = array("I"), array("I"), array("i")
    outputs = []
    for i, n in enumerate(sg.nodes):
        d = getattr(n, "segment_desc", None) or describe_node(sg, n)  # the fast path precomputes it
        desc.append(it.desc_id(d))
        names.append(it.names.setdefault(n.name, len(it.names)))
        for t in n.inputs:
            if not t or t in sg.consts:
                wiring.append(EMPTY)
            elif t in sg.producer:
                src, port = sg.producer[t]
                if port >= _PORTS:  # pragma: no cover - no such op in practice
                    raise ValueError(f"node {sg.nodes[src].name} has more than {_PORTS} outputs")
                wiring.append(src * _PORTS + port)
            else:
                wiring.append(-2 - inputs.get(t, len(inputs)))
        for q, t in enumerate(n.outputs):
            if t and t in sg.output_set:
                outputs.append((i, q))
    return NetRecord(idx, family, source, tok.tobytes(), desc.tobytes(), names.tobytes(), wiring.tobytes(),
                     tuple(outputs), sg.opset)  # fmt: skip


class Net:
    """Decoded NetRecord with the adjacency the second pass needs."""

    def __init__(self, rec: NetRecord, tables: Tables):
        self.rec = rec
        self.tables = tables
        self.tokens = _arr("I", rec.tokens)
        self.descs = _arr("I", rec.descs)
        self.names = _arr("I", rec.names)
        wiring = _arr("i", rec.wiring)
        self.inputs: list[list[int]] = []  # per node: wiring code per input port
        pos = 0
        for d in self.descs:
            k = len(tables.descs[d][7])
            self.inputs.append(list(wiring[pos : pos + k]))
            pos += k
        self.consumers: dict[int, list[int]] = {}  # producer code -> consumer nodes
        for i, codes in enumerate(self.inputs):
            for c in codes:
                if c >= 0 or c <= -2:
                    self.consumers.setdefault(c, []).append(i)
        self.graph_outputs = {src * _PORTS + port for src, port in rec.outputs}

    def __len__(self) -> int:
        return len(self.descs)

    def name(self, i: int) -> str:
        return self.tables.names[self.names[i]]

    def components(self, start: int, end: int) -> list[list[int]]:
        """segment.components on the compact wiring."""
        parent = list(range(start, end))

        def find(i: int) -> int:
            while parent[i - start] != i:
                parent[i - start] = parent[parent[i - start] - start]
                i = parent[i - start]
            return i

        first_reader: dict[int, int] = {}
        for i in range(start, end):
            for c in self.inputs[i]:
                if c == EMPTY:
                    continue
                if c >= 0 and start <= c // _PORTS < end:
                    a, b = find(c // _PORTS), find(i)
                elif c in first_reader:
                    a, b = find(first_reader[c]), find(i)
                else:
                    first_reader[c] = i
                    continue
                if a != b:
                    parent[max(a, b) - start] = min(a, b)
        groups: dict[int, list[int]] = {}
        for i in range(start, end):
            groups.setdefault(find(i), []).append(i)
        return [groups[r] for r in sorted(groups)]

    def exposed(self, i: int, port: int, members) -> bool:
        code = i * _PORTS + port
        return code in self.graph_outputs or any(c not in members for c in self.consumers.get(code, ()))

    def mini_graph(self, group: list[int]) -> StructGraph:
        """A StructGraph of the group's nodes only; exposed outputs become graph outputs."""
        from autogo_deploy.segments.structure import ConstInfo

        members = set(group)
        nodes, shapes, consts, dtypes, outputs = [], {}, {}, {}, []
        for k, i in enumerate(group):
            (op, attrs, kernel, stride, dil, pads, g, ins, outs, macs, params, act) = self.tables.descs[
                self.descs[i]
            ]
            in_names = []
            for p, (spec, code) in enumerate(zip(ins, self.inputs[i], strict=True)):
                if spec is None:
                    in_names.append("")
                elif spec[0] == "c":
                    name = f"c{i}_{p}"
                    consts[name] = ConstInfo(spec[1], spec[2], spec[3])
                    shapes[name] = spec[1]
                    in_names.append(name)
                else:
                    name = f"t{code}" if code >= 0 else f"in{-2 - code}"
                    shapes[name], dtypes[name] = spec[1], spec[2]
                    in_names.append(name)
            out_names = []
            for q, spec in enumerate(outs):
                if spec is None:
                    out_names.append("")
                    continue
                name = f"t{i * _PORTS + q}"
                shapes[name], dtypes[name] = spec
                out_names.append(name)
                if self.exposed(i, q, members):
                    outputs.append(name)
            node = Node(self.name(i), op, in_names, out_names, dict(attrs), index=k, kernel=kernel, stride=stride,
                        dilation=dil, pads=pads, group=g, macs=macs, params=params, act_bytes=act)  # fmt: skip
            node.in_shapes = [shapes[t] for t in in_names if t]
            node.out_shapes = [shapes[t] for t in out_names if t]
            nodes.append(node)
        dtypes = {t: d for t, d in dtypes.items() if d != 1}
        return StructGraph(nodes, shapes, consts, [], outputs, opset=self.rec.opset, dtypes=dtypes)

    def prekey(self, group: list[int], rel_key) -> tuple[tuple, list[int], list[tuple[int, int]]]:
        """A cheap hashable key that determines the segment's canonical form up to absolute size.

        Shapes enter relative to the first external input (per-dim ratios), so the same structure at
        16 and at 64 channels shares the key. `rel_key` maps descriptor ids to worker-stable ids of the
        size-free part of the descriptor (see relative_descriptor). Returns (key, ext codes in
        numbering order, exposed (position, port) list)."""
        pos = {i: k for k, i in enumerate(group)}
        ext: dict[int, int] = {}
        ext_codes: list[int] = []
        ref = None
        parts = []
        exposed = []
        for k, i in enumerate(group):
            desc = self.tables.descs[self.descs[i]]
            wires = []
            for spec, c in zip(desc[7], self.inputs[i], strict=True):
                if c == EMPTY:
                    wires.append(None)
                elif c >= 0 and c // _PORTS in pos:
                    wires.append((pos[c // _PORTS], c % _PORTS))
                else:
                    if c not in ext:
                        ext[c] = len(ext)
                        ext_codes.append(c)
                        if ref is None:
                            ref = spec[1]
                    wires.append((-1 - ext[c], _relshape(spec[1], ref)))
            outs = []
            for q, spec in enumerate(desc[8]):
                if spec is None:
                    outs.append(None)
                    continue
                e = self.exposed(i, q, pos)
                if e:
                    exposed.append((k, q))
                outs.append((_relshape(spec[0], ref), e))
            parts.append((rel_key[self.descs[i]], tuple(wires), tuple(outs)))
        return tuple(parts), ext_codes, exposed

    def out_shape(self, i: int, port: int) -> tuple[int, ...]:
        return self.tables.descs[self.descs[i]][8][port][0]

    def ext_shape(self, group: list[int], code: int) -> tuple[int, ...]:
        for i in group:
            for spec, c in zip(self.tables.descs[self.descs[i]][7], self.inputs[i], strict=True):
                if c == code:
                    return spec[1]
        raise KeyError(code)


def relative_descriptor(desc: tuple) -> tuple:
    """The size-free part of a descriptor: what canon's node label reads besides tensor shapes."""
    (op, attrs, kernel, _stride, _dil, _pads, group, ins, outs, _macs, _params, _act) = desc
    cin = ins[0][1][1] if ins and ins[0] and ins[0][0] == "a" and len(ins[0][1]) > 1 else 0
    gclass = "" if group == 1 else ("dw" if group == cin else f"g{group}")
    attrs = tuple((k, v) for k, v in attrs if k != "group")
    consts = tuple(
        (p, s[3] if s[3] is not None else len(s[1])) for p, s in enumerate(ins) if s and s[0] == "c"
    )
    kinds = tuple(None if s is None else s[0] for s in ins)
    return (op, attrs, kernel, gclass, consts, kinds, len(outs))


def _relshape(shape: tuple[int, ...], ref: tuple[int, ...] | None) -> tuple:
    if ref is None:
        return shape
    out = [shape[0]] if shape else []
    for k in range(1, len(shape)):
        d = shape[k]
        r = ref[k] if k < len(ref) else 0
        if r:
            g = gcd(d, r)
            out.append((d // g, r // g))
        else:
            out.append(("=", d))
    return tuple(out)


def _arr(kind: str, raw: bytes) -> array:
    a = array(kind)
    a.frombytes(raw)
    return a
