"""`check` as a library call: budgets + target + model → measured batches → gated verdict → report.

    report = run_check("model.onnx", "ort-cpu", budget_flags=["latency_p90_ms=8"])
    report.verdict, report.exit_code, report.to_dict()

Modes (recorded in every output as `mode` and `deterministic`):
* "measured"  — the target's harness measures repeated batches; verdicts come from confidence bounds.
* "simulator" — the target's backend is deterministic (npu-sim): one batch decides, bounds collapse.
* "exact"     — only counted budgets (params, MACs, file size): nothing is measured.
* "predictor" — `--deterministic` on a measured target: nothing runs; the PSC predictor's latency and
  energy for the target (autogo_deploy.predictor.Predictor.load_default()) are judged, labelled predicted.
"""

from __future__ import annotations

import hashlib
import math
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autogo_deploy import errors
from autogo_deploy.budget_baseline import load_baseline, resolve_relative
from autogo_deploy.budgets import DRIFT_KEYS, METRICS, Budget, collect_budgets
from autogo_deploy.errors import BackendUnavailable, InputError
from autogo_deploy.gate import (
    FAIL,
    INCONCLUSIVE,
    MEASURED_MEM,
    PASS,
    Batch,
    GateOutcome,
    GateSettings,
    run_gate,
)

SCHEMA = "autogo-deploy.check/1"
DETERMINISTIC_BACKENDS = ("npu-sim",)
# Keys a target's [budgets] table may use besides the metric names (documented in target.py).
TARGET_BUDGET_ALIASES = {
    "latency_ms": "latency_p50_ms",
    "peak_memory_mb": "peak_mem_mb",
    "energy_per_inference_mj": "energy_mj",
}
EXIT_CODES = {PASS: errors.EXIT_OK, FAIL: errors.EXIT_BUDGET, INCONCLUSIVE: errors.EXIT_INCONCLUSIVE}


@dataclass
class CheckReport:
    """Everything `check` found; `to_dict()` is the `--json` document."""

    model: dict[str, Any]
    target: dict[str, Any]
    mode: str
    deterministic: bool
    outcome: GateOutcome
    metrics: dict[str, float | None]
    metric_methods: dict[str, str]
    baseline: dict[str, Any] | None = None
    config_path: str | None = None
    measurement: dict[str, Any] = field(default_factory=dict)
    elapsed_s: float = 0.0
    reference: dict[str, Any] | None = None  # drift correction (autogo_deploy.drift), when on

    @property
    def verdict(self) -> str:
        return self.outcome.verdict

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    def to_dict(self) -> dict[str, Any]:
        gate = self.outcome.to_dict()
        return {
            "schema": SCHEMA,
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "reason": gate.pop("reason"),
            "deterministic": self.deterministic,
            "mode": self.mode,
            "model": self.model,
            "target": self.target,
            "results": gate.pop("results"),
            "metrics": self.metrics,
            "metric_methods": self.metric_methods,
            "gate": gate,
            "measurement": self.measurement,
            "baseline": self.baseline,
            "reference": self.reference,
            "config_path": self.config_path,
            "elapsed_s": round(self.elapsed_s, 3),
        }


def target_budgets(raw: Mapping[str, Any], warn: Callable[[str], None]) -> dict[str, Any]:
    """A target's [budgets] table in metric names (aliases mapped, unknown keys skipped with a note)."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = TARGET_BUDGET_ALIASES.get(key, key)
        if name in METRICS:
            out[name] = value
        else:
            warn(f"note: target budget {key!r} is not a check metric; ignored (valid: {', '.join(METRICS)})")
    return out


def model_facts(
    path: Path, input_shapes: dict[str, tuple[int, ...]] | None = None
) -> tuple[dict[str, Any], dict[str, tuple[float, str]]]:
    """Model identity plus the exact metrics (params, MACs, file size) and the estimated peak memory."""
    from autogo_deploy.graph import load

    data = path.read_bytes()
    graph = load(path, input_shapes=input_shapes, cleanup=False)  # count the file as shipped
    totals = graph.totals()
    weight_bytes = sum(int(a.nbytes) for a in graph.initializers.values())
    estimate_mb = (weight_bytes + int(totals["activation_bytes"])) / 1e6
    exact = {
        "params": (float(totals["params"]), "counted from the graph as stored"),
        "macs": (float(totals["macs"]), "counted from the graph as stored"),
        "file_size_mb": (len(data) / 1e6, "size of the ONNX file"),
        "peak_mem_mb": (estimate_mb, "estimated: weights + all activations (no buffer reuse), not measured"),
    }
    model = {
        "path": str(path),
        "sha256": hashlib.sha256(data).hexdigest(),
        "params": int(totals["params"]),
        "macs": int(totals["macs"]),
        "file_size_mb": len(data) / 1e6,
        "nodes": int(totals["nodes"]),
    }
    return model, exact


def gate_settings(file_values: Mapping[str, Any], overrides: Mapping[str, Any]) -> GateSettings:
    """Defaults < the budgets file's [gate] table < command-line overrides (None = not given). The
    table's drift-correction keys (budgets.DRIFT_KEYS) are not gate statistics: run_check reads them."""
    values = {k: v for k, v in file_values.items() if k not in DRIFT_KEYS}
    values.update({k: v for k, v in overrides.items() if v is not None})
    if "max_runs" in values and "batch_runs" not in values:
        values["batch_runs"] = min(GateSettings().batch_runs, int(values["max_runs"]))
    return GateSettings.from_mapping(values)


def _peak_mem(measurement: Any, target: Any) -> float | None:
    """Peak memory in MB (1e6 B) from the harness: `peak_mem_mb`, or `method.peak_rss_mb` (MiB, from
    getrusage). A simulator's harness RSS is host memory, not the device's, so it is not used."""
    if target.backend in DETERMINISTIC_BACKENDS:
        return None
    method = getattr(measurement, "method", None) or {}
    value = getattr(measurement, "peak_mem_mb", None)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    value = method.get("peak_rss_mb")
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value) * 2**20 / 1e6
    return None


def batch_sampler(
    model: Path,
    target: Any,
    deadline: Callable[[], float],
    input_shapes: dict | None = None,
    drift: Any | None = None,
):
    """sample_batch(runs) for the gate: one measure() call (own harness process) per batch. With
    `drift` (a drift.DriftCorrection) each batch also times the reference network and its latency
    samples are rescaled to the nominal reference speed."""
    from autogo_deploy.measure import measure

    last: dict[str, Any] = {}

    def sample_batch(runs: int) -> Batch:
        cap = max(1.0, deadline())
        shapes = {k: list(v) for k, v in (input_shapes or {}).items()}
        if target.backend in DETERMINISTIC_BACKENDS:  # the simulator's own protocol: one evaluation
            m = measure(model, target, input_shapes=shapes)
        else:
            m = measure(
                model,
                target,
                min_runs=runs,
                max_runs=runs,
                time_cap_s=cap,
                input_shapes=shapes,
                reference=None if drift is None else drift.path,
            )
        if not m.samples_ms:
            raise errors.MeasurementFailed(f"target {target.name} returned no latency samples")
        last.update(env=m.env, method={k: v for k, v in m.method.items() if k != "reference"})
        samples = list(m.samples_ms) if drift is None else drift.correct(list(m.samples_ms), m.method)
        return Batch(
            samples_ms=samples,
            energy_mj=m.energy_mj,
            power_w=m.power_w,
            power_method=m.power_method,
            peak_mem_mb=_peak_mem(m, target),
            deterministic=bool(m.deterministic),
        )

    return sample_batch, last


def run_check(
    model: str | Path,
    target: str | Any,
    *,
    budget_flags: Iterable[str] = (),
    config_path: str | Path | None = None,
    baseline_path: str | Path | None = None,
    deterministic: bool = False,
    settings: Mapping[str, Any] | None = None,
    search_from: Path | None = None,
    input_shapes: dict[str, tuple[int, ...]] | None = None,
    log: Callable[[str], None] | None = None,
    sample_batch: Callable[[int], Batch] | None = None,
    drift_correct: bool = False,
    reference_ms: float | None = None,
) -> CheckReport:
    """Check `model` against its budgets on `target`. `settings` overrides the gate settings
    (fail_alpha, pass_alpha, batch_runs, max_runs, max_seconds, min_batches, confirm_batches,
    confirm_pause_s); `sample_batch`
    replaces the target's harness (tests, benchmarks). `drift_correct`: judge latency rescaled to a
    reference network's nominal speed (autogo_deploy.drift); `reference_ms` sets that nominal."""
    from autogo_deploy.target import load_target

    started = time.monotonic()
    log = log or (lambda text: print(text, file=sys.stderr))
    path = Path(model)
    if not path.is_file():
        raise InputError(f"model file not found: {path}")
    tgt = load_target(target)
    plan = collect_budgets(
        tgt.name,
        flags=budget_flags,
        config_path=Path(config_path) if config_path else None,
        target_budgets=target_budgets(tgt.budgets, log),
        search_from=search_from,
    )
    baseline = load_baseline(Path(baseline_path)) if baseline_path else None
    budgets: list[Budget] = resolve_relative(plan.budgets, baseline, baseline_path=str(baseline_path or ""))
    if not budgets:
        raise InputError(
            f"no budgets for target {tgt.name}",
            hint="pass --budget METRIC=VALUE, or write an autogo-budgets.toml (see docs/ci-gate.md)",
        )
    file_drift = bool(plan.gate.get("drift_correct", False))
    file_reference_ms = plan.gate.get("reference_ms")
    gate_cfg = gate_settings(plan.gate, settings or {})
    simulated = tgt.backend in DETERMINISTIC_BACKENDS
    needs_runs = any(METRICS[b.metric].kind != "exact" for b in budgets)
    predicted = deterministic and not simulated and needs_runs
    model_info, exact = model_facts(path, input_shapes)
    if reference_ms is not None and not drift_correct:
        raise InputError("--reference-ms sets the nominal of --drift-correct; pass both or neither")
    applicable = not (simulated or predicted or not needs_runs or tgt.backend != "ort")
    if file_drift and not drift_correct:  # from the budgets file: on where it applies, else noted
        if applicable:
            drift_correct = True
        else:
            log(
                f"[gate] drift_correct ignored: it applies to measured latency on ort targets, not {tgt.name}"
            )
    elif file_reference_ms is not None and not file_drift:
        raise InputError("[gate] reference_ms sets the nominal of drift_correct = true; set both or neither")
    reference_source = "--reference-ms"
    if drift_correct and reference_ms is None and file_reference_ms is not None:
        reference_ms, reference_source = (
            float(file_reference_ms),
            f"[gate] reference_ms of {plan.config_path}",
        )
    if drift_correct and not applicable:
        raise InputError(
            f"--drift-correct applies to measured latency on an ort target (here: {tgt.name}, {tgt.backend})",
            hint="npu-sim and --deterministic figures have no run-to-run drift; exact budgets need no runs",
        )
    last: dict[str, Any] = {}
    drift = None
    with tempfile.TemporaryDirectory(prefix="autogo_check_") as tmp:
        if sample_batch is None and predicted:
            from autogo_deploy.check_predicted import predicted_sampler

            sample_batch, last = predicted_sampler(path, tgt, budgets)
        elif sample_batch is None and needs_runs:
            ok, why = tgt.available()
            if not ok:
                raise BackendUnavailable(f"target {tgt.name} is not available here: {why}")
            if drift_correct:
                drift = _drift(reference_ms, reference_source, baseline_path, Path(tmp))
                ref_mb = drift.path.stat().st_size / 1e6
                if model_info["file_size_mb"] < ref_mb / 10:
                    log(
                        f"note: drift correction tracks a runner best for networks whose weights are like the "
                        f"reference's ({ref_mb:.0f} MB); this model's file is {model_info['file_size_mb']:.2g} "
                        "MB, where it can add noise (docs/ci-gate.md, drift correction)"
                    )
            deadline_at = time.monotonic() + gate_cfg.max_seconds
            sample_batch, last = batch_sampler(
                path, tgt, lambda: deadline_at - time.monotonic(), input_shapes, drift
            )
        outcome = run_gate(budgets, exact, sample_batch, gate_cfg, progress=log)
    if not needs_runs:
        mode = "exact"  # only counted figures (params, MACs, file size): nothing was measured
    elif predicted:
        mode = "predictor"  # nothing was measured: the PSC predictor's figures, labelled predicted
    elif simulated or (outcome.evidence.batches and outcome.evidence.deterministic):
        mode = "simulator"  # the backend's samples are deterministic
    else:
        mode = "measured"
    is_det = mode != "measured"
    metrics, methods = observed_metrics(outcome, exact)
    return CheckReport(
        model=model_info,
        target={"name": tgt.name, "backend": tgt.backend, "device": tgt.device, "path": tgt.path},
        mode=mode,
        deterministic=is_det,
        outcome=outcome,
        metrics=metrics,
        metric_methods=methods,
        baseline=None if baseline is None else {"path": str(baseline_path), "values": baseline},
        config_path=str(plan.config_path) if plan.config_path else None,
        measurement=last,
        elapsed_s=time.monotonic() - started,
        reference=None if drift is None else drift.to_dict(),
    )


def _drift(reference_ms: float | None, reference_source: str, baseline_path: str | Path | None, tmp: Path):
    """The drift correction for this check: the reference network and where its nominal comes from."""
    from autogo_deploy import drift

    if reference_ms is not None:
        nominal, source = float(reference_ms), reference_source
    elif baseline_path and (value := drift.baseline_nominal(baseline_path)) is not None:
        nominal, source = value, f"baseline {baseline_path}"
    else:
        nominal, source = None, "this run's first batch (no --reference-ms, no drift-corrected baseline)"
    return drift.DriftCorrection(drift.write_reference(tmp), nominal, source)


def observed_metrics(outcome: GateOutcome, exact: Mapping[str, tuple[float, str]]) -> tuple[dict, dict]:
    """Point estimates of every metric (budgeted or not) with how each was obtained."""
    import numpy as np

    ev = outcome.evidence
    values: dict[str, float | None] = {}
    methods: dict[str, str] = {}
    predicted = bool(ev.origin and ev.origin.startswith("predicted"))
    quantiles = (("latency_p50_ms", 0.5),) if predicted else (
        ("latency_p50_ms", 0.5), ("latency_p90_ms", 0.9), ("latency_p99_ms", 0.99)
    )  # fmt: skip
    if ev.samples_ms:
        for name, q in quantiles:
            values[name] = float(np.quantile(ev.samples_ms, q))
            methods[name] = ev.origin or f"{len(ev.samples_ms)} runs in {ev.batches} batch(es)" + (
                ", deterministic" if ev.deterministic else ""
            )
    how = "/".join(sorted(ev.power_methods)) or "unknown method"
    for name, series in (("energy_mj", ev.energy_mj), ("power_w", ev.power_w)):
        if series:
            values[name] = float(np.mean(series))
            methods[name] = ev.origin or f"mean of {len(series)} batch(es), {how}"
    for name, (value, note) in exact.items():
        values[name], methods[name] = value, note
    if ev.peak_mem_mb is not None:
        values["peak_mem_mb"] = ev.peak_mem_mb
        methods["peak_mem_mb"] = MEASURED_MEM
    order = list(METRICS)
    ordered = sorted(values, key=order.index)
    return {k: values[k] for k in ordered}, {k: methods[k] for k in ordered}
