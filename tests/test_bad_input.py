"""Hostile and broken inputs: each gives one clear error line, exit 2, no traceback, input untouched."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from tiny_models import make_tiny_cnn

from autogo_deploy.cli.app import main


def _save(model: onnx.ModelProto, path: Path) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


def _edit(fn):
    m = make_tiny_cnn()
    fn(m)
    return m


def _external(tmp: Path, location: str, offset: int = 0, make_file: bool = True) -> Path:
    m = make_tiny_cnn()
    t = next(t for t in m.graph.initializer if t.name == "w1")
    data = numpy_helper.to_array(t).tobytes()
    if make_file and not location.startswith(("/", "..")):
        (tmp / location).write_bytes(data)
    t.ClearField("float_data")
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", str(offset)), ("length", str(len(data)))):
        e = t.external_data.add()
        e.key, e.value = k, v
    return _save(m, tmp / "ext.onnx")


def _flip(data: bytes, needle: bytes, xor: int) -> bytes:
    i = data.index(needle)
    return data[:i] + bytes([data[i] ^ xor]) + data[i + 1 :]


def _cases(tmp: Path) -> dict[str, tuple[Path, list[str]]]:
    good = make_tiny_cnn().SerializeToString()
    c: dict[str, tuple[Path, list[str]]] = {}

    def raw(name, data: bytes, extra=()):
        p = tmp / f"{name}.onnx"
        p.write_bytes(data)
        c[name] = (p, list(extra))

    def model(name, m, extra=()):
        c[name] = (_save(m, tmp / f"{name}.onnx"), list(extra))

    c["missing_file"] = (tmp / "does_not_exist.onnx", [])
    (tmp / "a_dir.onnx").mkdir()
    c["directory"] = (tmp / "a_dir.onnx", [])
    raw("empty", b"")
    raw("text", b"hello, this is not a model\n")
    raw("json", json.dumps({"graph": {"node": []}}).encode())
    raw("random_bytes", np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    for frac in (0.1, 0.5, 0.9):
        raw(f"truncated_{int(frac * 100)}", good[: int(len(good) * frac)])
    raw("truncated_last_byte", good[:-1])
    raw("flip_op_type", _flip(good, b"Conv", 0x04))  # "Conv" -> "Gonv"
    raw("flip_op_type_relu", _flip(good, b"Relu", 0x20))
    raw("flip_tensor_name", _flip(good, b"w1", 0x02))  # node reads an undefined tensor
    raw("flip_length_varint", good[:2] + bytes([good[2] ^ 0x40]) + good[3:])
    zpath = tmp / "zipped.onnx"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("model.onnx", good)
    c["zip_archive"] = (zpath, [])
    model("undefined_input", _edit(lambda m: m.graph.node[2].input.__setitem__(0, "nope")))
    model("duplicate_producer", _edit(lambda m: m.graph.node[3].output.__setitem__(0, "r1")))

    def cycle(m):
        m.graph.node[0].input[0] = "a"  # conv1 reads add's output: a cycle

    model("cycle", _edit(cycle))
    model("custom_domain_op", _edit(lambda m: setattr(m.graph.node[2], "domain", "com.example")))
    model("unknown_op", _edit(lambda m: setattr(m.graph.node[2], "op_type", "FancyActivation")))
    model("unsupported_std_op", _edit(lambda m: setattr(m.graph.node[2], "op_type", "LSTM")))

    def dyn(m):
        m.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"

    model("dynamic_spatial", _edit(dyn))
    model("no_input_shape", _edit(lambda m: m.graph.input[0].type.tensor_type.ClearField("shape")))
    model("opset_too_new", _edit(lambda m: setattr(m.opset_import[0], "version", 99)))
    model("no_default_opset", _edit(lambda m: setattr(m.opset_import[0], "domain", "com.other")))
    model("ir_version_zero", _edit(lambda m: setattr(m, "ir_version", 0)))
    model("empty_graph", _edit(lambda m: m.graph.ClearField("node")))

    def bad_weight(m):
        w = next(t for t in m.graph.initializer if t.name == "w2")
        w.CopyFrom(numpy_helper.from_array(np.ones((8, 3, 3), np.float32), "w2"))

    model("conv_weight_rank", _edit(bad_weight))

    def add_mismatch(m):
        w = next(t for t in m.graph.initializer if t.name == "w2")
        w.CopyFrom(numpy_helper.from_array(np.ones((4, 1, 3, 3), np.float32), "w2"))
        m.graph.node[3].attribute[-1].i = 8

    model("add_shape_mismatch", _edit(add_mismatch))

    def type_mismatch(m):
        m.graph.initializer.append(numpy_helper.from_array(np.ones((1,), np.int64), "k"))
        m.graph.node[4].input[1] = "k"

    model("type_mismatch", _edit(type_mismatch))
    model("output_not_produced", _edit(lambda m: setattr(m.graph.output[0], "name", "ghost")))
    c["external_missing"] = (_external(tmp, "weights.bin", make_file=False), [])
    c["external_traversal"] = (_external(tmp, "../../etc/passwd"), [])
    c["external_absolute"] = (_external(tmp, "/etc/hostname"), [])
    c["external_offset_past_end"] = (_external(tmp, "w.bin", offset=10_000), [])
    huge = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "huge",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 100_000, 100_000])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 100_000, 100_000])],
    )
    model(
        "activation_of_112_gib",
        helper.make_model(huge, opset_imports=[helper.make_opsetid("", 17)], ir_version=8),
    )
    tiny = _save(make_tiny_cnn(), tmp / "ok.onnx")
    c["input_shape_unknown_name"] = (tiny, ["--input-shape", "nope=1x3x16x16"])
    c["input_shape_bad_syntax"] = (tiny, ["--input-shape", "x=1xtwox3"])
    c["input_shape_rank"] = (tiny, ["--input-shape", "x=1x3x16"])
    c["input_shape_zero_dim"] = (tiny, ["--input-shape", "x=1x0x16x16"])
    return c


def test_at_least_30_cases(tmp_path):
    assert len(_cases(tmp_path)) >= 30


def test_each_bad_input_gives_one_line_and_exit_2(tmp_path, capsys):
    cases = _cases(tmp_path)
    failures = []
    for name, (path, extra) in cases.items():
        before = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
        code = main(["inspect", str(path), "--no-verify", *extra])
        captured = capsys.readouterr()
        lines = [ln for ln in captured.err.splitlines() if ln.strip()]
        after = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
        ok = (
            code == 2
            and len(lines) == 1
            and lines[0].startswith("error: ")
            and "Traceback" not in captured.err
            and before == after
            and captured.out == ""
        )
        if not ok:
            failures.append(f"{name}: exit={code} stderr={captured.err[:300]!r}")
    assert not failures, "\n".join(failures)


def test_no_stray_files_written(tmp_path, capsys):
    cases = _cases(tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    for path, extra in cases.values():
        main(["inspect", str(path), "--no-verify", *extra])
    capsys.readouterr()
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_tensor_helper_sanity():
    # the fixture model itself is valid, so every failure above comes from the injected defect
    onnx.checker.check_model(make_tiny_cnn(), full_check=True)
    assert helper.make_opsetid("", 17).version == 17
