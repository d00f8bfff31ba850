"""The backend contract, and the helpers every profiler harness shares.

A backend is two pieces:

1. A light module `autogo_deploy/backends/<name>.py`, registered by name in
   `autogo_deploy.backends.BACKENDS` (imported lazily). It must define
       HARNESS: str                       file name of its harness in profilers/, e.g. "tvm_harness.py"
       def availability(target) -> tuple[bool, str]
   `availability` gets a `autogo_deploy.target.Target` and answers quickly without running a model:
   (True, "what will run") or (False, "why not, and what to do": package missing, no GPU, ...).
   It must not raise and must not import heavy libraries at module level (only inside functions).

2. A harness script `profilers/<HARNESS>`, run by `autogo_deploy.measure.measure()` in its own
   process group as
       python profilers/<HARNESS> --model MODEL.onnx --target-json '<Target.to_dict() as JSON>'
                                  [--per-node] [--seed N] [--input-shapes '{"input": [1, 3, 224, 224]}']
   The target JSON carries the effective [protocol] (warmup, min_runs, max_runs, rel_ci,
   time_cap_s, timeout_s) after command-line overrides. The harness prints exactly ONE JSON object
   on stdout (use `run_harness`, which redirects anything else printed to stderr):
       {"schema": 1, "samples_ms": [...], "per_node": [{"name", "op_type", "ms", ...}] | null,
        "env": {...}, "method": {...}, "energy_mj": float | null, "power_w": float | null,
        "power_method": str | null, "power_detail": {...} | null, "deterministic": bool,
        "error": null | "one line"}
   `energy_mj` is per inference, `power_w` the average over the timed window; every power figure
   names its method ("measured-nvml", "measured-rapl", "modeled", "modeled-npu"...).
   On failure it prints {"schema": 1, "error": "one line", ...} and exits non-zero (run_harness
   does this for any exception). Progress goes to stderr as lines `AUTOGO_PROGRESS {json}`
   (see `ProgressEmitter`); measure() forwards them to the caller's progress callback.
   The stopping rule is `autogo_deploy.stats.time_until_stable` (warm-up with `stats.warm_up`);
   `stop_rule(target)` builds it from the target. Simulators return their deterministic latency
   as the samples and set "deterministic": true.

The helpers below import only the standard library at module level (onnx/numpy inside functions).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from autogo_deploy.stats import StopRule

SCHEMA = 1
PROGRESS_PREFIX = "AUTOGO_PROGRESS "


class HarnessError(Exception):
    """A failure the harness reports as its one-line error (bad model, unsupported op, ...)."""


def parse_args(
    argv: list[str] | None = None, description: str = "autogo-deploy profiler harness"
) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", required=True, help="ONNX model file")
    parser.add_argument("--target-json", required=True, help="Target.to_dict() as JSON")
    parser.add_argument("--per-node", action="store_true", help="also report per-node/kernel times")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    parser.add_argument("--input-shapes", default="{}", help='JSON {"input_name": [dims...]}')
    parser.add_argument(
        "--reference",
        default=None,
        help="ONNX reference model run once after every timed run, timed apart (drift correction; ort only)",
    )
    return parser.parse_args(argv)


def stop_rule(target: dict[str, Any]) -> StopRule:
    p = target["protocol"]
    return StopRule(
        min_runs=int(p["min_runs"]),
        max_runs=int(p["max_runs"]),
        rel_ci=float(p["rel_ci"]),
        time_cap_s=float(p["time_cap_s"]),
    )


class ProgressEmitter:
    """Writes throttled `AUTOGO_PROGRESS {json}` lines to stderr."""

    def __init__(self, min_interval_s: float = 0.2, stream=None):
        self.min_interval_s = min_interval_s
        self.stream = stream if stream is not None else sys.stderr
        self._last = 0.0

    def __call__(self, event: dict[str, Any], *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.min_interval_s:
            return
        self._last = now
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in event.items()}
        self.stream.write(PROGRESS_PREFIX + json.dumps(clean) + "\n")
        self.stream.flush()


def package_version(*dists: str) -> str | None:
    """Installed version of the first distribution found among `dists`."""
    for dist in dists:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def _read_first(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def cpu_model() -> str | None:
    """CPU model name from /proc/cpuinfo (None when unreadable)."""
    text = _read_first(Path("/proc/cpuinfo")) or ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "cpu model") and value.strip():
            return value.strip()
    return platform.processor() or None


def collect_env(libraries: dict[str, str | None] | None = None, **extra: Any) -> dict[str, Any]:
    """Where the numbers came from: CPU, governor, affinity, Python, library versions."""
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    first_cpu = affinity[0] if affinity else 0
    governor = _read_first(Path(f"/sys/devices/system/cpu/cpu{first_cpu}/cpufreq/scaling_governor"))
    libs = {"numpy": package_version("numpy"), "onnx": package_version("onnx")}
    libs.update(libraries or {})
    env = {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "affinity": affinity,
        "governor": governor or "unreadable",
        "python": platform.python_version(),
        "platform": platform.platform(),
        "libraries": libs,
        "thread_env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ},
    }
    env.update(extra)
    return env


NP_DTYPES = {  # ONNX element type -> numpy dtype name, for feeds and bound outputs
    1: "float32",
    2: "uint8",
    3: "int8",
    5: "int16",
    6: "int32",
    7: "int64",
    9: "bool",
    10: "float16",
    11: "float64",
}


def make_inputs(model, seed: int, input_shapes: dict[str, list[int]] | None = None) -> dict[str, Any]:
    """Seeded random feeds for the model's graph inputs (normal floats, small ints, random bools)."""
    import numpy as np

    shapes = input_shapes or {}
    rng = np.random.default_rng(seed)
    init_names = {init.name for init in model.graph.initializer}
    feeds: dict[str, Any] = {}
    for value in model.graph.input:
        if value.name in init_names:
            continue
        ttype = value.type.tensor_type
        dtype = NP_DTYPES.get(ttype.elem_type)
        if dtype is None:
            raise HarnessError(f"input {value.name!r} has unsupported element type {ttype.elem_type}")
        if value.name in shapes:
            dims = [int(d) for d in shapes[value.name]]
        else:
            dims = []
            for dim in ttype.shape.dim:
                if dim.HasField("dim_value") and dim.dim_value > 0:
                    dims.append(dim.dim_value)
                else:
                    label = dim.dim_param or "?"
                    raise HarnessError(
                        f"input {value.name!r} has a symbolic dimension {label!r}; "
                        f"pin it with --input-shape {value.name}=1x3x224x224"
                    )
        if dtype == "bool":
            feeds[value.name] = rng.random(dims) < 0.5
        elif dtype.startswith(("int", "uint")):
            feeds[value.name] = rng.integers(0, 10, size=dims).astype(dtype)
        else:
            feeds[value.name] = rng.standard_normal(dims).astype(dtype)
    return feeds


def result_doc(
    *,
    samples_ms: list[float],
    env: dict[str, Any],
    method: dict[str, Any],
    per_node: list[dict[str, Any]] | None = None,
    energy_mj: float | None = None,
    power_w: float | None = None,
    power_method: str | None = None,
    power_detail: dict[str, Any] | None = None,
    deterministic: bool = False,
) -> dict[str, Any]:
    """The one JSON object a harness prints on success.

    Adds method["peak_rss_mb"]: the harness process's peak resident memory (runtime, model, inputs and
    Python included), from getrusage.
    """
    method = dict(method)
    try:
        import resource

        method.setdefault("peak_rss_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)
    except (ImportError, OSError):
        pass
    return {
        "schema": SCHEMA,
        "samples_ms": [float(v) for v in samples_ms],
        "per_node": per_node,
        "env": env,
        "method": method,
        "energy_mj": energy_mj,
        "power_w": power_w,
        "power_method": power_method,
        "power_detail": power_detail,
        "deterministic": bool(deterministic),
        "error": None,
    }


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if not isinstance(exc, HarnessError):
        text = f"{type(exc).__name__}: {text}"
    return text[:500]


def run_harness(
    body: Callable[[argparse.Namespace, dict[str, Any]], dict[str, Any]], argv: list[str] | None = None
) -> int:
    """Run `body(args, target_dict)` and print its result (or the error) as the single JSON object.

    File descriptor 1 is pointed at stderr while `body` runs, so chatter from native libraries
    cannot corrupt the result; the JSON goes to the original stdout.
    """
    sys.stdout.flush()
    real_stdout = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    code = 0
    try:
        args = parse_args(argv)
        target = json.loads(args.target_json)
        args.input_shapes = json.loads(args.input_shapes)
        doc = body(args, target)
    except BaseException as exc:  # noqa: BLE001 - the harness must always answer with JSON
        if isinstance(exc, SystemExit) and exc.code in (0, None):
            raise
        doc = {"schema": SCHEMA, "error": _one_line(exc) or type(exc).__name__}
        code = 1
    real_stdout.write(json.dumps(doc) + "\n")
    real_stdout.flush()
    return code
