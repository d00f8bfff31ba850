"""Markdown summary of a profile."""

from __future__ import annotations

import pytest
from profile_fixtures import synthetic_doc

from autogo_deploy.report.markdown import render_profile_markdown


@pytest.fixture
def doc() -> dict:
    return synthetic_doc()


def test_markdown_has_latency_power_method_and_kernels(doc):
    text = render_profile_markdown(doc, top=3)
    assert "on `ort-cpu`" in text
    assert f"{doc['latency']['p50_ms']:.3f}" in text
    assert "(modeled)" in text and "modeled (no energy counter" in text
    assert "conv1_nchwc" in text and "conv1, bn1, relu1" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "_nchwc" in line]
    assert len(rows) == 2


def test_markdown_without_operators():
    text = render_profile_markdown(synthetic_doc(per_node=False))
    assert "Top" not in text and "p50 / p90 / p99" in text
