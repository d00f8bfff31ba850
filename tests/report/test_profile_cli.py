"""`autogo-deploy profile` end to end on a tiny model: JSON document, HTML and markdown reports, bad input."""

from __future__ import annotations

import io
import json

import onnx
import pytest
from profile_fixtures import body_attrs, chromium_binary, console_errors, render_in_chromium
from rich.console import Console
from tiny_models import make_tiny_cnn

from autogo_deploy.cli import profile_cmd
from autogo_deploy.cli.app import main
from autogo_deploy.report.json_report import validate_profile_doc
from autogo_deploy.target import load_target, target_names

QUICK = ["--min-runs", "8", "--max-runs", "30", "--time-cap-s", "2"]


@pytest.fixture(scope="module")
def tiny_dynamic(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "tiny.onnx"
    onnx.save(make_tiny_cnn(batch="N"), path)  # dynamic batch: graph.load pins it to 1
    return path


def test_profile_json_html_markdown(tiny_dynamic, tmp_path, capsys):
    html_path, md_path = tmp_path / "out" / "report.html", tmp_path / "report.md"
    code = main(
        ["profile", str(tiny_dynamic), "--target", "ort-cpu", "--json", "--report", str(html_path)]
        + ["--markdown", str(md_path), *QUICK]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    doc = json.loads(captured.out)  # exactly one JSON document on stdout
    assert validate_profile_doc(doc) == []
    assert doc["model"]["inputs"] == {"x": [1, 3, 16, 16]}
    assert doc["model"]["macs"] > 0 and doc["model"]["params"] > 0
    assert doc["latency"]["runs"] >= 8 and doc["power"]["method"] in ("modeled", "measured-rapl")
    kernels = doc["operators"]["kernels"]
    attributed = sorted(n for k in kernels for n in k["graph_nodes"])
    assert (
        len(attributed)
        == len(set(attributed))
        == doc["operators"]["profile"]["graph_nodes"]
        == doc["model"]["nodes"]
    )
    assert doc["operators"]["profile"]["unattributed_graph_nodes"] == []
    assert md_path.read_text().startswith("### Profile of")
    if chromium_binary() is None:
        pytest.skip("chromium not installed (Debian package `chromium`; .ci/run installs it)")
    dom, stderr = render_in_chromium(html_path, tmp_path)
    attrs = body_attrs(dom)
    assert attrs["data-script-errors"] == "0" and attrs["data-plots-drawn"] == "4"
    assert console_errors(stderr) == []


def test_profile_table_output(tiny_dynamic, monkeypatch):
    buffer = io.StringIO()
    monkeypatch.setattr(profile_cmd, "out", Console(file=buffer, width=200))
    assert main(["profile", str(tiny_dynamic), "--target", "ort-cpu", *QUICK]) == 0
    text = buffer.getvalue()
    for fragment in (
        "latency (ms)",
        "p50",
        "power and energy",
        "top",
        "kernels",
        "MACs",
        "time per operator type",
    ):
        assert fragment in text
    assert "modeled" in text or "measured-rapl" in text


def test_profile_unknown_target_exits_2_and_lists_targets(tiny_dynamic, capsys):
    assert main(["profile", str(tiny_dynamic), "--target", "warp-drive"]) == 2
    err = capsys.readouterr().err
    assert "unknown target 'warp-drive'" in err
    assert all(name in err for name in target_names())


def test_profile_unavailable_backend_exits_3_with_reason(tiny_dynamic, capsys):
    ok, reason = load_target("ort-cuda").available()
    if ok:
        pytest.skip(f"ort-cuda available here: {reason}")
    assert main(["profile", str(tiny_dynamic), "--target", "ort-cuda"]) == 3
    assert reason in capsys.readouterr().err


@pytest.mark.parametrize(
    "args",
    [["missing.onnx", "--target", "ort-cpu"], ["{model}", "--target", "ort-cpu", "--input-shape", "x=1xbad"]],
)
def test_profile_bad_input_exits_2(tiny_dynamic, capsys, args):
    args = [a.replace("{model}", str(tiny_dynamic)) for a in args]
    assert main(["profile", *args]) == 2
    assert capsys.readouterr().err.startswith("error:")
