"""Helpers shared by the predictor tests (imported as a plain module, like tests/zoo/zoo_reference.py)."""

from __future__ import annotations

import numpy as np
import pytest

from autogo_deploy.paths import shared_data_dir

needs_data = pytest.mark.skipif(shared_data_dir(required=False) is None, reason="../shared/data not present")


def tiny_trainset(n: int = 48, seed: int = 0):
    from autogo_deploy.predictor import datasets as ds
    from autogo_deploy.predictor.arch_graphs import nb201_tensors
    from autogo_deploy.predictor.train import TrainSet

    acc, lat = ds.nb201_accuracy(), ds.nb201_latency()
    rows = np.sort(np.random.default_rng(seed).permutation(len(acc.archs))[:n])
    lat_y = lat.values[rows][:, :3]
    return TrainSet(
        graphs=[nb201_tensors(acc.archs[i]) for i in rows],
        acc=acc.values[rows],
        lat=lat_y,
        energy=np.where(np.arange(3) == 0, lat_y * 2.5, np.nan),  # one target with (synthetic) energy
        devices=list(lat.columns[:3]),
        keys=[f"nb201:{acc.archs[i]}" for i in rows],
    )
