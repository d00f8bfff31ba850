"""TVM backend: target files, availability, the tvm-llvm harness on a tiny model, caching, unsupported ops."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from tiny_models import make_tiny_cnn

from autogo_deploy.backends import availability, harness
from autogo_deploy.backends import tvm as tvm_backend
from autogo_deploy.errors import MeasurementFailed, UnsupportedOpError
from autogo_deploy.measure import measure
from autogo_deploy.target import load_target

needs_tvm = pytest.mark.skipif(importlib.util.find_spec("tvm") is None, reason="apache-tvm not installed")
QUICK = {"min_runs": 5, "max_runs": 30, "time_cap_s": 2.0, "warmup": 1}


def _celu_model() -> onnx.ModelProto:
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu0"),
        helper.make_node("Celu", ["r"], ["y"], name="celu0", alpha=1.0),
    ]
    graph = helper.make_graph(
        nodes,
        "celu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_tvm_target_files_are_valid():
    for name, device, kind in (("tvm-llvm", "cpu", "llvm"), ("tvm-cuda", "cuda", "cuda")):
        target = load_target(name)
        assert target.name == name and target.backend == "tvm" and target.device == device
        assert tvm_backend.target_kind(target.options) == kind
        assert target.options["tune"] is False and int(target.options["trials"]) > 0
        assert target.protocol["timeout_s"] >= 600
        assert harness(target).name == "tvm_harness.py" and harness(target).is_file()


@needs_tvm
def test_availability_reasons():
    ok, reason = availability(load_target("tvm-llvm"))
    assert ok and "llvm" in reason and "untuned" in reason
    ok, reason = availability(load_target("tvm-cuda"))
    if not tvm_backend.gpu_present():
        assert not ok and "no CUDA GPU" in reason


def test_cuda_arch_auto_follows_the_visible_gpu(tmp_path, monkeypatch):
    options = load_target("tvm-cuda").options
    assert options["target"]["arch"] == "auto"
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi: compile ahead for the default arch
    assert tvm_backend.target_dict(options)["arch"] == tvm_backend.DEFAULT_CUDA_ARCH
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 9.0\n")
    smi.chmod(0o755)
    assert tvm_backend.target_dict(options)["arch"] == "sm_90"
    pinned = dict(options, target={"kind": "cuda", "arch": "sm_86"})
    assert tvm_backend.target_dict(pinned)["arch"] == "sm_86"


def test_kernel_names_split_into_ops():
    assert tvm_backend.kernel_ops("fused_conv2d1_add_relu") == ["conv2d", "add", "relu"]
    assert tvm_backend.kernel_ops("fused_max_pool2d_add3") == ["max_pool2d", "add"]
    assert tvm_backend.kernel_ops("fused_conv2d12_add7_tir_sigmoid_multiply") == [
        "conv2d",
        "add",
        "sigmoid",
        "multiply",
    ]
    assert tvm_backend.primary_op(["add", "conv2d"]) == "conv2d"


def test_cache_key_covers_target_and_tuning():
    spec = {"kind": "llvm", "mcpu": "znver4", "num-cores": 1}
    untuned = tvm_backend.target_hash(spec, tuned=False, trials=0)
    assert untuned == tvm_backend.target_hash(spec, tuned=False, trials=500)  # trials irrelevant untuned
    assert untuned != tvm_backend.target_hash(dict(spec, mcpu="skylake"), tuned=False, trials=0)
    assert tvm_backend.target_hash(spec, True, 100) != tvm_backend.target_hash(spec, True, 200) != untuned


@needs_tvm
def test_tvm_llvm_harness_on_tiny_model(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOGO_CACHE_DIR", str(tmp_path / "cache"))
    model = make_tiny_cnn(batch=1)
    path = tmp_path / "tiny.onnx"
    onnx.save(model, path)
    m = measure(path, "tvm-llvm", per_node=True, **QUICK)
    assert m.runs >= QUICK["min_runs"] and all(s > 0 for s in m.samples_ms)
    assert not m.deterministic
    assert m.method["tuned"] is False and m.method["cache_hit"] is False
    assert m.method["tvm_target"]["kind"] == "llvm" and m.method["threads"] == 1
    assert m.env["libraries"]["apache-tvm"].startswith("0.27")
    assert m.power_method in ("measured-rapl", "modeled") and m.energy_mj > 0
    kernels = [p for p in m.per_node if p["op_type"] != "runtime"]
    assert any(p["op_type"] == "conv2d" for p in kernels) and all(p["ms"] >= 0 for p in m.per_node)
    # the cached library computes what onnxruntime computes
    options = load_target("tvm-llvm").options
    artifact = tvm_backend.compile_model(tvm_backend.prepare_model(path, options), options)
    assert artifact.cache_hit and not artifact.tuned
    import onnxruntime as ort
    import tvm

    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
    vm = tvm_backend.load_vm(artifact.library, tvm.cpu())
    got = vm["main"](tvm.runtime.tensor(x)).numpy()
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": x}
    )[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@needs_tvm
def test_unimportable_operator_is_named(tmp_path):
    model = _celu_model()
    assert tvm_backend.unsupported_ops(model) == ["Celu"]
    with pytest.raises(UnsupportedOpError, match=r"TVM cannot import operator Celu.*celu0") as info:
        tvm_backend.import_onnx(model)
    assert info.value.exit_code == 2 and "\n" not in info.value.one_line()
    path = tmp_path / "celu.onnx"
    onnx.save(model, path)
    with pytest.raises(MeasurementFailed, match="TVM cannot import operator Celu") as failed:
        measure(path, "tvm-llvm", **QUICK)
    assert failed.value.exit_code == 3


@needs_tvm
@pytest.mark.slow
def test_tuned_compile_writes_and_reuses_its_database(tmp_path, monkeypatch):
    """meta-schedule on the tiny model (minutes on a busy 2-core machine: every builder worker
    imports TVM's tensor intrinsics)."""
    monkeypatch.setenv("AUTOGO_CACHE_DIR", str(tmp_path / "cache"))
    options = dict(load_target("tvm-llvm").options, tune=True, trials=4, max_trials_per_task=1)
    model = tvm_backend.prepare_model(make_tiny_cnn(batch=1), options)
    first = tvm_backend.compile_model(model, options)
    assert first.tuned and first.trials == 4 and not first.cache_hit and first.tune_s > 0
    assert (Path(first.tuning_db) / "database_tuning_record.json").is_file()
    again = tvm_backend.compile_model(model, options)
    assert again.cache_hit and again.library == first.library
    fewer = tvm_backend.compile_model(model, dict(options, trials=2))  # the database already holds them
    assert fewer.tuned and not fewer.cache_hit and fewer.tuning_db == first.tuning_db
    assert fewer.library != first.library
