"""Node → token, over the canonical topological order (`StructGraph.nodes` = `graph.Graph.nodes`).

A token follows the spirit of AutoGO's node encoding, read from ONNX attributes:

    <op>[:<attribute class>]|<sorted in-neighbour ops>|<sorted out-neighbour ops>

- attribute class: `k3x3.s2.g1` for Conv (group class `g1`, `dw` for depthwise, `g<N>` otherwise,
  `.d2` for a dilation), `k3x3.s1` for pooling, `b2` for DepthToSpace/SpaceToDepth, `a1` for Concat,
  the constant bounds of Clip (`0,6` = ReLU6). Channel counts and spatial sizes are *not* part of a
  token, so a cell reads the same at 16 and at 64 channels;
- neighbours: the op types producing the node's activation inputs (`Input` for a graph input) and
  consuming its outputs (`Output` for a graph output), deduplicated and sorted.

A token never seen in the corpus is mapped explicitly to `<unk:OP>` by segment.py.
"""

from __future__ import annotations

from autogo_deploy.node_features import Node
from autogo_deploy.segments.structure import StructGraph

GRAPH_INPUT = "Input"
GRAPH_OUTPUT = "Output"


def unk_token(op_type: str) -> str:
    return f"<unk:{op_type}>"


def group_class(node: Node) -> str:
    g = int(node.group or 1)
    if g == 1:
        return "g1"
    cin = node.in_shapes[0][1] if node.in_shapes and len(node.in_shapes[0]) > 1 else 0
    return "dw" if g == cin else f"g{g}"


def attr_class(sg: StructGraph, node: Node) -> str:
    op = node.op_type
    if op in ("Conv", "ConvTranspose"):
        text = f"k{'x'.join(map(str, node.kernel or ()))}.s{max(node.stride or (1,))}.{group_class(node)}"
        if node.dilation and max(node.dilation) > 1:
            text += f".d{max(node.dilation)}"
        return text
    if op in ("MaxPool", "AveragePool", "LpPool"):
        return f"k{'x'.join(map(str, node.kernel or ()))}.s{max(node.stride or (1,))}"
    if op in ("DepthToSpace", "SpaceToDepth"):
        return f"b{node.attrs.get('blocksize', 0)}"
    if op == "Concat":
        return f"a{node.attrs.get('axis', 0)}"
    if op == "Clip":
        parts = []
        for t in node.inputs[1:3]:
            info = sg.consts.get(t) if t else None
            parts.append(f"{info.values[0]:g}" if info is not None and info.values else "?")
        return ",".join(parts)
    return ""


def neighbour_ops(sg: StructGraph, node: Node) -> tuple[list[str], list[str]]:
    ins: set[str] = set()
    for t in node.inputs:
        if not t or t in sg.consts:
            continue
        prod = sg.producer.get(t)
        if prod is not None:
            ins.add(sg.nodes[prod[0]].op_type)
        elif t in sg.input_set:
            ins.add(GRAPH_INPUT)
    outs: set[str] = set()
    for t in node.outputs:
        if not t:
            continue
        for i, _ in sg.consumers.get(t, ()):
            outs.add(sg.nodes[i].op_type)
        if t in sg.output_set:
            outs.add(GRAPH_OUTPUT)
    return sorted(ins), sorted(outs)


def node_token(sg: StructGraph, node: Node) -> str:
    cls = attr_class(sg, node)
    head = f"{node.op_type}:{cls}" if cls else node.op_type
    ins, outs = neighbour_ops(sg, node)
    return f"{head}|{','.join(ins)}|{','.join(outs)}"


def graph_tokens(sg: StructGraph) -> list[str]:
    """One token per node, in canonical order."""
    return [node_token(sg, n) for n in sg.nodes]


def token_op(token: str) -> str:
    """The op type a token (or `<unk:OP>`) stands for."""
    if token.startswith("<unk:"):
        return token[5:-1]
    return token.split("|", 1)[0].split(":", 1)[0]
