"""npu-sim on the zoo: the fast ONNX-rule fusion path against TVM's FuseOps, and the modeled figures.

    .venv/bin/python benchmarks/npu_sim_agreement.py [model ...]

For every zoo model (loaded with graph.load(fold_bn=True), as the npu-sim harness does) this costs
the model twice with the same constants: fusion by TVM (Relax import, legalisation, FuseOps) and
fusion by `npu_fuse.onnx_groups` (TVM's rule on the ONNX graph). It reports both latencies and
energies, whether the groups are identical, and the time each path takes. Writes
benchmarks/results/npu_sim_agreement.json.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from autogo_deploy import zoo
from autogo_deploy.backends.npu_model import NpuConstants, cost_model
from autogo_deploy.graph import load


def main(names: list[str]) -> dict:
    consts = NpuConstants.default()
    rows = []
    header = f"{'model':14s} {'latency ms (tvm / fast)':>26s} {'energy mJ (tvm / fast)':>26s} {'kernels':>8s} {'same groups':>12s} {'tvm s':>7s} {'fast ms':>8s}"
    print(header)
    for name in names:
        graph = load(zoo.build(name, seed=0), fold_bn=True)
        t0 = time.perf_counter()
        slow = cost_model(graph, consts, fusion="tvm")
        t1 = time.perf_counter()
        fast = cost_model(graph, consts, fusion="onnx-rules")
        t2 = time.perf_counter()
        same = [g["ops"] for g in slow["groups"]] == [g["ops"] for g in fast["groups"]]
        row = {
            "model": name,
            "tvm": {
                k: slow[k]
                for k in (
                    "latency_ms",
                    "energy_mj",
                    "power_w",
                    "kernels",
                    "macs",
                    "padded_macs",
                    "dram_bytes",
                )
            },
            "onnx_rules": {
                k: fast[k]
                for k in (
                    "latency_ms",
                    "energy_mj",
                    "power_w",
                    "kernels",
                    "macs",
                    "padded_macs",
                    "dram_bytes",
                )
            },
            "identical_groups": same,
            "latency_rel_diff": abs(fast["latency_ms"] - slow["latency_ms"]) / slow["latency_ms"],
            "energy_rel_diff": abs(fast["energy_mj"] - slow["energy_mj"]) / slow["energy_mj"],
            "tvm_path_s": t1 - t0,
            "fast_path_s": t2 - t1,
            "energy_breakdown_mj": slow["energy_breakdown_mj"],
        }
        rows.append(row)
        print(
            f"{name:14s} {slow['latency_ms']:12.4f} / {fast['latency_ms']:<11.4f} {slow['energy_mj']:12.4f} / {fast['energy_mj']:<11.4f}"
            f" {slow['kernels']:8d} {str(same):>12s} {t1 - t0:7.2f} {1000 * (t2 - t1):8.1f}",
            flush=True,
        )
    result = {"constants": "targets/npu-sim.toml", "models": rows}
    out = Path(__file__).resolve().parent / "results" / "npu_sim_agreement.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:] or zoo.names())
