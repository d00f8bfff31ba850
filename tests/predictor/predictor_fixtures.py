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


def store_with_rows(path, target: str, n: int, spaces=("nb201", "zoo-walk")):
    """A measurement store with n NB201 networks of `target` (latency rising with MACs so a fit has
    something to find), alternating between `spaces`; returns the store's row ids in order."""
    from types import SimpleNamespace

    from autogo_deploy.graph import load
    from autogo_deploy.predictor.collect import MeasurementStore
    from autogo_deploy.zoo import nb201
    from autogo_deploy.zoo.nb201 import arch_from_ordinal

    store = MeasurementStore(path)
    try:
        for i in range(n):
            arch = arch_from_ordinal(i * 1009 % 15625)
            data = nb201(arch).SerializeToString()
            g = load(data)
            ms = 0.2 + g.totals()["macs"] / 1e8
            m = SimpleNamespace(p50_ms=ms, mean_ms=None, p90_ms=None, ci95_rel=0.01, runs=30, energy_mj=3 * ms,
                                power_method="modeled", method={}, env={})  # fmt: skip
            store.add(target, spaces[i % len(spaces)], arch, data, g, m)
        return [r["id"] for r in store.rows()]
    finally:
        store.close()
