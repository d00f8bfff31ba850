"""Shared fixtures: tiny models generated in code (no binary blobs in the repository) and one small
segment database built from the zoo corpus, shared by the segment, proposer and search tests."""

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


SMALL_DB = {
    "families": ["nb201", "nb101", "fbnet", "resnet", "mobilenet_v2", "edsr"],
    "limit": 10,
    "vocab_size": 400,
}


@pytest.fixture(scope="session")
def small_db_path(tmp_path_factory):
    from autogo_deploy.segments.build import build

    path = tmp_path_factory.mktemp("segdb") / "small.db"
    build(path, jobs=1, chunk_size=8, **SMALL_DB)
    return path


@pytest.fixture(scope="session")
def small_db(small_db_path):
    from autogo_deploy.segments.db import SegmentDB

    db = SegmentDB(small_db_path)
    yield db
    db.close()
