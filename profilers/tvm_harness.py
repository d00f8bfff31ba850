"""TVM profiler harness: one JSON object on stdout (contract: autogo_deploy/backends/base.py).

    python profilers/tvm_harness.py --model m.onnx --target-json '{...}' [--per-node] [--seed 0]

Compile: Relax ONNX frontend -> DecomposeOpsForInference -> tvm.compile with the target's default
pipeline (legalise, fuse, lower), optionally meta-schedule tuned; the library is cached
(autogo_deploy.backends.tvm). Timing: wall clock around the Relax VM's `main` with inputs already
on the device (CUDA: synchronised after each run), TVM_NUM_THREADS from the target. Per-kernel
times: the VM's instrument hook (`VirtualMachine.set_instrument`, called before and after every
kernel call) in separate runs after the timed phase; the hook's own overhead (a Python call per
kernel) is included in those times, so they are for attribution, not for totals.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from autogo_deploy.backends.base import (
    HarnessError,
    ProgressEmitter,
    collect_env,
    make_inputs,
    result_doc,
    run_harness,
    stop_rule,
)
from autogo_deploy.backends.tvm import gpu_present, kernel_ops, primary_op, resolve_threads, target_kind
from autogo_deploy.power import PowerUnavailable, close_window, meter_for
from autogo_deploy.stats import percentile, time_until_stable, warm_up

_RUNTIME = "(vm runtime)"


def _instrumented(vm, args: list, sync, runs: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Median per-run time of each kernel over `runs` instrumented runs of `main`."""
    starts: dict[str, float] = {}
    current: dict[str, list[float]] = {}

    def instrument(func, symbol, before_run, ret_value, *call_args):
        now = time.perf_counter()
        if before_run:
            starts[symbol] = now
            return 0
        sync()
        name = _RUNTIME if symbol.startswith("vm.builtin.") else symbol
        current.setdefault(name, []).append(time.perf_counter() - starts.pop(symbol, now))
        return 0

    vm.set_instrument(instrument)
    per_run: list[dict[str, list[float]]] = []
    order: list[str] = []
    for _ in range(runs):
        current.clear()
        vm["main"](*args)
        sync()
        for name in current:
            if name not in order:
                order.append(name)
        per_run.append({k: list(v) for k, v in current.items()})
    rows = []
    for name in order:
        totals = sorted(sum(r.get(name, [])) * 1e3 for r in per_run)
        calls = len(per_run[-1].get(name, []))
        ops = ["vm.builtin"] if name == _RUNTIME else kernel_ops(name)
        rows.append(
            {
                "name": name,
                "op_type": "runtime" if name == _RUNTIME else primary_op(ops),
                "ms": percentile(totals, 50.0),
                "calls_per_run": calls,
                "ops": ops,
            }
        )
    info = {
        "instrumented_runs": runs,
        "kernels": sum(1 for r in rows if r["name"] != _RUNTIME),
        "kernel_sum_ms": sum(r["ms"] for r in rows),
        "source": "relax.VirtualMachine.set_instrument (before/after each call), median over runs",
        "note": "fused TVM kernels, not ONNX nodes; times include the hook's Python overhead",
    }
    return rows, info


def body(args, target: dict[str, Any]) -> dict[str, Any]:
    if getattr(args, "reference", None):
        raise HarnessError(
            "the tvm harness does not interleave a reference workload (drift correction is ort-only)"
        )
    opts = target.get("options", {})
    kind = target_kind(opts)
    threads = resolve_threads(opts.get("threads", 1))
    os.environ["TVM_NUM_THREADS"] = str(threads)  # before the TVM runtime starts its thread pool
    if kind == "cuda" and not gpu_present():
        raise HarnessError("no CUDA GPU (no NVIDIA device visible): tvm-cuda compiles here but cannot run")
    import numpy as np
    import tvm

    from autogo_deploy.backends import tvm as tvm_backend
    from autogo_deploy.errors import AutogoError

    progress = ProgressEmitter()
    fold_bn = bool(opts.get("fold_bn", True))
    shapes = {k: tuple(v) for k, v in (args.input_shapes or {}).items()} or None
    try:
        model = tvm_backend.prepare_model(args.model, opts, shapes)
        artifact = tvm_backend.compile_model(model, opts, progress=progress)
    except AutogoError as exc:
        raise HarnessError(exc.one_line()) from exc
    device = tvm.cuda(int(opts.get("device_id", 0))) if kind == "cuda" else tvm.cpu(0)
    vm = tvm_backend.load_vm(artifact.library, device)
    feeds = make_inputs(model, args.seed)
    inputs = [tvm.runtime.tensor(np.ascontiguousarray(v), device) for v in feeds.values()]
    main = vm["main"]
    sync = device.sync if kind == "cuda" else (lambda: None)

    def run_once():
        out = main(*inputs)
        sync()
        return out

    protocol = target["protocol"]
    warmup_s = warm_up(run_once, int(protocol["warmup"]), on_progress=progress)
    power_note = None
    try:
        meter, power_note = meter_for(
            target.get("power", {}), threads=threads, device_index=int(opts.get("device_id", 0))
        )
    except PowerUnavailable as exc:
        meter, power_note = None, str(exc)
    if meter is not None:
        meter.start()
    timed = time_until_stable(run_once, stop_rule(target), on_progress=progress)
    reading = close_window(meter, len(timed.samples_ms), run_once) if meter is not None else None
    progress(
        {
            "phase": "timing",
            "runs": len(timed.samples_ms),
            "ci95_rel": timed.ci95_rel,
            "elapsed_s": timed.elapsed_s,
        },
        force=True,
    )
    per_node, per_node_info = None, None
    if args.per_node:
        progress({"phase": "per-node"}, force=True)
        p50 = percentile(sorted(timed.samples_ms), 50.0)
        runs = max(3, min(30, int(2000.0 / max(p50, 1e-3))))
        per_node, per_node_info = _instrumented(vm, inputs, sync, runs)
    versions = tvm_backend.tvm_versions()
    method = {
        "harness": "tvm_harness.py",
        "timing": "wall clock around relax.VirtualMachine main(); inputs resident on the device",
        "executor": "relax.VirtualMachine",
        "pipeline": tvm_backend.PIPELINE,
        "tvm_target": artifact.target,
        "tuned": artifact.tuned,
        "fold_bn": fold_bn,
        "trials": artifact.trials,
        "cache_hit": artifact.cache_hit,
        "compile_s": artifact.compile_s,
        "tune_s": artifact.tune_s,
        "warmup": int(protocol["warmup"]),
        "warmup_s": warmup_s,
        "threads": threads,
        "stop_reason": timed.stop_reason,
        "time_to_stop_s": timed.elapsed_s,
        "rel_ci_goal": float(protocol["rel_ci"]),
        "inputs": f"seeded random (seed {args.seed})",
        "ep": f"tvm-{kind}",
    }
    if per_node_info is not None:
        method["per_node_profile"] = per_node_info
    power_detail = dict(reading.detail) if reading else {}
    if power_note:
        power_detail["note"] = power_note
    env = collect_env(
        libraries=versions, tvm_target=artifact.target, device=str(device), tuned=artifact.tuned
    )
    return result_doc(
        samples_ms=timed.samples_ms,
        per_node=per_node,
        env=env,
        method=method,
        energy_mj=reading.energy_mj if reading else None,
        power_w=reading.power_w if reading else None,
        power_method=reading.method if reading else None,
        power_detail=power_detail or None,
        deterministic=False,
    )


if __name__ == "__main__":
    sys.exit(run_harness(body))
