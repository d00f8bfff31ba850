"""How the optimize loop measures a candidate: the summary it keeps of a measurement, the in-process
path for simulated targets, the user's `--evaluator` command, and the re-check of npu-sim's fast
fusion rule against TVM's."""

from __future__ import annotations

import shlex
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from autogo_deploy.errors import InputError, MeasurementFailed


def measurement_summary(m) -> dict:
    return {
        "latency_ms": m.p50_ms,
        "p90_ms": m.p90_ms,
        "p99_ms": m.p99_ms,
        "runs": m.runs,
        "ci95_rel": m.ci95_rel,
        "energy_mj": m.energy_mj,
        "power_w": m.power_w,
        "power_method": m.power_method,
        "deterministic": m.deterministic,
        "method": "simulated" if m.deterministic else "measured",
    }


def run_evaluator(command: str, model_bytes: bytes, timeout_s: float = 600) -> float:
    """Run the user's `--evaluator "CMD {model}"`; the last number it prints is the score."""
    if "{model}" not in command:
        raise InputError('--evaluator must contain {model}, e.g. "python eval.py {model}"')
    with tempfile.TemporaryDirectory(prefix="autogo_eval_") as tmp:
        path = Path(tmp) / "candidate.onnx"
        path.write_bytes(model_bytes)
        argv = [part.replace("{model}", str(path)) for part in shlex.split(command)]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise MeasurementFailed(f"evaluator failed: {exc}") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
        raise MeasurementFailed(f"evaluator exited {proc.returncode}: {tail[0][:200]}")
    for token in reversed(proc.stdout.split()):
        try:
            return float(token)
        except ValueError:
            continue
    raise MeasurementFailed("evaluator printed no number")


def in_process_measurer(tgt, *, seed: int = 0, **protocol) -> Callable[[bytes], dict] | None:
    """For a simulated target (npu-sim): a measurer that runs the target's own harness body in this
    process: the same code, so the same figures as `measurement_summary(measure(...))`, without the
    harness subprocess and its interpreter start and imports (1.3 s instead of 1.6-3.4 s for a
    ResNet-50 candidate on this machine). None for timed targets: those are always measured in a
    fresh harness process."""
    if tgt.backend != "npu-sim":
        return None
    import contextlib
    import importlib.util
    import io
    import json

    from autogo_deploy.backends.base import HarnessError, parse_args
    from autogo_deploy.stats import summarize

    spec = importlib.util.spec_from_file_location("_autogo_in_process_harness", tgt.harness_path())
    harness = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(harness)
    target_json = tgt.with_protocol(**protocol).to_json()
    target_doc = json.loads(target_json)

    def measurer(model_bytes: bytes) -> dict:
        # the harness' own argument defaults (as its subprocess would parse them), the model as bytes
        args = parse_args(["--model", "-", "--target-json", target_json, "--seed", str(seed)])
        args.model, args.input_shapes = model_bytes, {}
        try:  # the harness' progress lines are for a parent process reading its stderr: dropped here
            with contextlib.redirect_stderr(io.StringIO()):
                doc = harness.body(args, target_doc)
        except HarnessError as exc:
            raise MeasurementFailed(f"{tgt.name}: {exc}") from None
        if not doc.get("deterministic"):
            raise MeasurementFailed(f"{tgt.name}: the in-process path is only for deterministic targets")
        summary = summarize(doc["samples_ms"])
        return {
            "latency_ms": summary.p50_ms,
            "p90_ms": summary.p90_ms,
            "p99_ms": summary.p99_ms,
            "runs": summary.runs,
            "ci95_rel": summary.ci95_rel,
            "energy_mj": doc.get("energy_mj"),
            "power_w": doc.get("power_w"),
            "power_method": doc.get("power_method"),
            "deterministic": True,
            "method": "simulated",
        }

    return measurer


def verify_fast_fusion(result, tgt, *, seed: int = 0) -> dict:
    """Re-cost the input and the emitted model with the target's own (TVM) fusion and compare
    (see backends.npu_sim.fast_stand_in)."""
    from autogo_deploy.measure import measure

    out: dict = {"fusion": tgt.options.get("fusion", "tvm"), "loop_fusion": "onnx-rules", "models": {}}
    worst = 0.0
    for name, cand in (("input", result.baseline), ("result", result.best)):
        if cand is None or not cand.measured:
            continue
        tvm = measurement_summary(measure(cand.model_bytes, tgt, seed=seed))
        row = {}
        for key in ("latency_ms", "energy_mj"):
            fast, slow = cand.measured.get(key), tvm.get(key)
            if fast is None or slow is None:
                continue
            rel = abs(fast - slow) / max(abs(slow), 1e-12)
            worst = max(worst, rel)
            row[key] = {"loop": fast, "tvm": slow, "rel_diff": rel}
        out["models"][name] = row
    out["max_rel_diff"] = worst
    out["agree"] = worst <= 1e-6
    return out
