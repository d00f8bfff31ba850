"""benchmarks/gains_table.py: the docs table is rebuilt from the results file, rows chosen by tag."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

_PATH = Path(__file__).parents[1] / "benchmarks" / "gains_table.py"
_spec = importlib.util.spec_from_file_location("gains_table", _PATH)
gains_table = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gains_table)


def _row(model, target, mode, tag, **kw):
    base = {"model": model, "target": target, "mode": mode, "tag": tag, "wall_s": 12.3, "peak_rss_mb": 2500.0}
    return base | kw


ROWS = [
    _row("edsr", "npu-sim", "macs", "t", objective="macs", generations_run=7, emitted=False),
    _row(
        "resnet50", "ort-cpu", "autogo", "t", objective="latency", generations_run=60, emitted=True,
        latency_change=-0.25, energy_change=-0.24, macs_change=-0.3, predicted_acc_delta=0.12,
        depth=45, baseline_depth=50, width_drop=0.75,
        head_to_head={"latency_change": -0.301, "latency_ratio_ci95": [0.686, 0.711]},
        canonical_check={"rewrites": {"dropped_relus": 0, "folded_zero_branches": 2}},
    ),
    _row("resnet50", "ort-cpu", "cleanup", "t", emitted=True, latency_change=0.002, energy_change=0.0,
         macs_change=0.0, predicted_acc_delta=0.0),
    _row("resnet50", "ort-cpu", "random", "other", emitted=True, latency_change=-0.1),
]  # fmt: skip


def _table_rows(table: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[2:]]


def test_rows_ordered_by_model_target_mode_and_shown_as_recorded():
    rows = _table_rows(gains_table.render(ROWS[:3]))
    assert [(r[0], r[2]) for r in rows] == [("resnet50", "cleanup"), ("resnet50", "autogo"), ("edsr", "macs")]
    cleanup, autogo, edsr = rows
    assert cleanup[4] == "—" and cleanup[6] == "+0.2%"
    assert autogo[4] == "60" and autogo[5] == "yes (2 left to canonicalise)"
    assert autogo[6] == "-25.0% (h2h -30.1%, CI -31.4%..-28.9%)"
    assert autogo[7:12] == ["-24.0%", "-30.0%", "+0.12", "45/50", "-75%"]
    assert edsr[5] == "no" and edsr[6:10] == ["—"] * 4
    assert autogo[12:] == ["12 s", "2.5 GB", "t"]


def _main(monkeypatch, *argv: str) -> None:
    monkeypatch.setattr("sys.argv", ["gains_table", *argv])
    gains_table.main()


def test_into_replaces_only_the_marked_block(tmp_path, monkeypatch):
    doc = tmp_path / "doc.md"
    doc.write_text("intro\n<!-- matrix-table -->\nold\n<!-- /matrix-table -->\nafter\n")
    results = tmp_path / "r.json"
    results.write_text(json.dumps({"rows": ROWS}))
    _main(monkeypatch, "--tags", "other", "--results", str(results), "--into", str(doc))
    text = doc.read_text()
    assert text.startswith("intro\n<!-- matrix-table -->\n| model |")
    assert text.endswith("<!-- /matrix-table -->\nafter\n")
    assert "old" not in text and text.count("| resnet50 |") == 1  # only the row tagged "other"


def test_missing_markers_or_tags_are_errors(tmp_path, monkeypatch):
    with pytest.raises(SystemExit, match="markers"):
        gains_table.replace_between("no markers here", "matrix", "| t |\n")
    results = tmp_path / "r.json"
    results.write_text(json.dumps({"rows": ROWS}))
    with pytest.raises(SystemExit, match="no rows tagged"):
        _main(monkeypatch, "--tags", "nope", "--results", str(results))


def test_rows_of_one_model_target_and_mode_follow_the_order_of_the_tags():
    rows = [_row("resnet50", "npu-sim", "autogo", t, emitted=False) for t in ("s2", "s0", "s1")]
    assert [r[-1] for r in _table_rows(gains_table.render(rows, ("s0", "s1", "s2")))] == ["s0", "s1", "s2"]
