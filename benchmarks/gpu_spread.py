"""Where ort-cuda's run-to-run spread comes from (a lent GPU; see benchmarks/gpu_check.sh).

On an H200, each harness process timed batch-1 ResNet-50 at either ~1.4 or ~2.0 ms, stable within the
process, so `optimize --target ort-cuda` refused every finalist (head-to-head ratios 0.70-1.35). This
study separates the suspects: it starts several processes per configuration, builds TWO sessions of the
same model in each, times each session alone and then both interleaved (A B A B ...). If the two
sessions of one process differ, the mode belongs to the session (cuDNN's per-session algorithm choice:
ORT's default `cudnn_conv_algo_search = EXHAUSTIVE` benchmarks the algorithms while the GPU is busy
with other sessions' setup or clock changes, so it may pick differently each time); if they agree but
processes differ, it belongs to the process (its host core, NUMA distance to the GPU).

Configurations: algorithm search EXHAUSTIVE (ORT's default) / HEURISTIC / DEFAULT; CUDA graphs on or off
(with IOBinding on the device); the process pinned to the GPU's NUMA-local cores or not.

Found on an H200 (benchmarks/results/gpu_spread_h200.json): neither. The two sessions of one process
timed alone could differ (2.06 vs 1.44 ms) and then ran at the same speed interleaved: the mode is a
state of the moment (the host's kernel-launch path), under every algorithm search and with pinning.
CUDA graphs remove the launches: 0.83-0.94 ms, max/min 1.09-1.12 instead of 1.56-1.59; `ort-cuda` now
uses them (`cuda_graph = true`). A/A head to head (--h2h): ratio interval [0.991, 1.016] with the graph,
[0.70, 1.13] without (gpu_h2h_self_*_h200.json).

    python3 benchmarks/gpu_spread.py MODEL.onnx --out spread.json
    python3 benchmarks/gpu_spread.py MODEL.onnx --ep cpu --procs 1      # dry run on a CPU machine
    python3 benchmarks/gpu_spread.py --h2h A.onnx B.onnx --target ort-cuda --rounds 6 --out h2h.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

# (algorithm search, CUDA graph, pin to NUMA-local cores, processes)
CONFIGS = (
    ("EXHAUSTIVE", False, False, 3),
    ("HEURISTIC", False, False, 3),
    ("DEFAULT", False, False, 2),
    ("EXHAUSTIVE", True, False, 2),
    ("HEURISTIC", True, False, 2),
    ("HEURISTIC", False, True, 2),
)


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))]


def _times(run, runs: int, sync=None) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        run()
        if sync is not None:
            sync()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def _summary(ms: list[float]) -> dict:
    return {"p10_ms": _pct(ms, 0.1), "p50_ms": _pct(ms, 0.5), "p90_ms": _pct(ms, 0.9), "runs": len(ms)}


def child(args) -> dict:
    import numpy as np
    import onnxruntime as ort

    if args.ep == "cuda":
        ort.preload_dlls()
        opts = {"device_id": 0, "cudnn_conv_algo_search": args.algo}
        if args.graph:
            opts["enable_cuda_graph"] = "1"
        providers = [("CUDAExecutionProvider", opts), "CPUExecutionProvider"]
    else:
        providers = ["CPUExecutionProvider"]
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224), dtype=np.float32)
    sessions, per_session = [], []
    for _ in range(args.sessions):
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        t0 = time.perf_counter()
        sess = ort.InferenceSession(args.model, so, providers=providers)
        create_s = time.perf_counter() - t0
        if args.ep == "cuda" and sess.get_providers()[0] != "CUDAExecutionProvider":
            raise SystemExit(f"the session runs on {sess.get_providers()[0]}, not CUDAExecutionProvider")
        name = sess.get_inputs()[0].name
        sync = None
        if args.graph:
            io = sess.io_binding()
            xin = ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0)
            out = sess.get_outputs()[0]
            yout = ort.OrtValue.ortvalue_from_shape_and_type(out.shape, np.float32, "cuda", 0)
            io.bind_ortvalue_input(name, xin)
            io.bind_ortvalue_output(out.name, yout)

            def run(sess=sess, io=io):
                sess.run_with_iobinding(io)

            sync = io.synchronize_outputs
        else:

            def run(sess=sess, name=name):
                sess.run(None, {name: x})

        t0 = time.perf_counter()
        run()
        first_ms = (time.perf_counter() - t0) * 1e3
        t_end = time.perf_counter() + args.warm_s
        while time.perf_counter() < t_end:
            run()
        alone = _times(run, args.runs, sync)
        per_session.append(
            {"create_s": round(create_s, 3), "first_run_ms": round(first_ms, 3), **_summary(alone)}
        )
        sessions.append((run, sync))
    interleaved: list[list[float]] = [[] for _ in sessions]
    for _ in range(args.runs):
        for i, (run, sync) in enumerate(sessions):
            interleaved[i].extend(_times(run, 1, sync))
    with open("/proc/self/stat") as fh:
        cpu_now = int(fh.read().rsplit(")", 1)[1].split()[36])
    return {
        "algo": args.algo,
        "cuda_graph": bool(args.graph),
        "affinity": sorted(os.sched_getaffinity(0)),
        "cpu_last_ran": cpu_now,
        "sessions": per_session,
        "interleaved_p50_ms": [_pct(v, 0.5) for v in interleaved],
        "ort": ort.__version__,
    }


def numa_local_cpus() -> str | None:
    """The GPU 0's NUMA-local CPU list from sysfs (via NVML's PCI bus id), or None."""
    try:
        import pynvml

        pynvml.nvmlInit()
        bus = pynvml.nvmlDeviceGetPciInfo(pynvml.nvmlDeviceGetHandleByIndex(0)).busId
        bus = bus.decode() if isinstance(bus, bytes) else bus
        domain, rest = bus.split(":", 1)
        path = Path(f"/sys/bus/pci/devices/{int(domain, 16):04x}:{rest.lower()}/local_cpulist")
        return path.read_text().strip()
    except Exception as exc:  # reported, not hidden: the pinned configuration is then skipped
        print(f"no NUMA-local CPU list: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None


def driver(args) -> dict:
    local = numa_local_cpus() if args.ep == "cuda" else None
    rows = []
    jobs = []
    for algo, graph, pin, procs in CONFIGS:
        if args.ep != "cuda" and (graph or algo != "EXHAUSTIVE"):
            continue
        for k in range(min(procs, args.procs) if args.procs else procs):
            jobs.append((k, algo, graph, pin))
    jobs.sort(key=lambda j: j[0])  # round-robin over configurations, against drift in time
    for _k, algo, graph, pin in jobs:
        if pin and not local:
            continue
        cmd = [sys.executable, __file__, args.model, "--child", "--algo", algo, "--ep", args.ep]
        cmd += ["--runs", str(args.runs), "--warm-s", str(args.warm_s), "--sessions", str(args.sessions)]
        if graph:
            cmd.append("--graph")
        if pin:
            cmd = ["taskset", "-c", local, *cmd]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            row = {"algo": algo, "cuda_graph": graph, "error": proc.stderr.strip().splitlines()[-3:]}
        else:
            row = json.loads(proc.stdout.strip().splitlines()[-1])
        row.update(pinned_numa_local=pin, wall_s=round(time.perf_counter() - t0, 1))
        rows.append(row)
        if args.out:  # after every process, so a run cut short keeps what it measured
            args.out.write_text(json.dumps({"numa_local_cpus": local, "rows": rows}, indent=1))
        p50s = [s["p50_ms"] for s in row.get("sessions", [])]
        print(
            f"{algo:10s} graph={int(graph)} pin={int(pin)} p50 per session {p50s} "
            f"interleaved {row.get('interleaved_p50_ms')} {row.get('error', '')}",
            flush=True,
        )
    summary = {}
    for algo, graph, pin, _ in CONFIGS:
        got = [r for r in rows if (r["algo"], r["cuda_graph"], r["pinned_numa_local"]) == (algo, graph, pin)]
        p50s = [s["p50_ms"] for r in got for s in r.get("sessions", [])]
        if not p50s:
            continue
        ratios = [r["interleaved_p50_ms"][0] / r["interleaved_p50_ms"][1] for r in got if "sessions" in r]
        summary[f"{algo}/graph={int(graph)}/pin={int(pin)}"] = {
            "session_p50_ms": p50s,
            "median_ms": statistics.median(p50s),
            "max_over_min": max(p50s) / min(p50s),
            "same_process_ratio_a_over_b": ratios,
        }
    return {"numa_local_cpus": local, "configs": summary, "rows": rows}


def h2h(a: Path, b: Path, target: str, rounds: int) -> dict:
    """`optimize`'s head to head (alternating harness processes) of two models on `target`: with A = B
    its ratio interval is the noise floor a real gain has to clear."""
    from autogo_deploy.headtohead import head_to_head
    from autogo_deploy.loop_measure import measurement_summary
    from autogo_deploy.measure import measure
    from autogo_deploy.target import load_target

    tgt = load_target(target)
    h = head_to_head(
        lambda data: measurement_summary(measure(data, tgt)),
        a.read_bytes(),
        b.read_bytes(),
        rounds=rounds,
        progress=print,
    )
    return {"target": tgt.name, "options": tgt.options, "input": a.name, "result": b.name, **h.to_dict()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?")
    ap.add_argument("--h2h", type=Path, nargs=2, metavar=("A", "B"), help="head to head of two models")
    ap.add_argument("--target", default="ort-cuda", help="with --h2h: target name or TOML path")
    ap.add_argument("--rounds", type=int, default=6, help="with --h2h: alternating rounds")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--algo", default="EXHAUSTIVE")
    ap.add_argument("--graph", action="store_true")
    ap.add_argument("--ep", choices=("cuda", "cpu"), default="cuda")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--warm-s", type=float, default=1.0)
    ap.add_argument("--sessions", type=int, default=2)
    ap.add_argument("--procs", type=int, default=0, help="cap on processes per configuration (0: as listed)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.h2h:
        doc = h2h(*args.h2h, args.target, args.rounds)
        print(json.dumps({k: doc[k] for k in ("target", "latency_ratio", "latency_ratio_ci95")}))
        print("input ms ", [round(x, 3) for x in doc["input_round_p50_ms"]])
        print("result ms", [round(x, 3) for x in doc["result_round_p50_ms"]])
        if args.out:
            args.out.write_text(json.dumps(doc, indent=1))
        return
    if not args.model:
        ap.error("MODEL is required")
    if args.child:
        print(json.dumps(child(args)))
        return
    result = driver(args)  # rewrites args.out as it goes
    for key, c in result["configs"].items():
        print(
            f"{key:32s} median {c['median_ms']:.3f} ms  max/min {c['max_over_min']:.2f}  "
            f"same-process A/B {[round(r, 2) for r in c['same_process_ratio_a_over_b']]}"
        )
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
