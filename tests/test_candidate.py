"""Candidate: bytes in memory or in a spill file, read back on demand, released with their file."""

from __future__ import annotations

import json

from autogo_deploy.candidate import Candidate, candidate_id


def _cand(data: bytes = b"onnx-bytes") -> Candidate:
    return Candidate(candidate_id(data), data, None, 0, macs=10, params=2, predicted={"acc": 90.0})


def test_spill_moves_the_bytes_to_a_file_and_reads_them_back(tmp_path):
    c = _cand(b"x" * 1000)
    assert c.has_model and c.spill_path is None
    c.spill(tmp_path)
    assert c.spill_path == tmp_path / f"{c.cid}.onnx" and c.spill_path.read_bytes() == b"x" * 1000
    assert c._memory == b""  # not kept in memory any more
    assert c.has_model and c.model_bytes == b"x" * 1000
    assert c.nbytes == 1000  # the file's size, the same as in memory
    assert list(tmp_path.iterdir()) == [c.spill_path]  # no temporary file left behind


def test_releasing_a_spilled_candidate_removes_its_file(tmp_path):
    c = _cand()
    c.spill(tmp_path)
    path = c.spill_path
    c.model_bytes = b""
    assert not c.has_model and c.spill_path is None and not path.exists()
    assert c.model_bytes == b"" and c.nbytes == 0


def test_from_spill_and_json_never_carry_the_bytes(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"model")
    c = Candidate.from_spill(path, cid="abc", parent=None, generation=1, macs=5, verified=True)
    assert c.has_model and c.model_bytes == b"model"
    doc = c.to_json()
    assert "model_bytes" not in doc and "spill_path" not in doc
    assert "verified" not in doc  # a checkpoint read back is a user's file: validated again
    assert doc["cid"] == "abc" and doc["macs"] == 5
    json.dumps(doc)  # plain JSON
    back = Candidate(model_bytes=b"model", **doc)  # a checkpoint round trip
    assert back.model_bytes == b"model" and not back.verified


def test_cost_prefers_the_measurement_then_the_cost_model_then_the_rescaled_prediction():
    c = _cand()
    c.predicted = {"acc": 90.0, "latency_ms": 2.0}
    assert c.cost("latency_ms", scale=1.5) == 3.0  # a prediction is rescaled
    assert c.metrics()["power_w"] is None  # power is never predicted
    c.modeled = {"latency_ms": 2.5, "energy_mj": None, "power_w": 4.0}
    assert c.cost("latency_ms", scale=1.5) == 2.5  # the target's cost model: exact, not rescaled
    assert c.metrics()["power_w"] == 4.0  # budgets judge the cost model's power until measured
    assert c.cost("energy_mj") is None  # no figure anywhere
    c.measured = {"latency_ms": 2.4}
    assert c.cost("latency_ms", scale=1.5) == 2.4
    assert c.to_json()["modeled"]["latency_ms"] == 2.5  # kept in checkpoints
