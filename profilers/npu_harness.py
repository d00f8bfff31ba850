"""npu-sim harness: one JSON object on stdout (contract: autogo_deploy/backends/base.py).

    python profilers/npu_harness.py --model m.onnx --target-json '{...}' [--per-node]

Nothing runs on hardware. The model is loaded and cleaned with BatchNorm folded
(`graph.load(fold_bn=True)`), fused by TVM (Relax import, legalisation, FuseOps) or by the same rule
on the ONNX graph (`[backend] fusion = "onnx-rules"`), and every fused group is costed by the
analytical NPU model in autogo_deploy/backends/npu_model.py with the target's constants. The
result is deterministic: `samples_ms` holds the one modeled latency `min_runs` times, and energy
and power are labelled "modeled-npu-sim".
"""

from __future__ import annotations

import sys
import time
from typing import Any

from autogo_deploy.backends.base import HarnessError, ProgressEmitter, collect_env, result_doc, run_harness

POWER_METHOD = "modeled-npu-sim"


def body(args, target: dict[str, Any]) -> dict[str, Any]:
    if getattr(args, "reference", None):
        raise HarnessError(
            "the npu-sim harness does not interleave a reference workload (drift correction is ort-only)"
        )
    from autogo_deploy.backends.npu_model import NpuConstants, cost_groups
    from autogo_deploy.backends.tvm import tvm_versions
    from autogo_deploy.errors import AutogoError
    from autogo_deploy.graph import load

    opts = target.get("options", {})
    fusion = str(opts.get("fusion", "tvm"))
    try:
        constants = NpuConstants.from_options(opts)
    except (ValueError, KeyError, TypeError) as exc:
        raise HarnessError(f"invalid npu-sim constants in the target: {exc}") from exc
    progress = ProgressEmitter()
    t0 = time.perf_counter()
    shapes = {k: tuple(v) for k, v in (args.input_shapes or {}).items()} or None
    try:
        graph = load(args.model, input_shapes=shapes, fold_bn=True)
        progress({"phase": "compile", "detail": f"fusing ({fusion})"}, force=True)
        if fusion == "tvm":
            from autogo_deploy.backends.npu_sim import tvm_groups

            groups = tvm_groups(graph)
        elif fusion == "onnx-rules":
            from autogo_deploy.backends.npu_fuse import onnx_groups

            groups = onnx_groups(graph)
        else:
            raise HarnessError(f"[backend] fusion must be 'tvm' or 'onnx-rules', got {fusion!r}")
    except AutogoError as exc:
        raise HarnessError(exc.one_line()) from exc
    cost = cost_groups(groups, constants)
    elapsed = time.perf_counter() - t0
    runs = max(1, int(target.get("protocol", {}).get("min_runs", 1)))
    per_node = None
    if args.per_node:
        per_node = [
            {
                "name": g["name"],
                "op_type": g["ops"][0] if g["ops"] else "?",
                "ms": g["latency_ms"],
                "ops": g["ops"],
                "bound": g["bound"],
                "compute_ms": g["compute_ms"],
                "cube_ms": g["cube_ms"],
                "vector_ms": g["vector_ms"],
                "memory_ms": g["memory_ms"],
                "overhead_ms": g["overhead_ms"],
                "energy_mj": g["energy_mj"],
                "macs": g["macs"],
                "padded_macs": g["padded_macs"],
                "dram_bytes": g["dram_bytes"],
            }
            for g in cost["groups"]
            if g["bound"] != "view"
        ]
    method = {
        "harness": "npu_harness.py",
        "timing": "modeled: sum over fused groups of max(compute, memory) + launch overhead",
        "model": "autogo_deploy.backends.npu_model (DaVinci-style cube unit, analytical)",
        "fusion": fusion,
        "fold_bn": True,
        "kernels": cost["kernels"],
        "macs": cost["macs"],
        "padded_macs": cost["padded_macs"],
        "dram_bytes": cost["dram_bytes"],
        "evaluation_s": elapsed,
        "repeats": runs,
        "ep": "npu-sim",
        "tuned": False,
    }
    power_detail = {
        "energy_breakdown_mj": cost["energy_breakdown_mj"],
        "constants": {k: getattr(constants, k) for k in constants.sources},
        "sources": constants.sources,
    }
    env = collect_env(
        libraries=tvm_versions() if fusion == "tvm" else {}, device="npu-sim (analytical model)"
    )
    return result_doc(
        samples_ms=[cost["latency_ms"]] * runs,
        per_node=per_node,
        env=env,
        method=method,
        energy_mj=cost["energy_mj"],
        power_w=cost["power_w"],
        power_method=POWER_METHOD,
        power_detail=power_detail,
        deterministic=True,
    )


if __name__ == "__main__":
    sys.exit(run_harness(body))
