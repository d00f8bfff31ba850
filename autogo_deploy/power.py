"""Power and energy over a harness's timed window. Every reading names its method.

Methods (target [power] method, optional fallback):
- "nvml"   NVIDIA GPU board power through NVML (`pynvml`, package nvidia-ml-py): the total-energy
           counter (nvmlDeviceGetTotalEnergyConsumption, Volta and newer) when it works, else power
           sampled every 20 ms (nvmlDeviceGetPowerUsage) averaged over the window. -> "measured-nvml"
- "rapl"   CPU package energy counters under /sys/class/powercap (intel-rapl:N, also used by AMD's
           RAPL driver); whole-package energy, so other processes on the package are included.
           -> "measured-rapl"
- "modeled" no counter: P = (tdp_w / cores) * (idle_share * allocated + (1 - idle_share) * busy),
           where `busy` = process CPU seconds / wall seconds over the window (all threads), and
           `allocated` = cores given to the run (threads, capped by the affinity mask). tdp_w, cores
           and idle_share come from the target file with their sources. -> "modeled"
"npu-model" is computed by the NPU simulator itself, not here.

`energy_mj` is per inference: average power x window / inferences. The meter is started after the
warm-up and stopped after the timed runs, in the harness process.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

POWERCAP_ROOT = Path("/sys/class/powercap")
# Defaults of the modeled CPU power, overridable in the target's [power] table.
MODELED_DEFAULTS = {
    "tdp_w": 280.0,  # AMD EPYC 7763 TDP (AMD product page), a typical 64-core cloud server part
    "cores": 64,  # physical cores of that package
    "idle_share": 0.5,  # share of per-core power drawn while allocated but idle (Barroso & Hoelzle 2007)
}


class PowerUnavailable(RuntimeError):
    """The requested power method cannot be used here (the message says why)."""


@dataclass(frozen=True)
class PowerReading:
    """Energy per inference and average power over the timed window, with how they were obtained."""

    energy_mj: float
    power_w: float
    method: str
    detail: dict[str, Any] = field(default_factory=dict)


def _finish(energy_j: float, wall_s: float, runs: int, method: str, detail: dict[str, Any]) -> PowerReading:
    if runs <= 0 or wall_s <= 0:
        raise ValueError("power reading needs runs > 0 and a positive window")
    detail = dict(detail, window_s=wall_s, inferences=runs)
    return PowerReading(
        energy_mj=energy_j * 1000.0 / runs, power_w=energy_j / wall_s, method=method, detail=detail
    )


class ModeledCpuMeter:
    """CPU power from a per-core TDP share and the process's measured CPU utilisation."""

    method = "modeled"
    min_window_s = 0.0

    def __init__(
        self, *, threads: int, tdp_w: float, cores: int, idle_share: float, sources: dict | None = None
    ):
        if tdp_w <= 0 or cores <= 0 or not 0.0 <= idle_share <= 1.0:
            raise ValueError("modeled power needs tdp_w > 0, cores > 0, 0 <= idle_share <= 1")
        affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        self.allocated = max(1, min(int(threads) if threads else affinity, affinity))
        self.tdp_w, self.cores, self.idle_share = float(tdp_w), int(cores), float(idle_share)
        self.sources = sources or {}
        self._t0 = self._c0 = 0.0

    def start(self) -> None:
        self._c0 = time.process_time()
        self._t0 = time.perf_counter()

    def stop(self, runs: int) -> PowerReading:
        wall = time.perf_counter() - self._t0
        cpu = time.process_time() - self._c0
        busy = min(cpu / wall, float(self.allocated)) if wall > 0 else 0.0
        per_core = self.tdp_w / self.cores
        power = per_core * (self.idle_share * self.allocated + (1.0 - self.idle_share) * busy)
        detail = {
            "model": "P = tdp_w/cores * (idle_share*allocated + (1-idle_share)*busy_cores)",
            "tdp_w": self.tdp_w,
            "cores": self.cores,
            "idle_share": self.idle_share,
            "allocated_cores": self.allocated,
            "busy_cores": busy,
            "cpu_s": cpu,
            "sources": self.sources,
        }
        return _finish(power * wall, wall, runs, self.method, detail)


def rapl_domains(root: Path = POWERCAP_ROOT) -> list[Path]:
    """Top-level package domains (intel-rapl:N) whose energy counter is readable."""
    if not root.is_dir():
        raise PowerUnavailable(f"RAPL not exposed: {root} does not exist")
    domains = sorted(p for p in root.glob("intel-rapl:*") if p.name.count(":") == 1)
    if not domains:
        raise PowerUnavailable(f"RAPL not exposed: no intel-rapl:N package domains under {root}")
    unreadable = [str(p / "energy_uj") for p in domains if not os.access(p / "energy_uj", os.R_OK)]
    if unreadable:
        raise PowerUnavailable(
            f"RAPL energy counters not readable (need root or a udev rule): {unreadable[0]}"
        )
    return domains


class RaplMeter:
    """Package energy from powercap RAPL counters, wrap-around handled."""

    method = "measured-rapl"
    min_window_s = 0.0  # the counters tick about every millisecond

    def __init__(self, root: Path = POWERCAP_ROOT):
        self.domains = rapl_domains(Path(root))
        self._e0: list[int] = []
        self._t0 = 0.0

    @staticmethod
    def _read_uj(domain: Path, name: str) -> int:
        return int((domain / name).read_text().strip())

    def start(self) -> None:
        self._e0 = [self._read_uj(d, "energy_uj") for d in self.domains]
        self._t0 = time.perf_counter()

    def stop(self, runs: int) -> PowerReading:
        wall = time.perf_counter() - self._t0
        total_uj = 0
        names = []
        for domain, e0 in zip(self.domains, self._e0, strict=True):
            e1 = self._read_uj(domain, "energy_uj")
            delta = e1 - e0
            if delta < 0:  # the counter wrapped
                delta += self._read_uj(domain, "max_energy_range_uj")
            total_uj += delta
            names.append(
                (domain / "name").read_text().strip() if (domain / "name").is_file() else domain.name
            )
        detail = {"domains": names, "scope": "whole CPU package(s), other processes included"}
        return _finish(total_uj / 1e6, wall, runs, self.method, detail)


def _import_pynvml():
    try:
        import pynvml  # type: ignore[import-not-found]
    except ImportError as exc:
        raise PowerUnavailable("NVML power needs nvidia-ml-py (pip install nvidia-ml-py)") from exc
    return pynvml


class NvmlMeter:
    """GPU board energy via NVML: energy counter if supported, else sampled power."""

    method = "measured-nvml"
    # The energy counter ticks about every 80 ms (seen on an H100/H200): a window of 2 s keeps its
    # quantisation under ~4% each end. Sampled power is averaged by the driver over about a second.
    COUNTER_WINDOW_S = 2.0
    SAMPLED_WINDOW_S = 1.0

    def __init__(self, device_index: int = 0, sample_interval_s: float = 0.02):
        self.nvml = _import_pynvml()
        try:
            self.nvml.nvmlInit()
            self.handle = self.nvml.nvmlDeviceGetHandleByIndex(device_index)
        except Exception as exc:
            raise PowerUnavailable(f"NVML cannot open GPU {device_index}: {exc}") from exc
        self.device_index = device_index
        self.interval = sample_interval_s
        self._counter0: int | None = None
        self._samples_mw: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0
        self.min_window_s = self.COUNTER_WINDOW_S

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                self._samples_mw.append(float(self.nvml.nvmlDeviceGetPowerUsage(self.handle)))
            except Exception:
                pass
            self._stop.wait(self.interval)

    def start(self) -> None:
        try:
            self._counter0 = int(self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle))
        except Exception:
            self._counter0 = None
        self.min_window_s = self.COUNTER_WINDOW_S if self._counter0 is not None else self.SAMPLED_WINDOW_S
        if self._counter0 is None:
            self._samples_mw = []
            self._stop.clear()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        self._t0 = time.perf_counter()

    def stop(self, runs: int) -> PowerReading:
        wall = time.perf_counter() - self._t0
        name = self.nvml.nvmlDeviceGetName(self.handle)
        name = name.decode() if isinstance(name, bytes) else str(name)
        detail: dict[str, Any] = {"gpu": name, "device_index": self.device_index, "scope": "GPU board power"}
        if self._counter0 is not None:
            counter1 = int(self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle))  # millijoules
            detail["source"] = "nvmlDeviceGetTotalEnergyConsumption"
            return _finish((counter1 - self._counter0) / 1000.0, wall, runs, self.method, detail)
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if not self._samples_mw:
            raise PowerUnavailable("NVML returned no power samples during the timed window")
        avg_w = sum(self._samples_mw) / len(self._samples_mw) / 1000.0
        detail.update(
            source="nvmlDeviceGetPowerUsage sampled", samples=len(self._samples_mw), interval_s=self.interval
        )
        return _finish(avg_w * wall, wall, runs, self.method, detail)


def close_window(meter, runs: int, run_more, other_work_s: float = 0.0) -> PowerReading:
    """Stop `meter` after `runs` timed inferences. If its window is shorter than the meter needs
    (`min_window_s`: an energy counter that ticks every ~80 ms needs seconds), first call `run_more`
    (one more inference, untimed) until it is long enough; those inferences count in the energy per
    inference, and the reading says how many there were.

    `other_work_s`: seconds of the window spent on something else (the drift-correction reference
    network runs between the timed runs); the window's energy is shared by time, so the model's
    energy per inference leaves that work out. Power stays the window's average."""
    extra = 0
    while time.perf_counter() - meter._t0 < meter.min_window_s:
        run_more()
        extra += 1
    reading = meter.stop(runs + extra)
    if extra:
        reading.detail["untimed_inferences_to_fill_window"] = extra
        reading.detail["min_window_s"] = meter.min_window_s
    if other_work_s > 0:
        window = float(reading.detail["window_s"])
        share = max(0.0, 1.0 - other_work_s / window)
        detail = dict(reading.detail, other_work_s=other_work_s, model_share_of_window=share)
        reading = replace(reading, energy_mj=reading.energy_mj * share, detail=detail)
    return reading


def _build(method: str, power_cfg: dict[str, Any], *, threads: int, device_index: int, powercap_root: Path):
    if method == "nvml":
        return NvmlMeter(device_index=device_index)
    if method == "rapl":
        return RaplMeter(powercap_root)
    if method == "modeled":
        params = {k: power_cfg.get(k, v) for k, v in MODELED_DEFAULTS.items()}
        return ModeledCpuMeter(threads=threads, sources=power_cfg.get("sources"), **params)
    raise PowerUnavailable(f"power method {method!r} is computed by its simulator, not by a meter")


def meter_for(
    power_cfg: dict[str, Any], *, threads: int = 1, device_index: int = 0, powercap_root: Path = POWERCAP_ROOT
):
    """The meter for a target's [power] table; falls back to `fallback` (labelled as such) if set.

    Returns (meter, note): note says why the fallback was taken, else None.
    """
    method = power_cfg.get("method", "modeled")
    try:
        return _build(
            method, power_cfg, threads=threads, device_index=device_index, powercap_root=powercap_root
        ), None
    except PowerUnavailable as exc:
        fallback = power_cfg.get("fallback")
        if not fallback or fallback == method:
            raise
        meter = _build(
            fallback, power_cfg, threads=threads, device_index=device_index, powercap_root=powercap_root
        )
        return meter, f"{method} unavailable ({exc}); using {fallback}"
