"""tvm-cuda: compiles without a GPU; the runtime path runs only where an NVIDIA GPU is visible."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
from tiny_models import make_tiny_cnn

from autogo_deploy.backends import availability
from autogo_deploy.backends import tvm as tvm_backend
from autogo_deploy.measure import measure
from autogo_deploy.target import load_target

pytestmark = pytest.mark.skipif(importlib.util.find_spec("tvm") is None, reason="apache-tvm not installed")


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="CUDA toolkit (nvcc) not installed")
def test_tvm_cuda_compiles_without_a_gpu(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOGO_CACHE_DIR", str(tmp_path / "cache"))
    target = load_target("tvm-cuda")
    artifact = tvm_backend.compile_model(make_tiny_cnn(batch=1), target.options)
    assert artifact.target["kind"] == "cuda" and not artifact.tuned and not artifact.cache_hit
    library = Path(artifact.library)
    assert library.is_file() and library.stat().st_size > 0
    assert str(library).startswith(str(tmp_path / "cache" / "tvm"))


def test_tvm_cuda_runtime(tmp_path, monkeypatch):
    target = load_target("tvm-cuda")
    ok, reason = availability(target)
    if not ok:
        pytest.skip(f"tvm-cuda runtime path: {reason}")
    monkeypatch.setenv("AUTOGO_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "tiny.onnx"
    import onnx

    onnx.save(make_tiny_cnn(batch=1), path)
    m = measure(path, target, per_node=True, min_runs=5, max_runs=50, time_cap_s=5.0, warmup=2)
    assert all(s > 0 for s in m.samples_ms) and m.method["tvm_target"]["kind"] == "cuda"
    assert m.power_method == "measured-nvml"
