"""Budget parsing: values, flags, files (autogo-budgets.toml / pyproject.toml), precedence, baselines."""

from __future__ import annotations

import json

import pytest

from autogo_deploy.budget_baseline import baseline_metrics, load_baseline, resolve_relative
from autogo_deploy.budgets import METRICS, Budget, collect_budgets, find_config, parse_flag, parse_value
from autogo_deploy.errors import InputError


def limits(plan_or_list):
    budgets = getattr(plan_or_list, "budgets", plan_or_list)
    return {(b.metric, b.kind): (b.limit if b.kind == "absolute" else b.relative_pct) for b in budgets}


@pytest.mark.parametrize(
    ("metric", "text", "limit"),
    [
        ("latency_p50_ms", 8, 8.0),
        ("latency_p50_ms", "8", 8.0),
        ("latency_p50_ms", "8ms", 8.0),
        ("latency_p90_ms", "2.5e1", 25.0),
        ("params", "5M", 5e6),
        ("macs", "1.5G", 1.5e9),
        ("params", "300k", 3e5),
        ("energy_mj", "12 mJ", 12.0),
        ("power_w", 0, 0.0),
        ("file_size_mb", "12.5MB", 12.5),
    ],
)
def test_parse_value_absolute(metric, text, limit):
    budget = parse_value(metric, text)
    assert budget.kind == "absolute" and budget.limit == pytest.approx(limit)


@pytest.mark.parametrize(("text", "pct"), [("+5%", 5.0), ("5%", 5.0), ("-3 %", -3.0), ("+0%", 0.0)])
def test_parse_value_relative(text, pct):
    budget = parse_value("latency_p90_ms", text)
    assert budget.kind == "relative" and budget.relative_pct == pct and budget.limit is None


def test_parse_value_none_removes():
    assert parse_value("params", "none") is None


@pytest.mark.parametrize(
    ("metric", "value", "needle"),
    [
        ("latency_p50_ms", "8s", "unknown suffix"),
        ("params", "5X", "unknown suffix"),
        ("latency_p50_ms", "fast", "cannot read"),
        ("latency_p50_ms", -1, ">= 0"),
        ("latency_p50_ms", "-1", "limit must be >= 0"),
        ("latency_p50_ms", float("inf"), ">= 0"),
        ("latency_p50_ms", True, "expected a number"),
        ("latency_p50_ms", [1], "expected a number"),
        ("latency_p50_ms", "-100%", "> -100%"),
    ],
)
def test_parse_value_errors(metric, value, needle):
    with pytest.raises(InputError, match=needle):
        parse_value(metric, value)


def test_unknown_metric_lists_valid_ones():
    with pytest.raises(InputError) as info:
        parse_flag("latency_ms=8")
    line = info.value.one_line()
    assert "unknown budget metric 'latency_ms'" in line
    for name in METRICS:
        assert name in line


@pytest.mark.parametrize("text", ["latency_p50_ms=8", "latency_p50_ms<=8", " latency_p50_ms = 8 "])
def test_parse_flag_forms(text):
    budget = parse_flag(text)
    assert budget == Budget("latency_p50_ms", limit=8.0, source="--budget")


@pytest.mark.parametrize("text", ["latency_p50_ms", "=8", "latency_p50_ms>=8", ""])
def test_parse_flag_malformed(text):
    with pytest.raises(InputError, match="cannot read --budget"):
        parse_flag(text)


CONFIG = """
params = "5M"
latency_p50_ms = 20

[gate]
max_runs = 4000
fail_alpha = 0.01
min_batches = 4

[target.ort-cpu]
latency_p50_ms = 8
latency_p90_ms = "+5%"

[target.npu-sim]
latency_p50_ms = 1
"""


def test_config_file_per_target_and_flags_precedence(tmp_path):
    (tmp_path / "autogo-budgets.toml").write_text(CONFIG)
    plan = collect_budgets(
        "ort-cpu",
        flags=["latency_p50_ms=7", "macs=1G"],
        target_budgets={"latency_p99_ms": 30, "params": 9e6},
        search_from=tmp_path,
    )
    assert plan.config_path == tmp_path / "autogo-budgets.toml"
    assert limits(plan) == {
        ("latency_p50_ms", "absolute"): 7.0,  # flag > [target.ort-cpu] > top level
        ("latency_p90_ms", "relative"): 5.0,
        ("latency_p99_ms", "absolute"): 30.0,  # from the target's TOML (lowest precedence)
        ("params", "absolute"): 5e6,  # file top level > target TOML
        ("macs", "absolute"): 1e9,
    }
    assert plan.gate == {"max_runs": 4000, "fail_alpha": 0.01, "min_batches": 4}
    sources = {b.metric: b.source for b in plan.budgets}
    assert sources["latency_p50_ms"] == "--budget"
    assert sources["latency_p99_ms"] == "target ort-cpu"
    # another target gets the top level plus its own table
    other = collect_budgets("npu-sim", search_from=tmp_path)
    assert limits(other) == {("latency_p50_ms", "absolute"): 1.0, ("params", "absolute"): 5e6}
    # a target without a table gets the top level only
    assert limits(collect_budgets("tvm-llvm", search_from=tmp_path)) == {
        ("latency_p50_ms", "absolute"): 20.0,
        ("params", "absolute"): 5e6,
    }


def test_flag_none_removes_file_budget(tmp_path):
    (tmp_path / "autogo-budgets.toml").write_text(CONFIG)
    plan = collect_budgets("ort-cpu", flags=["latency_p90_ms=none", "params=none"], search_from=tmp_path)
    assert limits(plan) == {("latency_p50_ms", "absolute"): 8.0}


def test_absolute_and_relative_coexist(tmp_path):
    plan = collect_budgets("t", flags=["latency_p90_ms=9", "latency_p90_ms=+5%"], search_from=tmp_path)
    assert limits(plan) == {("latency_p90_ms", "absolute"): 9.0, ("latency_p90_ms", "relative"): 5.0}


def test_pyproject_section_and_search_upwards(tmp_path):
    (tmp_path / ".git").mkdir()
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.autogo-deploy.budgets]\nlatency_p99_ms = 40\n'
        '[tool.autogo-deploy.budgets.target.ort-cpu]\nparams = "1M"\n'
    )
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    assert find_config(nested) == tmp_path / "pyproject.toml"
    plan = collect_budgets("ort-cpu", search_from=nested)
    assert limits(plan) == {("latency_p99_ms", "absolute"): 40.0, ("params", "absolute"): 1e6}


def test_budgets_file_beats_pyproject_and_search_stops_at_git_root(tmp_path):
    outer = tmp_path / "outer"
    repo = outer / "repo"
    repo.mkdir(parents=True)
    (outer / "autogo-budgets.toml").write_text("params = 1\n")
    (repo / ".git").mkdir()
    assert find_config(repo) is None  # never leaves the repository
    (repo / "pyproject.toml").write_text("[tool.autogo-deploy.budgets]\nparams = 2\n")
    (repo / "autogo-budgets.toml").write_text("params = 3\n")
    assert find_config(repo) == repo / "autogo-budgets.toml"


def test_pyproject_without_section_is_not_a_config(tmp_path):
    (tmp_path / ".git").mkdir()
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert find_config(tmp_path) is None
    with pytest.raises(InputError, match="no \\[tool.autogo-deploy.budgets\\]"):
        collect_budgets("t", config_path=tmp_path / "pyproject.toml")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("latency_ms = 3\n", "unknown key 'latency_ms'"),
        ("[target.ort-cpu]\nthroughput = 3\n", "unknown key 'throughput'"),
        ("[gate]\nalpha = 0.1\n", "unknown key 'alpha'"),
        ("[gate]\nmax_runs = 'many'\n", "must be a number"),
        ("params = [\n", "not valid TOML"),
        ("target = 3\n", "must be a table"),
    ],
)
def test_config_errors(tmp_path, text, needle):
    path = tmp_path / "budgets.toml"
    path.write_text(text)
    with pytest.raises(InputError, match=needle) as info:
        collect_budgets("ort-cpu", config_path=path)
    if "unknown key" in needle and "gate" not in text:
        assert "latency_p50_ms" in info.value.one_line()  # the valid metrics are listed


def test_missing_config_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        collect_budgets("t", config_path=tmp_path / "nope.toml")


def test_relative_needs_baseline():
    budgets = [Budget("latency_p90_ms", relative_pct=5.0)]
    with pytest.raises(InputError, match="need a baseline"):
        resolve_relative(budgets, None)


def test_resolve_relative_and_default_regression():
    base = {"latency_p90_ms": 10.0, "params": 1000.0}
    out = resolve_relative([Budget("params", relative_pct=-10.0)], base)
    assert [(b.metric, b.limit, b.baseline) for b in out] == [("params", pytest.approx(900.0), 1000.0)]
    out = resolve_relative([Budget("params", limit=5.0)], base)  # no relative budget → default +5% p90
    assert [(b.metric, b.kind) for b in out] == [("latency_p90_ms", "relative"), ("params", "absolute")]
    assert out[0].limit == pytest.approx(10.5) and out[0].source == "default regression limit"
    assert "+5% of baseline 10 ms (= 10.5 ms)" in out[0].describe()
    with pytest.raises(InputError, match="no value for energy_mj"):
        resolve_relative([Budget("energy_mj", relative_pct=5.0)], base, baseline_path="b.json")


def test_baseline_shapes(tmp_path):
    check_doc = {
        "verdict": "pass",
        "results": [{"metric": "latency_p90_ms", "estimate": 4.2}, {"metric": "params", "estimate": 10}],
    }
    assert baseline_metrics(check_doc) == {"latency_p90_ms": 4.2, "params": 10.0}
    profile_doc = {  # the shape of `profile --json` (autogo_deploy/report/json_report.py)
        "kind": "autogo-deploy/profile",
        "model": {"params": 7, "macs": 70, "sha256": "x"},
        "latency": {"p50_ms": 1.0, "p90_ms": 2.0, "p99_ms": 3.0, "runs": 100},
        "power": {"energy_mj": 0.5, "power_w": 4.0, "method": "modeled"},
    }
    assert baseline_metrics(profile_doc) == {
        "latency_p50_ms": 1.0,
        "latency_p90_ms": 2.0,
        "latency_p99_ms": 3.0,
        "energy_mj": 0.5,
        "power_w": 4.0,
        "params": 7.0,
        "macs": 70.0,
    }
    assert baseline_metrics({"latency_p50_ms": 3, "junk": "x", "params": True}) == {"latency_p50_ms": 3.0}
    path = tmp_path / "base.json"
    path.write_text(json.dumps(check_doc))
    assert load_baseline(path)["latency_p90_ms"] == 4.2
    path.write_text("{not json")
    with pytest.raises(InputError, match="not readable JSON"):
        load_baseline(path)
    path.write_text(json.dumps({"hello": 1}))
    with pytest.raises(InputError, match="none of the budget metrics"):
        load_baseline(path)
    with pytest.raises(InputError, match="not found"):
        load_baseline(tmp_path / "missing.json")


def test_documented_example_config_parses(tmp_path):
    """The autogo-budgets.toml example in docs/ci-gate.md is valid, [gate] included."""
    from autogo_deploy.checking import gate_settings
    from autogo_deploy.paths import repo_root

    text = (repo_root() / "docs" / "ci-gate.md").read_text()
    example = text.split("# autogo-budgets.toml", 1)[1].split("\n", 1)[1].split("```", 1)[0]
    (tmp_path / "autogo-budgets.toml").write_text(example)
    plan = collect_budgets("ort-cpu", search_from=tmp_path)
    assert limits(plan)[("latency_p90_ms", "relative")] == 5.0
    settings = gate_settings(plan.gate, {})
    assert settings.fail_alpha == 0.01 and settings.min_batches == 3 and settings.looks == 7


def test_non_utf8_config_is_one_input_error(tmp_path, capsys):
    """A latin-1 or binary --config used to be a UnicodeDecodeError traceback (exit 1)."""
    from autogo_deploy.cli.app import main

    latin1 = tmp_path / "budgets.toml"
    latin1.write_bytes("# budgets for the café demo\nlatency_p50_ms = 3\n".encode("latin-1"))
    with pytest.raises(InputError) as info:
        collect_budgets("ort-cpu", config_path=latin1)
    assert info.value.one_line() == f"budgets file {latin1} is not UTF-8 text"
    assert info.value.exit_code == 2
    (tmp_path / ".git").mkdir()
    (tmp_path / "pyproject.toml").write_bytes(b"\x89PNG\r\n\x1a\n\xff\x00")  # found by the upward search
    with pytest.raises(InputError, match="is not UTF-8 text"):
        find_config(tmp_path)
    model = tmp_path / "m.onnx"
    model.write_bytes(b"not measured: the budgets file is refused first")
    assert main(["check", str(model), "-t", "ort-cpu", "--config", str(latin1)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: budgets file {latin1} is not UTF-8 text"
