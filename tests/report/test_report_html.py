"""The self-contained HTML report: no external resources, escaping, and real rendering in headless Chromium."""

from __future__ import annotations

import re

import pytest
from profile_fixtures import body_attrs, chromium_binary, console_errors, render_in_chromium, synthetic_doc

from autogo_deploy.report.html import render_profile_html


@pytest.fixture
def doc() -> dict:
    return synthetic_doc()


needs_chromium = pytest.mark.skipif(
    chromium_binary() is None,
    reason="chromium not installed (Debian package `chromium`; .ci/run installs it)",
)


def _plot_section(dom: str, plot_id: str) -> str:
    match = re.search(rf'<div class="plot" id="{plot_id}">(.*?)</div>', dom, re.S)
    assert match, plot_id
    return match.group(1)


def test_html_is_self_contained(doc):
    text = render_profile_html(doc)
    assert "<script src" not in text and "<link" not in text and "@import" not in text and "url(" not in text
    external = re.findall(r"(?:src|href)=[\"']?(https?:)?//", text)
    assert external == []
    assert re.findall(r"https?://", text) == ["http://"]  # only the SVG namespace string, never fetched
    assert "http://www.w3.org/2000/svg" in text


def test_html_escapes_untrusted_names(doc):
    text = render_profile_html(doc)
    assert "<script>alert(1)</script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text or "\\u003cscript>" in text


@needs_chromium
def test_report_renders_plots_in_headless_chromium(doc, tmp_path):
    path = tmp_path / "report.html"
    path.write_text(render_profile_html(doc))
    dom, stderr = render_in_chromium(path, tmp_path)
    attrs = body_attrs(dom)
    assert attrs["data-script-errors"] == "0", re.search(r'id="script-errors">([^<]*)', dom).group(1)
    assert attrs["data-plots-drawn"] == "4"
    assert console_errors(stderr) == []
    kernels = _plot_section(dom, "plot-kernels")
    assert kernels.count("<rect") == len(doc["operators"]["kernels"])  # one bar per kernel
    assert "conv1_nchwc [Conv]" in kernels
    hist = _plot_section(dom, "plot-hist")
    assert hist.count("<rect") >= 5 and ">p50<" in hist and ">p99<" in hist
    assert _plot_section(dom, "plot-series").count("<circle") == len(doc["samples_ms"])
    assert "<script>alert(1)</script>" not in dom  # a kernel name is text, never markup


@needs_chromium
def test_report_without_per_node_data_still_renders(tmp_path):
    path = tmp_path / "report.html"
    path.write_text(render_profile_html(synthetic_doc(per_node=False)))
    dom, stderr = render_in_chromium(path, tmp_path)
    attrs = body_attrs(dom)
    assert attrs["data-script-errors"] == "0" and attrs["data-plots-drawn"] == "2"
    assert "No per-node data" in _plot_section(dom, "plot-kernels")
    assert console_errors(stderr) == []


@needs_chromium
def test_a_script_error_is_detected(doc, tmp_path):
    text = render_profile_html(doc).replace("var ops = doc.operators", "var ops = doc.operators.nope.boom")
    path = tmp_path / "broken.html"
    path.write_text(text)
    dom, _ = render_in_chromium(path, tmp_path)
    attrs = body_attrs(dom)
    assert attrs["data-script-errors"] == "1" and attrs["data-plots-drawn"] == "0"
    assert "TypeError" in dom


@needs_chromium
def test_single_sample_deterministic_report_renders(tmp_path):
    from profile_fixtures import synthetic_measurement

    from autogo_deploy.report.json_report import build_profile_doc, model_summary
    from autogo_deploy.stats import summarize
    from autogo_deploy.target import load_target

    m = synthetic_measurement()
    s = summarize([3.25])
    for key, value in s.to_dict().items():
        setattr(m, key, value)
    m.samples_ms, m.deterministic, m.stop_reason = [3.25], True, "deterministic"
    for k in m.per_node:
        k.pop("graph_nodes"), k.pop("mapping")  # simulators report name/op_type/ms only
    doc = build_profile_doc(m, load_target("ort-cpu"), model_summary("sim.onnx", b"x", None, {}))
    path = tmp_path / "sim.html"
    path.write_text(render_profile_html(doc))
    dom, stderr = render_in_chromium(path, tmp_path)
    attrs = body_attrs(dom)
    assert attrs["data-script-errors"] == "0" and attrs["data-plots-drawn"] == "4"
    assert console_errors(stderr) == []
