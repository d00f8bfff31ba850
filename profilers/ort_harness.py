"""ONNX Runtime profiler harness: one JSON object on stdout (contract: autogo_deploy/backends/base.py).

    python profilers/ort_harness.py --model m.onnx --target-json '{...}' [--per-node] [--seed 0]

Timing: wall clock around InferenceSession.run with numpy feeds (host-side end to end, output copy
included), intra-op threads from the target, inter-op 1, sequential execution. Warm-up, then runs
until the median's 95% CI is within ±rel_ci (autogo_deploy.stats). Per-node times come from a
separate profiling session (ORT's profiler adds overhead, so it never touches the timed runs).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from autogo_deploy.backends.base import (
    NP_DTYPES,
    HarnessError,
    ProgressEmitter,
    collect_env,
    make_inputs,
    result_doc,
    run_harness,
    stop_rule,
)
from autogo_deploy.backends.ort import (
    CUDNN_ALGO_SEARCH,
    EP_NAMES,
    OPT_LEVELS,
    compose_mapping,
    resolve_threads,
)
from autogo_deploy.power import PowerUnavailable, close_window, meter_for
from autogo_deploy.stats import percentile, time_until_stable, warm_up

_LEVEL_ENUM = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


def _options(
    ort, level: str, threads: int, *, profile_prefix: str | None = None, optimized_path: str | None = None
):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _LEVEL_ENUM[level])
    so.log_severity_level = 3
    if profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    if optimized_path:
        so.optimized_model_filepath = optimized_path
    return so


def _providers(ep: str, options: dict[str, Any], *, graph: bool = False) -> list:
    if ep == "cuda":
        cuda = {"device_id": int(options.get("device_id", 0))}
        if "cudnn_conv_algo_search" in options:
            cuda["cudnn_conv_algo_search"] = str(options["cudnn_conv_algo_search"]).upper()
        if graph:
            cuda["enable_cuda_graph"] = "1"
        return [("CUDAExecutionProvider", cuda), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def _runner(ort, sess, feeds: dict[str, Any], *, graph: bool, device_id: int, model=None):
    """One inference as a callable. Plain: `sess.run` with host arrays. CUDA graph: inputs copied to the
    GPU once and outputs preallocated there, bound with IOBinding (a captured graph replays fixed
    addresses), so each call is one graph launch plus its synchronisation. `model` (the ONNX model
    the session runs) gives the outputs' element types."""
    if not graph:
        return lambda: sess.run(None, feeds)
    import numpy as np

    io = sess.io_binding()
    keep = []  # the OrtValues must outlive the binding
    for name, arr in feeds.items():
        value = ort.OrtValue.ortvalue_from_numpy(arr, "cuda", device_id)
        io.bind_ortvalue_input(name, value)
        keep.append(value)
    elem = {o.name: o.type.tensor_type.elem_type for o in model.graph.output}
    for out in sess.get_outputs():
        dtype = NP_DTYPES.get(elem.get(out.name))
        if not all(isinstance(d, int) and d > 0 for d in out.shape) or dtype is None:
            raise HarnessError(
                f"cuda_graph needs static outputs of a plain tensor type; output {out.name!r} is "
                f"{out.type} {out.shape} (set cuda_graph = false in the target)"
            )
        value = ort.OrtValue.ortvalue_from_shape_and_type(out.shape, np.dtype(dtype), "cuda", device_id)
        io.bind_ortvalue_output(out.name, value)
        keep.append(value)

    def run() -> None:
        sess.run_with_iobinding(io)
        io.synchronize_outputs()

    run.keep, run.io = keep, io  # type: ignore[attr-defined]
    return run


def _preload_cuda(ort) -> str | None:
    """Load the CUDA and cuDNN libraries that onnxruntime-gpu needs from the pip `nvidia-*` packages
    (or a loaded torch) before the session asks for them; without it the CUDA provider fails to load
    on machines whose CUDA comes from pip. Best effort: if it fails, the session check below still
    refuses to time anything but the CUDA provider. Returns a note when it did not work."""
    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return "onnxruntime has no preload_dlls (older than 1.21); CUDA libraries must be on the loader path"
    try:
        preload()
    except Exception as exc:
        return f"onnxruntime.preload_dlls failed: {type(exc).__name__}: {exc}"
    return None


def _name_nodes(model) -> int:
    """Give unnamed or duplicate-named nodes a unique name (the profiler reports kernels by name)."""
    seen: set[str] = set()
    renamed = 0
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            base = f"{node.op_type}_{i}"
            name = base
            while name in seen:
                name += "_"
            node.name = name
            renamed += 1
        seen.add(node.name)
    return renamed


def _kernel_times(trace_path: str, runs: int) -> tuple[dict[str, dict[str, Any]], list[str], float]:
    """Mean per-run time of each kernel over the last `runs` model runs of an ORT profile trace."""
    events = json.loads(Path(trace_path).read_text())
    model_runs = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    windows = [(e["ts"], e["ts"] + e["dur"]) for e in model_runs[-runs:]]
    if not windows:
        raise HarnessError("ORT profile trace has no model_run events")
    lo, hi = windows[0][0], windows[-1][1]
    run_ms = sum(b - a for a, b in windows) / len(windows) / 1000.0
    kernels: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    for e in events:
        if e.get("cat") != "Node" or not str(e.get("name", "")).endswith("_kernel_time"):
            continue
        if not lo <= e["ts"] <= hi:
            continue
        name = e["name"][: -len("_kernel_time")]
        args = e.get("args", {})
        if name not in kernels:
            kernels[name] = {
                "us": 0.0,
                "calls": 0,
                "op_type": args.get("op_name", "?"),
                "provider": args.get("provider"),
            }
            order.append(name)
        kernels[name]["us"] += float(e["dur"])
        kernels[name]["calls"] += 1
    return kernels, order, run_ms


def _profile_nodes(
    ort, onnx, model, model_path: str, level: str, threads: int, providers, feeds, p50_ms: float, tmp: Path
):
    runs = max(3, min(50, int(3000.0 / max(p50_ms, 1e-3))))
    optimized = tmp / f"optimized_{level}.onnx"
    so = _options(ort, level, threads, profile_prefix=str(tmp / "ort_profile"), optimized_path=str(optimized))
    sess = ort.InferenceSession(model_path, so, providers=providers)
    for _ in range(3 + runs):
        sess.run(None, feeds)
    trace = sess.end_profiling()
    kernels, order, profiled_run_ms = _kernel_times(trace, runs)
    mapping_note = None
    try:
        stages = []
        for lower in OPT_LEVELS[1 : OPT_LEVELS.index(level)]:
            path = tmp / f"optimized_{lower}.onnx"
            ort.InferenceSession(
                model_path, _options(ort, lower, threads, optimized_path=str(path)), providers=providers
            )
            stages.append(onnx.load(str(path), load_external_data=False).graph)
        if level != "disable":
            stages.append(onnx.load(str(optimized), load_external_data=False).graph)
        mapping = compose_mapping(model.graph, stages)
    except Exception as exc:  # mapping is best effort; times stay valid
        mapping, mapping_note = {}, f"mapping unavailable: {type(exc).__name__}: {exc}"
    per_node = []
    attributed: set[str] = set()
    for name in order:
        k = kernels[name]
        m = mapping.get(name, {"graph_nodes": [], "mapping": "unmapped"})
        attributed.update(m["graph_nodes"])
        per_node.append(
            {
                "name": name,
                "op_type": k["op_type"],
                "ms": k["us"] / 1000.0 / runs,
                "calls_per_run": k["calls"] / runs,
                "provider": k["provider"],
                "graph_nodes": m["graph_nodes"],
                "mapping": m["mapping"],
            }
        )
    info = {
        "profiled_runs": runs,
        "kernels": len(per_node),
        "graph_nodes": len(model.graph.node),
        "kernel_sum_ms": sum(p["ms"] for p in per_node),
        "profiled_run_mean_ms": profiled_run_ms,
        "unattributed_graph_nodes": [n.name for n in model.graph.node if n.name not in attributed],
        "source": "onnxruntime profiler (enable_profiling), separate session, same options",
    }
    if mapping_note:
        info["note"] = mapping_note
    return per_node, info


class _Reference:
    """A fixed reference network run once after every timed run of the model, in the same process and
    session options, and timed on its own: its times track the runner's current speed (drift
    correction in `check`). Its runs are never part of the model's samples."""

    def __init__(
        self, ort, path: str, level: str, threads: int, providers, seed: int, graph: bool, device_id: int
    ):
        import onnx

        try:
            model = onnx.load(path)
            self.sess = ort.InferenceSession(path, _options(ort, level, threads), providers=providers)
        except Exception as exc:
            raise HarnessError(f"cannot load the reference model {path!r}: {exc}") from exc
        self._run = _runner(
            ort, self.sess, make_inputs(model, seed), graph=graph, device_id=device_id, model=model
        )
        self.name = Path(path).name
        self.samples_ms: list[float] = []

    def run(self) -> None:
        t0 = time.perf_counter()
        self._run()
        self.samples_ms.append((time.perf_counter() - t0) * 1000.0)

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "samples_ms": self.samples_ms,
            "timing": "one run after every timed model run, same session options, timed apart",
        }


def body(args, target: dict[str, Any]) -> dict[str, Any]:
    import onnx
    import onnxruntime as ort

    opts = target.get("options", {})
    ep = str(opts.get("execution_provider", "cpu")).lower()
    level = str(opts.get("graph_optimization_level", "all")).lower()
    if ep not in EP_NAMES:
        raise HarnessError(f"execution_provider must be one of {list(EP_NAMES)}, got {ep!r}")
    if level not in OPT_LEVELS:
        raise HarnessError(f"graph_optimization_level must be one of {list(OPT_LEVELS)}, got {level!r}")
    algo = str(opts.get("cudnn_conv_algo_search", "exhaustive")).lower()
    if algo not in CUDNN_ALGO_SEARCH:
        raise HarnessError(f"cudnn_conv_algo_search must be one of {list(CUDNN_ALGO_SEARCH)}, got {algo!r}")
    graph = bool(opts.get("cuda_graph", False))
    if graph and ep != "cuda":
        raise HarnessError("cuda_graph needs execution_provider = 'cuda'")
    device_id = int(opts.get("device_id", 0))
    threads = resolve_threads(opts.get("threads", 1))
    try:
        model = onnx.load(args.model)
    except Exception as exc:
        raise HarnessError(f"cannot read model {args.model!r}: {exc}") from exc
    providers = _providers(ep, opts, graph=graph)
    preload_note = _preload_cuda(ort) if ep == "cuda" else None
    with tempfile.TemporaryDirectory(prefix="autogo_ort_") as tmpdir:
        tmp = Path(tmpdir)
        model_path = args.model
        renamed = _name_nodes(model)
        if renamed:
            model_path = str(tmp / "named.onnx")
            onnx.save(model, model_path)
        try:
            sess = ort.InferenceSession(model_path, _options(ort, level, threads), providers=providers)
        except Exception as exc:
            raise HarnessError(f"onnxruntime cannot load the model: {exc}") from exc
        used = sess.get_providers()
        if used[0] != EP_NAMES[ep]:
            hint = f" ({preload_note})" if preload_note else ""
            raise HarnessError(f"{EP_NAMES[ep]} requested but the session runs on {used[0]}{hint}")
        feeds = make_inputs(model, args.seed, args.input_shapes)
        run_once = _runner(ort, sess, feeds, graph=graph, device_id=device_id, model=model)
        if graph:
            try:  # the first run captures the graph: refused here when a node is not on the CUDA provider
                run_once()
            except Exception as exc:
                raise HarnessError(
                    f"CUDA graph capture failed ({type(exc).__name__}: {exc}); every node must run on the "
                    "CUDA provider with static shapes (set cuda_graph = false in the target)"
                ) from exc

        reference = (
            _Reference(ort, args.reference, level, threads, providers, args.seed, graph, device_id)
            if args.reference
            else None
        )

        progress = ProgressEmitter()
        protocol = target["protocol"]
        warmup_s = warm_up(run_once, int(protocol["warmup"]), on_progress=progress)
        if reference is not None:
            warm_up(reference.run, int(protocol["warmup"]))
            reference.samples_ms.clear()
        power_note = None
        try:
            meter, power_note = meter_for(
                target.get("power", {}), threads=threads, device_index=int(opts.get("device_id", 0))
            )
        except PowerUnavailable as exc:
            meter, power_note = None, str(exc)
        if meter is not None:
            meter.start()
        timed = time_until_stable(
            run_once, stop_rule(target), on_progress=progress, between=reference.run if reference else None
        )
        reading = None
        if meter is not None:
            other_s = sum(reference.samples_ms) / 1000.0 if reference is not None else 0.0
            reading = close_window(meter, len(timed.samples_ms), run_once, other_work_s=other_s)
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
            # without the graph: a replayed graph hides its kernels from ORT's profiler
            plain = _providers(ep, opts) if graph else providers
            per_node, per_node_info = _profile_nodes(
                ort, onnx, model, model_path, level, threads, plain, feeds, p50, tmp
            )
            if graph:
                per_node_info["note_cuda_graph"] = (
                    "kernels profiled without the CUDA graph (same options otherwise)"
                )
    method = {
        "harness": "ort_harness.py",
        "timing": "wall clock around InferenceSession.run (host side, output copy included)",
        "warmup": int(protocol["warmup"]),
        "warmup_s": warmup_s,
        "threads": threads,
        "inter_op_threads": 1,
        "execution_mode": "sequential",
        "graph_optimization_level": level,
        "ep": EP_NAMES[ep],
        "stop_reason": timed.stop_reason,
        "time_to_stop_s": timed.elapsed_s,
        "rel_ci_goal": float(protocol["rel_ci"]),
        "inputs": f"seeded random (seed {args.seed})",
        "renamed_nodes": renamed,
    }
    if ep == "cuda":
        method["cuda_libraries"] = (
            preload_note or "onnxruntime.preload_dlls() (pip nvidia-* packages or torch)"
        )
        method["cudnn_conv_algo_search"] = algo
        method["cuda_graph"] = graph
    if per_node_info is not None:
        method["per_node_profile"] = per_node_info
    if reference is not None:
        method["reference"] = reference.describe()
    power_detail = dict(reading.detail) if reading else {}
    if power_note:
        power_detail["note"] = power_note
    env = collect_env(
        libraries={"onnxruntime": ort.__version__},
        execution_provider=EP_NAMES[ep],
        session_providers=used,
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
