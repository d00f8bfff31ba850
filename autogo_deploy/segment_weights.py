"""Where a mutation starts: how likely each source segment of a parent is to be drawn.

AutoGO draws source segments uniformly; here they are weighed by what they cost on the target, since
that is where a replacement can save something. Two measures (`--segment-weight`):

- "macs": MACs plus `macs_per_param` MACs per weight (what one weight read from DRAM costs on a
  memory-bound target, [hardware] macs_per_param in the target TOML). Works for every target.
- "target": the target's own cost model attributes its modeled latency to the ONNX nodes (npu-sim:
  each fused kernel's latency, `max(compute, memory) + launch`, shared among the kernel's nodes by
  their MACs and weights). This sees activation traffic, which the MACs measure misses: most of
  ResNet-50's modeled NPU time is memory-bound kernels, many of them early, activation-heavy layers.
  Only for targets with a cost model (npu-sim); timed targets have nothing to attribute.

"macs" is the default: on ResNet-50/npu-sim (latency objective, 21 minutes on one core) "target"
gave -26.3% / -29.5% (seeds 0/1) against -28.1% / -28.4% / -27.8% with "macs" (seeds 0/1/2): no
difference that two seeds can show (docs/optimize.md).
"""

from __future__ import annotations

MODES = ("macs", "target")


def resolve_mode(mode: str, backend: str) -> str:
    """`mode`, checked against the target's backend."""
    from autogo_deploy.errors import InputError

    if mode not in MODES:
        raise InputError(f"unknown segment weight {mode!r}; valid: {', '.join(MODES)}")
    if mode == "target" and backend != "npu-sim":
        raise InputError(
            f"--segment-weight target needs a target with a cost model (npu-sim); {backend!r} has none"
        )
    return mode


def npu_node_latency_ns(graph, constants) -> dict[str, float]:
    """Modeled npu-sim latency (ns) per ONNX node of `graph` (an autogo_deploy.graph.Graph): each
    fused kernel's latency split among its nodes in proportion to 1 + MACs + weights (the Conv of a
    Conv+BN+ReLU kernel carries it; a pooling-only kernel splits evenly). Folded BatchNorms are
    members of their Conv's kernel; nodes in no kernel (views) get nothing."""
    from autogo_deploy.backends.npu_fuse import onnx_groups
    from autogo_deploy.backends.npu_model import cost_group

    out: dict[str, float] = {}
    for group in onnx_groups(graph):
        if not group.nodes:
            continue
        ns = cost_group(group, constants)["latency_ms"] * 1e6
        shares = [1.0 + graph.node(n).macs + graph.node(n).params for n in group.nodes]
        total = sum(shares)
        for name, share in zip(group.nodes, shares, strict=True):
            out[name] = out.get(name, 0.0) + ns * share / total
    return out


def weights(graph, occurrences, *, mode: str, macs_per_param: float = 0.0, constants=None) -> list[float]:
    """One drawing weight per segment occurrence: sqrt(1 + cost) with cost in MACs ("macs") or in
    modeled nanoseconds ("target", needs `constants`, the npu-sim NpuConstants)."""
    if mode == "target":
        per_node = npu_node_latency_ns(graph, constants)
        costs = [sum(per_node.get(n, 0.0) for n in o.node_names) for o in occurrences]
    else:
        costs = [
            sum(graph.node(n).macs + macs_per_param * graph.node(n).params for n in o.node_names)
            for o in occurrences
        ]
    return [(1.0 + c) ** 0.5 for c in costs]
