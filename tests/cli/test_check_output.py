"""Renderings of a check report (table, markdown, JUnit) for each mode, from library runs with
synthetic batches (the measuring path is covered end to end in test_check.py)."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import numpy as np
import onnx
import pytest
from conftest import make_tiny_cnn
from rich.console import Console

from autogo_deploy import check_output
from autogo_deploy.checking import run_check
from autogo_deploy.gate import Batch


@pytest.fixture
def model_path(tmp_path):
    (tmp_path / ".git").mkdir()
    path = tmp_path / "tiny.onnx"
    onnx.save(make_tiny_cnn(batch=1), path)
    return path


def noisy(median_ms):
    rng = np.random.default_rng(0)
    return lambda runs: Batch(list(median_ms * rng.lognormal(0, 0.05, runs)), energy_mj=0.1, power_w=2.0)


def report(model_path, flags, sample_batch, **kw):
    return run_check(
        model_path, "ort-cpu", budget_flags=flags, sample_batch=sample_batch, search_from=model_path.parent,
        log=lambda _t: None, **kw,
    ).to_dict()  # fmt: skip


def table_text(doc) -> str:
    buffer = io.StringIO()
    check_output.render_table(doc, Console(file=buffer, width=140, color_system=None))
    return buffer.getvalue()


def test_measured_pass_renderings(model_path):
    doc = report(model_path, ["latency_p50_ms=20", "params=1M"], noisy(10.0))
    assert doc["verdict"] == "pass" and doc["mode"] == "measured" and doc["deterministic"] is False
    text = table_text(doc)
    assert "latency_p50_ms" in text and "≤ 20 ms" in text and "PASS:" in text
    assert "false-fail rate ≤ 0.01" in text and "order-statistic and batch-means bounds" in text
    md = check_output.markdown(doc)
    assert md.startswith("### ✅ autogo-deploy check: PASS") and "| `params` | ≤ 1,000,000 |" in md
    root = ET.fromstring(check_output.junit_xml(doc).split("\n", 1)[1])
    assert root.find("testsuite").get("failures") == "0" and len(root.findall(".//testcase")) == 2


def test_inconclusive_and_fail_renderings(model_path):
    doc = report(model_path, ["latency_p50_ms=10"], noisy(10.0), settings={"max_runs": 400})
    assert doc["verdict"] == "inconclusive"
    root = ET.fromstring(check_output.junit_xml(doc).split("\n", 1)[1])
    (error,) = root.findall(".//error")
    assert error.get("type") == "inconclusive" and root.find("testsuite").get("errors") == "1"
    assert "⚠️" in check_output.markdown(doc) and "INCONCLUSIVE" in table_text(doc)
    doc = report(model_path, ["latency_p50_ms=5", "file_size_mb=1e-6"], noisy(10.0))
    assert doc["verdict"] == "fail"
    root = ET.fromstring(check_output.junit_xml(doc).split("\n", 1)[1])
    # the exact file-size fail stops the gate after one batch: the latency budget is left undecided
    assert root.find("testsuite").get("failures") == "1" and root.find("testsuite").get("errors") == "1"
    assert "❌" in check_output.markdown(doc) and "FAIL:" in table_text(doc)


def test_predicted_figures_are_labelled(model_path):
    def predicted(_runs):
        return Batch(
            [3.0], energy_mj=0.5, power_w=None, deterministic=True, origin="predicted by a test predictor"
        )

    doc = report(model_path, ["latency_p50_ms=4", "energy_mj=1"], predicted, deterministic=True)
    assert doc["mode"] == "predictor" and doc["deterministic"] is True and doc["verdict"] == "pass"
    assert all(r["method"] == "predicted by a test predictor" for r in doc["results"])
    assert "latency_p90_ms" not in doc["metrics"]  # one predicted latency is no p90
    text = table_text(doc)
    assert "PREDICTED" in text
    root = ET.fromstring(check_output.junit_xml(doc).split("\n", 1)[1])
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["mode"] == "predictor" and props["deterministic"] == "true"
    assert "PREDICTED" in check_output.markdown(doc)
