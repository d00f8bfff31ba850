"""Fixtures for the segment database tests: one small corpus database shared by the module tests."""

from __future__ import annotations

import pytest

SMALL = {
    "families": ["nb201", "nb101", "fbnet", "resnet", "mobilenet_v2", "edsr"],
    "limit": 10,
    "vocab_size": 400,
}


@pytest.fixture(scope="session")
def small_db_path(tmp_path_factory):
    from autogo_deploy.segments.build import build

    path = tmp_path_factory.mktemp("segdb") / "small.db"
    build(path, jobs=1, chunk_size=8, **SMALL)
    return path


@pytest.fixture(scope="session")
def small_db(small_db_path):
    from autogo_deploy.segments.db import SegmentDB

    db = SegmentDB(small_db_path)
    yield db
    db.close()
