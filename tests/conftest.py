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


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Tests never read or write the user's cache: every run starts as on a fresh machine."""
    import os

    old = os.environ.get("AUTOGO_CACHE_DIR")
    os.environ["AUTOGO_CACHE_DIR"] = str(tmp_path_factory.mktemp("autogo-cache"))
    yield
    if old is None:
        os.environ.pop("AUTOGO_CACHE_DIR", None)
    else:
        os.environ["AUTOGO_CACHE_DIR"] = old
