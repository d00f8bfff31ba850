"""Canonical, deterministic topological order of an ONNX graph.

The order depends only on the graph's structure, not on the order nodes appear in the file:
Kahn's algorithm where ready nodes are taken by (depth, op type, structural signature, name).
The structural signature hashes a node's op, attributes and the signatures of its producers
(graph inputs by their position, initializers by their shape), so two files listing the same
graph in different orders get the same canonical order. Names only break exact structural ties.
"""

from __future__ import annotations

import hashlib
import heapq

import onnx

from autogo_deploy.errors import ModelError
from autogo_deploy.node_features import attrs_of


def _h(*parts: object) -> str:
    return hashlib.blake2b(repr(parts).encode(), digest_size=8).hexdigest()


def canonical_order(graph: onnx.GraphProto) -> list[int]:
    """Indices of graph.node in canonical topological order (raises on cycles)."""
    nodes = list(graph.node)
    producer: dict[str, int] = {}
    for i, n in enumerate(nodes):
        for out in n.output:
            if out:
                if out in producer:
                    raise ModelError(f"tensor {out!r} is produced by two nodes (not a valid graph)")
                producer[out] = i
    inputs = {vi.name: k for k, vi in enumerate(graph.input)}
    inits = {t.name: tuple(t.dims) for t in graph.initializer}
    preds: list[set[int]] = [set() for _ in nodes]
    succs: list[set[int]] = [set() for _ in nodes]
    for i, n in enumerate(nodes):
        for t in n.input:
            if t in producer:
                preds[i].add(producer[t])
                succs[producer[t]].add(i)
    # any topological order first, to compute depth and structural signatures
    indeg = [len(p) for p in preds]
    ready = [i for i in range(len(nodes)) if indeg[i] == 0]
    order: list[int] = []
    while ready:
        i = ready.pop()
        order.append(i)
        for j in succs[i]:
            indeg[j] -= 1
            if indeg[j] == 0:
                ready.append(j)
    if len(order) != len(nodes):
        raise ModelError("the graph has a cycle (not a DAG)")
    depth = [0] * len(nodes)
    sig = [""] * len(nodes)
    for i in order:
        n = nodes[i]
        depth[i] = 1 + max((depth[p] for p in preds[i]), default=-1)
        parts = []
        for t in n.input:
            if not t:
                parts.append("-")
            elif t in producer:
                p = producer[t]
                parts.append((sig[p], list(nodes[p].output).index(t)))
            elif t in inits:
                parts.append(("init", inits[t]))
            elif t in inputs:
                parts.append(("input", inputs[t]))
            else:
                parts.append(("free", t))
        attrs = sorted((k, repr(v)) for k, v in attrs_of(n).items())
        sig[i] = _h(n.op_type, n.domain, attrs, parts)
    indeg = [len(p) for p in preds]
    heap = [
        (depth[i], nodes[i].op_type, sig[i], nodes[i].name, i) for i in range(len(nodes)) if indeg[i] == 0
    ]
    heapq.heapify(heap)
    result: list[int] = []
    while heap:
        *_, i = heapq.heappop(heap)
        result.append(i)
        for j in sorted(succs[i]):
            indeg[j] -= 1
            if indeg[j] == 0:
                heapq.heappush(heap, (depth[j], nodes[j].op_type, sig[j], nodes[j].name, j))
    return result
