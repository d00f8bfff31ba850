"""Drift correction (autogo_deploy.drift): rescaling, where the nominal comes from, baselines."""

from __future__ import annotations

import json

import onnx
import pytest

from autogo_deploy import drift
from autogo_deploy.errors import InputError


def method(ref_samples):
    return {"reference": {"samples_ms": ref_samples}}


def test_first_batch_sets_the_nominal_and_later_batches_are_rescaled(tmp_path):
    d = drift.DriftCorrection(tmp_path / "r.onnx")
    assert d.correct([2.0, 2.2], method([1.0, 1.0, 1.0])) == [2.0, 2.2]
    # the runner got 10% slower: the reference shows it, so the model's samples are scaled back
    assert d.correct([2.2, 2.42], method([1.1, 1.1, 1.1])) == pytest.approx([2.0, 2.2])
    doc = d.to_dict()
    assert doc["nominal_ms"] == 1.0 and doc["factors"] == pytest.approx([1.0, 1 / 1.1], abs=1e-5)
    assert doc["batch_medians_ms"] == [1.0, 1.1]
    assert "first batch" in doc["nominal_source"]
    assert "0.909-1.000" in drift.describe(doc)


def test_given_nominal_is_used_from_the_first_batch(tmp_path):
    d = drift.DriftCorrection(tmp_path / "r.onnx", nominal_ms=2.0, nominal_source="--reference-ms")
    assert d.correct([3.0], method([1.0, 1.5, 1.0])) == [6.0]  # median of the reference: 1.0


def test_a_batch_without_reference_times_is_an_error(tmp_path):
    d = drift.DriftCorrection(tmp_path / "r.onnx")
    with pytest.raises(InputError, match="no reference times"):
        d.correct([1.0], {})


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_nominal_is_rejected(tmp_path, bad):
    with pytest.raises(InputError, match="positive number"):
        drift.DriftCorrection(tmp_path / "r.onnx", nominal_ms=bad)


def test_baseline_nominal(tmp_path):
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"reference": {"model": drift.REFERENCE_NAME, "nominal_ms": 1.25}}))
    assert drift.baseline_nominal(path) == 1.25
    path.write_text(json.dumps({"metrics": {"latency_p50_ms": 3.0}}))
    assert drift.baseline_nominal(path) is None  # a baseline recorded without drift correction
    path.write_text(json.dumps({"reference": {"model": "some other net", "nominal_ms": 1.25}}))
    with pytest.raises(InputError, match="another reference"):
        drift.baseline_nominal(path)


def test_reference_network_is_built_deterministically(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = drift.write_reference(tmp_path / "a"), drift.write_reference(tmp_path / "b")
    assert a.read_bytes() == b.read_bytes()
    onnx.checker.check_model(onnx.load(a))
