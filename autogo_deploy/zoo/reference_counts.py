"""Counting conventions of the published NAS-benchmark figures, so the zoo can be checked against them.

graph.py counts MACs (Conv/Gemm only). The `flops` of ../shared/data (NB201's 491 archs and NB101's
500, both from NASLib's zero-cost JSON files) count more: fitting them op by op against our graphs
shows, exactly, MACs of Conv and Linear + 2 per BatchNorm output element + 1 per ReLU output element +
k*k per output element of a k x k pooling window + 1 per input element of a global average pool
(the NB201 `flop_benchmark` style). `naslib_flops` reproduces that convention from graph features, so
a difference between it and the published figure is a difference in the network, not in counting.
Published parameter counts are PyTorch's trainable parameters: BatchNorm running mean and variance
(2 per channel, present in ONNX initializers) are not counted.

Count on a Graph loaded with cleanup=False: onnxslim merges the duplicate ReLUs NB201 cells apply to
one tensor, which PyTorch executes (and counts) separately.
"""

from __future__ import annotations

from math import prod
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from autogo_deploy.graph import Graph


def naslib_flops(g: Graph) -> int:
    """FLOPs in the NB201/NASLib convention (see module doc) from the graph's per-node features."""
    total = 0
    for n in g.nodes:
        out = prod(n.out_shapes[0]) if n.out_shapes else 0
        if n.op_type == "BatchNormalization":
            total += 2 * out
        elif n.op_type == "Relu":
            total += out
        elif n.op_type in ("AveragePool", "MaxPool"):
            total += out * prod(n.kernel or (1,))
        elif n.op_type == "GlobalAveragePool":
            total += prod(n.in_shapes[0])
        total += n.macs
    return total


def trainable_params(g: Graph) -> int:
    """Initializer elements minus BatchNorm running statistics (PyTorch's parameter count)."""
    stats = sum(2 * n.out_shapes[0][1] for n in g.nodes if n.op_type == "BatchNormalization")
    return g.totals()["params"] - stats
