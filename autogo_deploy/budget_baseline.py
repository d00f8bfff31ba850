"""Baselines for `check`: metric values read from an earlier report, and relative budgets
(`latency_p90_ms = "+5%"`) turned into absolute limits against them."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from autogo_deploy.budgets import DEFAULT_REGRESSION, METRICS, Budget
from autogo_deploy.errors import InputError


def load_baseline(path: Path) -> dict[str, float]:
    """Metric values of a baseline report: a `profile --json` report, a `check --json` document or
    a flat {metric: value} JSON object. Only known metric names with numeric values are kept."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise InputError(f"baseline report not found: {path}") from exc
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"baseline report {path} is not readable JSON: {exc}") from exc
    values = baseline_metrics(data)
    if not values:
        raise InputError(
            f"baseline report {path} holds none of the budget metrics",
            hint="pass a report written by `autogo-deploy profile --json` or `check --json`",
        )
    return values


def baseline_metrics(data: Any) -> dict[str, float]:
    """Extract metric values from the report shapes we know (see `load_baseline`)."""
    if not isinstance(data, dict):
        return {}
    found: dict[str, float] = {}
    # check --json: {"results": [{"metric", "estimate"}]}; flat or {"metrics": {...}} documents.
    for row in data.get("results", []) if isinstance(data.get("results"), list) else []:
        if isinstance(row, dict) and row.get("metric") in METRICS and _is_number(row.get("estimate")):
            found.setdefault(row["metric"], float(row["estimate"]))
    for table in (data.get("metrics"), data.get("cost"), data):
        if isinstance(table, dict):
            for name in METRICS:
                if _is_number(table.get(name)):
                    found.setdefault(name, float(table[name]))
    # profile reports (kind "autogo-deploy/profile"): latency {p50_ms, ...}, power {energy_mj, power_w}
    for key in ("latency", "power", "measurement", "baseline"):
        block = data.get(key)
        if isinstance(block, dict):
            found.update({k: v for k, v in _measurement_metrics(block).items() if k not in found})
    found.update({k: v for k, v in _measurement_metrics(data).items() if k not in found})
    model = data.get("model")
    if isinstance(model, dict):
        for src, name in (("params", "params"), ("macs", "macs"), ("file_size_mb", "file_size_mb")):
            if _is_number(model.get(src)):
                found.setdefault(name, float(model[src]))
    return found


def _measurement_metrics(block: Mapping[str, Any]) -> dict[str, float]:
    mapping = {
        "p50_ms": "latency_p50_ms",
        "p90_ms": "latency_p90_ms",
        "p99_ms": "latency_p99_ms",
        "energy_mj": "energy_mj",
        "power_w": "power_w",
        "peak_mem_mb": "peak_mem_mb",
    }
    return {name: float(block[src]) for src, name in mapping.items() if _is_number(block.get(src))}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def resolve_relative(
    budgets: Iterable[Budget], baseline: Mapping[str, float] | None, *, baseline_path: str = ""
) -> list[Budget]:
    """Turn relative budgets into absolute limits using the baseline's values.

    With a baseline and no relative budget at all, the default regression limit
    (latency_p90_ms <= +5%) is added beside any absolute limits."""
    budgets = list(budgets)
    if baseline is None:
        rel = [b.metric for b in budgets if b.kind == "relative"]
        if rel:
            raise InputError(
                f"relative budget(s) on {', '.join(rel)} need a baseline",
                hint="pass --baseline report.json (a `profile --json` or `check --json` report)",
            )
        return budgets
    if not any(b.kind == "relative" for b in budgets):
        name, pct = DEFAULT_REGRESSION
        budgets.append(Budget(name, relative_pct=pct, source="default regression limit"))
    out = []
    for b in budgets:
        if b.kind == "relative":
            if b.metric not in baseline:
                raise InputError(
                    f"baseline {baseline_path or 'report'} has no value for {b.metric}",
                    hint=f"it has: {', '.join(sorted(baseline)) or 'nothing usable'}",
                )
            base = float(baseline[b.metric])
            b = replace(b, baseline=base, limit=base * (1.0 + b.relative_pct / 100.0))
        out.append(b)
    order = list(METRICS)
    return sorted(out, key=lambda b: (order.index(b.metric), b.kind))
