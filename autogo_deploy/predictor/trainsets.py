"""Assemble training sets: NB201 (accuracy + nine HELP latencies), FBNet latencies, own measurements."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from autogo_deploy.predictor import datasets as ds
from autogo_deploy.predictor.arch_graphs import fbnet_tensors, nb201_tensors
from autogo_deploy.predictor.tensor_cache import cached_graphs
from autogo_deploy.predictor.train import TrainSet


def nb201_graphs(archs: Sequence[str], *, cache: bool = True, progress=None):
    return cached_graphs("nb201", list(archs), nb201_tensors, cache=cache, progress=progress)


def fbnet_graphs(archs: Sequence[str], *, cache: bool = True, progress=None):
    return cached_graphs("fbnet", list(archs), fbnet_tensors, cache=cache, progress=progress)


def build(
    *,
    nb201_rows: np.ndarray | None = None,
    exclude_devices: Sequence[str] = (),
    fbnet_rows: int = 0,
    own: list[dict] | None = None,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> TrainSet:
    """A TrainSet over the chosen NB201 rows, `fbnet_rows` random FBNet rows and own measurements.

    own: rows from collect.MeasurementStore.training_rows() — dicts with graph tensors, target,
    latency_ms and energy_mj. Devices in `exclude_devices` lose every label (leave-one-device-out).
    """
    acc, lat = ds.nb201_accuracy(), ds.nb201_latency()
    rows = np.arange(len(acc.archs)) if nb201_rows is None else np.asarray(nb201_rows)
    devices = [d for d in lat.columns if d not in exclude_devices]
    fb = ds.fbnet_latency() if fbnet_rows else None
    if fb is not None:
        devices += [d for d in fb.columns if d not in devices and d not in exclude_devices]
    own = own or []
    for r in own:
        if r["target"] not in devices and r["target"] not in exclude_devices:
            devices.append(r["target"])
    dindex = {d: i for i, d in enumerate(devices)}

    def progress(i, n):
        if log:
            log(f"graph tensors {i}/{n}")

    graphs = nb201_graphs([acc.archs[i] for i in rows], progress=progress)
    keys = [f"nb201:{acc.archs[i]}" for i in rows]
    acc_y = acc.values[rows].copy()
    lat_y = np.full((len(rows), len(devices)), np.nan)
    for j, d in enumerate(lat.columns):
        if d in dindex:
            lat_y[:, dindex[d]] = lat.values[rows, j]
    blocks_acc, blocks_lat = [acc_y], [lat_y]
    if fb is not None:
        pick = np.sort(np.random.default_rng(seed).permutation(len(fb.archs))[:fbnet_rows])
        graphs += fbnet_graphs([fb.archs[i] for i in pick], progress=progress)
        keys += [f"fbnet:{fb.archs[i]}" for i in pick]
        y = np.full((len(pick), len(devices)), np.nan)
        for j, d in enumerate(fb.columns):
            if d in dindex:
                y[:, dindex[d]] = fb.values[pick, j]
        blocks_acc.append(np.full((len(pick), 3), np.nan))
        blocks_lat.append(y)
    energy_blocks = [np.full_like(b, np.nan) for b in blocks_lat]
    if own:
        y = np.full((len(own), len(devices)), np.nan)
        e = np.full((len(own), len(devices)), np.nan)
        for i, r in enumerate(own):
            if r["target"] in dindex:
                y[i, dindex[r["target"]]] = r["latency_ms"]
                if r.get("energy_mj"):
                    e[i, dindex[r["target"]]] = r["energy_mj"]
        graphs += [r["graph"] for r in own]
        keys += [f"db:{r['id']}" for r in own]
        blocks_acc.append(np.full((len(own), 3), np.nan))
        blocks_lat.append(y)
        energy_blocks.append(e)
    return TrainSet(
        graphs=graphs,
        acc=np.concatenate(blocks_acc),
        lat=np.concatenate(blocks_lat),
        energy=np.concatenate(energy_blocks),
        devices=devices,
        keys=keys,
    )
