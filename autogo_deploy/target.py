"""Targets: a parsed `targets/<name>.toml` (or any TOML path) plus its backend's availability.

Schema (documented in docs/profiling.md):

    [target]    name (default: file stem), description, backend ("ort"|"tvm"|"npu-sim"),
                device ("cpu"|"cuda"|"npu-sim")
    [backend]   backend options, passed to the harness untouched (ort: threads,
                execution_provider, graph_optimization_level; tvm: opt_level, target, tune, trials;
                npu-sim: the model constants)
    [protocol]  warmup, min_runs, max_runs, rel_ci, time_cap_s, timeout_s
    [power]     method ("nvml"|"rapl"|"modeled"|"npu-model"), fallback, model constants + sources
    [budgets]   default budgets (latency_ms, energy_mj, ...), numbers only
    [hardware]  friendly sizes, e.g. channel_multiple = 16 for a cube-unit NPU
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autogo_deploy.errors import InputError
from autogo_deploy.paths import targets_dir

BACKEND_NAMES = ("ort", "tvm", "npu-sim")
DEVICES = ("cpu", "cuda", "npu-sim")
POWER_METHODS = ("nvml", "rapl", "modeled", "npu-model")
SECTIONS = ("target", "backend", "protocol", "power", "budgets", "hardware")

DEFAULT_PROTOCOL: dict[str, Any] = {
    "warmup": 10,
    "min_runs": 20,
    "max_runs": 2000,
    "rel_ci": 0.01,
    "time_cap_s": 60.0,
    "timeout_s": 600.0,
}
_INT_KEYS = ("warmup", "min_runs", "max_runs")
_FLOAT_KEYS = ("rel_ci", "time_cap_s", "timeout_s")
# [backend] options the harnesses convert with int()/float()/bool(): checked here, not in the harness
_BACKEND_INT_KEYS = ("threads", "device_id", "trials", "max_trials_per_task", "tune_seed")
_BACKEND_FLOAT_KEYS = ("tune_timeout_s",)
_BACKEND_BOOL_KEYS = ("tune", "fold_bn", "cuda_graph")


@dataclass(frozen=True)
class Target:
    """One measurement target: which backend, how to measure, how to account power, default budgets."""

    name: str
    backend: str
    device: str
    description: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    protocol: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_PROTOCOL))
    power: dict[str, Any] = field(default_factory=dict)
    budgets: dict[str, float] = field(default_factory=dict)
    hardware: dict[str, Any] = field(default_factory=dict)
    path: str | None = None

    def __hash__(self) -> int:  # dict fields are unhashable; name + file identify a target
        return hash((self.name, self.path))

    def available(self) -> tuple[bool, str]:
        """(True, what will run) or (False, why not: package missing, no GPU, ...)."""
        from autogo_deploy.backends import availability

        return availability(self)

    def harness_path(self) -> Path:
        """The profilers/*.py script that measures on this target."""
        from autogo_deploy.backends import harness

        return harness(self)

    @property
    def macs_per_param(self) -> float:
        """How many MACs one weight costs on this hardware (weights streamed from memory once per
        inference); 0 = compute-bound, weights free. Used to pick which segments to mutate."""
        return float(self.hardware.get("macs_per_param", 0))

    @property
    def channel_multiple(self) -> int:
        """Channel count the hardware prefers (1 = no preference)."""
        return int(self.hardware.get("channel_multiple", 1))

    def with_protocol(self, **overrides: Any) -> Target:
        """A copy with some protocol values replaced (None values are ignored), validated."""
        given = {k: v for k, v in overrides.items() if v is not None}
        protocol = dict(self.protocol)
        protocol.update(given)
        if "max_runs" in given and "min_runs" not in given and isinstance(given["max_runs"], int):
            # a cap below the target's minimum lowers the minimum with it (--max-runs 20 on ort-cpu,
            # whose min_runs is 50), instead of failing on a number the user did not give
            protocol["min_runs"] = max(1, min(int(protocol["min_runs"]), given["max_runs"]))
        try:
            _check_protocol(protocol, self.name)
        except InputError as exc:  # name the flags, not the packaged target file
            flags = ", ".join(f"{k}={v}" for k, v in given.items())
            raise InputError(f"{exc.message.split(': ', 1)[-1]} (given: {flags})") from None
        return Target(
            name=self.name,
            backend=self.backend,
            device=self.device,
            description=self.description,
            options=self.options,
            protocol=protocol,
            power=self.power,
            budgets=self.budgets,
            hardware=self.hardware,
            path=self.path,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (what the harness receives with --target-json)."""
        return {
            "name": self.name,
            "description": self.description,
            "backend": self.backend,
            "device": self.device,
            "options": self.options,
            "protocol": self.protocol,
            "power": self.power,
            "budgets": self.budgets,
            "hardware": self.hardware,
            "path": self.path,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def _fail(where: str, what: str) -> InputError:
    return InputError(f"invalid target {where}: {what}", hint="see docs/profiling.md for the target schema")


def _check_protocol(protocol: dict[str, Any], where: str) -> None:
    unknown = sorted(set(protocol) - set(DEFAULT_PROTOCOL))
    if unknown:
        raise _fail(where, f"unknown [protocol] keys {unknown}; known: {sorted(DEFAULT_PROTOCOL)}")
    for key in _INT_KEYS:
        value = protocol[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise _fail(where, f"[protocol] {key} must be a non-negative integer, got {value!r}")
    for key in _FLOAT_KEYS:
        value = protocol[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise _fail(where, f"[protocol] {key} must be a positive number, got {value!r}")
    if protocol["min_runs"] < 1 or protocol["max_runs"] < protocol["min_runs"]:
        raise _fail(where, "[protocol] needs 1 <= min_runs <= max_runs")
    if not protocol["rel_ci"] < 1:
        raise _fail(where, "[protocol] rel_ci is a fraction in (0, 1), e.g. 0.01 for ±1%")


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float)


def _is_int(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int)


def _check_backend(options: dict[str, Any], where: str) -> None:
    for key in _BACKEND_INT_KEYS:
        if key in options and not (_is_int(options[key]) and options[key] >= 0):
            raise _fail(where, f"[backend] {key} must be a non-negative integer, got {options[key]!r}")
    for key in _BACKEND_FLOAT_KEYS:
        if key in options and not (_is_number(options[key]) and options[key] > 0):
            raise _fail(where, f"[backend] {key} must be a positive number, got {options[key]!r}")
    for key in _BACKEND_BOOL_KEYS:
        if key in options and not isinstance(options[key], bool):
            raise _fail(where, f"[backend] {key} must be true or false, got {options[key]!r}")


def _check_power(power: dict[str, Any], where: str) -> None:
    """The modeled-power constants (power.MODELED_DEFAULTS), checked before any harness uses them."""
    if "tdp_w" in power and not (_is_number(power["tdp_w"]) and power["tdp_w"] > 0):
        raise _fail(where, f"[power] tdp_w must be a positive number, got {power['tdp_w']!r}")
    if "cores" in power and not (_is_int(power["cores"]) and power["cores"] >= 1):
        raise _fail(where, f"[power] cores must be a positive integer, got {power['cores']!r}")
    if "idle_share" in power and not (_is_number(power["idle_share"]) and 0 <= power["idle_share"] <= 1):
        raise _fail(where, f"[power] idle_share must be a number in [0, 1], got {power['idle_share']!r}")
    if "sources" in power and not isinstance(power["sources"], dict):
        raise _fail(where, "[power] sources must be a table")


def parse_target(data: dict[str, Any], *, default_name: str, path: str | None = None) -> Target:
    """Validate a parsed TOML document and build the Target."""
    where = repr(path or default_name)
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise _fail(where, f"unknown sections {unknown}; allowed: {list(SECTIONS)}")
    for section in SECTIONS:
        if section in data and not isinstance(data[section], dict):
            raise _fail(where, f"[{section}] must be a table")
    head = data.get("target")
    if not head:
        raise _fail(where, "missing [target] table")
    name = head.get("name", default_name)
    if not isinstance(name, str) or not name.strip():
        raise _fail(where, "[target] name must be a non-empty string")
    backend = head.get("backend")
    if backend not in BACKEND_NAMES:
        raise _fail(where, f"[target] backend must be one of {list(BACKEND_NAMES)}, got {backend!r}")
    device = head.get("device")
    if device not in DEVICES:
        raise _fail(where, f"[target] device must be one of {list(DEVICES)}, got {device!r}")
    options = dict(data.get("backend", {}))
    _check_backend(options, where)
    protocol = dict(DEFAULT_PROTOCOL)
    protocol.update(data.get("protocol", {}))
    _check_protocol(protocol, where)
    power = dict(data.get("power", {}))
    method = power.get("method", "modeled")
    if method not in POWER_METHODS:
        raise _fail(where, f"[power] method must be one of {list(POWER_METHODS)}, got {method!r}")
    fallback = power.get("fallback")
    if fallback is not None and fallback not in POWER_METHODS:
        raise _fail(where, f"[power] fallback must be one of {list(POWER_METHODS)}, got {fallback!r}")
    _check_power(power, where)
    power["method"] = method
    budgets = dict(data.get("budgets", {}))
    for key, value in budgets.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise _fail(where, f"[budgets] {key} must be a positive number, got {value!r}")
    hardware = dict(data.get("hardware", {}))
    multiple = hardware.get("channel_multiple", 1)
    if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1:
        raise _fail(where, f"[hardware] channel_multiple must be a positive integer, got {multiple!r}")
    per_param = hardware.get("macs_per_param", 0)
    if isinstance(per_param, bool) or not isinstance(per_param, int | float) or per_param < 0:
        raise _fail(where, f"[hardware] macs_per_param must be a number >= 0, got {per_param!r}")
    return Target(
        name=name.strip(),
        backend=backend,
        device=device,
        description=str(head.get("description", "")),
        options=options,
        protocol=protocol,
        power=power,
        budgets=budgets,
        hardware=hardware,
        path=path,
    )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise InputError(f"cannot read target file {str(path)!r}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError:
        raise InputError(f"target file {str(path)!r} is not UTF-8 text (a target is a TOML file)") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"target file {str(path)!r} is not valid TOML: {exc}") from exc


def target_names() -> list[str]:
    """Names of the packaged targets (file stems of targets/*.toml), sorted."""
    return sorted(p.stem for p in targets_dir().glob("*.toml"))


def load_target(name_or_path: str | Path) -> Target:
    """A packaged target by name (`ort-cpu`) or any TOML file by path."""
    if isinstance(name_or_path, Target):
        return name_or_path
    text = str(name_or_path)
    candidate = Path(text)
    looks_like_path = text.endswith(".toml") or "/" in text or candidate.is_file()
    if looks_like_path:
        if not candidate.is_file():
            raise InputError(f"target file {text!r} does not exist")
        return parse_target(_read_toml(candidate), default_name=candidate.stem, path=str(candidate))
    packaged = targets_dir() / f"{text}.toml"
    if not packaged.is_file():
        known = ", ".join(target_names()) or "(none)"
        raise InputError(
            f"unknown target {text!r}", hint=f"known targets: {known}; or give a path to a .toml file"
        )
    return parse_target(_read_toml(packaged), default_name=text, path=str(packaged))


def list_targets() -> list[Target]:
    """Every packaged target, sorted by name."""
    return [load_target(name) for name in target_names()]
