"""Compact graphs for the GNN: fuse Conv→BN→activation chains, collapse repeated blocks.

Training touches ~15,000 networks of ~200 ONNX nodes each on two CPU cores, so the encoder works on
a smaller graph that keeps what decides accuracy and latency:

- fusion: a Conv (or Gemm/MatMul) whose only consumer is a BatchNormalization, and a BN/Conv whose
  only consumer is an activation (Relu, Clip, Sigmoid, HardSwish, HardSigmoid, LeakyRelu), become
  one node flagged `bn`/`act` — what inference runtimes execute as one kernel anyway;
- repeats: a node every input→output path passes through cuts the graph into blocks; consecutive
  blocks with the same structure and shapes (same Weisfeiler-Lehman signature) are kept once with a
  `repeat` count (NB201's five identical cells per stage, ResNet stages, repeated FBNet layers).
  Latency stays exact (node costs are multiplied by `repeat`); accuracy sees the count as a feature.

Both steps are order independent, so the compact graph of a network built directly (arch_graphs) and
of the same network loaded from ONNX (graph.load) are the same.
"""

from __future__ import annotations

import copy

import numpy as np

from autogo_deploy.predictor.features import NodeSpec

_NORM = {"BatchNormalization"}
_ACT = {"Relu", "Clip", "Sigmoid", "HardSwish", "HardSigmoid", "LeakyRelu"}
_MAIN = {"Conv", "ConvTranspose", "Gemm", "MatMul"}


def _adjacency(n: int, edges: list[tuple[int, int]]):
    succ: list[list[int]] = [[] for _ in range(n)]
    pred: list[list[int]] = [[] for _ in range(n)]
    for u, v in edges:
        succ[u].append(v)
        pred[v].append(u)
    return succ, pred


def fuse(specs: list[NodeSpec], edges: list[tuple[int, int]], members: list[list[int]]):
    """Merge Conv→BN→act chains; returns (specs, edges, members) with members = original indices."""
    n = len(specs)
    succ, pred = _adjacency(n, edges)
    into = list(range(n))  # node → the node it is merged into
    specs = list(specs)
    copied: set[int] = set()
    for v in _topo(n, succ, pred):
        s = specs[v]
        if len(pred[v]) != 1:
            continue
        u = _root(into, pred[v][0])
        head = specs[u]
        if len(succ[pred[v][0]]) != 1:
            continue
        if (s.op_type in _NORM and head.op_type in _MAIN and not head.bn and not head.act) or (
            s.op_type in _ACT and (head.op_type in _MAIN or head.op_type in _NORM) and not head.act
        ):
            into[v] = u
            if u not in copied:
                head = specs[u] = copy.copy(head)
                copied.add(u)
            head.bn = head.bn or s.op_type in _NORM
            head.act = head.act or s.op_type in _ACT
            head.out_shape = s.out_shape
            head.params += s.params
            head.act_bytes = s.act_bytes
    keep = [v for v in range(n) if into[v] == v]
    new_index = {v: i for i, v in enumerate(keep)}
    new_members: list[list[int]] = [[] for _ in keep]
    for v in range(n):
        new_members[new_index[_root(into, v)]].extend(members[v])
    new_edges = []
    for u, v in edges:
        ru, rv = _root(into, u), _root(into, v)
        if ru != rv:
            new_edges.append((new_index[ru], new_index[rv]))
    return [specs[v] for v in keep], new_edges, new_members


def _root(into: list[int], v: int) -> int:
    while into[v] != v:
        v = into[v]
    return v


def _topo(n: int, succ, pred) -> list[int]:
    indeg = [len(p) for p in pred]
    ready = [v for v in range(n) if indeg[v] == 0]
    order = []
    while ready:
        u = ready.pop()
        order.append(u)
        for v in succ[u]:
            indeg[v] -= 1
            if indeg[v] == 0:
                ready.append(v)
    if len(order) != n:
        raise ValueError("graph has a cycle")
    return order


def cut_positions(n: int, edges: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """(topological order, positions in it of nodes that every path crosses)."""
    succ, pred = _adjacency(n, edges)
    order = _topo(n, succ, pred)
    pos = np.empty(n, np.int64)
    pos[order] = np.arange(n)
    reach = -1
    cuts = []
    for i, v in enumerate(order):
        if reach <= i and i < n - 1:
            cuts.append(i)
        far = max((int(pos[w]) for w in succ[v]), default=-1)
        reach = max(reach, far)
    return order, [c for c in cuts if c >= 0]


def _signature(block: list[int], succ, pred, row_id: list[int]) -> tuple:
    """Order-independent Weisfeiler-Lehman signature of a block (3 rounds, in-process hashes)."""
    inside = set(block)
    col = {v: (row_id[v], any(u not in inside for u in pred[v])) for v in block}
    for _ in range(3):
        col = {
            v: hash((col[v], tuple(sorted(col[u] for u in pred[v] if u in inside)),
                     tuple(sorted(col[w] for w in succ[v] if w in inside))))
            for v in block
        }  # fmt: skip
    return tuple(sorted(col.values()))


def collapse_repeats(specs, edges, members, row_id: list[int], protect: set[int] | None = None):
    """Keep one of each run of identical consecutive blocks, with `repeat` multiplied by the run length."""
    n = len(specs)
    if n < 4:
        return specs, edges, members
    succ, pred = _adjacency(n, edges)
    order, cuts = cut_positions(n, edges)
    bounds = [-1] + cuts + ([n - 1] if not cuts or cuts[-1] != n - 1 else [])
    blocks = [order[bounds[i] + 1 : bounds[i + 1] + 1] for i in range(len(bounds) - 1)]
    protect = protect or set()
    sigs = [None if any(v in protect for v in b) else _signature(b, succ, pred, row_id) for b in blocks]
    drop: set[int] = set()
    remap: dict[int, int] = {}
    same: dict[int, int] = {}
    specs = list(specs)
    i = 0
    while i < len(blocks):
        period, count = _best_run(sigs, i)
        if count > 1:
            for b in blocks[i : i + period]:
                for v in b:
                    specs[v] = copy.copy(specs[v])
                    specs[v].repeat *= count
            for k in range(period, period * count):
                copy_of, block = blocks[i + k % period], blocks[i + k]
                drop.update(block)
                # members of a dropped copy go to the node at the same position of the kept block
                same.update({v: copy_of[j] for j, v in enumerate(block) if j < len(copy_of)})
            # the run's exit is the exit of its first period
            remap[blocks[i + period * count - 1][-1]] = blocks[i + period - 1][-1]
            i += period * count
        else:
            i += 1
    if not drop:
        return specs, edges, members
    keep = [v for v in range(n) if v not in drop]
    idx = {v: k for k, v in enumerate(keep)}
    new_edges = []
    for u, v in edges:
        u = remap.get(u, u)
        if u in idx and v in idx:
            new_edges.append((idx[u], idx[v]))
    new_members = [list(members[v]) for v in keep]
    for v in sorted(drop):
        target = same.get(v)
        if target is not None and target in idx:
            new_members[idx[target]].extend(members[v])
    return [specs[v] for v in keep], new_edges, new_members


def _best_run(sigs: list, i: int, max_period: int = 6) -> tuple[int, int]:
    """(period, count) of the longest run of a repeated block pattern starting at block i."""
    best = (1, 1)
    for p in range(1, max_period + 1):
        pattern = sigs[i : i + p]
        if len(pattern) < p or any(s is None for s in pattern):
            break
        k = 1
        while sigs[i + k * p : i + (k + 1) * p] == pattern:
            k += 1
        if k > 1 and p * k > best[0] * best[1]:
            best = (p, k)
    return best
