"""Measure a model on a target: run the backend's harness in its own process, check its one JSON
object, and summarise it as a `Measurement`.

The harness runs in a new process group (so the optimizer's own threads and memory stay out of the
timings and a crashing backend cannot take the tool down); at the target's timeout the whole group
is killed and MeasurementFailed is raised (CLI exit 3).
"""

from __future__ import annotations

import collections
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from autogo_deploy.errors import BackendUnavailable, InputError, MeasurementFailed
from autogo_deploy.stats import summarize
from autogo_deploy.target import Target, load_target

HARNESS_SCHEMA = 1
PROGRESS_PREFIX = "AUTOGO_PROGRESS "
_PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)


@dataclass
class Measurement:
    """One measured (or simulated) latency distribution on one target, with how it was obtained."""

    target: str
    backend: str
    samples_ms: list[float]
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    max_ms: float
    runs: int
    ci95_rel: float | None
    ci95_lo_ms: float | None
    ci95_hi_ms: float | None
    stop_reason: str | None
    energy_mj: float | None = None
    power_w: float | None = None
    power_method: str | None = None
    power_detail: dict[str, Any] | None = None
    per_node: list[dict[str, Any]] | None = None
    env: dict[str, Any] = field(default_factory=dict)
    method: dict[str, Any] = field(default_factory=dict)
    deterministic: bool = False
    wall_s: float = 0.0

    @property
    def converged(self) -> bool:
        """Whether the median's 95% CI reached the requested ±rel_ci."""
        return self.deterministic or self.stop_reason == "converged"

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["converged"] = self.converged
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Measurement:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in doc.items() if k in known})


def _finite_positive(values: Any) -> bool:
    return (
        isinstance(values, list)
        and len(values) > 0
        and all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
            for v in values
        )
    )


def _parse_result(stdout: str, returncode: int, stderr_tail: list[str], name: str) -> dict[str, Any]:
    text = stdout.strip()
    last_err = next((line for line in reversed(stderr_tail) if line.strip()), "")
    doc = None
    if text:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError:
            doc = None
    if not isinstance(doc, dict):
        if returncode < 0:
            try:
                sig: str | int = signal.Signals(-returncode).name
            except ValueError:
                sig = -returncode
            raise MeasurementFailed(
                f"harness {name} crashed (signal {sig}){': ' + last_err if last_err else ''}"
            )
        if returncode != 0:
            raise MeasurementFailed(
                f"harness {name} failed (exit {returncode}){': ' + last_err if last_err else ''}"
            )
        raise MeasurementFailed(f"harness {name} printed no JSON result{': ' + last_err if last_err else ''}")
    if doc.get("error"):
        raise MeasurementFailed(f"{name}: {doc['error']}")
    if returncode != 0:
        raise MeasurementFailed(f"harness {name} exited with {returncode} after printing a result")
    if doc.get("schema") != HARNESS_SCHEMA:
        raise MeasurementFailed(
            f"harness {name} answered schema {doc.get('schema')!r}, expected {HARNESS_SCHEMA}"
        )
    if not _finite_positive(doc.get("samples_ms")):
        raise MeasurementFailed(f"harness {name} returned no valid samples_ms")
    return doc


def run_harness(
    harness_path: Path,
    model_path: Path,
    target: Target,
    *,
    per_node: bool = False,
    seed: int = 0,
    input_shapes: dict[str, list[int]] | None = None,
    timeout_s: float,
    progress: Callable[[dict[str, Any]], None] | None = None,
    reference: Path | None = None,
) -> tuple[dict[str, Any], float]:
    """Run one harness subprocess; return (its JSON object, wall seconds). Kills it at `timeout_s`."""
    cmd = [sys.executable, str(harness_path), "--model", str(model_path), "--target-json", target.to_json()]
    cmd += ["--seed", str(seed), "--input-shapes", json.dumps(input_shapes or {})]
    if reference is not None:
        cmd += ["--reference", str(reference)]
    if per_node:
        cmd.append("--per-node")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_PARENT, env.get("PYTHONPATH")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    stderr_tail: collections.deque[str] = collections.deque(maxlen=40)
    stdout_chunks: list[str] = []
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
    )

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if line.startswith(PROGRESS_PREFIX):
                if progress is not None:
                    try:
                        progress(json.loads(line[len(PROGRESS_PREFIX) :]))
                    except (json.JSONDecodeError, Exception):  # progress must never break a measurement
                        pass
            else:
                stderr_tail.append(line.rstrip("\n"))

    def read_stdout() -> None:
        assert proc.stdout is not None
        stdout_chunks.append(proc.stdout.read())

    readers = [
        threading.Thread(target=read_stderr, daemon=True),
        threading.Thread(target=read_stdout, daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise MeasurementFailed(
            f"harness {harness_path.name} did not finish within {timeout_s:g} s and was killed",
            hint="raise [protocol] timeout_s or lower time_cap_s/max_runs",
        ) from None
    except BaseException:
        _kill_group(proc)
        raise
    finally:
        _kill_group(proc)  # stray children of a finished harness would hold the pipes open
        for reader in readers:
            reader.join(timeout=5)
    wall = time.perf_counter() - start
    doc = _parse_result("".join(stdout_chunks), proc.returncode, list(stderr_tail), harness_path.name)
    return doc, wall


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def _model_file(model: Any, tmpdir: str) -> Path:
    if isinstance(model, bytes | bytearray):
        path = Path(tmpdir) / "model.onnx"
        path.write_bytes(bytes(model))
        return path
    if hasattr(model, "SerializeToString"):  # onnx.ModelProto
        path = Path(tmpdir) / "model.onnx"
        path.write_bytes(model.SerializeToString())
        return path
    path = Path(model)
    if not path.is_file():
        raise InputError(f"model file {str(path)!r} does not exist")
    return path


def measure(
    model: str | Path | bytes,
    target: Target | str,
    *,
    min_runs: int | None = None,
    max_runs: int | None = None,
    time_cap_s: float | None = None,
    rel_ci: float | None = None,
    warmup: int | None = None,
    per_node: bool = False,
    timeout_s: float | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    seed: int = 0,
    input_shapes: dict[str, list[int]] | None = None,
    reference: str | Path | None = None,
) -> Measurement:
    """Measure `model` (path, ONNX bytes or ModelProto) on `target` (Target or name/path).

    Protocol values given here override the target's [protocol]. `progress` receives the harness's
    progress events ({"phase": "warmup"|"timing"|"per-node", "runs", "ci95_rel", "elapsed_s"}).
    Raises BackendUnavailable (backend cannot run here) or MeasurementFailed (harness crashed, hung,
    or answered garbage); both exit 3 in the CLI. `reference`: an ONNX model the harness runs once after
    every timed run and times apart (ort backend only); its times are in `method["reference"]`.
    """
    if not isinstance(target, Target):
        target = load_target(target)
    if reference is not None and target.backend != "ort":
        raise InputError(f"a reference workload (drift correction) needs an ort target, not {target.backend}")
    ok, reason = target.available()
    if not ok:
        raise BackendUnavailable(f"target {target.name!r} is unavailable: {reason}")
    effective = target.with_protocol(
        min_runs=min_runs,
        max_runs=max_runs,
        time_cap_s=time_cap_s,
        rel_ci=rel_ci,
        warmup=warmup,
        timeout_s=timeout_s,
    )
    harness_path = target.harness_path()
    with tempfile.TemporaryDirectory(prefix="autogo_measure_") as tmpdir:
        model_path = _model_file(model, tmpdir)
        doc, wall = run_harness(
            harness_path,
            model_path,
            effective,
            per_node=per_node,
            seed=seed,
            input_shapes=input_shapes,
            timeout_s=float(effective.protocol["timeout_s"]),
            progress=progress,
            reference=None if reference is None else Path(reference),
        )
    summary = summarize(doc["samples_ms"])
    method = dict(doc.get("method") or {})
    method.setdefault("protocol", effective.protocol)
    method.setdefault("seed", seed)
    return Measurement(
        target=target.name,
        backend=target.backend,
        samples_ms=[float(v) for v in doc["samples_ms"]],
        p50_ms=summary.p50_ms,
        p90_ms=summary.p90_ms,
        p99_ms=summary.p99_ms,
        mean_ms=summary.mean_ms,
        std_ms=summary.std_ms,
        min_ms=summary.min_ms,
        max_ms=summary.max_ms,
        runs=summary.runs,
        ci95_rel=summary.ci95_rel,
        ci95_lo_ms=summary.ci95_lo_ms,
        ci95_hi_ms=summary.ci95_hi_ms,
        stop_reason=method.get("stop_reason", "deterministic" if doc.get("deterministic") else None),
        energy_mj=doc.get("energy_mj"),
        power_w=doc.get("power_w"),
        power_method=doc.get("power_method"),
        power_detail=doc.get("power_detail"),
        per_node=doc.get("per_node"),
        env=dict(doc.get("env") or {}),
        method=method,
        deterministic=bool(doc.get("deterministic", False)),
        wall_s=wall,
    )
