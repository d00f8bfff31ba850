"""Shared fixtures: tiny models generated in code (no binary blobs in the repository)."""

from __future__ import annotations

import onnx
import pytest
from tiny_models import make_tiny_cnn


@pytest.fixture
def tiny_model() -> onnx.ModelProto:
    return make_tiny_cnn()


@pytest.fixture
def tiny_path(tmp_path, tiny_model):
    path = tmp_path / "tiny.onnx"
    onnx.save(tiny_model, path)
    return path
