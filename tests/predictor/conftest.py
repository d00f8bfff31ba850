"""Predictor test fixtures: a tiny checkpoint trained in seconds on a few NB201 rows of ../shared/data."""

from __future__ import annotations

import os

import pytest
from predictor_fixtures import tiny_trainset

from autogo_deploy.paths import shared_data_dir


@pytest.fixture(scope="session")
def cache_env(tmp_path_factory):
    """Point the cache folder at a temporary one for the whole session (no user state touched)."""
    path = tmp_path_factory.mktemp("autogo_cache")
    old = os.environ.get("AUTOGO_CACHE_DIR")
    os.environ["AUTOGO_CACHE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("AUTOGO_CACHE_DIR", None)
    else:
        os.environ["AUTOGO_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, cache_env):
    """A 2-epoch, 16-wide model saved as a real checkpoint folder."""
    from autogo_deploy.predictor import checkpoint as ckpt
    from autogo_deploy.predictor.train import TrainConfig, train

    if shared_data_dir(required=False) is None:
        pytest.skip("../shared/data not present")
    ts = tiny_trainset()
    cfg = TrainConfig(hidden=16, layers=2, basis=4, epochs=2, batch_size=16, seed=0)
    model, stats = train(ts, cfg)
    folder = tmp_path_factory.mktemp("ckpt")
    manifest = {"acc_mu": stats["acc_mu"], "acc_sd": stats["acc_sd"], "energy_devices": [ts.devices[0]],
                "train": {"config": cfg.to_dict(), "rows": "train", "split_seed": 0}}  # fmt: skip
    return ckpt.save(model, manifest, folder)
