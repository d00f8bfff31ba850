"""The in-process measurer for simulated targets gives exactly what the harness subprocess gives."""

from __future__ import annotations

from tiny_models import make_tiny_cnn

from autogo_deploy import loop_measure
from autogo_deploy.graph import load
from autogo_deploy.measure import measure
from autogo_deploy.target import load_target


def test_in_process_npu_sim_matches_the_harness_subprocess():
    from autogo_deploy.backends.npu_sim import fast_stand_in

    tgt, _ = fast_stand_in(load_target("npu-sim"))
    data = load(make_tiny_cnn(batch=1), cleanup=True).to_bytes()
    proto = {"time_cap_s": 10.0, "max_runs": 40, "min_runs": 1}
    simulate = loop_measure.in_process_measurer(tgt, seed=0, **proto)
    assert simulate is not None
    inproc = simulate(data)
    sub = loop_measure.measurement_summary(measure(data, tgt, seed=0, **proto))
    assert inproc == sub
    assert inproc["deterministic"] and inproc["method"] == "simulated" and inproc["energy_mj"] > 0


def test_timed_targets_have_no_in_process_path():
    assert loop_measure.in_process_measurer(load_target("ort-cpu")) is None
