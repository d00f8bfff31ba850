"""Statistics (percentiles, median CI, stopping rule) and measure(): real ORT runs and failing harnesses."""

from __future__ import annotations

import os
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps
from tiny_models import make_tiny_cnn

from autogo_deploy import stats
from autogo_deploy.cli.app import main
from autogo_deploy.errors import BackendUnavailable, InputError, MeasurementFailed
from autogo_deploy.measure import Measurement, measure
from autogo_deploy.target import Target, load_target

QUICK = {"min_runs": 8, "max_runs": 30, "time_cap_s": 2.0, "warmup": 2}

# ----------------------------------------------------------------------------------------------
# statistics


def test_percentiles_match_numpy():
    rng = np.random.default_rng(0)
    values = rng.lognormal(0.0, 0.5, size=101).tolist()
    ordered = sorted(values)
    for q in (0, 1, 50, 90, 99, 100):
        assert stats.percentile(ordered, q) == pytest.approx(np.percentile(values, q))
    summary = stats.summarize(values)
    assert summary.mean_ms == pytest.approx(np.mean(values))
    assert summary.std_ms == pytest.approx(np.std(values, ddof=1))
    assert summary.p50_ms <= summary.p90_ms <= summary.p99_ms


def test_median_ci_rank_is_the_exact_binomial_bound():
    assert stats.median_ci_rank(5) is None  # no 95% interval from 5 samples
    for n in list(range(6, 200)) + [500, 1000, 2000]:
        rank = stats.median_ci_rank(n)
        coverage = 1 - 2 * sps.binom.cdf(rank - 1, n, 0.5)
        assert coverage >= 0.95, n
        wider = 1 - 2 * sps.binom.cdf(rank, n, 0.5)  # one rank tighter must lose coverage
        assert wider < 0.95, n
    assert stats.median_ci_rank(100) == 40  # textbook value: x_(40), x_(61)


def test_median_ci_normal_approximation_is_close_above_exact_limit():
    n = 5001
    exact = int(sps.binom.ppf(0.025, n, 0.5))
    assert abs(stats.median_ci_rank(n) - exact) <= 2


def test_ci_coverage_by_simulation():
    rng = np.random.default_rng(1)
    hits = 0
    trials = 400
    true_median = np.exp(0.0)  # lognormal(0, s) has median 1
    for _ in range(trials):
        lo, hi = stats.median_ci(sorted(rng.lognormal(0.0, 0.4, size=41).tolist()))
        hits += lo <= true_median <= hi
    assert hits / trials >= 0.92  # nominal >= 95%; allow Monte Carlo noise


class FakeClock:
    def __init__(self, durations):
        self.now = 0.0
        self.durations = iter(durations)
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return self.now

    def run(self):
        self.now += next(self.durations)


def test_stopping_rule_converges_on_stable_samples():
    clock = FakeClock([0.010 + 0.00001 * (i % 3) for i in range(10_000)])
    out = stats.time_until_stable(
        clock.run, stats.StopRule(min_runs=10, max_runs=500, rel_ci=0.01), clock=clock
    )
    assert out.stop_reason == "converged"
    assert 10 <= len(out.samples_ms) < 50
    assert out.ci95_rel <= 0.01


def test_stopping_rule_hits_max_runs_then_time_cap_on_noisy_samples():
    rng = np.random.default_rng(0)
    noisy = (0.01 * rng.lognormal(0, 1.0, size=10_000)).tolist()
    clock = FakeClock(noisy)
    out = stats.time_until_stable(
        clock.run, stats.StopRule(min_runs=10, max_runs=40, rel_ci=0.001), clock=clock
    )
    assert out.stop_reason == "max_runs" and len(out.samples_ms) == 40
    clock = FakeClock(noisy)
    out = stats.time_until_stable(
        clock.run, stats.StopRule(min_runs=10, max_runs=10_000, rel_ci=0.001, time_cap_s=0.5), clock=clock
    )
    assert out.stop_reason == "time_cap"
    assert sum(out.samples_ms) / 1000 == pytest.approx(out.elapsed_s, rel=0.05)


def test_between_hook_runs_after_every_timed_run_outside_the_timing():
    clock = FakeClock([0.010] * 100)
    calls = []

    def between():
        calls.append(clock.now)
        clock.now += 0.5  # a slow interleaved workload: never part of the samples

    out = stats.time_until_stable(
        clock.run, stats.StopRule(min_runs=5, max_runs=5, rel_ci=0.5), clock=clock, between=between
    )
    assert len(calls) == 5 and out.samples_ms == pytest.approx([10.0] * 5)
    assert out.elapsed_s == pytest.approx(5 * 0.51)  # its time counts toward the time cap


def test_stop_rule_rejects_bad_settings():
    with pytest.raises(ValueError):
        stats.StopRule(min_runs=10, max_runs=5)
    with pytest.raises(ValueError):
        stats.StopRule(rel_ci=0)


# ----------------------------------------------------------------------------------------------
# measure() on the real ORT harness


@pytest.fixture(scope="module")
def tiny_static(tmp_path_factory):
    import onnx

    path = tmp_path_factory.mktemp("m") / "tiny.onnx"
    onnx.save(make_tiny_cnn(batch=1), path)
    return path


def test_measure_ort_cpu_returns_a_sane_measurement(tiny_static):
    events = []
    m = measure(tiny_static, "ort-cpu", progress=events.append, **QUICK)
    assert isinstance(m, Measurement)
    assert QUICK["min_runs"] <= m.runs <= QUICK["max_runs"] == 30 and len(m.samples_ms) == m.runs
    assert all(s > 0 for s in m.samples_ms)
    assert 0 < m.min_ms <= m.p50_ms <= m.p90_ms <= m.p99_ms <= m.max_ms
    assert m.stop_reason in ("converged", "max_runs", "time_cap")
    assert m.method["threads"] == 1 and m.method["ep"] == "CPUExecutionProvider"
    assert m.method["protocol"]["min_runs"] == QUICK["min_runs"]
    assert m.env["affinity"] == sorted(os.sched_getaffinity(0))
    assert m.env["libraries"]["onnxruntime"]
    assert m.env["cpu_model"]
    # power: this machine has no RAPL, so the modeled fallback must say so
    assert m.power_method in ("measured-rapl", "modeled")
    if m.power_method == "modeled":
        assert "unavailable" in m.power_detail["note"]
    assert m.energy_mj > 0 and m.power_w > 0
    assert m.energy_mj == pytest.approx(m.power_w * m.power_detail["window_s"] / m.runs * 1000, rel=1e-6)
    assert m.per_node is None
    assert {e["phase"] for e in events} >= {"timing"}
    doc = m.to_dict()
    assert Measurement.from_dict(doc).p50_ms == m.p50_ms and doc["converged"] == m.converged


def test_measure_with_a_reference_times_it_apart_after_every_run(tiny_static, tmp_path):
    from autogo_deploy.drift import write_reference

    ref = write_reference(tmp_path)
    m = measure(tiny_static, "ort-cpu", reference=ref, **QUICK)
    info = m.method["reference"]
    assert info["model"] == ref.name and len(info["samples_ms"]) == m.runs
    # the reference (a MobileNetV2) is far slower than the tiny model: its time is not in the samples
    assert min(info["samples_ms"]) > 3 * m.p50_ms
    # nor its energy: the window's energy is shared by time, most of it the reference's
    detail = m.power_detail
    assert detail["other_work_s"] == pytest.approx(sum(info["samples_ms"]) / 1000.0)
    share = detail["model_share_of_window"]
    assert 0.0 < share < 0.5
    whole_mj = m.power_w * detail["window_s"] / detail["inferences"] * 1000
    assert m.energy_mj == pytest.approx(whole_mj * share, rel=1e-6)


def test_reference_workload_needs_the_ort_backend(tiny_static, tmp_path):
    with pytest.raises(InputError, match="needs an ort target"):
        measure(tiny_static, "npu-sim", reference=tmp_path / "r.onnx")


def test_measure_accepts_bytes_and_modelproto():
    model = make_tiny_cnn(batch=1)
    a = measure(model.SerializeToString(), load_target("ort-cpu"), **QUICK)
    b = measure(model, "ort-cpu", **QUICK)
    assert a.runs >= QUICK["min_runs"] and b.runs >= QUICK["min_runs"]


def test_measure_pins_dynamic_inputs_or_names_the_symbolic_dim(tmp_path):
    import onnx

    path = tmp_path / "dyn.onnx"
    onnx.save(make_tiny_cnn(batch="N"), path)
    with pytest.raises(MeasurementFailed, match="symbolic dimension 'N'.*--input-shape"):
        measure(path, "ort-cpu", **QUICK)
    m = measure(path, "ort-cpu", input_shapes={"x": [2, 3, 16, 16]}, **QUICK)
    assert m.runs >= QUICK["min_runs"]


def test_measure_missing_model_is_input_error(tmp_path):
    with pytest.raises(InputError):
        measure(tmp_path / "absent.onnx", "ort-cpu")


def test_measure_unavailable_backend_exits_3(tiny_static):
    target = load_target("ort-cuda")
    ok, reason = target.available()
    if ok:
        pytest.skip(f"ort-cuda is available here: {reason}")
    with pytest.raises(BackendUnavailable) as info:
        measure(tiny_static, target)
    assert info.value.exit_code == 3 and reason in info.value.one_line()


def test_measure_corrupt_model_reports_the_runtime_error(tmp_path):
    path = tmp_path / "bad.onnx"
    path.write_bytes(b"\x08\x07garbage")
    with pytest.raises(MeasurementFailed) as info:
        measure(path, "ort-cpu", **QUICK)
    assert info.value.exit_code == 3
    assert "\n" not in info.value.one_line()


# ----------------------------------------------------------------------------------------------
# harnesses that crash, hang or answer garbage


def _fake_harness(tmp_path, body: str) -> Path:
    path = tmp_path / "fake_harness.py"
    path.write_text("import os, sys, time, subprocess, json\n" + textwrap.dedent(body))
    return path


@pytest.fixture
def use_harness(monkeypatch):
    def install(path: Path):
        monkeypatch.setattr(Target, "harness_path", lambda self: path)

    return install


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def test_hanging_harness_and_its_children_are_killed_at_timeout(tmp_path, tiny_static, use_harness):
    pid_file = tmp_path / "child.pid"
    use_harness(
        _fake_harness(
            tmp_path,
            f"""
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
            open({str(pid_file)!r}, "w").write(str(child.pid))
            time.sleep(120)
            """,
        )
    )
    start = time.monotonic()
    with pytest.raises(MeasurementFailed, match="did not finish within 2 s and was killed") as info:
        measure(tiny_static, "ort-cpu", timeout_s=2)
    assert time.monotonic() - start < 30
    assert info.value.exit_code == 3
    child = int(pid_file.read_text())
    for _ in range(50):
        if not _alive(child):
            break
        time.sleep(0.1)
    assert not _alive(child), "the harness's child process survived the timeout"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("os.kill(os.getpid(), 11)\n", "crashed (signal SIGSEGV)"),
        ("sys.stderr.write('segfault in libfoo\\n'); sys.exit(7)\n", "failed (exit 7): segfault in libfoo"),
        ("print('hello, not json')\n", "printed no JSON result"),
        (
            "print(json.dumps({'schema': 1, 'error': 'unsupported op Foo at node n3'})); sys.exit(1)\n",
            "unsupported op Foo",
        ),
        ("print(json.dumps({'schema': 1, 'samples_ms': [], 'error': None}))\n", "no valid samples_ms"),
        (
            "print(json.dumps({'schema': 1, 'samples_ms': [float('nan')], 'error': None}))\n",
            "no valid samples_ms",
        ),
        ("print(json.dumps({'schema': 99, 'samples_ms': [1.0], 'error': None}))\n", "schema 99"),
    ],
)
def test_broken_harness_answers_become_measurement_failed(tmp_path, tiny_static, use_harness, body, fragment):
    use_harness(_fake_harness(tmp_path, body))
    with pytest.raises(MeasurementFailed) as info:
        measure(tiny_static, "ort-cpu", timeout_s=60)
    assert fragment in info.value.one_line()
    assert info.value.exit_code == 3


def test_cli_profile_with_hanging_harness_exits_3_without_hanging(tmp_path, tiny_static, use_harness, capsys):
    use_harness(_fake_harness(tmp_path, "time.sleep(120)\n"))
    target_file = tmp_path / "slow.toml"
    target_file.write_text('[target]\nbackend = "ort"\ndevice = "cpu"\n[protocol]\ntimeout_s = 2.0\n')
    start = time.monotonic()
    code = main(["profile", str(tiny_static), "--target", str(target_file), "--no-per-node"])
    assert code == 3
    assert time.monotonic() - start < 30
    assert "did not finish within 2 s" in capsys.readouterr().err


def test_deterministic_harness_result_is_taken_as_is(tmp_path, tiny_static, use_harness):
    use_harness(
        _fake_harness(
            tmp_path,
            """
            print(json.dumps({"schema": 1, "samples_ms": [2.5], "per_node": [{"name": "g0", "op_type": "Conv", "ms": 2.5}],
                              "env": {}, "method": {}, "energy_mj": 1.25, "power_w": 0.5, "power_method": "modeled-npu",
                              "deterministic": True, "error": None}))
            """,
        )
    )
    m = measure(tiny_static, "ort-cpu")
    assert m.deterministic and m.converged and m.stop_reason == "deterministic"
    assert m.p50_ms == m.p99_ms == 2.5 and m.runs == 1
    assert m.power_method == "modeled-npu" and m.energy_mj == 1.25


def test_harness_runs_with_the_current_interpreter(tmp_path, tiny_static, use_harness):
    out = tmp_path / "exe.txt"
    use_harness(
        _fake_harness(
            tmp_path,
            f"""
            open({str(out)!r}, "w").write(sys.executable)
            print(json.dumps({{"schema": 1, "samples_ms": [1.0] * 8, "error": None}}))
            """,
        )
    )
    measure(tiny_static, "ort-cpu")
    assert out.read_text() == sys.executable


def test_stray_children_of_a_finished_harness_are_killed(tmp_path, tiny_static, use_harness):
    pid_file = tmp_path / "child.pid"
    use_harness(
        _fake_harness(
            tmp_path,
            f"""
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
            open({str(pid_file)!r}, "w").write(str(child.pid))
            print(json.dumps({{"schema": 1, "samples_ms": [1.0] * 8, "error": None}}))
            """,
        )
    )
    start = time.monotonic()
    m = measure(tiny_static, "ort-cpu", timeout_s=60)
    assert m.runs == 8 and time.monotonic() - start < 30
    child = int(pid_file.read_text())
    for _ in range(50):
        if not _alive(child):
            break
        time.sleep(0.1)
    assert not _alive(child)
