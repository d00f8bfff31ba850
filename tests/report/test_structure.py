"""Exact layer counts in the optimize report, and the warning for a much shallower result."""

from __future__ import annotations

from autogo_deploy import api, zoo
from autogo_deploy.report.optimize_report import build_doc, render_html
from autogo_deploy.report.structure import compare, layer_structure
from autogo_deploy.width import width_drop


def test_depth_is_the_weighted_layers_on_the_longest_path():
    assert layer_structure(zoo.build("resnet18")) == {"weighted_layers": 21, "depth": 18}
    assert layer_structure(zoo.build("resnet50").SerializeToString()) == {"weighted_layers": 54, "depth": 50}
    assert layer_structure(zoo.build("vgg16_bn")) == {"weighted_layers": 16, "depth": 16}


def test_a_much_shallower_result_is_flagged():
    r50, r18 = zoo.build("resnet50").SerializeToString(), zoo.build("resnet18").SerializeToString()
    same = compare(r50, r50)
    assert same["baseline"] == same["best"] and "warning" not in same and same["source"] == "exact"
    cut = compare(r50, r18)
    assert cut["best"]["depth"] == 18 and "18 weighted layers" in cut["warning"]
    assert "extrapolation" in cut["warning"]


def test_the_optimize_report_counts_the_structure_of_input_and_result(small_db_path, tmp_path):
    model = tmp_path / "resnet18.onnx"
    model.write_bytes(zoo.build("resnet18", input_size=64).SerializeToString())
    result = api.optimize(
        model, "npu-sim", budgets=["acc_drop=100"], generations=1, population=6, jobs=1, db_path=small_db_path
    )
    doc = build_doc(result)
    assert result.best is not None, doc.get("why_no_result")
    st = doc["structure"]
    assert st["baseline"] == {"weighted_layers": 21, "depth": 18}
    assert st["best"] == layer_structure(result.best.model_bytes)
    # the search's own depth bookkeeping (the depth_drop budget) agrees with the report
    assert doc["baseline"]["depth"] == 18 and doc["baseline"]["depth_drop"] == 0.0
    assert doc["best"]["depth"] == st["best"]["depth"]
    assert doc["best"]["depth_drop"] == 1 - st["best"]["depth"] / 18
    # outside the NB201 space at most 10% of the depth and half the main path's width may go unless
    # the user says otherwise
    assert doc["budgets"]["depth_drop"] == 0.1 and doc["budgets"]["width_drop"] == 0.5
    assert doc["budgets_by_default"] == ["depth_drop", "width_drop"]
    assert st["best"]["depth"] >= 17
    assert doc["baseline"]["main_path_widths"] == {
        "64x64": 3, "32x32": 64, "16x16": 64, "8x8": 128, "4x4": 256, "2x2": 512, "1x1": 512,
    }  # fmt: skip
    assert (
        doc["best"]["width_drop"]
        == width_drop(doc["baseline"]["main_path_widths"], result.best.widths)
        <= 0.5
    )
    page = render_html(doc)
    assert f"depth 18 → {st['best']['depth']} (exact)" in page
    # a zoo network is outside the accuracy head's training families: said in JSON and on the page
    assert result.predictor["accuracy_in_distribution"] is False
    assert "extrapolation" in doc["accuracy_note"] and "depth_drop=0 width_drop=0" in doc["accuracy_note"]
    assert "<b>Accuracy:</b>" in page
    # the warning reaches the page when there is one
    doc["structure"] = compare(zoo.build("resnet50").SerializeToString(), result.best.model_bytes)
    assert "warning:" in render_html(doc) and "extrapolation" in render_html(doc)
