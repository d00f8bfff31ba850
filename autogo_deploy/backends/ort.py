"""ONNX Runtime backend: availability of the CPU/CUDA execution providers, and the mapping of ORT's
profiled kernels back to the nodes of the graph that was given.

ORT rewrites the graph before running it (Conv+BN folding, Conv+Add+Relu fusion, NCHWc layout
with inserted Reorder nodes, ...), so its profiler names kernels of the *optimized* graph. The mapping
replays the optimization levels one at a time (basic -> extended -> all), saving each optimized model,
and maps each stage's nodes to the previous stage's by, in order: same node name; a name hint
(`<tensor>_nchwc`); a shared output tensor. Nodes that disappeared between stages are attributed to the
kernel whose region (between surviving tensors) contains them ("fused"), else to the nearest upstream
mapped kernel ("inferred", ORT fuses activations/Adds into their producer). Kernels with no graph node
(Reorder*, Memcpy*) are "inserted". Every kernel carries which of these rules produced its mapping.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections import deque
from pathlib import Path
from typing import Any

HARNESS = "ort_harness.py"

OPT_LEVELS = ("disable", "basic", "extended", "all")
EP_NAMES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
# ORT's cuDNN convolution algorithm choice on the CUDA provider (its own default: exhaustive).
CUDNN_ALGO_SEARCH = ("exhaustive", "heuristic", "default")
_NAME_SUFFIXES = (re.compile(r"_nchwc$"), re.compile(r"_token_\d+$"))
# Data-movement kernels ORT inserts itself; they never stand for a graph node.
INSERTED_OPS = frozenset({"ReorderInput", "ReorderOutput", "MemcpyToHost", "MemcpyFromHost"})
_MAPPING_RANK = {"name": 0, "tensor": 1, "fused": 2, "inferred": 3, "inserted": 4}


def ort_version() -> str | None:
    from autogo_deploy.backends.base import package_version

    return package_version("onnxruntime", "onnxruntime-gpu")


def gpu_present() -> bool:
    """Whether an NVIDIA GPU is visible to this process (driver files, no CUDA import)."""
    gpus = Path("/proc/driver/nvidia/gpus")
    if gpus.is_dir() and any(gpus.iterdir()):
        return True
    return os.path.exists("/dev/nvidia0")


def availability(target) -> tuple[bool, str]:
    if importlib.util.find_spec("onnxruntime") is None:
        return False, "onnxruntime not installed (pip install onnxruntime)"
    ep = str(target.options.get("execution_provider", "cpu")).lower()
    level = str(target.options.get("graph_optimization_level", "all")).lower()
    if level not in OPT_LEVELS:
        return False, f"graph_optimization_level must be one of {list(OPT_LEVELS)}, got {level!r}"
    if ep not in EP_NAMES:
        return False, f"execution_provider must be one of {list(EP_NAMES)}, got {ep!r}"
    algo = str(target.options.get("cudnn_conv_algo_search", "exhaustive")).lower()
    if algo not in CUDNN_ALGO_SEARCH:
        return False, f"cudnn_conv_algo_search must be one of {list(CUDNN_ALGO_SEARCH)}, got {algo!r}"
    if target.options.get("cuda_graph") and ep != "cuda":
        return False, "cuda_graph needs execution_provider = 'cuda'"
    version = ort_version()
    if ep == "cpu":
        return True, f"onnxruntime {version} CPUExecutionProvider"
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        return (
            False,
            "onnxruntime-gpu not installed (CUDAExecutionProvider missing; pip install onnxruntime-gpu)",
        )
    if not gpu_present():
        return False, "no GPU (no NVIDIA device visible)"
    return True, f"onnxruntime {version} CUDAExecutionProvider"


def resolve_threads(requested: int | None) -> int:
    """Intra-op threads: the requested count, or every CPU in the affinity mask for 0/None."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if not requested:
        return cpus
    return int(requested)


# --------------------------------------------------------------------------------------------
# Kernel -> graph node mapping (pure functions over onnx GraphProtos; testable without ORT).


class _Stage:
    """Node/tensor index of one graph version."""

    def __init__(self, graph):
        self.nodes = [n.name for n in graph.node]
        self.op_type = {n.name: n.op_type for n in graph.node}
        self.inputs = {n.name: [t for t in n.input if t] for n in graph.node}
        self.outputs = {n.name: [t for t in n.output if t] for n in graph.node}
        self.producer = {t: n.name for n in graph.node for t in n.output if t}
        self.consumers: dict[str, list[str]] = {}
        for n in graph.node:
            for t in n.input:
                if t:
                    self.consumers.setdefault(t, []).append(n.name)
        self.tensors = set(self.producer) | {t for ts in self.inputs.values() for t in ts}
        self.tensors |= {v.name for v in graph.input} | {v.name for v in graph.output}


def _name_hint(name: str, prev: _Stage) -> str | None:
    for pattern in _NAME_SUFFIXES:
        base = pattern.sub("", name)
        if base != name:
            if base in prev.inputs:
                return base
            if base in prev.producer:
                return prev.producer[base]
    return None


def _region(prev: _Stage, outputs: list[str], inputs: set[str], blocked: set[str]) -> set[str]:
    """Nodes of `prev` between tensors `inputs` and `outputs` (ancestors of outputs, stopping at
    inputs and at `blocked` nodes, which belong to other kernels)."""
    found: set[str] = set()
    todo = deque(prev.producer[t] for t in outputs if t in prev.producer)
    while todo:
        node = todo.popleft()
        if node in found or node in blocked:
            continue
        found.add(node)
        for t in prev.inputs[node]:
            if t not in inputs and t in prev.producer:
                todo.append(prev.producer[t])
    return found


def map_stage(prev_graph, next_graph) -> dict[str, tuple[list[str], str]]:
    """Map each node of `next_graph` (optimized) to nodes of `prev_graph`: name -> (prev nodes, rule)."""
    prev, nxt = _Stage(prev_graph), _Stage(next_graph)
    owner: dict[str, str] = {}  # prev node -> next node
    result: dict[str, tuple[list[str], str]] = {}
    for name in nxt.nodes:
        anchor, rule = None, "inserted"
        if nxt.op_type[name] in INSERTED_OPS:
            pass
        elif name in prev.inputs and name not in owner:
            anchor, rule = name, "name"
        else:
            hint = _name_hint(name, prev)
            if hint is not None and hint not in owner:
                anchor, rule = hint, "name"
            else:
                for t in nxt.outputs[name]:
                    if t in prev.producer and prev.producer[t] not in owner:
                        anchor, rule = prev.producer[t], "tensor"
                        break
        if anchor is not None:
            owner[anchor] = name
        result[name] = ([anchor] if anchor else [], rule)
    # Regions: prev nodes between a next node's surviving inputs and outputs were fused into it.
    for name in nxt.nodes:
        outs = [t for t in nxt.outputs[name] if t in prev.tensors]
        ins = {t for t in nxt.inputs[name] if t in prev.tensors}
        if not outs or not result[name][0]:
            continue
        blocked = {node for node, kernel in owner.items() if kernel != name}
        for node in sorted(_region(prev, outs, ins, blocked)):
            if node not in owner:
                owner[node] = name
                result[name][0].append(node)
                result[name] = (result[name][0], "fused")
    # Leftovers: nearest upstream owned node (activation/Add fused into its producer), else downstream.
    position = {n: i for i, n in enumerate(prev.nodes)}
    for node in prev.nodes:
        if node in owner:
            continue
        target = _nearest_owned(prev, node, owner, upstream=True) or _nearest_owned(
            prev, node, owner, upstream=False
        )
        if target is None:
            continue
        owner[node] = target
        members, _ = result[target]
        members.append(node)
        result[target] = (sorted(members, key=position.get), "inferred")
    return result


def _nearest_owned(prev: _Stage, start: str, owner: dict[str, str], *, upstream: bool) -> str | None:
    seen = {start}
    todo = deque([start])
    while todo:
        node = todo.popleft()
        if upstream:
            neighbours = [prev.producer[t] for t in prev.inputs[node] if t in prev.producer]
        else:
            neighbours = [c for t in prev.outputs[node] for c in prev.consumers.get(t, [])]
        for other in neighbours:
            if other in seen:
                continue
            if other in owner:
                return owner[other]
            seen.add(other)
            todo.append(other)
    return None


def compose_mapping(original_graph, stages: list) -> dict[str, dict[str, Any]]:
    """Map the last stage's nodes to `original_graph` nodes through every intermediate stage.

    Returns {kernel name: {"graph_nodes": [...], "mapping": worst rule along the chain}}.
    """
    current = {n.name: ([n.name], "name") for n in original_graph.node}
    prev_graph = original_graph
    for graph in stages:
        step = map_stage(prev_graph, graph)
        nxt: dict[str, tuple[list[str], str]] = {}
        for name, (prev_nodes, rule) in step.items():
            members: list[str] = []
            worst = rule
            for p in prev_nodes:
                orig, prev_rule = current.get(p, ([], "inserted"))
                members.extend(m for m in orig if m not in members)
                if _MAPPING_RANK[prev_rule] > _MAPPING_RANK[worst] and prev_rule != "inserted":
                    worst = prev_rule
                if len(orig) > 1 and _MAPPING_RANK[worst] < _MAPPING_RANK["fused"]:
                    worst = "fused"
            if not members:
                worst = "inserted"
            nxt[name] = (members, worst)
        current = nxt
        prev_graph = graph
    order = {n.name: i for i, n in enumerate(original_graph.node)}
    return {
        name: {"graph_nodes": sorted(members, key=lambda m: order.get(m, 1 << 30)), "mapping": rule}
        for name, (members, rule) in current.items()
    }
