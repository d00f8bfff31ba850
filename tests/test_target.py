"""Target files: schema validation, lookup by name or path, availability with reasons, `targets` CLI."""

from __future__ import annotations

import json
import tomllib

import pytest

from autogo_deploy import backends
from autogo_deploy.cli.app import main
from autogo_deploy.errors import InputError
from autogo_deploy.paths import profilers_dir, targets_dir
from autogo_deploy.target import BACKEND_NAMES, DEFAULT_PROTOCOL, list_targets, load_target, target_names

MINIMAL = """
[target]
backend = "ort"
device = "cpu"
"""


def _write(tmp_path, text, name="custom.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_every_packaged_target_file_is_valid():
    names = target_names()
    assert {"ort-cpu", "ort-cuda"} <= set(names)
    for target in list_targets():
        assert target.name == target.path.rsplit("/", 1)[-1][: -len(".toml")]  # file stem = name
        assert target.backend in BACKEND_NAMES
        assert target.description
        assert 0 < target.protocol["rel_ci"] < 1
        assert target.protocol["min_runs"] <= target.protocol["max_runs"]
        assert target.power["method"] in ("nvml", "rapl", "modeled", "npu-model")
        assert all(v > 0 for v in target.budgets.values())
        ok, reason = target.available()
        assert isinstance(ok, bool) and reason.strip()
        # A registered backend's harness must exist in profilers/ once its module exists.
        try:
            module = backends.backend_module(target.backend)
        except Exception:
            continue
        assert (profilers_dir() / module.HARNESS).is_file()


def test_packaged_files_parse_as_plain_toml_with_known_sections():
    for path in targets_dir().glob("*.toml"):
        data = tomllib.loads(path.read_text())
        assert set(data) <= {"target", "backend", "protocol", "power", "budgets", "hardware"}, path


def test_load_by_path_defaults_name_to_stem_and_fills_protocol(tmp_path):
    target = load_target(str(_write(tmp_path, MINIMAL, "my-box.toml")))
    assert target.name == "my-box"
    assert target.protocol == DEFAULT_PROTOCOL
    assert target.power["method"] == "modeled"
    assert target.channel_multiple == 1
    assert target.macs_per_param == 0.0  # compute-bound unless the file says otherwise
    assert load_target("npu-sim").macs_per_param == 160  # derived in targets/npu-sim.toml


def test_unknown_target_lists_the_known_ones():
    with pytest.raises(InputError) as info:
        load_target("no-such-target")
    text = info.value.one_line()
    assert "no-such-target" in text
    for name in target_names():
        assert name in text
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('[target]\nbackend = "cuda-magic"\ndevice = "cpu"\n', "backend must be one of"),
        ('[target]\nbackend = "ort"\ndevice = "tpu"\n', "device must be one of"),
        (MINIMAL + "[protocol]\nrepeats = 3\n", "unknown [protocol] keys"),
        (MINIMAL + "[protocol]\nrel_ci = 1.5\n", "rel_ci"),
        (MINIMAL + "[protocol]\nmin_runs = 50\nmax_runs = 10\n", "min_runs <= max_runs"),
        (MINIMAL + "[protocol]\nwarmup = -1\n", "warmup"),
        (MINIMAL + '[protocol]\ntimeout_s = "soon"\n', "timeout_s"),
        (MINIMAL + '[power]\nmethod = "guess"\n', "[power] method"),
        (MINIMAL + '[power]\nmethod = "rapl"\nfallback = "vibes"\n', "[power] fallback"),
        (MINIMAL + "[budgets]\nlatency_ms = -3\n", "[budgets] latency_ms"),
        (MINIMAL + "[hardware]\nchannel_multiple = 0\n", "channel_multiple"),
        (MINIMAL + "[hardware]\nmacs_per_param = -1\n", "macs_per_param"),
        (MINIMAL + "[extras]\nx = 1\n", "unknown sections"),
        ("[backend]\nthreads = 1\n", "missing [target]"),
        ("[target\nbroken", "not valid TOML"),
    ],
)
def test_invalid_target_files_are_input_errors(tmp_path, text, fragment):
    with pytest.raises(InputError) as info:
        load_target(str(_write(tmp_path, text)))
    assert fragment in info.value.one_line()


def test_missing_target_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_target(str(tmp_path / "nope.toml"))


def test_with_protocol_overrides_and_validates():
    target = load_target("ort-cpu")
    quick = target.with_protocol(min_runs=5, max_runs=5, time_cap_s=1.0, rel_ci=None)
    assert quick.protocol["min_runs"] == 5 and quick.protocol["rel_ci"] == target.protocol["rel_ci"]
    assert target.protocol["min_runs"] != 5  # the original is untouched
    with pytest.raises(InputError):
        target.with_protocol(min_runs=10, max_runs=2)


def test_ort_cpu_is_available_here():
    ok, reason = load_target("ort-cpu").available()
    assert ok, reason
    assert "CPUExecutionProvider" in reason


def test_ort_cuda_unavailability_has_a_reason():
    ok, reason = load_target("ort-cuda").available()
    if ok:
        pytest.skip(f"ort-cuda is available here ({reason})")
    assert "onnxruntime-gpu not installed" in reason or "no GPU" in reason


def test_registry_reports_a_missing_backend_module_as_unavailable(monkeypatch, tmp_path):
    monkeypatch.setitem(backends.BACKENDS, "tvm", "autogo_deploy.backends.does_not_exist")
    target = load_target(str(_write(tmp_path, '[target]\nbackend = "tvm"\ndevice = "cpu"\n')))
    ok, reason = target.available()
    assert not ok
    assert "not part of this installation" in reason


def test_registry_reports_a_crashing_probe_as_unavailable(monkeypatch, tmp_path):
    import types

    fake = types.ModuleType("fake_backend")
    fake.HARNESS = "ort_harness.py"

    def boom(target):
        raise RuntimeError("driver exploded")

    fake.availability = boom
    monkeypatch.setitem(__import__("sys").modules, "fake_backend", fake)
    monkeypatch.setitem(backends.BACKENDS, "npu-sim", "fake_backend")
    target = load_target(str(_write(tmp_path, '[target]\nbackend = "npu-sim"\ndevice = "npu-sim"\n')))
    ok, reason = target.available()
    assert not ok and "driver exploded" in reason


def test_targets_cli_json_lists_every_target_with_reason(capsys):
    assert main(["targets", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema_version"] == 1
    rows = {row["name"]: row for row in doc["targets"]}
    assert set(rows) == set(target_names())
    for row in rows.values():
        assert isinstance(row["available"], bool) and row["reason"]
    assert rows["ort-cpu"]["available"] is True


def test_targets_cli_table(monkeypatch):
    import io

    from rich.console import Console

    from autogo_deploy.cli import targets_cmd

    buffer = io.StringIO()
    monkeypatch.setattr(targets_cmd, "out", Console(file=buffer, width=200))
    assert main(["targets"]) == 0
    out = buffer.getvalue()
    assert "ort-cpu" in out and "ort-cuda" in out
