"""Power meters: modeled CPU power, RAPL on a fake powercap tree, NVML through a fake pynvml module."""

from __future__ import annotations

import os
import sys
import time
import types

import pytest

from autogo_deploy import power
from autogo_deploy.power import ModeledCpuMeter, NvmlMeter, PowerUnavailable, RaplMeter, meter_for


def _busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        x += 1


def test_modeled_power_follows_the_documented_formula():
    meter = ModeledCpuMeter(threads=1, tdp_w=64.0, cores=16, idle_share=0.25)
    meter.start()
    _busy(0.2)
    reading = meter.stop(runs=10)
    d = reading.detail
    assert reading.method == "modeled"
    per_core = 64.0 / 16
    expected = per_core * (0.25 * d["allocated_cores"] + 0.75 * d["busy_cores"])
    assert reading.power_w == pytest.approx(expected)
    assert reading.energy_mj == pytest.approx(reading.power_w * d["window_s"] * 1000 / 10)
    # one busy thread: between the idle floor and one full core
    assert per_core * 0.25 <= reading.power_w <= per_core
    assert d["cpu_s"] > 0 and 0 < d["busy_cores"] <= d["allocated_cores"]


def test_modeled_power_idle_window_costs_only_the_idle_share():
    meter = ModeledCpuMeter(threads=1, tdp_w=64.0, cores=16, idle_share=0.25)
    meter.start()
    time.sleep(0.2)
    reading = meter.stop(runs=1)
    busy = reading.detail["busy_cores"]
    assert busy < 0.5  # sleeping burns (almost) no CPU time, whatever the machine's load
    assert reading.power_w == pytest.approx(4.0 * (0.25 + 0.75 * busy))


def test_modeled_power_rejects_nonsense_constants():
    with pytest.raises(ValueError):
        ModeledCpuMeter(threads=1, tdp_w=0, cores=8, idle_share=0.5)
    with pytest.raises(ValueError):
        ModeledCpuMeter(threads=1, tdp_w=100, cores=8, idle_share=1.5)


def _fake_powercap(root, energy_uj=1_000_000, max_uj=262_143_328_850, readable=True):
    pkg = root / "intel-rapl:0"
    sub = root / "intel-rapl:0:0"  # a sub-domain (core); must not be double counted
    for d, name in ((pkg, "package-0"), (sub, "core")):
        d.mkdir(parents=True)
        (d / "name").write_text(name + "\n")
        (d / "energy_uj").write_text(f"{energy_uj}\n")
        (d / "max_energy_range_uj").write_text(f"{max_uj}\n")
    if not readable:
        os.chmod(pkg / "energy_uj", 0)
    return pkg


def test_rapl_energy_from_counter_difference(tmp_path):
    pkg = _fake_powercap(tmp_path)
    meter = RaplMeter(tmp_path)
    assert [d.name for d in meter.domains] == ["intel-rapl:0"]
    meter.start()
    (pkg / "energy_uj").write_text(str(1_000_000 + 3_000_000))  # +3 J
    reading = meter.stop(runs=100)
    assert reading.method == "measured-rapl"
    assert reading.energy_mj == pytest.approx(3_000_000 / 1e6 * 1000 / 100)  # 30 mJ per inference
    assert reading.power_w == pytest.approx(3.0 / reading.detail["window_s"])
    assert reading.detail["domains"] == ["package-0"]


def test_rapl_counter_wraparound(tmp_path):
    pkg = _fake_powercap(tmp_path, energy_uj=999_000, max_uj=1_000_000)
    meter = RaplMeter(tmp_path)
    meter.start()
    (pkg / "energy_uj").write_text("1000")  # wrapped: 999000 -> 1000000 == 0 -> 1000
    reading = meter.stop(runs=1)
    assert reading.energy_mj == pytest.approx(2000 / 1e6 * 1000)


def test_rapl_missing_or_unreadable_is_reported(tmp_path, monkeypatch):
    with pytest.raises(PowerUnavailable, match="does not exist"):
        RaplMeter(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PowerUnavailable, match="no intel-rapl"):
        RaplMeter(tmp_path / "empty")
    _fake_powercap(tmp_path / "locked", readable=False)
    real_access = os.access  # root reads anything: emulate the usual non-root view of energy_uj
    monkeypatch.setattr(
        power.os, "access", lambda p, mode: False if str(p).endswith("energy_uj") else real_access(p, mode)
    )
    with pytest.raises(PowerUnavailable, match="not readable"):
        RaplMeter(tmp_path / "locked")


def test_meter_for_falls_back_to_modeled_with_a_note(tmp_path):
    meter, note = meter_for(
        {"method": "rapl", "fallback": "modeled"}, threads=1, powercap_root=tmp_path / "none"
    )
    assert isinstance(meter, ModeledCpuMeter) and meter.method == "modeled"
    assert "rapl unavailable" in note
    with pytest.raises(PowerUnavailable):
        meter_for({"method": "rapl"}, powercap_root=tmp_path / "none")  # no fallback: the caller decides
    meter, note = meter_for({"method": "modeled", "tdp_w": 100.0, "cores": 10}, threads=1)
    assert note is None and meter.tdp_w == 100.0 and meter.idle_share == power.MODELED_DEFAULTS["idle_share"]


def _fake_pynvml(energy_counter: bool, power_mw: float = 150_000.0):
    state = {"energy_mj": 10_000}
    mod = types.ModuleType("pynvml")
    mod.nvmlInit = lambda: None
    mod.nvmlDeviceGetHandleByIndex = lambda i: f"gpu{i}"
    mod.nvmlDeviceGetName = lambda h: b"Fake GPU"
    mod.nvmlDeviceGetPowerUsage = lambda h: power_mw

    def total_energy(handle):
        if not energy_counter:
            raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")
        return state["energy_mj"]

    mod.nvmlDeviceGetTotalEnergyConsumption = total_energy
    return mod, state


def test_nvml_energy_counter_path(monkeypatch):
    mod, state = _fake_pynvml(energy_counter=True)
    monkeypatch.setitem(sys.modules, "pynvml", mod)
    meter = NvmlMeter()
    meter.start()
    state["energy_mj"] += 5_000  # 5 J over the window
    reading = meter.stop(runs=50)
    assert reading.method == "measured-nvml"
    assert reading.energy_mj == pytest.approx(100.0)  # 5000 mJ / 50
    assert reading.detail["source"] == "nvmlDeviceGetTotalEnergyConsumption"
    assert reading.detail["gpu"] == "Fake GPU"


def test_nvml_sampled_power_path(monkeypatch):
    mod, _ = _fake_pynvml(energy_counter=False, power_mw=150_000.0)
    monkeypatch.setitem(sys.modules, "pynvml", mod)
    meter = NvmlMeter(sample_interval_s=0.005)
    meter.start()
    time.sleep(0.1)
    reading = meter.stop(runs=10)
    assert reading.power_w == pytest.approx(150.0)
    assert reading.detail["samples"] >= 1 and "sampled" in reading.detail["source"]
    assert reading.energy_mj == pytest.approx(150.0 * reading.detail["window_s"] * 1000 / 10)


def test_short_window_is_filled_with_counted_inferences(monkeypatch):
    """A counter that ticks every ~80 ms cannot time a 50 ms window: the meter keeps the model
    running until the window is long enough, and those inferences share the energy."""
    mod, state = _fake_pynvml(energy_counter=True)
    monkeypatch.setitem(sys.modules, "pynvml", mod)
    meter = NvmlMeter()
    meter.start()
    assert meter.min_window_s == NvmlMeter.COUNTER_WINDOW_S
    meter.min_window_s = 0.1

    def one_inference():  # 20 mJ each
        state["energy_mj"] += 20
        time.sleep(0.005)

    for _ in range(5):  # the timed runs
        one_inference()
    reading = power.close_window(meter, 5, one_inference)
    extra = reading.detail["untimed_inferences_to_fill_window"]
    assert extra >= 5 and reading.detail["window_s"] >= 0.1
    assert reading.detail["inferences"] == 5 + extra
    assert reading.energy_mj == pytest.approx(20.0)

    modeled = ModeledCpuMeter(threads=1, tdp_w=100.0, cores=10, idle_share=0.5)
    modeled.start()
    reading = power.close_window(modeled, 3, one_inference)  # no minimum: nothing extra
    assert reading.detail["inferences"] == 3 and "untimed_inferences_to_fill_window" not in reading.detail


def test_energy_of_other_work_in_the_window_is_left_out(monkeypatch):
    """Drift correction runs a reference network between the timed runs: its share of the window's
    energy is not the model's."""
    mod, state = _fake_pynvml(energy_counter=True)
    monkeypatch.setitem(sys.modules, "pynvml", mod)
    meter = NvmlMeter()
    meter.start()
    meter.min_window_s = 0.0
    time.sleep(0.2)
    state["energy_mj"] += 4_000
    whole = power.close_window(meter, 10, lambda: None)
    meter.start()
    meter.min_window_s = 0.0
    time.sleep(0.2)
    state["energy_mj"] += 4_000
    shared = power.close_window(meter, 10, lambda: None, other_work_s=0.1)
    share = shared.detail["model_share_of_window"]
    assert 0.4 < share < 0.55 and shared.detail["other_work_s"] == 0.1
    assert whole.energy_mj == pytest.approx(400.0)
    assert shared.energy_mj == pytest.approx(400.0 * share)
    assert shared.power_w == pytest.approx(4.0 / shared.detail["window_s"])


def test_nvml_without_pynvml_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` fail
    with pytest.raises(PowerUnavailable, match="nvidia-ml-py"):
        NvmlMeter()


def test_real_nvml_on_a_gpu_machine():
    try:
        meter = NvmlMeter()
    except PowerUnavailable as exc:
        pytest.skip(f"no NVML here: {exc}")
    meter.start()
    reading = power.close_window(meter, 0, lambda: time.sleep(0.05))
    assert reading.method == "measured-nvml" and reading.power_w > 0
    assert reading.detail["window_s"] >= meter.min_window_s
