"""The versioned profile JSON document."""

from __future__ import annotations

import json
import math

import pytest
from profile_fixtures import synthetic_doc, synthetic_measurement

from autogo_deploy.report.json_report import (
    SCHEMA_VERSION,
    build_profile_doc,
    jsonable,
    model_summary,
    operator_breakdown,
    validate_profile_doc,
)
from autogo_deploy.target import load_target


@pytest.fixture
def doc() -> dict:
    return synthetic_doc()


def test_document_is_valid_and_strict_json(doc):
    assert validate_profile_doc(doc) == []
    assert doc["schema_version"] == SCHEMA_VERSION
    text = json.dumps(doc, allow_nan=False)  # no NaN/Infinity anywhere
    assert json.loads(text) == doc


def test_latency_block_matches_the_measurement(doc):
    m = synthetic_measurement()
    lat = doc["latency"]
    assert lat["p50_ms"] == m.p50_ms and lat["runs"] == len(doc["samples_ms"]) == m.runs
    assert lat["converged"] is True and lat["deterministic"] is False
    assert doc["power"] == {"energy_mj": 21.5, "power_w": 4.3, "method": "modeled", "detail": m.power_detail}


def test_operator_breakdown_sorts_and_sums():
    ops = operator_breakdown(synthetic_measurement().per_node)
    times = [k["ms"] for k in ops["kernels"]]
    assert times == sorted(times, reverse=True)
    assert math.isclose(sum(k["share"] for k in ops["kernels"]), 1.0)
    conv = next(t for t in ops["by_op_type"] if t["op_type"] == "Conv")
    assert conv["ms"] == 3.5 and conv["kernels"] == 2
    assert ops["by_op_type"][0]["op_type"] == "Conv"
    assert operator_breakdown(None) is None and operator_breakdown([]) is None


def test_document_without_per_node_or_power_is_still_valid():
    m = synthetic_measurement(per_node=False)
    m.power_method = m.energy_mj = m.power_w = None
    doc = build_profile_doc(m, load_target("ort-cpu"), model_summary("m.onnx", b"x", None, {}))
    assert doc["operators"] is None and doc["power"]["method"] is None
    assert doc["model"]["macs"] is None
    assert validate_profile_doc(doc) == []


def test_validation_catches_broken_documents():
    doc = synthetic_doc()
    doc["schema_version"] = 99
    doc["latency"]["p90_ms"] = doc["latency"]["p99_ms"] + 1
    doc["power"]["method"] = None
    problems = " | ".join(validate_profile_doc(doc))
    assert "schema_version" in problems and "p50 <= p90 <= p99" in problems and "carry its method" in problems


def test_jsonable_replaces_non_finite_numbers():
    assert jsonable({"a": [1.0, float("nan")], "b": (float("inf"),)}) == {"a": [1.0, None], "b": [None]}
