"""Budget parsing and judging for `optimize`."""

from __future__ import annotations

import pytest

from autogo_deploy.constraints import check_objective, parse_budgets
from autogo_deploy.errors import InputError


def test_parse_and_defaults():
    b = parse_budgets(["latency_ms=8 params=5e6", "acc_drop=0.5"])
    assert b.limits == {"latency_ms": 8.0, "params": 5e6, "acc_drop": 0.5}
    assert parse_budgets(None).acc_drop == 0.0


@pytest.mark.parametrize(
    "bad",
    ["latency=3", "latency_ms", "latency_ms=fast", "params=-1", "depth_drop=1.5", "latency_ms=0", "macs=0"],
)
def test_bad_budgets_are_input_errors(bad):
    with pytest.raises(InputError):
        parse_budgets([bad])


def test_violations():
    b = parse_budgets(["latency_ms=8", "acc_drop=0"])
    assert b.violations({"latency_ms": 9.0, "acc_delta": 0.1}) == ["latency_ms"]
    assert b.violations({"latency_ms": 7.0, "acc_delta": -0.2}) == ["acc_drop"]
    assert b.violations({"latency_ms": None, "acc_delta": None}) == []
    # float32 rounding of the predictor (~1e-6 pp) is not a predicted loss; 0.001 pp is
    assert b.violations({"acc_delta": -7.7e-7}) == []
    assert b.violations({"acc_delta": -1e-3}) == ["acc_drop"]
    d = parse_budgets(["depth_drop=0.1"])
    assert d.violations({"depth_drop": 0.2}) == ["depth_drop"]
    assert d.violations({"depth_drop": 0.1, "acc_delta": 0.0}) == []
    assert d.violations({"depth_drop": None}) == []  # not judged where unknown


def test_objective_names():
    assert check_objective("energy") == "energy"
    with pytest.raises(InputError, match="valid: latency, energy, macs"):
        check_objective("speed")


def test_zero_is_a_budget_only_for_what_may_not_be_lost():
    assert parse_budgets(["acc_drop=0 depth_drop=0"]).limits == {"acc_drop": 0.0, "depth_drop": 0.0}
    with pytest.raises(InputError, match="must be > 0"):
        parse_budgets(["energy_mj=0"])


def test_a_default_budget_never_overrides_the_users():
    from autogo_deploy.constraints import DEFAULT_DEPTH_DROP

    b = parse_budgets(["latency_ms=8"]).with_default("depth_drop", DEFAULT_DEPTH_DROP)
    assert b.limits["depth_drop"] == DEFAULT_DEPTH_DROP and b.defaulted == ("depth_drop",)
    lifted = parse_budgets(["depth_drop=1"]).with_default("depth_drop", DEFAULT_DEPTH_DROP)
    assert lifted.limits["depth_drop"] == 1.0 and lifted.defaulted == ()


def test_min_depth_is_the_floor_the_depth_drop_budget_allows():
    from autogo_deploy.constraints import parse_budgets

    assert parse_budgets(["depth_drop=0.1"]).min_depth(50) == 45
    assert parse_budgets(["depth_drop=0.1"]).min_depth(18) == 17  # 1 - 17/18 = 0.056 <= 0.1
    assert parse_budgets(["depth_drop=0"]).min_depth(18) == 18
    assert parse_budgets(["depth_drop=1"]).min_depth(18) == 0
    assert parse_budgets(["acc_drop=0"]).min_depth(18) is None
