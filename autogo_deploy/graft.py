"""Graft: replay a change found on one lineage of the search onto another model.

A mutation replaces a few nodes of its parent. Its *delta* is what changed, node by node: the
parent's nodes it removed or rewrote (kept verbatim, so a graft can check they are still there,
unchanged), the nodes it added, and the initializers those read that the parent did not hold. When
the same nodes stand unchanged in another model (the best so far, on another branch of the search),
the delta applies there too: on a target whose cost is a sum over kernels (npu-sim), two changes in
different places of the network save what each saved alone. The search keeps the deltas of the
mutants that beat their parent and grafts the best of them onto its best member (search.py).

    d = delta(parent_model, child_model)          # ModelProto, ModelProto -> Delta
    out = graft(other_model, d)                   # ModelProto, or a Rejection-like reason (str)

A graft is exact bookkeeping, not a new mutation: the added nodes and weights are the child's own;
their internal names get a fresh prefix so they cannot collide with names the recipient holds. The
result is checked like every mutant (onnx checker, shape inference, onnxruntime) by the caller.
"""

from __future__ import annotations

import hashlib
import heapq
from dataclasses import dataclass, field

import onnx

from autogo_deploy.graph import fresh_prefix

PREFIX = "g"


@dataclass
class Delta:
    removed: dict[str, bytes]  # parent node name -> the parent's NodeProto, serialized
    added: list[bytes]  # the child's new or rewritten NodeProtos, serialized, in the child's order
    inits: dict[str, bytes]  # initializers the added nodes read that the parent lacked (or held otherwise)
    produced: frozenset[str] = field(default_factory=frozenset)  # tensors the parent's removed nodes made

    @property
    def empty(self) -> bool:
        return not self.removed and not self.added


def _nodes(model: onnx.ModelProto) -> dict[str, bytes]:
    out = {n.name: n.SerializeToString(deterministic=True) for n in model.graph.node}
    if "" in out or len(out) != len(model.graph.node):
        raise ValueError("graft needs every node named once (a loaded graph's nodes are)")
    return out


def delta(parent: onnx.ModelProto, child: onnx.ModelProto) -> Delta:
    """What `child` changed of `parent` (a mutation's splice and its clean-ups), by node name and
    content. Nodes must be named (every node of a loaded, canonical graph is)."""
    before, after = _nodes(parent), _nodes(child)
    removed = {k: v for k, v in before.items() if after.get(k) != v}
    added_names = [k for k, v in after.items() if before.get(k) != v]
    added = [after[k] for k in added_names]
    parent_inits = {t.name: t for t in parent.graph.initializer}
    child_inits = {t.name: t for t in child.graph.initializer}
    reads = {t for k in added_names for t in _node(after[k]).input}
    inits = {}
    for name in sorted(reads & child_inits.keys()):
        mine = child_inits[name].SerializeToString(deterministic=True)
        theirs = parent_inits.get(name)
        if theirs is None or theirs.SerializeToString(deterministic=True) != mine:
            inits[name] = mine
    produced = frozenset(t for v in removed.values() for t in _node(v).output)
    return Delta(removed, added, inits, produced)


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def node_digests(model: bytes | onnx.ModelProto) -> dict[str, bytes]:
    """Node name -> digest of the node as serialized: what `applies` compares a delta against."""
    if isinstance(model, bytes):
        model = onnx.load_from_string(model)
    return {k: _digest(v) for k, v in _nodes(model).items()}


def applies(removed: dict[str, bytes], digests: dict[str, bytes]) -> bool:
    """Whether every node a delta rewrites (name -> digest, `Entry.removed`) stands unchanged in the
    model whose `node_digests` are given: a cheap check before a graft is tried."""
    return all(digests.get(k) == v for k, v in removed.items())


def _node(data: bytes) -> onnx.NodeProto:
    n = onnx.NodeProto()
    n.ParseFromString(data)
    return n


def graft(model: onnx.ModelProto, d: Delta) -> onnx.ModelProto | str:
    """`model` with the delta applied, or why it does not apply (one line)."""
    if d.empty:
        return "empty delta"
    have = _nodes(model)
    missing = [k for k, v in d.removed.items() if have.get(k) != v]
    if missing:
        return f"conflict: {len(missing)} of the {len(d.removed)} nodes it rewrites differ here (e.g. {missing[0]})"
    added = [_node(b) for b in d.added]
    graph = model.graph
    taken = set(have) | {t.name for t in graph.initializer} | {vi.name for vi in graph.input}
    taken |= {t for n in graph.node for t in n.output}
    tag = fresh_prefix(PREFIX, taken)
    # names the delta brings: nodes other than the parent's it rewrites, tensors that no removed
    # node produced (its internal tensors), and its own initializers; all of them get the prefix
    new_tensors = {t for n in added for t in n.output if t and t not in d.produced}
    rename = {t: tag + t for t in new_tensors | set(d.inits)}
    nodes = []
    for n in added:
        if n.name not in d.removed:
            n.name = tag + n.name
        n.input[:] = [rename.get(t, t) for t in n.input]
        n.output[:] = [rename.get(t, t) for t in n.output]
        nodes.append(n)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    kept = [n for n in g.node if n.name not in d.removed]
    del g.node[:]
    g.node.extend(kept + nodes)
    for name, data in d.inits.items():
        t = onnx.TensorProto()
        t.ParseFromString(data)
        t.name = rename[name]
        g.initializer.append(t)
    del g.value_info[:]  # inferred again by the caller
    why = _wire(g)
    return why or out


def _wire(g: onnx.GraphProto) -> str | None:
    """Sort the nodes topologically (ties: the order they stand in), drop the dead ones and unused
    initializers; or say why the graph does not wire up (a tensor made twice, read but never made,
    a cycle)."""
    sources = {vi.name for vi in g.input} | {t.name for t in g.initializer} | {""}
    producer: dict[str, int] = {}
    for i, n in enumerate(g.node):
        for t in n.output:
            if t in producer or t in sources:
                return f"conflict: tensor {t} would be made twice"
            producer[t] = i
    stack = [producer[o.name] for o in g.output if o.name in producer]
    if len(stack) != len(g.output):
        return "conflict: a graph output is no longer made"
    need: set[int] = set()  # the nodes the outputs depend on
    while stack:
        i = stack.pop()
        if i in need:
            continue
        need.add(i)
        for t in g.node[i].input:
            if t in producer:
                stack.append(producer[t])
            elif t not in sources:
                return f"conflict: tensor {t} is read but no longer made"
    indeg = dict.fromkeys(need, 0)
    users: dict[int, list[int]] = {i: [] for i in need}
    for i in need:
        for j in {producer[t] for t in g.node[i].input if t in producer}:
            indeg[i] += 1
            users[j].append(i)
    ready = [i for i, d in indeg.items() if d == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for j in users[i]:
            indeg[j] -= 1
            if indeg[j] == 0:
                heapq.heappush(ready, j)
    if len(order) != len(need):
        return "conflict: the grafted graph has a cycle"
    nodes = [g.node[i] for i in order]
    used = {t for n in nodes for t in n.input}
    inits = [t for t in g.initializer if t.name in used]
    del g.node[:]
    g.node.extend(nodes)
    del g.initializer[:]
    g.initializer.extend(inits)
    return None


# ---- persistence: a delta as an ONNX model (no pickle) ---------------------------------------------
DOMAIN = "autogo_deploy.graft"


def to_bytes(d: Delta) -> bytes:
    """The delta as a ModelProto: the added nodes and their initializers in the graph, the rewritten
    parent nodes in a function named `removed` (a container, not meant to run)."""
    graph = onnx.GraphProto(name="added")
    graph.node.extend(_node(b) for b in d.added)
    for data in d.inits.values():
        t = graph.initializer.add()
        t.ParseFromString(data)
    removed = onnx.FunctionProto(name="removed", domain=DOMAIN)
    removed.node.extend(_node(b) for b in d.removed.values())
    model = onnx.ModelProto(ir_version=onnx.IR_VERSION, graph=graph, producer_name=DOMAIN)
    model.functions.append(removed)
    return model.SerializeToString(deterministic=True)


def from_bytes(data: bytes) -> Delta:
    model = onnx.ModelProto()
    model.ParseFromString(data)
    funcs = [f for f in model.functions if f.domain == DOMAIN and f.name == "removed"]
    if model.producer_name != DOMAIN or len(funcs) != 1:
        raise ValueError("not a graft delta")
    removed = {n.name: n.SerializeToString(deterministic=True) for n in funcs[0].node}
    added = [n.SerializeToString(deterministic=True) for n in model.graph.node]
    inits = {t.name: t.SerializeToString(deterministic=True) for t in model.graph.initializer}
    produced = frozenset(t for n in funcs[0].node for t in n.output)
    return Delta(removed, added, inits, produced)


# ---- the search's library of changes worth grafting --------------------------------------------------
@dataclass
class Entry:
    source: str  # the mutant the delta came from (candidate id)
    gain: float  # how much it lowered its parent's objective (same basis on both: model or prediction)
    data: bytes = field(repr=False)  # to_bytes(delta)
    change: dict = field(default_factory=dict, repr=False)  # the mutation's record (segment, certificate)
    removed: dict[str, bytes] = field(default_factory=dict, repr=False)  # node name -> digest (`applies`)


class Library:
    """The deltas of the mutants that beat their parent, the largest gains kept (at most `keep`,
    `max_bytes` in all), and which were tried on which recipient (a pair is tried once)."""

    def __init__(self, keep: int = 24, max_bytes: int = 256 << 20):
        self.keep, self.max_bytes = keep, max_bytes
        self.entries: dict[str, Entry] = {}
        self.tried: set[tuple[str, str]] = set()
        self._digests: tuple[str | None, dict] = (None, {})  # the last recipient's node_digests

    def offer_mutants(self, fresh: list, pool: dict, key: str, feasible=lambda c: True) -> None:
        """Offer the delta of each new mutant (search candidates) within budgets (`feasible`) that beat
        its parent on `key` without making the network shallower or its main path narrower (a graft
        must not spend the depth and width budgets: replayed greedily, such changes used them up on
        small gains, docs/optimize.md); the candidates' deltas are dropped either way (only the
        library keeps them)."""
        for c in fresh:
            parent = pool.get(c.parent) if c.parent else None
            keeps_shape = (
                parent is not None
                and c.depth >= parent.depth
                and (c.width_drop or 0.0) <= (parent.width_drop or 0.0)
            )
            if c.delta and keeps_shape and feasible(c):
                self.offer(c.cid, gain(parent, c, key), c.delta, c.changes[-1] if c.changes else {})
            c.delta = None

    def pick_for(self, recipient, n: int) -> list[Entry]:
        """`pick` for a search candidate: its node digests computed once per new recipient (one parse,
        ~0.2 s for a ResNet-50)."""
        if self._digests[0] != recipient.cid:
            self._digests = (recipient.cid, node_digests(recipient.model_bytes))
        return self.pick(recipient.cid, n, self._digests[1])

    def offer(self, source: str, gain: float | None, data: bytes | None, change: dict) -> None:
        if gain is None or not gain > 0 or not data or source in self.entries:
            return
        removed = {k: _digest(v) for k, v in from_bytes(data).removed.items()}
        self.entries[source] = Entry(source, float(gain), data, change, removed)
        ranked = sorted(self.entries.values(), key=lambda e: (-e.gain, e.source))
        total, kept = 0, {}
        for e in ranked[: self.keep]:
            if total + len(e.data) <= self.max_bytes:
                kept[e.source] = e
                total += len(e.data)
        self.entries = kept

    def pick(self, recipient: str, n: int, digests: dict[str, bytes]) -> list[Entry]:
        """Up to n entries that apply to `recipient` (its `node_digests`) and were not tried on it yet,
        largest gain first; marked as tried. A delta whose nodes the recipient has rewritten since (or
        already holds: its own lineage's) does not apply."""
        out = []
        for e in sorted(self.entries.values(), key=lambda e: (-e.gain, e.source)):
            if len(out) >= n:
                break
            if (recipient, e.source) in self.tried or not applies(e.removed, digests):
                continue
            self.tried.add((recipient, e.source))
            out.append(e)
        return out

    def to_json(self) -> dict:
        return {
            "entries": [
                {"source": e.source, "gain": e.gain, "change": e.change} for e in self.entries.values()
            ],
            "tried": sorted([list(p) for p in self.tried]),
        }


def gain(parent, child, key: str) -> float | None:
    """How much `child` lowered `parent`'s objective `key` (search candidates), both figures on the
    same basis: exact figures when both have them (the target's cost model, or a deterministic
    measurement: npu-sim), else both predictions (a measurement of one against a prediction of the
    other would mostly compare the predictor's error); None when there is no common basis."""
    if key in ("macs", "neg_acc"):
        p, c = parent.cost(key), child.cost(key)
    else:
        p, c = _exact(parent, key), _exact(child, key)
        if p is None or c is None:
            p, c = parent.predicted.get(key), child.predicted.get(key)
    return None if p is None or c is None else float(p) - float(c)


def _exact(cand, key: str) -> float | None:
    if (cand.modeled or {}).get(key) is not None:
        return cand.modeled[key]
    m = cand.measured or {}
    return m.get(key) if m.get("deterministic") else None
