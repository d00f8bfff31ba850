"""Hardware budgets for `check`: the metric catalogue, parsing from files and flags (baselines and
relative limits: budget_baseline.py).

Budgets are upper limits (`metric <= limit`). They come from, lowest precedence first:

1. the target's own TOML (`[budgets]` in targets/<name>.toml),
2. the budgets file: `autogo-budgets.toml`, or `[tool.autogo-deploy.budgets]` in `pyproject.toml`
   (top-level metric keys apply to every target, `[target.<name>]` tables to one target),
3. `--budget metric=value` flags.

A limit is absolute (`latency_p50_ms = 8`, `params = "5M"`) or relative to a baseline report
(`latency_p90_ms = "+5%"` means at most 5% above the baseline's p90). Absolute and relative limits on
the same metric are kept side by side; a higher-precedence source replaces the same kind only.
The value `"none"` removes a limit set by a lower-precedence source.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autogo_deploy.errors import InputError

CONFIG_FILE = "autogo-budgets.toml"
PYPROJECT_SECTION = ("tool", "autogo-deploy", "budgets")
DEFAULT_REGRESSION = ("latency_p90_ms", 5.0)  # used when --baseline comes without relative limits


@dataclass(frozen=True)
class Metric:
    """One budgetable quantity. `kind`: percentile (order-statistic bounds on latency samples),
    mean (bounds on per-run values), observed (a single reported value), exact (counted from the model)."""

    name: str
    unit: str
    kind: str
    description: str
    quantile: float | None = None


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("latency_p50_ms", "ms", "percentile", "median latency per inference", 0.50),
        Metric("latency_p90_ms", "ms", "percentile", "90th percentile latency per inference", 0.90),
        Metric("latency_p99_ms", "ms", "percentile", "99th percentile latency per inference", 0.99),
        Metric("energy_mj", "mJ", "mean", "energy per inference"),
        Metric("power_w", "W", "mean", "average power while running"),
        Metric("peak_mem_mb", "MB", "observed", "peak memory of the run (1 MB = 1e6 bytes)"),
        Metric("params", "", "exact", "number of parameters"),
        Metric("macs", "", "exact", "multiply-accumulates per inference"),
        Metric("file_size_mb", "MB", "exact", "size of the ONNX file (1 MB = 1e6 bytes)"),
    )
}

_SI = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
_NUMBER = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*$")
_RELATIVE = re.compile(r"^\s*([+-]?)\s*([0-9]*\.?[0-9]+)\s*%\s*$")
_FLAG = re.compile(r"^\s*([A-Za-z0-9_]+)\s*(<=|=)\s*(.+?)\s*$")
_GATE_KEYS = {
    "fail_alpha",
    "pass_alpha",
    "batch_runs",
    "max_runs",
    "max_seconds",
    "min_batches",
    "confirm_batches",
    "confirm_pause_s",
}
DRIFT_KEYS = {"drift_correct": bool, "reference_ms": float}  # [gate] keys for autogo_deploy.drift


def metric(name: str) -> Metric:
    """The metric called `name`; an unknown name raises InputError listing the valid ones."""
    if name not in METRICS:
        raise InputError(f"unknown budget metric {name!r}", hint=f"valid metrics: {', '.join(METRICS)}")
    return METRICS[name]


@dataclass(frozen=True)
class Budget:
    """`metric <= limit`; for a relative budget `limit` is filled in by `resolve_relative`."""

    metric: str
    limit: float | None = None
    relative_pct: float | None = None
    baseline: float | None = None
    source: str = ""

    @property
    def kind(self) -> str:
        return "relative" if self.relative_pct is not None else "absolute"

    @property
    def key(self) -> tuple[str, str]:
        return (self.metric, self.kind)

    def describe(self) -> str:
        """Human text such as `<= 8.0 ms` or `<= +5% of baseline 7.62 ms (= 8.00 ms)`."""
        unit = METRICS[self.metric].unit
        unit = f" {unit}" if unit else ""
        if self.relative_pct is None:
            return f"<= {_fmt(self.limit)}{unit}"
        text = f"<= {self.relative_pct:+g}% of baseline"
        if self.baseline is not None and self.limit is not None:
            text += f" {_fmt(self.baseline)}{unit} (= {_fmt(self.limit)}{unit})"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "limit": self.limit,
            "kind": self.kind,
            "relative_pct": self.relative_pct,
            "baseline": self.baseline,
            "unit": METRICS[self.metric].unit,
            "source": self.source,
        }


def _fmt(value: float | None) -> str:
    if value is None:
        return "?"
    if float(value).is_integer() and abs(value) >= 1000:
        return f"{int(value):,}"
    return f"{value:.4g}"


def parse_value(metric_name: str, value: Any, *, source: str = "") -> Budget | None:
    """One limit from a file value or flag text; `None` for the value "none" (limit removed)."""
    spec = metric(metric_name)
    where = f" ({source})" if source else ""
    if isinstance(value, bool):
        raise InputError(f"budget {metric_name}{where}: expected a number, got {value!r}")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if text.lower() == "none":
            return None
        rel = _RELATIVE.match(text)
        if rel:
            pct = float(rel.group(2)) * (-1.0 if rel.group(1) == "-" else 1.0)
            if pct <= -100.0:
                raise InputError(f"budget {metric_name}{where}: {text} leaves nothing (must be > -100%)")
            return Budget(metric_name, relative_pct=pct, source=source)
        number = _parse_number(spec, text, where)
    else:
        raise InputError(f"budget {metric_name}{where}: expected a number or a string, got {value!r}")
    if not math.isfinite(number) or number < 0:
        raise InputError(f"budget {metric_name}{where}: limit must be a finite number >= 0, got {value!r}")
    return Budget(metric_name, limit=number, source=source)


def _parse_number(spec: Metric, text: str, where: str) -> float:
    match = _NUMBER.match(text)
    if not match and _NUMBER.match(text.lstrip("-")) and text.startswith("-"):
        raise InputError(f"budget {spec.name}{where}: limit must be >= 0, got {text!r}")
    if not match:
        raise InputError(
            f"budget {spec.name}{where}: cannot read {text!r}",
            hint="write a number (8, 2.5e3), a count with k/M/G (5M), or a relative limit (+5%)",
        )
    number, suffix = float(match.group(1)), match.group(2)
    if not suffix:
        return number
    if spec.unit and suffix.lower() == spec.unit.lower():
        return number
    if not spec.unit and suffix in _SI:
        return number * _SI[suffix]
    allowed = f"the unit {spec.unit!r}" if spec.unit else "k, M, G, T"
    raise InputError(f"budget {spec.name}{where}: unknown suffix {suffix!r} in {text!r} (allowed: {allowed})")


def parse_flag(text: str) -> Budget | tuple[str, None]:
    """`--budget latency_p50_ms=8` (or `<=8`, `=+5%`, `=none`). A removal returns (metric, None)."""
    match = _FLAG.match(text)
    if not match:
        raise InputError(
            f"cannot read --budget {text!r}",
            hint=f"write METRIC=VALUE, e.g. latency_p50_ms=8; metrics: {', '.join(METRICS)}",
        )
    name, _, value = match.groups()
    budget = parse_value(name, value, source="--budget")
    return (name, None) if budget is None else budget


def find_config(start: Path | None = None) -> Path | None:
    """The nearest `autogo-budgets.toml`, or `pyproject.toml` holding [tool.autogo-deploy.budgets],
    in `start` (default: the working directory) or its parents, stopping at a git root."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_FILE
        if candidate.is_file():
            return candidate
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and _pyproject_section(pyproject) is not None:
            return pyproject
        if (folder / ".git").exists():
            break
    return None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise InputError(f"cannot read budgets file {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError:
        raise InputError(f"budgets file {path} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"budgets file {path} is not valid TOML: {exc}") from exc


def _pyproject_section(path: Path) -> dict[str, Any] | None:
    node: Any = _read_toml(path)
    for key in PYPROJECT_SECTION:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    if not isinstance(node, dict):
        raise InputError(f"{path}: [{'.'.join(PYPROJECT_SECTION)}] must be a table")
    return node


def load_config(path: Path) -> dict[str, Any]:
    """The budgets table of a budgets file (an autogo-budgets.toml, or a pyproject.toml section)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"budgets file not found: {path}")
    if path.name == "pyproject.toml":
        section = _pyproject_section(path)
        if section is None:
            raise InputError(f"{path} has no [{'.'.join(PYPROJECT_SECTION)}] table")
        return section
    return _read_toml(path)


def _validate_table(table: Mapping[str, Any], where: str, *, top: bool) -> None:
    allowed = set(METRICS) | ({"target", "gate"} if top else set())
    for key in table:
        if key not in allowed:
            extra = "; tables: [target.<name>], [gate]" if top else ""
            raise InputError(
                f"{where}: unknown key {key!r}", hint=f"valid metrics: {', '.join(METRICS)}{extra}"
            )


def _gate_settings(table: Mapping[str, Any], where: str) -> dict[str, float]:
    gate = table.get("gate", {})
    if not isinstance(gate, dict):
        raise InputError(f"{where}: [gate] must be a table")
    for key, value in gate.items():
        if key not in _GATE_KEYS | set(DRIFT_KEYS):
            raise InputError(
                f"{where} [gate]: unknown key {key!r}",
                hint=f"valid: {', '.join(sorted(_GATE_KEYS | set(DRIFT_KEYS)))}",
            )
        if DRIFT_KEYS.get(key) is bool:
            if not isinstance(value, bool):
                raise InputError(f"{where} [gate]: {key} must be true or false, got {value!r}")
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(f"{where} [gate]: {key} must be a number, got {value!r}")
    return dict(gate)


@dataclass
class BudgetPlan:
    """Everything `check` needs from the budget sources for one target."""

    target: str
    budgets: list[Budget]
    gate: dict[str, float] = field(default_factory=dict)
    config_path: Path | None = None

    def relative(self) -> list[Budget]:
        return [b for b in self.budgets if b.kind == "relative"]


def _merge(into: dict[tuple[str, str], Budget | None], items: Iterable[tuple[str, Any]], source: str) -> None:
    for name, value in items:
        budget = parse_value(name, value, source=source)
        if budget is None:  # "none" clears both kinds set so far
            into[(name, "absolute")] = None
            into[(name, "relative")] = None
        else:
            into[budget.key] = budget


def collect_budgets(
    target: str,
    *,
    flags: Iterable[str] = (),
    config_path: Path | None = None,
    target_budgets: Mapping[str, Any] | None = None,
    search_from: Path | None = None,
) -> BudgetPlan:
    """Merge the target's TOML budgets, the budgets file and `--budget` flags for `target`."""
    merged: dict[tuple[str, str], Budget | None] = {}
    if target_budgets:
        _merge(merged, target_budgets.items(), f"target {target}")
    path = Path(config_path) if config_path is not None else find_config(search_from)
    gate: dict[str, float] = {}
    if path is not None:
        table = load_config(path)
        where = str(path)
        _validate_table(table, where, top=True)
        gate = _gate_settings(table, where)
        _merge(merged, ((k, v) for k, v in table.items() if k in METRICS), where)
        per_target = table.get("target", {})
        if not isinstance(per_target, dict):
            raise InputError(f"{where}: `target` must be a table of [target.<name>] tables")
        section = per_target.get(target)
        if section is not None:
            if not isinstance(section, dict):
                raise InputError(f"{where}: [target.{target}] must be a table")
            _validate_table(section, f"{where} [target.{target}]", top=False)
            _merge(merged, section.items(), f"{where} [target.{target}]")
    for text in flags:
        parsed = parse_flag(text)
        if isinstance(parsed, Budget):
            merged[parsed.key] = parsed
        else:
            _merge(merged, [(parsed[0], "none")], "--budget")
    order = list(METRICS)
    budgets = sorted(
        (b for b in merged.values() if b is not None), key=lambda b: (order.index(b.metric), b.kind)
    )
    return BudgetPlan(target=target, budgets=budgets, gate=gate, config_path=path)
