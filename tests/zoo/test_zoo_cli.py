"""`autogo-deploy zoo list` / `zoo export` through the real console entry point."""

from __future__ import annotations

import json
import subprocess
import sys

import onnx
import pytest

ARCH = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|nor_conv_1x1~2|"


def cli(*args: str) -> subprocess.CompletedProcess:
    """The console script in a fresh interpreter (what a user runs)."""
    code = "import sys; from autogo_deploy.cli.app import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)


def cli_inproc(capsys, *args: str) -> subprocess.CompletedProcess:
    """The same entry point in-process (fast; stdout/stderr captured by pytest)."""
    from autogo_deploy.cli.app import main

    code = main(list(args))
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), code, captured.out, captured.err)


def test_list_json(capsys):
    res = cli_inproc(capsys, "zoo", "list", "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    names = [m["name"] for m in doc["models"]]
    assert names[:3] == ["nb201", "nb101", "fbnet"] and "resnet50" in names
    assert next(m for m in doc["models"] if m["name"] == "edsr")["input_shape"] == [1, 3, 64, 64]


def test_list_table():
    res = cli("zoo", "list")
    assert res.returncode == 0 and "mobilenet_v2" in res.stdout


def test_export_nb201_and_fbnet(tmp_path):
    out = tmp_path / "nb201.onnx"
    res = cli(
        "zoo",
        "export",
        "nb201",
        "--arch",
        ARCH,
        "--dataset",
        "cifar100",
        "--seed",
        "3",
        "-o",
        str(out),
        "--json",
    )
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["output_shape"] == [1, 100] and doc["bytes"] == out.stat().st_size
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    from autogo_deploy import zoo

    assert out.read_bytes() == zoo.build("nb201", arch=ARCH, dataset="cifar100", seed=3).SerializeToString()
    ops = "k3_e1 k3_e1_g2 k3_e3 k3_e6 k5_e1 k5_e1_g2 k5_e3 k5_e6 skip " * 2 + "skip " * 4
    res = cli("zoo", "export", "fbnet", "--arch", ops.strip(), "-o", str(tmp_path / "f.onnx"))
    assert res.returncode == 0 and "wrote" in res.stdout


@pytest.mark.parametrize(
    "args, fragment",
    [
        (
            ["zoo", "export", "nb201", "--arch", "|nor_conv_3x3~0|", "-o", "{tmp}/x.onnx"],
            "bad NB201 arch string",
        ),
        (["zoo", "export", "fbnet", "--arch", "k3_e1 k9_e1", "-o", "{tmp}/x.onnx"], "FBNet needs 22 ops"),
        (["zoo", "export", "nb101", "--arch", "{{", "-o", "{tmp}/x.onnx"], "NB101 spec JSON"),
        (["zoo", "export", "alexnet", "-o", "{tmp}/x.onnx"], "unknown zoo model 'alexnet'"),
        (["zoo", "export", "resnet18", "--arch", "x", "-o", "{tmp}/x.onnx"], "takes no arch"),
        (["zoo", "export", "resnet18", "-o", "{tmp}/missing/x.onnx"], "does not exist"),
        (["zoo", "export", "nb201", "--dataset", "mnist", "-o", "{tmp}/x.onnx"], "unknown NB201 dataset"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, tmp_path, args, fragment):
    res = cli_inproc(capsys, *[a.format(tmp=tmp_path) for a in args])
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "x.onnx").exists()
