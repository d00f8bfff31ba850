"""TVM backend (targets tvm-llvm, tvm-cuda): Relax ONNX import -> default pipeline -> Relax VM.

    [backend]
    target = { kind = "llvm", mcpu = "host" }   # a tvm.target.Target dict; mcpu "host" = this CPU
    threads = 0                                  # TVM_NUM_THREADS and target num-cores (0 = affinity)
    tune = false                                 # meta-schedule tuning, opt-in
    trials = 2000                                # total tuning trials (max_trials_global)
    max_trials_per_task = 64

Compiled libraries (`export_library` .so) and tuning records (meta-schedule JSON database) are
cached under `paths.cache_dir()/tvm/<model hash>-<target hash>/`, so a model is compiled (and
tuned) once per target. Everything that shapes the code goes into the target hash: the TVM target
dict with `mcpu` resolved, the TVM version, the pipeline, and for tuned code the trial budget.
Every figure says whether the code was tuned.

This module imports only the standard library at module level; TVM is imported inside functions.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HARNESS = "tvm_harness.py"
PIPELINE = "DecomposeOpsForInference + relax.pipeline.get_default_pipeline(target)"
PIPELINE_VERSION = 1
_KNOWN_KINDS = ("llvm", "cuda")
# cuda arch = "auto" (the default) takes the visible GPU's compute capability; with no GPU visible
# (compiling ahead, as CI does) it falls back to this one, and the artifact's target says which.
DEFAULT_CUDA_ARCH = "sm_80"
# multi-word op names, so fused kernel names ("fused_max_pool2d_add") can be split into ops
_MULTIWORD = frozenset(
    {
        "adaptive_avg_pool2d", "max_pool2d", "avg_pool2d", "conv2d_transpose", "leaky_relu", "strided_slice",
        "broadcast_to", "expand_dims", "batch_matmul", "layer_norm", "group_norm", "depth_to_space",
        "space_to_depth", "log_softmax",
    }
)  # fmt: skip


def tvm_versions() -> dict[str, str | None]:
    from autogo_deploy.backends.base import package_version

    return {"apache-tvm": package_version("apache-tvm"), "apache-tvm-ffi": package_version("apache-tvm-ffi")}


def gpu_present() -> bool:
    """An NVIDIA GPU visible to this process (driver files; no CUDA import)."""
    gpus = Path("/proc/driver/nvidia/gpus")
    if gpus.is_dir() and any(gpus.iterdir()):
        return True
    return os.path.exists("/dev/nvidia0")


def target_kind(options: dict[str, Any]) -> str:
    return str(dict(options.get("target", {})).get("kind", "llvm"))


def availability(target) -> tuple[bool, str]:
    if importlib.util.find_spec("tvm") is None:
        return False, "apache-tvm not installed (pip install 'autogo-deploy[tvm]')"
    options = target.options
    kind = target_kind(options)
    if kind not in _KNOWN_KINDS:
        return False, f"[backend] target.kind must be one of {list(_KNOWN_KINDS)}, got {kind!r}"
    tuned = bool(options.get("tune", False))
    if tuned and importlib.util.find_spec("xgboost") is None:
        return False, "tuning needs xgboost (pip install xgboost-cpu), or set tune = false"
    version = tvm_versions()["apache-tvm"]
    how = f"tuned, {int(options.get('trials', 0))} trials" if tuned else "untuned"
    if kind == "cuda":
        if not gpu_present():
            return (
                False,
                "no CUDA GPU (no NVIDIA device visible); tvm-cuda still compiles here, it runs where a GPU is",
            )
        if shutil.which("nvcc") is None:
            return False, "CUDA toolkit not found (nvcc not on PATH); TVM needs it to build CUDA kernels"
        return True, f"apache-tvm {version} cuda ({how})"
    return True, f"apache-tvm {version} llvm ({how})"


def resolve_threads(requested: int | None) -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return int(requested) if requested else cpus


def target_dict(options: dict[str, Any]) -> dict[str, Any]:
    """The TVM target as a dict with host-dependent fields resolved (mcpu 'host', num-cores)."""
    spec = dict(options.get("target", {"kind": "llvm"}))
    spec.setdefault("kind", "llvm")
    if spec["kind"] == "llvm":
        import tvm

        spec.setdefault("mtriple", "x86_64-unknown-linux-gnu")
        if spec.get("mcpu", "host") == "host":
            spec["mcpu"] = tvm.target.codegen.llvm_get_system_cpu()
        spec.setdefault("num-cores", resolve_threads(options.get("threads")))
    elif spec["kind"] == "cuda":
        if spec.get("arch", "auto") == "auto":
            spec["arch"] = gpu_arch(int(options.get("device_id", 0))) or DEFAULT_CUDA_ARCH
        spec.setdefault("host", {"kind": "llvm", "mtriple": "x86_64-unknown-linux-gnu"})
    return spec


def gpu_arch(device_id: int = 0) -> str | None:
    """`sm_XY` of a visible NVIDIA GPU (nvidia-smi's compute capability), None without one."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader", "-i", str(device_id)],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout.strip()
        major, minor = out.splitlines()[0].strip().split(".")
        return f"sm_{int(major)}{int(minor)}"
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def make_target(spec: dict[str, Any]):
    import tvm

    spec = dict(spec)
    host = spec.pop("host", None)
    return tvm.target.Target(spec, host=host) if host else tvm.target.Target(spec)


def import_onnx(model, from_onnx=None, shape_dict: dict[str, list[int]] | None = None):
    """Relax module of an ONNX ModelProto; UnsupportedOpError naming the ops TVM cannot import."""
    from autogo_deploy.errors import UnsupportedOpError

    import_onnx_check(model)
    if from_onnx is None:
        from tvm.relax.frontend.onnx import from_onnx
    try:
        return from_onnx(model, shape_dict=shape_dict, keep_params_in_input=False)
    except NotImplementedError as exc:
        raise UnsupportedOpError(
            f"TVM cannot import this model: {' '.join(str(exc).split())[:300]}"
        ) from None


def prepare_model(source, options: dict[str, Any], input_shapes: dict[str, tuple[int, ...]] | None = None):
    """The ModelProto the TVM harness compiles: operators checked against TVM's ONNX frontend
    first (so an unsupported one is named as TVM's limit), then loaded with static shapes and, if
    `fold_bn` (default), cleaned with BatchNorm folded into the Conv before it (as onnxruntime does
    internally; Relax has no such pass and would run BN as elementwise ops)."""
    from autogo_deploy.graph import load
    from autogo_deploy.onnx_ingest import read_model

    model, _ = read_model(source)
    import_onnx_check(model)
    fold_bn = bool(options.get("fold_bn", True))
    return load(model, input_shapes=input_shapes, cleanup=fold_bn, fold_bn=fold_bn).model


def import_onnx_check(model) -> None:
    """UnsupportedOpError naming the operators TVM's Relax ONNX frontend cannot import."""
    from autogo_deploy.errors import UnsupportedOpError

    missing = unsupported_ops(model)
    if missing:
        nodes = {op: [n.name or "?" for n in model.graph.node if n.op_type == op][:3] for op in missing}
        detail = "; ".join(f"{op} (nodes {', '.join(names)})" for op, names in nodes.items())
        raise UnsupportedOpError(
            f"TVM cannot import operator {', '.join(missing)}: not supported by the Relax ONNX frontend of "
            f"apache-tvm {tvm_versions()['apache-tvm']} [{detail}]",
            hint="use an ort-* or npu-sim target, or replace the operator",
        )


def unsupported_ops(model) -> list[str]:
    """ONNX op types of `model` (default domain) that TVM's Relax ONNX frontend has no converter for."""
    from tvm.relax.frontend.onnx.onnx_frontend import _get_convert_map

    known = _get_convert_map()
    return sorted(
        {
            n.op_type
            for n in model.graph.node
            if n.op_type not in known and n.op_type not in ("Constant", "If")
        }
    )


def kernel_ops(symbol: str) -> list[str]:
    """Op names in a kernel symbol: 'fused_conv2d1_add_relu' -> ['conv2d', 'add', 'relu']."""
    tokens = symbol.removeprefix("fused_").split("_")
    ops: list[str] = []
    i = 0
    while i < len(tokens):
        for span in (3, 2, 1):
            name = re.sub(r"\d+$", "", "_".join(tokens[i : i + span]))
            if span == 1 or name in _MULTIWORD:
                break
        if name == "tir" and i + 1 < len(tokens):  # tir_sigmoid, tir_exp, ...
            name, span = re.sub(r"\d+$", "", tokens[i + 1]), 2
        ops.append(name)
        i += span
    return ops


def primary_op(ops: list[str]) -> str:
    for op in ops:
        if op.startswith(("conv", "matmul", "dense", "batch_matmul")):
            return op
    return ops[0] if ops else "?"


def model_hash(model_bytes: bytes) -> str:
    return hashlib.sha256(model_bytes).hexdigest()[:20]


def target_hash(spec: dict[str, Any], tuned: bool, trials: int) -> str:
    key = {"target": spec, "tvm": tvm_versions(), "pipeline": PIPELINE_VERSION, "tuned": tuned}
    if tuned:
        key["trials"] = trials
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]


@dataclass
class Artifact:
    """A compiled model in the cache and how it was made."""

    library: str
    tuned: bool
    trials: int
    cache_hit: bool
    compile_s: float
    tune_s: float
    target: dict[str, Any]
    model_hash: str
    target_hash: str
    tuning_db: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cache_root() -> Path:
    from autogo_deploy.paths import cache_dir

    root = cache_dir() / "tvm"
    root.mkdir(parents=True, exist_ok=True)
    return root


def compile_model(
    model, options: dict[str, Any], *, shape_dict=None, progress=None, use_cache: bool = True
) -> Artifact:
    """Compile (and, if options.tune, tune) `model` for the target in `options`; cached."""
    import tvm
    from tvm import relax

    emit = progress or (lambda event: None)
    spec = target_dict(options)
    tuned = bool(options.get("tune", False))
    trials = int(options.get("trials", 0)) if tuned else 0
    mhash = model_hash(
        model.SerializeToString(deterministic=True) + json.dumps(shape_dict or {}, sort_keys=True).encode()
    )
    thash = target_hash(spec, tuned, trials)
    folder = cache_root() / f"{mhash}-{thash}"
    library = folder / "model.so"
    tuning_dir = cache_root() / f"{mhash}-{target_hash(spec, True, 0)}-tuning"
    meta_path = folder / "meta.json"
    if use_cache and library.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        meta.update(cache_hit=True, library=str(library))
        return Artifact(**meta)
    target = make_target(spec)
    emit({"phase": "compile", "detail": "importing ONNX into Relax"})
    mod = import_onnx(model, shape_dict=shape_dict)
    mod = relax.transform.DecomposeOpsForInference()(mod)
    tune_s = 0.0
    if tuned:
        t0 = time.perf_counter()
        mod = _tune(mod, target, options, tuning_dir, trials, emit)
        tune_s = time.perf_counter() - t0
    emit({"phase": "compile", "detail": f"building for {spec['kind']}"})
    t0 = time.perf_counter()
    executable = tvm.compile(mod, target, relax_pipeline=relax.pipeline.get_default_pipeline(target))
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        tmp_lib = Path(tmp) / "model.so"
        executable.export_library(str(tmp_lib))
        os.replace(tmp_lib, library)
    compile_s = time.perf_counter() - t0
    artifact = Artifact(
        library=str(library),
        tuned=tuned,
        trials=trials,
        cache_hit=False,
        compile_s=compile_s,
        tune_s=tune_s,
        target=spec,
        model_hash=mhash,
        target_hash=thash,
        tuning_db=str(tuning_dir) if tuned else None,
    )
    meta_path.write_text(json.dumps(artifact.to_dict(), indent=1, sort_keys=True))
    return artifact


def _tune(mod, target, options: dict[str, Any], tuning_dir: Path, trials: int, emit):
    """Meta-schedule: tune the fused kernels (only the trials not yet in the JSON database), then
    apply the best records. Builder/runner timeouts are generous: each builder worker imports TVM's
    tensor intrinsics, which took over a minute on a busy 2-core machine."""
    import tvm
    from tvm import relax
    from tvm.s_tir import meta_schedule as ms

    done = _tuned_trials(tuning_dir)
    todo = max(0, trials - done)
    with target:
        mod = tvm.transform.Sequential(
            [relax.transform.CanonicalizeBindings(), relax.pipeline.zero_pipeline()]
        )(mod)
    if todo:
        emit({"phase": "tune", "detail": f"meta-schedule: {todo} new trials ({done} in the database)"})
        timeout = float(options.get("tune_timeout_s", 600.0))
        ms.relax_integration.tune_relax(
            mod,
            params={},
            target=target,
            work_dir=str(tuning_dir),
            max_trials_global=todo,
            max_trials_per_task=int(options.get("max_trials_per_task", 64)),
            num_trials_per_iter=max(1, min(64, todo)),
            builder=ms.builder.LocalBuilder(timeout_sec=timeout),
            runner=ms.runner.LocalRunner(timeout_sec=timeout),
            seed=int(options.get("tune_seed", 0)),
        )
        (tuning_dir / "trials.json").write_text(json.dumps({"trials": done + todo}))
    with target:
        return relax.transform.MetaScheduleApplyDatabase(str(tuning_dir))(mod)


def _tuned_trials(tuning_dir: Path) -> int:
    tuning_dir.mkdir(parents=True, exist_ok=True)
    record = tuning_dir / "trials.json"
    if not record.is_file() or not (tuning_dir / "database_tuning_record.json").is_file():
        return 0
    return int(json.loads(record.read_text()).get("trials", 0))


def load_vm(library: str, device):
    import tvm
    from tvm import relax

    return relax.VirtualMachine(tvm.runtime.load_module(library), device)
