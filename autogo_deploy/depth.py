"""Depth of a network: weighted layers (Conv, ConvTranspose, Gemm, MatMul with a constant weight) on
its longest input-to-output path, counted exactly on the ONNX graph.

The `depth_drop` budget bounds how much of it a result may lose. A mutation replaces a segment S by
S'; `DepthMap.needed` says, before any MILP is solved, how many weighted layers S' needs on its
longest path for the network to possibly keep a given depth, so the proposer skips replacements that
could only break the budget (the exact depth of every mutant is still counted after splicing).
"""

from __future__ import annotations

from functools import cached_property

import onnx

WEIGHTED = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})
_NONE = -1  # a tensor no path from the inputs reaches (in `avoiding`: only through S)


def _constants(g: onnx.GraphProto) -> set[str]:
    consts = {t.name for t in g.initializer}
    consts |= {o for n in g.node if n.op_type == "Constant" for o in n.output}
    return consts


def _is_layer(node: onnx.NodeProto, consts: set[str]) -> int:
    return int(node.op_type in WEIGHTED and any(t in consts for t in node.input[1:2]))


def layer_count_and_depth(model: onnx.ModelProto) -> tuple[int, int]:
    """(weighted layers, depth). Nodes must be in topological order (any valid ONNX file is)."""
    dm = DepthMap(model)
    return sum(dm.layer), dm.depth


class DepthMap:
    """Longest weighted paths to and from every tensor of one graph (the parent of a mutation)."""

    def __init__(self, model: onnx.ModelProto):
        g = model.graph
        self.nodes = list(g.node)
        self.consts = _constants(g)
        self.layer = [_is_layer(n, self.consts) for n in self.nodes]
        self.outputs = [o.name for o in g.output]
        self.to: dict[str, int] = {}  # tensor -> layers on the longest path from an input to it
        for n, layer in zip(self.nodes, self.layer, strict=True):
            d = max((self.to.get(t, 0) for t in n.input if t), default=0) + layer
            for t in n.output:
                self.to[t] = d
        self.depth = max((self.to.get(o, 0) for o in self.outputs), default=0)

    @cached_property
    def after(self) -> dict[str, int]:
        """Tensor -> layers on the longest path from it to an output (only the bound needs it, so a
        plain depth count, done for every mutant, skips this backward pass)."""
        after: dict[str, int] = {o: 0 for o in self.outputs}
        for n, layer in zip(reversed(self.nodes), reversed(self.layer), strict=True):
            below = max((after[t] for t in n.output if t in after), default=None)
            if below is None:
                continue  # nothing it produces reaches an output
            for t in n.input:
                if t and t not in self.consts:
                    after[t] = max(after.get(t, 0), below + layer)
        return after

    def avoiding(self, names: set[str]) -> int:
        """Depth of the longest input-to-output path through none of the nodes `names`."""
        to: dict[str, int] = {}
        for n, layer in zip(self.nodes, self.layer, strict=True):
            if n.name in names:
                for t in n.output:
                    to[t] = _NONE
                continue
            ins = [to.get(t, 0) for t in n.input if t and t not in self.consts]
            if ins and max(ins) == _NONE:
                d = _NONE  # reached only through S
            else:
                d = max((v for v in ins if v != _NONE), default=0) + layer
            for t in n.output:
                to[t] = d
        return max((to.get(o, 0) for o in self.outputs), default=0)

    def needed(self, names: set[str], inputs: list[str], outputs: list[str], min_depth: int) -> int:
        """The fewest weighted layers a replacement of the nodes `names` (reading `inputs`, producing
        `outputs`) needs on its longest path for the network to possibly keep `min_depth`: 0 when a
        path avoiding them is deep enough, else what a path entering the new segment at its deepest
        input and leaving at the output with the longest way on lacks. A bound, never too strict: a
        replacement with fewer layers cannot keep the depth (the exact depth is counted after it)."""
        if self.avoiding(names) >= min_depth:
            return 0
        into = max((self.to.get(t, 0) for t in inputs), default=0)
        on = max((self.after.get(t, 0) for t in outputs), default=0)
        return max(0, min_depth - into - on)
