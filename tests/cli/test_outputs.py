"""What every command does with its outputs and with failures: checked before the work, never an
input overwritten, usage and internal errors as one `error:` line with their own exit code."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import onnx
import pytest
from onnx import helper
from tiny_models import make_tiny_cnn

from autogo_deploy.cli.app import main
from autogo_deploy.graph import save_bytes


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


@pytest.fixture
def model_path(tmp_path) -> Path:
    path = tmp_path / "model.onnx"
    path.write_bytes(make_tiny_cnn(batch=1).SerializeToString())
    return path


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--bogus"], "No such option: --bogus"),
        (["optimize"], "Missing argument 'model'"),
        (["optimize", "zoo:nb201", "--generations", "0"], "--generations"),
        (["optimize", "zoo:nb201", "--time-limit", "-5"], "--time-limit"),
        (["db", "show", "not-a-number"], "segment_id"),
        (["predictor", "fewshot", "--space", "nb201"], "--measurements"),
    ],
)
def test_usage_errors_are_one_error_line_and_exit_2(capsys, argv, needle):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert len(_lines(err)) == 1 and err.startswith("error: ") and needle in err, err


def test_an_unexpected_exception_is_exit_4_not_1(monkeypatch, capsys, model_path):
    """1 means "budget broken" to `check` and CI: a crash of ours must not read as that."""
    import autogo_deploy.graph

    def boom(*args, **kwargs):
        raise RuntimeError("simulated bug\nsecond line")

    monkeypatch.setattr(autogo_deploy.graph, "load", boom)
    monkeypatch.delenv("AUTOGO_DEBUG", raising=False)
    code = main(["inspect", str(model_path)])
    err = capsys.readouterr().err
    assert code == 4
    assert _lines(err) == [
        "error: internal error: RuntimeError: simulated bug second line (a bug: please report it; "
        "AUTOGO_DEBUG=1 prints the traceback)"
    ]
    monkeypatch.setenv("AUTOGO_DEBUG", "1")
    assert main(["inspect", str(model_path)]) == 4
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["optimize", "{m}", "-t", "npu-sim", "-o", "{m}"],
        ["optimize", "{m}", "-t", "npu-sim", "--report", "{m}"],
        ["profile", "{m}", "-t", "npu-sim", "--report", "{m}"],
        ["profile", "{m}", "-t", "npu-sim", "--markdown", "{m}"],
        ["check", "{m}", "-t", "npu-sim", "--junit", "{m}"],
        ["check", "{m}", "-t", "npu-sim", "--summary", "{m}"],
        ["predictor", "fewshot", "--measurements", "{m}", "--out", "{m}"],
    ],
)
def test_an_output_that_is_an_input_is_refused_before_any_work(capsys, model_path, argv):
    before = _digest(model_path)
    code = main([a.replace("{m}", str(model_path)) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and "is an input of this command" in err, err
    assert _digest(model_path) == before


def test_output_paths_of_the_wrong_kind_are_refused_up_front(capsys, tmp_path, model_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("keep")
    cases = [
        (["optimize", str(model_path), "-t", "npu-sim", "--front", str(a_file)], "is a file, not a folder"),
        (["optimize", str(model_path), "-t", "npu-sim", "--report", str(tmp_path)], "is a folder"),
        (["predictor", "accuracy", "--out", str(tmp_path)], "is a folder"),
        (["optimize", str(model_path), "-t", "npu-sim", "-o", str(a_file / "x.onnx")], "is not a folder"),
        (
            [
                "optimize",
                str(model_path),
                "-t",
                "npu-sim",
                "-o",
                str(tmp_path / "a.x"),
                "--report",
                str(tmp_path / "a.x"),
            ],
            "name the same path",
        ),
    ]
    for argv, needle in cases:
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2 and len(_lines(err)) == 1 and needle in err, (argv, err)
    assert a_file.read_text() == "keep"


def test_saved_models_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = save_bytes(make_tiny_cnn().SerializeToString(), tmp_path / "sub" / "m.onnx")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
    assert not [p for p in path.parent.iterdir() if p.name != "m.onnx"]  # no temp file left


def test_optimize_reads_external_data_from_the_models_folder(tmp_path):
    from autogo_deploy.api import resolve_model_source

    src = make_tiny_cnn(batch=1)
    path = tmp_path / "ext.onnx"
    onnx.save_model(src, path, save_as_external_data=True, location="ext.onnx.data", size_threshold=0)
    assert (tmp_path / "ext.onnx.data").stat().st_size > 0
    data, label = resolve_model_source(path)
    assert label == str(path)
    loaded = onnx.load_from_string(data)
    assert all(t.data_location == onnx.TensorProto.DEFAULT for t in loaded.graph.initializer)
    assert {t.name: t.raw_data for t in loaded.graph.initializer} == {
        t.name: t.raw_data for t in onnx.load(path).graph.initializer
    }


def test_a_model_saved_with_onnx_defaults_is_converted_to_what_onnxruntime_reads(capsys, tmp_path):
    src = make_tiny_cnn(batch=1)
    newest = helper.make_model(src.graph)  # this onnx's default opset and IR version
    path = tmp_path / "new.onnx"
    onnx.save(newest, path)
    code = main(["inspect", str(path), "--json"])
    captured = capsys.readouterr()
    if newest.opset_import[0].version <= 26:
        pytest.skip("the installed onnx writes an opset onnxruntime reads: nothing to convert")
    assert code == 0, captured.err
    assert f"converted from opset {newest.opset_import[0].version} to 26" in captured.err + captured.out
