"""Drift correction for `check --drift-correct`: judge latency at a fixed runner speed.

A shared CI runner's speed drifts by far more than a 5% budget margin over minutes (neighbours on the
host, frequency changes): the same model measured a minute apart differs by > 5% a third of the time
on our 2-core runner (benchmarks/gate_noise.py). Every harness batch therefore also runs a fixed
reference network once after each timed model run, in the same process and session options, timed
apart. The batch's latency samples are rescaled by `nominal_ms / reference median of the batch`: the
model's latency as it would be on a runner whose reference median is `nominal_ms`.

`nominal_ms` comes from, in order: `--reference-ms`, the `--baseline` report's `reference.nominal_ms`
(a `check --drift-correct --json` document records the nominal it used, so a chain of baselines stays
in the same units), or this run's first batch (then only drift within the run is corrected). Every
output says which. Only latency is rescaled; energy and power figures are left as measured/modeled.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from autogo_deploy.errors import InputError

REFERENCE_ZOO = ("mobilenet_v2", {"input_size": 96, "seed": 0})
REFERENCE_NAME = "zoo mobilenet_v2 at 96x96, seed 0"


def write_reference(directory: Path) -> Path:
    """Build the reference network (deterministic, from code: nothing is downloaded) into `directory`."""
    from autogo_deploy import zoo

    name, kwargs = REFERENCE_ZOO
    path = Path(directory) / "drift_reference.onnx"
    path.write_bytes(zoo.build(name, **kwargs).SerializeToString())
    return path


def baseline_nominal(path: Path | str) -> float | None:
    """The reference nominal a `check --drift-correct --json` baseline used (None if it has none)."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None  # load_baseline reports unreadable baselines with its own error
    ref = doc.get("reference") if isinstance(doc, dict) else None
    value = ref.get("nominal_ms") if isinstance(ref, dict) else None
    if isinstance(value, int | float) and math.isfinite(value) and value > 0:
        if ref.get("model") not in (None, REFERENCE_NAME):
            raise InputError(
                f"baseline {path} was normalised to another reference ({ref.get('model')!r}), "
                f"not {REFERENCE_NAME!r}: record a new baseline"
            )
        return float(value)
    return None


@dataclass
class DriftCorrection:
    """Rescales each batch to the nominal reference speed; keeps what it did for the report."""

    path: Path
    nominal_ms: float | None = None
    nominal_source: str = "this run's first batch"
    reference_medians_ms: list[float] = field(default_factory=list)
    factors: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.nominal_ms is not None and not (math.isfinite(self.nominal_ms) and self.nominal_ms > 0):
            raise InputError(
                f"--reference-ms must be a positive number of milliseconds, got {self.nominal_ms}"
            )

    def correct(self, samples_ms: list[float], method: dict[str, Any]) -> list[float]:
        """The batch's samples at the nominal reference speed."""
        median = reference_median(method)
        if self.nominal_ms is None:
            self.nominal_ms = median
        factor = self.nominal_ms / median
        self.reference_medians_ms.append(median)
        self.factors.append(factor)
        return [float(s) * factor for s in samples_ms]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": REFERENCE_NAME,
            "nominal_ms": self.nominal_ms,
            "nominal_source": self.nominal_source,
            "batch_medians_ms": [round(x, 5) for x in self.reference_medians_ms],
            "factors": [round(x, 5) for x in self.factors],
            "applies_to": "latency samples (energy and power are not rescaled)",
        }


def describe(ref: dict[str, Any]) -> str:
    """One line for outputs, from DriftCorrection.to_dict()."""
    factors = ref.get("factors") or []
    if not factors or ref.get("nominal_ms") is None:
        return f"drift correction on (reference {ref.get('model')}), nothing measured"
    return (
        f"latency drift-corrected to reference {ref['model']} at {ref['nominal_ms']:.4g} ms "
        f"({ref['nominal_source']}); batch factors {min(factors):.3f}-{max(factors):.3f}"
    )


def reference_median(method: dict[str, Any] | None) -> float:
    """Median of the reference times a harness reported in `method["reference"]`."""
    ref = (method or {}).get("reference") or {}
    times = [float(x) for x in ref.get("samples_ms") or [] if isinstance(x, int | float)]
    if not times:
        raise InputError("the harness returned no reference times: drift correction needs the ort harness")
    return statistics.median(times)


def rescaled(measurement, nominal_ms: float | None):
    """A measure.Measurement whose latency samples are rescaled to the nominal reference speed, the
    summary recomputed; `nominal_ms` None takes this measurement's reference median (first of a
    series). Returns (measurement, nominal_ms used). Energy and power are left as they were."""
    from autogo_deploy.stats import summarize

    median = reference_median(measurement.method)
    nominal = median if nominal_ms is None else float(nominal_ms)
    samples = [float(x) * nominal / median for x in measurement.samples_ms]
    method = {k: v for k, v in measurement.method.items() if k != "reference"}
    method["drift_correction"] = {
        "reference": REFERENCE_NAME,
        "nominal_ms": nominal,
        "reference_median_ms": median,
        "factor": nominal / median,
    }
    stats = summarize(samples).to_dict()
    return replace(measurement, samples_ms=samples, method=method, **stats), nominal
