"""Main-path width: how narrow the whole signal gets, per resolution (the `width_drop` budget).

A *main-path* tensor is one that every path from the graph's inputs to its outputs passes through
(in a ResNet, the tensors between residual blocks; inside a block the skip and the branch run side
by side and neither is one). Its channel count bounds what the network can carry at that point.
The accuracy head is trained on NAS-Bench-201/101 cells, whose channel counts are fixed per stage,
so it cannot see a mutation that narrows the main path: ResNet-50 results of the npu-sim search ran
every input through 16 channels at 7x7 (the input: 2048) and were predicted as accurate as the input.
`width_drop` bounds that: at each resolution (HxW) present in both, the candidate's narrowest
main-path tensor keeps at least (1 - width_drop) of the input's.

Path counts are exact (Python integers): a tensor is on every path when paths(inputs -> t) x
paths(t -> outputs) equals all input-output paths.
"""

from __future__ import annotations

import onnx

from autogo_deploy.depth import WEIGHTED
from autogo_deploy.resolve_ops import static_shapes


def main_path_widths(model: onnx.ModelProto) -> dict[str, int]:
    """'HxW' -> the fewest channels of a 4-D main-path *feature* tensor at that resolution: one
    computed by a weighted layer (Conv, ConvTranspose, Gemm, MatMul) or downstream of one. The
    image and its preprocessing (EDSR's mean shift) count only at a resolution where no feature
    tensor is on the main path: their 3 channels would otherwise be the floor where a network's
    first features live (NB201's 16 at 32x32, EDSR's 64 at its input size). Shapes come from the
    model's value_info (inferred here when it has none)."""
    g = model.graph
    if not g.value_info and g.node:
        model = onnx.shape_inference.infer_shapes(model)
        g = model.graph
    shapes = static_shapes(model)
    consts = {t.name for t in g.initializer}
    sources = [vi.name for vi in g.input if vi.name not in consts]
    sinks = {vi.name for vi in g.output}
    # forward: paths from any graph input to each tensor (nodes come in topological order), and
    # which tensors are features (a weighted layer at or above them)
    fwd: dict[str, int] = dict.fromkeys(sources, 1)
    feature: set[str] = set()
    for node in g.node:
        n = sum(fwd.get(t, 0) for t in node.input if t)
        is_feature = node.op_type in WEIGHTED or any(t in feature for t in node.input)
        for t in node.output:
            fwd[t] = n
            if is_feature:
                feature.add(t)
    # backward: paths from each tensor to any graph output
    bwd: dict[str, int] = dict.fromkeys(sinks, 1)
    for node in reversed(g.node):
        n = sum(bwd.get(t, 0) for t in node.output if t)
        if n:
            for t in node.input:
                if t and t not in consts:
                    bwd[t] = bwd.get(t, 0) + n
    total = sum(fwd.get(t, 0) for t in sinks)
    features: dict[str, int] = {}
    others: dict[str, int] = {}
    if not total:
        return features
    for t, f in fwd.items():
        shape = shapes.get(t)
        if f and len(shape or ()) == 4 and f * bwd.get(t, 0) == total:
            widths = features if t in feature else others
            key = f"{shape[2]}x{shape[3]}"
            widths[key] = min(widths.get(key, shape[1]), shape[1])
    return others | features


def width_drop(base: dict[str, int], cand: dict[str, int]) -> float:
    """The largest share by which `cand` narrows the main path against `base`, over the resolutions
    both have (0 when it narrows nowhere, or shares none)."""
    drops = [1.0 - cand[k] / base[k] for k in base.keys() & cand.keys() if base[k] > 0]
    return max([0.0, *drops])
