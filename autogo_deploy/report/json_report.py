"""The `profile` JSON document (versioned schema) built from a Measurement, its Target and the model.

Schema version 1 (top-level keys; every time in ms, energy in mJ, power in W):
    schema_version  1
    kind            "autogo-deploy/profile"
    tool            {name, version}
    model           {source, sha256, nodes, macs, params, activation_bytes, inputs: {name: shape}}
                    (macs/params/activation_bytes null when the graph module could not count them)
    target          {name, backend, device, description, path, options, hardware}
    latency         {p50_ms, p90_ms, p99_ms, mean_ms, std_ms, min_ms, max_ms, runs, ci95_rel,
                     ci95_lo_ms, ci95_hi_ms, stop_reason, converged, deterministic}
    samples_ms      every timed sample, in run order
    power           {energy_mj, power_w, method, detail}  (method "measured-nvml" | "measured-rapl" |
                     "modeled" | "modeled-npu" | null when no power figure exists)
    operators       {kernels: [{name, op_type, ms, share, graph_nodes, mapping, ...}] sorted by ms,
                     by_op_type: [{op_type, ms, share, kernels}], kernel_sum_ms, profile: {...}} | null
    env             where it ran (CPU model, governor, affinity, library versions, EP)
    method          how it was measured (warm-up, threads, protocol, stop reason, seed, ...)
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

from autogo_deploy import __version__
from autogo_deploy.measure import Measurement
from autogo_deploy.target import Target

SCHEMA_VERSION = 1
KIND = "autogo-deploy/profile"
_LATENCY_KEYS = (
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "mean_ms",
    "std_ms",
    "min_ms",
    "max_ms",
    "runs",
    "ci95_rel",
    "ci95_lo_ms",
    "ci95_hi_ms",
    "stop_reason",
)


def model_summary(
    source: str | Path, model_bytes: bytes, totals: dict[str, int] | None, inputs: dict[str, list[int]]
) -> dict[str, Any]:
    """What was profiled: where it came from, its hash, size counts and input shapes."""
    totals = totals or {}
    return {
        "source": str(source),
        "sha256": hashlib.sha256(model_bytes).hexdigest(),
        "nodes": totals.get("nodes"),
        "macs": totals.get("macs"),
        "params": totals.get("params"),
        "activation_bytes": totals.get("activation_bytes"),
        "inputs": {k: list(v) for k, v in inputs.items()},
    }


def graph_nodes_label(kernel: dict[str, Any]) -> str:
    """Human text for the graph nodes a kernel covers (backends that do not map kernels say so)."""
    if "graph_nodes" not in kernel:
        return "n/a (not mapped by this backend)"
    return ", ".join(kernel["graph_nodes"]) or "(none: inserted by the runtime)"


def operator_breakdown(per_node: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    """Kernels sorted by time with their share, and the same time summed per op type."""
    if not per_node:
        return None
    total = sum(float(k["ms"]) for k in per_node) or 1.0
    kernels = sorted(
        ({**k, "share": float(k["ms"]) / total} for k in per_node), key=lambda k: (-float(k["ms"]), k["name"])
    )
    by_type: dict[str, dict[str, Any]] = {}
    for k in kernels:
        entry = by_type.setdefault(k["op_type"], {"op_type": k["op_type"], "ms": 0.0, "kernels": 0})
        entry["ms"] += float(k["ms"])
        entry["kernels"] += 1
    types = sorted(by_type.values(), key=lambda e: (-e["ms"], e["op_type"]))
    for entry in types:
        entry["share"] = entry["ms"] / total
    return {"kernels": kernels, "by_op_type": types, "kernel_sum_ms": sum(float(k["ms"]) for k in per_node)}


def jsonable(value: Any) -> Any:
    """Deep copy with non-finite floats replaced by None (strict JSON has no NaN/Infinity)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def build_profile_doc(measurement: Measurement, target: Target, model: dict[str, Any]) -> dict[str, Any]:
    """The complete, JSON-serialisable profile document."""
    m = measurement
    latency = {k: getattr(m, k) for k in _LATENCY_KEYS}
    latency["converged"] = m.converged
    latency["deterministic"] = m.deterministic
    operators = operator_breakdown(m.per_node)
    if operators is not None:
        operators["profile"] = m.method.get("per_node_profile")
    power = None
    if m.power_method is not None:
        power = {
            "energy_mj": m.energy_mj,
            "power_w": m.power_w,
            "method": m.power_method,
            "detail": m.power_detail,
        }
    return jsonable(
        {
            "schema_version": SCHEMA_VERSION,
            "kind": KIND,
            "tool": {"name": "autogo-deploy", "version": __version__},
            "model": model,
            "target": {
                "name": target.name,
                "backend": target.backend,
                "device": target.device,
                "description": target.description,
                "path": target.path,
                "options": target.options,
                "hardware": target.hardware,
            },
            "latency": latency,
            "samples_ms": list(m.samples_ms),
            "power": power
            if power
            else {"energy_mj": None, "power_w": None, "method": None, "detail": m.power_detail},
            "operators": operators,
            "env": m.env,
            "method": m.method,
        }
    )


def validate_profile_doc(doc: dict[str, Any]) -> list[str]:
    """Problems with a profile document (empty list = valid against schema version 1)."""
    problems: list[str] = []
    if doc.get("schema_version") != SCHEMA_VERSION:
        problems.append(f"schema_version must be {SCHEMA_VERSION}, got {doc.get('schema_version')!r}")
    if doc.get("kind") != KIND:
        problems.append(f"kind must be {KIND!r}")
    for key in ("tool", "model", "target", "latency", "power", "env", "method"):
        if not isinstance(doc.get(key), dict):
            problems.append(f"{key} must be an object")
    samples = doc.get("samples_ms")
    if not isinstance(samples, list) or not samples:
        problems.append("samples_ms must be a non-empty list")
    latency = doc.get("latency") if isinstance(doc.get("latency"), dict) else {}
    for key in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "runs"):
        if not isinstance(latency.get(key), int | float):
            problems.append(f"latency.{key} must be a number")
    if isinstance(samples, list) and latency.get("runs") != len(samples):
        problems.append("latency.runs must equal len(samples_ms)")
    if all(isinstance(latency.get(k), int | float) for k in ("p50_ms", "p90_ms", "p99_ms")):
        if not latency["p50_ms"] <= latency["p90_ms"] <= latency["p99_ms"]:
            problems.append("percentiles must satisfy p50 <= p90 <= p99")
    power = doc.get("power") if isinstance(doc.get("power"), dict) else {}
    if power.get("energy_mj") is not None and not power.get("method"):
        problems.append("a power figure must carry its method")
    operators = doc.get("operators")
    if operators is not None:
        if not isinstance(operators, dict) or not isinstance(operators.get("kernels"), list):
            problems.append("operators.kernels must be a list")
        else:
            for k in operators["kernels"]:
                if not {"name", "op_type", "ms"} <= set(k):
                    problems.append("each kernel needs name, op_type and ms")
                    break
    return problems


def profile_document(
    model: str | Path,
    target: Target | str,
    *,
    input_shapes: dict[str, tuple[int, ...]] | None = None,
    cleanup: bool = True,
    per_node: bool = True,
    seed: int = 0,
    progress=None,
    **protocol_overrides: Any,
) -> dict[str, Any]:
    """Load + validate `model` (autogo_deploy.graph), measure it on `target`, build the document.

    protocol_overrides: min_runs, max_runs, time_cap_s, rel_ci, warmup, timeout_s (None = target's).
    """
    from autogo_deploy.graph import load
    from autogo_deploy.measure import measure
    from autogo_deploy.target import load_target

    tgt = target if isinstance(target, Target) else load_target(target)
    ok, reason = tgt.available()
    if not ok:  # before loading the model: the environment problem is the one to report
        from autogo_deploy.errors import BackendUnavailable

        raise BackendUnavailable(f"target {tgt.name!r} is unavailable: {reason}")
    graph = load(model, input_shapes=input_shapes, cleanup=cleanup)
    data = graph.to_bytes()
    shapes = {name: list(graph.shape(name)) for name in graph.input_names}
    measurement = measure(
        data, tgt, per_node=per_node, seed=seed, progress=progress, input_shapes=shapes, **protocol_overrides
    )
    summary = model_summary(
        model if isinstance(model, str | Path) else "<in-memory model>", data, graph.totals(), shapes
    )
    summary["cleanup"] = cleanup
    summary["notes"] = list(getattr(graph, "notes", []) or [])
    return build_profile_doc(measurement, tgt, summary)
