"""Predictor-only `check --deterministic` on a measured target: no run at all, the PSC predictor's
latency/energy for the target stand in for measurements, labelled *predicted* everywhere.

The predictor gives one latency figure per model (it is trained on median-like latencies), so only
`latency_p50_ms` and `energy_mj` (and `power_w` = energy / latency) can be checked this way; p90/p99
budgets are refused with a clear error instead of being compared with a median.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from autogo_deploy.budgets import METRICS, Budget
from autogo_deploy.errors import EnvironmentError_, InputError, ModelError
from autogo_deploy.gate import Batch

PREDICTABLE = ("latency_p50_ms", "energy_mj", "power_w")


def predicted_sampler(
    path: Path, target: Any, budgets: Sequence[Budget]
) -> tuple[Callable[[int], Batch], dict]:
    """sample_batch for the gate that returns the prediction as one deterministic 'run'."""
    refused = sorted(
        {b.metric for b in budgets if METRICS[b.metric].kind != "exact" and b.metric not in PREDICTABLE}
    )
    refused = [m for m in refused if m != "peak_mem_mb"]  # memory stays the labelled model estimate
    if refused:
        raise InputError(
            f"predictor-only check cannot judge {', '.join(refused)}",
            hint=f"it predicts {', '.join(PREDICTABLE)}; drop those budgets or measure (no --deterministic)",
        )
    from autogo_deploy.predictor import Predictor

    try:
        predictor = Predictor.load_default()
    except ModelError as exc:
        raise EnvironmentError_(
            f"predictor-only check needs a predictor checkpoint: {exc.message}", hint=exc.hint
        ) from exc
    embedding = predictor.embedding(target)
    (prediction,) = predictor.predict([str(path)], embedding)
    if prediction.latency_ms is None or prediction.latency_ms <= 0:
        raise EnvironmentError_(f"the predictor gave no latency for target {target.name}")
    energy = prediction.energy_mj
    power = energy / prediction.latency_ms if energy is not None else None  # mJ / ms = W
    origin = f"predicted by the PSC predictor (checkpoint {predictor.id}, embedding {embedding.method})"
    info = {"predictor": {"checkpoint": predictor.id, "embedding": embedding.method, **prediction.to_dict()}}

    def sample_batch(_runs: int) -> Batch:
        return Batch(
            samples_ms=[prediction.latency_ms],
            energy_mj=energy,
            power_w=power,
            power_method="predicted" if energy is not None else None,
            deterministic=True,
            origin=origin,
        )

    return sample_batch, info
