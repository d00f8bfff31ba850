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


def test_non_utf8_target_file_is_one_input_error(tmp_path, capsys):
    """`-t model.onnx` (a binary file, not a TOML) used to be a UnicodeDecodeError traceback."""
    model = tmp_path / "model.onnx"
    model.write_bytes(b"\x08\x07\x12\x0bpytorch\xff\xfe\x00\x80graph")
    with pytest.raises(InputError) as info:
        load_target(str(model))
    assert info.value.one_line().startswith(f"target file {str(model)!r} is not UTF-8 text")
    assert info.value.exit_code == 2
    latin1 = _write(tmp_path, "", "latin1.toml")
    latin1.write_bytes((MINIMAL + 'description = "café"\n').encode("latin-1"))
    with pytest.raises(InputError, match="is not UTF-8 text"):
        load_target(str(latin1))
    assert main(["check", str(model), "-t", str(model)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: target file") and "is not UTF-8 text" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[power]\ntdp_w = "x"\n', "[power] tdp_w must be a positive number, got 'x'"),
        ("[power]\ntdp_w = 0\n", "[power] tdp_w must be a positive number, got 0"),
        ("[power]\ntdp_w = true\n", "[power] tdp_w must be a positive number, got True"),
        ('[power]\ncores = "64"\n', "[power] cores must be a positive integer, got '64'"),
        ("[power]\ncores = 6.5\n", "[power] cores must be a positive integer, got 6.5"),
        ("[power]\ncores = 0\n", "[power] cores must be a positive integer, got 0"),
        ('[power]\nidle_share = "half"\n', "[power] idle_share must be a number in [0, 1], got 'half'"),
        ("[power]\nidle_share = 1.5\n", "[power] idle_share must be a number in [0, 1], got 1.5"),
        ('[power]\nsources = "datasheet"\n', "[power] sources must be a table"),
        ('[backend]\nthreads = "four"\n', "[backend] threads must be a non-negative integer, got 'four'"),
        ("[backend]\nthreads = -1\n", "[backend] threads must be a non-negative integer, got -1"),
        ("[backend]\ndevice_id = 0.5\n", "[backend] device_id must be a non-negative integer, got 0.5"),
        ('[backend]\ntrials = "2000"\n', "[backend] trials must be a non-negative integer, got '2000'"),
        ("[backend]\ntune_timeout_s = 0\n", "[backend] tune_timeout_s must be a positive number, got 0"),
        ('[backend]\ntune = "false"\n', "[backend] tune must be true or false, got 'false'"),
        ("[backend]\nfold_bn = 1\n", "[backend] fold_bn must be true or false, got 1"),
    ],
)
def test_power_and_backend_value_types_are_checked_on_load(tmp_path, text, message):
    """A wrong type used to reach the harness and fail there as an environment error (exit 3)."""
    path = _write(tmp_path, MINIMAL + text)
    with pytest.raises(InputError) as info:
        load_target(str(path))
    assert info.value.one_line().startswith(f"invalid target {str(path)!r}: {message}")
    assert info.value.exit_code == 2


def test_valid_power_and_backend_values_load(tmp_path):
    text = MINIMAL + (
        "[backend]\nthreads = 0\ndevice_id = 1\ntune = false\ntune_timeout_s = 30\n\n"
        '[power]\nmethod = "modeled"\ntdp_w = 65\ncores = 8\nidle_share = 0\n\n'
        '[power.sources]\ntdp_w = "datasheet"\n'
    )
    target = load_target(str(_write(tmp_path, text)))
    assert target.power == {"method": "modeled", "tdp_w": 65, "cores": 8, "idle_share": 0,
                            "sources": {"tdp_w": "datasheet"}}  # fmt: skip
    assert target.options == {"threads": 0, "device_id": 1, "tune": False, "tune_timeout_s": 30}


def test_wrong_power_type_is_exit_2_before_any_measuring(tmp_path, capsys):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"not measured: the target is refused first")
    path = _write(tmp_path, MINIMAL + '[power]\nmethod = "modeled"\ntdp_w = "x"\n')
    assert main(["check", str(model), "-t", str(path)]) == 2
    err = capsys.readouterr().err
    assert "[power] tdp_w must be a positive number, got 'x'" in err and "Traceback" not in err


def test_protocol_overrides_lower_min_runs_with_a_cap_and_name_the_flags():
    from autogo_deploy.target import load_target

    tgt = load_target("ort-cpu")
    assert tgt.protocol["min_runs"] > 20
    capped = tgt.with_protocol(max_runs=20)
    assert capped.protocol["max_runs"] == 20 and capped.protocol["min_runs"] == 20
    assert tgt.with_protocol(max_runs=20, min_runs=5).protocol["min_runs"] == 5
    with pytest.raises(InputError) as info:
        tgt.with_protocol(min_runs=0)
    assert "(given: min_runs=0)" in info.value.message and "invalid target" not in info.value.message
