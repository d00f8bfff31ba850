"""Budgets and objectives for `optimize`: hard constraints on candidates.

    --budget latency_ms=8 energy_mj=2 power_w=15 params=5e6 macs=1e9 peak_mem_mb=200 acc_drop=0

Latency/energy/power are compared with measured values when a candidate was measured, predicted
ones otherwise (and the report says which). `acc_drop` (percentage points, default 0) bounds the
predicted accuracy loss against the input model. `depth_drop` (a share, e.g. 0.1) bounds how much of
the input's depth (weighted layers on its longest path, counted exactly) a candidate may lose, and
`width_drop` how much narrower its main path may get (width.py): limits on how far from the input
the search may go when the accuracy predictor is not trusted that far.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from autogo_deploy.errors import InputError

BUDGET_KEYS = {
    "latency_ms": "p50 latency on the target (ms)",
    "energy_mj": "energy per inference (mJ)",
    "power_w": "average power (W)",
    "params": "parameter count",
    "macs": "multiply-accumulates",
    "peak_mem_mb": "activation memory estimate (MB)",
    "acc_drop": "allowed predicted accuracy loss (percentage points)",
    "depth_drop": "allowed loss of depth (weighted layers on the longest path), as a share of the input's",
    "width_drop": "allowed narrowing of the main path (per resolution), as a share of the input's width",
}
OBJECTIVES = ("latency", "energy", "macs", "accuracy")
# acc_drop is judged with this slack (percentage points): the predictor computes in float32, so two
# networks it cannot tell apart can differ by ~1e-6 pp, which must not count as a predicted loss
# (at acc_drop=0 it rejected every cheaper MobileNetV2 mutant whose accuracy the head saw unchanged)
ACC_TOLERANCE_PP = 1e-4


# Outside the NB201 space the accuracy head extrapolates and cannot see what removing layers costs,
# so `optimize` keeps at least 90% of the input's depth unless told otherwise (--budget depth_drop=1)
DEFAULT_DEPTH_DROP = 0.1
# ... and cannot see what narrowing the main path costs (NB201/NB101 channel counts are fixed per
# stage), so the narrowest tensor every input-output path passes through keeps at least half of the
# input's width at each resolution unless told otherwise (--budget width_drop=1; width.py)
DEFAULT_WIDTH_DROP = 0.5
SHARE_KEYS = ("depth_drop", "width_drop")  # shares of the input's: 0 (none lost) to 1


@dataclass
class Budgets:
    limits: dict[str, float] = field(default_factory=dict)
    defaulted: tuple[str, ...] = ()  # keys the tool set, not the user (the report says which)

    def with_default(self, key: str, value: float) -> Budgets:
        """A copy with `key` set to `value` unless the user gave it."""
        if key in self.limits:
            return self
        return Budgets({**self.limits, key: value}, (*self.defaulted, key))

    @property
    def acc_drop(self) -> float:
        return self.limits.get("acc_drop", 0.0)

    def min_depth(self, base_depth: int) -> int | None:
        """The fewest weighted layers on the longest path a candidate may keep under `depth_drop`
        (judged exactly as `violations` judges it); None without that budget or without depth."""
        if "depth_drop" not in self.limits or base_depth <= 0:
            return None
        return next(
            d for d in range(base_depth + 1) if not self.violations({"depth_drop": 1.0 - d / base_depth})
        )

    def violations(self, metrics: dict[str, float | None]) -> list[str]:
        """Budget names broken by `metrics` (missing metrics are not judged)."""
        broken = []
        for key, limit in self.limits.items():
            if key == "acc_drop":
                delta = metrics.get("acc_delta")
                if delta is not None and delta < -limit - ACC_TOLERANCE_PP:
                    broken.append(key)
                continue
            value = metrics.get(key)
            if value is not None and value > limit:
                broken.append(key)
        return broken

    def to_dict(self) -> dict:
        return dict(self.limits)


def parse_budgets(items: list[str] | None) -> Budgets:
    """Parse `key=value` items (each item may hold several, space separated)."""
    limits: dict[str, float] = {}
    for item in items or []:
        for part in item.replace(",", " ").split():
            key, sep, value = part.partition("=")
            if not sep:
                raise InputError(f"bad budget {part!r}; expected KEY=VALUE, keys: {', '.join(BUDGET_KEYS)}")
            if key not in BUDGET_KEYS:
                raise InputError(f"unknown budget {key!r}; valid: {', '.join(BUDGET_KEYS)}")
            try:
                number = float(value)
            except ValueError:
                raise InputError(f"budget {key} needs a number, got {value!r}") from None
            if number < 0 or (number == 0 and key not in ("acc_drop", *SHARE_KEYS)):
                # a zero latency/energy/size limit can never be met: the whole search would run for
                # nothing (acc_drop=0, depth_drop=0 and width_drop=0 mean "none lost", and are fine)
                raise InputError(f"budget {key} must be > 0, got {value!r}")
            if key in SHARE_KEYS and number > 1:
                raise InputError(f"budget {key} is a share of the input's (0 to 1), got {number}")
            limits[key] = number
    limits.setdefault("acc_drop", 0.0)
    return Budgets(limits)


def check_objective(name: str) -> str:
    if name not in OBJECTIVES:
        raise InputError(f"unknown objective {name!r}; valid: {', '.join(OBJECTIVES)}")
    return name
