"""TVM's operator-fusion rule (Relax FuseOps / GraphPartitioner) on a plain node list.

Used by `npu_fuse` to group an ONNX graph the way TVM would without importing TVM. Each node has
TVM's op pattern (elementwise 0, broadcast 1, injective 2, reduction 3, out-elementwise-fusable 4,
tuple 7, opaque 8) and its consumers with the edge pattern (the consumer's pattern). The algorithm
is the one in tvm/src/relax/transform/fuse_ops.cc + relay/analysis/graph_partitioner.cc:

1. post-dominator tree (reverse topological order; a node whose output leaves the function has none),
   each node also getting the combined pattern of the paths to its immediate post-dominator;
2. phase 0: an out-elementwise-fusable group (conv, matmul, pool) absorbs everything up to its
   post-dominator if the path is elementwise; elementwise/broadcast ops fuse into a post-dominator
   reached through injective paths (or a reduction); phase 1: injective ops fuse with injective
   successors. Nodes are visited in TVM's binding order (`emission_order`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from autogo_deploy.backends.npu_model import Op

ELEMWISE, BROADCAST, INJECTIVE, REDUCE, OUT_EWISE, TUPLE, OPAQUE = 0, 1, 2, 3, 4, 7, 8


@dataclass
class FusionNode:
    index: int
    pattern: int
    ops: list[Op]
    inputs: list[str]  # activation tensors
    outputs: list[str]
    extern: bool = False
    bn: bool = False
    consumers: list[tuple[int, int]] = field(default_factory=list)  # (node index, edge pattern)


def _combine(a: int, b: int) -> int:
    return max(a, b)


def emission_order(
    nodes: list[FusionNode], producers: dict[str, int], outputs: set[str], eager: list[bool]
) -> tuple[list[int], dict[int, int]]:
    """Where TVM's binding list places each node: (node indices by their last primitive op's
    binding, {node: position of its first primitive op's binding}).

    The Relax ONNX frontend emits a binding only when an expression is normalised: Clip (and a few
    data-movement ops) emit at once; Conv normalises its call, which binds the call's arguments at
    once but not the call itself, and a conv with a bias then adds the bias to that call, so the
    convolution is bound at once as an argument of its bias add, while a bias-free convolution is
    not. Those calls, the bias add and most other ops stay unemitted expressions until a consumer
    that emits needs them (then in argument order, depth first) or until the graph outputs are
    built. FuseOps visits bindings in that order (when two convs feed one Add, in a downsampling
    residual block, the first to reach it takes it; so does an average pool that is the Add's
    first argument against a bias-free conv) and puts each fused call where its first member was.
    """
    tail: dict[int, int] = {}
    head: dict[int, int] = {}
    counter = 0

    def emit(i: int) -> None:
        nonlocal counter
        if i in tail:
            return
        for name in nodes[i].inputs:
            if name in producers:
                emit(producers[name])
        head.setdefault(i, counter)
        tail[i] = counter
        counter += 1

    for node in nodes:
        if eager[node.index]:
            for name in node.inputs:
                if name in producers:
                    emit(producers[name])
            if node.ops[0].kind == "conv" and len(node.ops) == 1:
                continue  # a bias-free conv: bb.normalize(conv2d(...)) binds only its arguments now
            # bound now; a conv with a bias: its call, as the bias add's argument (the add waits until needed)
            head[node.index] = counter
            counter += 1
            if node.ops[0].kind != "conv":
                tail[node.index] = head[node.index]
    for name in sorted(outputs):
        if name in producers:
            emit(producers[name])
    for node in nodes:  # dead nodes keep their ONNX position
        tail.setdefault(node.index, counter + node.index)
        head.setdefault(node.index, tail[node.index])
    return sorted(range(len(nodes)), key=tail.__getitem__), head


def partition(nodes: list[FusionNode], order: list[int]) -> list[int]:
    """TVM GraphPartitioner: post-dominator tree, then fusion phases 0 and 1. Returns group roots."""
    n = len(nodes)
    parent: list[int | None] = [None] * n
    depth = [1] * n
    dom_pattern = [OPAQUE] * n

    def lca(a, b, pat):
        while a != b:
            if a is None or b is None:
                return None, pat
            if depth[a] < depth[b]:
                pat, b = _combine(pat, dom_pattern[b]), parent[b]
            elif depth[b] < depth[a]:
                pat, a = _combine(pat, dom_pattern[a]), parent[a]
            else:
                pat = _combine(_combine(pat, dom_pattern[a]), dom_pattern[b])
                a, b = parent[a], parent[b]
        return a, pat

    for i in reversed(range(n)):
        node = nodes[i]
        if node.extern or not node.consumers:
            continue
        pat = ELEMWISE
        cur, pat = node.consumers[0][0], _combine(pat, node.consumers[0][1])
        for c, epat in node.consumers[1:]:
            cur, pat = lca(cur, c, pat)
            pat = _combine(pat, epat)
        parent[i], dom_pattern[i] = cur, pat
        depth[i] = depth[cur] + 1 if cur is not None else 1

    group_parent = list(range(n))
    group_pattern = [node.pattern for node in nodes]
    anchored = [node.pattern == OUT_EWISE for node in nodes]

    def root(i):
        while group_parent[i] != i:
            group_parent[i] = group_parent[group_parent[i]]
            i = group_parent[i]
        return i

    def check_path(src, sink, cond):
        seen: set[int] = set()
        stack = [c for c, _ in nodes[src].consumers]
        while stack:
            cur = stack.pop()
            if cur in seen:
                continue
            seen.add(cur)
            if not cond(group_pattern[root(cur)], cur == sink):
                return False
            if cur != sink:
                stack.extend(c for c, _ in nodes[cur].consumers)
        return True

    def commit(src, sink):
        target = root(sink)
        seen: set[int] = set()
        stack = [src]
        while stack:
            cur = stack.pop()
            if cur == sink or cur in seen:
                continue
            seen.add(cur)
            child = root(cur)
            if child != target:
                group_parent[child] = target
                if anchored[child]:
                    anchored[target] = True
                    group_pattern[target] = _combine(group_pattern[child], group_pattern[target])
            stack.extend(c for c, _ in nodes[cur].consumers)

    for phase in (0, 1):
        for i in order:
            own = group_pattern[i] if root(i) == i else nodes[i].pattern
            dom = parent[i]
            if own == OPAQUE or dom is None or root(i) == root(dom):
                continue
            if own == OUT_EWISE:
                if (
                    phase == 0
                    and dom_pattern[i] == ELEMWISE
                    and check_path(i, dom, lambda k, s: k <= BROADCAST)
                ):
                    commit(i, dom)
            elif own <= BROADCAST:
                if dom_pattern[i] <= INJECTIVE or dom_pattern[i] == REDUCE:
                    if check_path(i, dom, _elementwise_into_sink):
                        commit(i, dom)
            elif own == INJECTIVE and phase == 1:
                if check_path(i, dom, lambda k, s: k <= INJECTIVE):
                    commit(i, dom)
    return [root(i) for i in range(n)]


def _elementwise_into_sink(kind: int, is_sink: bool) -> bool:
    """Paths from an elementwise anchor: injective on the way, anything fusable at the sink."""
    if not is_sink:
        return kind <= INJECTIVE
    return kind in (ELEMWISE, BROADCAST, INJECTIVE, REDUCE, OUT_EWISE)
