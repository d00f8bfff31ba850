"""`optimize` end to end on a small built-in network (NB201 space, ort-cpu, short protocol).

Checks real behaviour: the input and every emitted model are measured on the target, the emitted
model is valid ONNX with the input's inputs/outputs and is faster than the input as measured,
and the JSON/HTML reports say where each number comes from.
"""

from __future__ import annotations

import json

import onnx
import pytest

from autogo_deploy.cli.app import main
from autogo_deploy.errors import InputError
from autogo_deploy.onnx_run import random_inputs, run_ort

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def test_optimize_cli_nb201_space(tmp_path, capsys):
    out = tmp_path / "best.onnx"
    report = tmp_path / "report.html"
    code = main(
        [
            "optimize",
            "zoo:nb201",
            "--space",
            "nb201",
            "--arch",
            ARCH,
            "--target",
            "ort-cpu",
            "--generations",
            "1",
            "--population",
            "4",
            "--measure-top",
            "1",
            "--max-runs",
            "40",
            "--budget",
            "acc_drop=100",
            "-o",
            str(out),
            "--report",
            str(report),
            "--json",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    doc = json.loads(captured.out)
    assert doc["schema_version"] == 1 and doc["target"] == "ort-cpu"
    base = doc["baseline"]
    assert base["measured"]["latency_ms"] > 0 and base["measured"]["method"] == "measured"
    assert doc["candidates_evaluated"] >= 1
    assert all(c["measured"] for c in doc["front"])  # the final front is always measured
    assert "fine-tuned" in doc["notice"]
    assert doc["predictor"]["accuracy_source"].startswith("predicted")
    # NB201 cell networks are what the accuracy head learnt from: no extrapolation note
    assert doc["predictor"]["accuracy_in_distribution"] is True and doc["accuracy_note"] is None
    assert doc["budgets_by_default"] == [] and "depth_drop" not in doc["budgets"]  # no leash in NB201
    if doc["best"]:
        best = doc["best"]
        assert best["measured"]["latency_ms"] < base["measured"]["latency_ms"]
        assert best["arch"] and best["arch"] != ARCH
        model = onnx.load(out)
        onnx.checker.check_model(model, full_check=True)
        assert [i.name for i in model.graph.input] == ["input"]
        assert run_ort(model, random_inputs(model))[0].shape == (1, 10)
        # emitted only after a head-to-head (alternating rounds) confirmed the gain
        h2h = doc["head_to_head"]
        assert h2h["confirmed"] == best["id"]
        accepted = [t for t in h2h["tries"] if t["accepted"]]
        assert accepted[-1]["rounds"] == 6 and accepted[-1]["latency_ratio_ci95"][1] < 1.0
        assert doc["improvement"]["latency_change_head_to_head"] < 0
    else:
        assert not out.exists() and doc["why_no_result"]
    html = report.read_text()
    assert "<svg" in html and "Pareto" in html


def test_optimize_rejects_bad_arguments(tmp_path):
    from autogo_deploy import api

    with pytest.raises(InputError, match="needs --arch"):
        api.optimize("zoo:nb201", "ort-cpu", space="nb201")
    with pytest.raises(InputError, match="unknown --space"):
        api.optimize("zoo:nb201", "ort-cpu", space="darts")
    with pytest.raises(InputError, match="model file not found"):
        api.optimize(tmp_path / "missing.onnx", "ort-cpu")
    with pytest.raises(InputError, match="unknown objective"):
        api.optimize("zoo:nb201", "ort-cpu", objective="speed")
    with pytest.raises(InputError, match="head-to-head takes 0"):
        api.optimize("zoo:nb201", "ort-cpu", head_to_head_rounds=1)
    with pytest.raises(InputError, match="needs a target with a cost model"):
        api.optimize("zoo:nb201", "ort-cpu", segment_weight="target")
    with pytest.raises(InputError, match="unknown segment weight"):
        api.optimize("zoo:nb201", "ort-cpu", segment_weight="flops")
    with pytest.raises(InputError, match="spill-mb must be > 0"):
        api.optimize("zoo:nb201", "ort-cpu", spill_mb=0)
    with pytest.raises(InputError, match="escape-after takes a number of generations"):
        api.optimize("zoo:nb201", "ort-cpu", escape_after=0)
    with pytest.raises(InputError, match="unknown front strata 'width'; valid: auto, depth, off"):
        api.optimize("zoo:nb201", "ort-cpu", front_strata="width")
    with pytest.raises(InputError, match="widen-share takes a share"):
        api.optimize("zoo:nb201", "ort-cpu", widen_share=1.5)
    with pytest.raises(InputError, match="--graft takes a number"):
        api.optimize("zoo:nb201", "ort-cpu", graft=-1)
    with pytest.raises(InputError, match="--graft replays mutation deltas"):
        api.optimize("zoo:nb201", "ort-cpu", graft=2, strategy="random")
    with pytest.raises(InputError, match="--graft replays mutation deltas"):
        api.optimize("zoo:nb201", "ort-cpu", graft=1, space="nb201")


class _Built(Exception):
    pass


def _proposer_kwargs(monkeypatch, small_db_path, target="npu-sim", **optimize_kwargs) -> dict:
    """What `optimize` on ResNet-18 / `target` hands the GraphProposer (stopped right there)."""
    from autogo_deploy import api, proposers

    seen = {}

    def record(*args, **kwargs):
        seen.update(kwargs)
        raise _Built

    monkeypatch.setattr(proposers, "GraphProposer", record)
    with pytest.raises(_Built):
        api.optimize("zoo:resnet18", target, generations=1, jobs=1, db_path=small_db_path, **optimize_kwargs)
    return seen


@pytest.mark.parametrize(("budgets", "floor"), [([], 17), (["depth_drop=0"], 18), (["depth_drop=1"], 0)])
def test_the_proposer_gets_the_depth_floor_of_the_budgets(monkeypatch, small_db_path, budgets, floor):
    """ResNet-18 has depth 18: the default leash (0.1) keeps 17, depth_drop=0 all 18, 1 none."""
    assert _proposer_kwargs(monkeypatch, small_db_path, budgets=budgets)["min_depth"] == floor


@pytest.mark.parametrize(
    ("target", "kwargs", "expected"),
    [
        ("npu-sim", {}, True),  # the default where mutants are costed exactly: 2 grafts
        ("npu-sim", {"graft": 0}, False),
        ("npu-sim", {"model_mutants": False}, False),  # gains would be predictions: off by default
        ("ort-cpu", {}, False),  # timed target: off by default
        ("ort-cpu", {"graft": 2}, True),
    ],
)
def test_the_proposer_hands_out_deltas_only_when_grafting(
    monkeypatch, small_db_path, target, kwargs, expected
):
    """Each mutant carries its delta only when the search grafts: by default on npu-sim, where the
    proposer costs mutants exactly, or when `--graft N` asks for it."""
    assert _proposer_kwargs(monkeypatch, small_db_path, target, **kwargs)["graft"] is expected
