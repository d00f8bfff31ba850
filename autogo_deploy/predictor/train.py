"""Training of the PSC predictor: NB201 accuracy + HELP latencies (+ FBNet, + own measurements).

One sample = one graph with whatever labels exist for it (NaN = missing): three accuracies and a
latency (and energy) per known target. Every epoch each sample gets a fresh random PSC split (a depth
window as S), as AutoGO trains its PSC predictor, so predictions do not hinge on where S lies;
a share of samples uses the default whole-graph split that `Predictor.predict` uses.

Losses: MSE on standardised logit accuracies; a Huber loss on log(predicted / measured) latency and
energy (relative error is what "within ±10%" measures, and Huber keeps a few outlier measurements —
HW-NAS-Bench's Pixel 3 has 0.003 ms entries — from dominating), averaged per target first so that a
target with 200 measurements counts as much as one with 8000 (pooling all labels drowned our own
ort-cpu rows; a separate energy mean over those few rows bent the basis away from HELP's devices).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from autogo_deploy.predictor.features import GraphTensors, default_parts, window_parts


@dataclass
class TrainConfig:
    hidden: int = 64
    layers: int = 4
    basis: int = 8
    epochs: int = 25
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-5
    seed: int = 0
    threads: int = 1  # one intra-op thread: on busy shared cores, 2 threads ran 10-20x slower (spin-waits)
    acc_weight: float = 1.0
    lat_weight: float = 1.0
    energy_weight: float = 0.5
    default_split_share: float = 0.3
    time_budget_s: float | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainSet:
    graphs: list[GraphTensors]
    acc: np.ndarray  # [S, 3] percent, NaN = missing
    lat: np.ndarray  # [S, D] ms, NaN = missing
    energy: np.ndarray  # [S, D] mJ, NaN = missing
    devices: list[str]
    keys: list[str]  # provenance of each sample, e.g. "nb201:<arch>" / "fbnet:<ops>" / "db:<id>"

    def __len__(self) -> int:
        return len(self.graphs)


def acc_transform(acc_percent: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(acc_percent, np.float64) / 100.0, 1e-3, 1 - 1e-3)
    return np.log(p / (1 - p))


def acc_inverse(logit: np.ndarray) -> np.ndarray:
    return 100.0 / (1.0 + np.exp(-np.asarray(logit, np.float64)))


def train(ts: TrainSet, cfg: TrainConfig, *, log: Callable[[str], None] | None = None) -> tuple[object, dict]:
    """Train a PSCModel on `ts`; returns (model, stats) where stats holds the accuracy scaling."""
    import torch
    from torch.nn import functional as F

    from autogo_deploy.predictor.batching import collate
    from autogo_deploy.predictor.model import PSCModel

    torch.manual_seed(cfg.seed)
    torch.set_num_threads(max(1, cfg.threads))
    rng = np.random.default_rng(cfg.seed)
    model = PSCModel(hidden=cfg.hidden, layers=cfg.layers, basis=cfg.basis, devices=ts.devices)
    need_acc = cfg.acc_weight > 0
    t_acc = acc_transform(np.nan_to_num(ts.acc, nan=50.0))
    t_acc[np.isnan(ts.acc)] = np.nan
    mu = np.nanmean(t_acc, axis=0) if np.isfinite(t_acc).any() else np.zeros(3)
    sd = np.nanstd(t_acc, axis=0) if np.isfinite(t_acc).any() else np.ones(3)
    mu, sd = np.nan_to_num(mu), np.where(np.nan_to_num(sd) > 0, np.nan_to_num(sd), 1.0)
    z_acc = torch.tensor((t_acc - mu) / sd, dtype=torch.float32)
    lat = torch.tensor(ts.lat, dtype=torch.float32)
    energy = torch.tensor(ts.energy, dtype=torch.float32)
    _init_embeddings(model, ts)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = max(1, math.ceil(len(ts) / cfg.batch_size))
    total = cfg.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total, pct_start=0.1)
    start = time.monotonic()
    history = []
    for epoch in range(cfg.epochs):
        model.train()
        order = rng.permutation(len(ts))
        sums = np.zeros(3)
        for s in range(steps_per_epoch):
            idx = order[s * cfg.batch_size : (s + 1) * cfg.batch_size]
            parts = [_random_parts(ts.graphs[i], rng, cfg.default_split_share) for i in idx]
            out = model(collate([ts.graphs[i] for i in idx], parts), need_acc=need_acc)
            loss = torch.zeros(())
            ya = z_acc[idx]
            ma = torch.isfinite(ya)
            if need_acc and ma.any():
                la = F.mse_loss(out["acc"][ma], ya[ma])
                loss = loss + cfg.acc_weight * la
                sums[0] += float(la.detach())
            # every target weighs the same whatever its number of labels (a target measured on 200
            # graphs counts as much as one measured on 8000), energy labels half as much as latency
            terms = []
            for j, (labels, emb, weight) in enumerate(
                (
                    (lat[idx], model.lat_embeddings(), 1.0),
                    (energy[idx], model.energy_embeddings(), cfg.energy_weight),
                ),
                start=1,
            ):
                m = torch.isfinite(labels)
                if not m.any():
                    continue
                pred = torch.log((out["basis"] @ emb.T).clamp_min(1e-6))
                err = torch.where(m, pred - torch.log(labels.nan_to_num(1.0).clamp_min(1e-6)), 0.0)
                per = F.smooth_l1_loss(err, torch.zeros_like(err), beta=0.1, reduction="none").sum(0)
                count = m.sum(0)
                present = count > 0
                per_target = per[present] / count[present]
                terms.append(weight * per_target)
                sums[j] += float(per_target.mean().detach())
            if terms:
                loss = loss + cfg.lat_weight * torch.cat(terms).mean()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
        elapsed = time.monotonic() - start
        history.append({"epoch": epoch + 1, "acc_loss": sums[0] / steps_per_epoch,
                        "lat_loss": sums[1] / steps_per_epoch, "energy_loss": sums[2] / steps_per_epoch,
                        "elapsed_s": round(elapsed, 1)})  # fmt: skip
        if log:
            h = history[-1]
            log(f"epoch {epoch + 1}/{cfg.epochs} acc {h['acc_loss']:.4f} lat {h['lat_loss']:.4f} "
                f"energy {h['energy_loss']:.4f} ({elapsed:.0f} s)")  # fmt: skip
        if cfg.time_budget_s is not None and elapsed > cfg.time_budget_s:
            if log:
                log(f"time budget {cfg.time_budget_s:.0f} s reached after epoch {epoch + 1}")
            break
    model.eval()
    stats = {"acc_mu": mu.tolist(), "acc_sd": sd.tolist(), "history": history,
             "train_seconds": round(time.monotonic() - start, 1), "samples": len(ts)}  # fmt: skip
    return model, stats


def _random_parts(gt: GraphTensors, rng: np.random.Generator, default_share: float) -> np.ndarray:
    if rng.random() < default_share:
        return default_parts(gt)
    lo = rng.uniform(0.0, 0.85)
    hi = min(1.0 + 1e-6, lo + rng.uniform(0.08, 0.5))
    return window_parts(gt, lo, hi)


def _init_embeddings(model, ts: TrainSet) -> None:
    """Start each target's embedding so its mean prediction matches its mean measurement."""
    import torch

    with torch.no_grad():
        for store, labels in ((model.lat_raw, ts.lat), (model.energy_raw, ts.energy)):
            for d in range(labels.shape[1]):
                col = labels[:, d]
                col = col[np.isfinite(col)]
                if col.size:
                    # the basis sums to roughly 3 per column at the start; share the median evenly
                    per = float(np.median(col)) / (3.0 * store.shape[1])
                    store[d].fill_(float(np.log(np.expm1(max(per, 1e-6)))))


def predict_raw(model, graphs: list[GraphTensors], parts: list[np.ndarray] | None = None,
                batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(standardised accuracy outputs [S, 3], latency basis [S, K + 1]) in input order."""
    import torch

    from autogo_deploy.predictor.batching import collate

    accs, bases = [], []
    model.eval()
    with torch.no_grad():
        for s in range(0, len(graphs), batch_size):
            chunk = graphs[s : s + batch_size]
            p = parts[s : s + batch_size] if parts is not None else [default_parts(g) for g in chunk]
            out = model(collate(chunk, p))
            accs.append(out["acc"].double().numpy())
            bases.append(out["basis"].double().numpy())
    if not accs:
        return np.zeros((0, 3)), np.zeros((0, model.lat_raw.shape[1]))
    return np.concatenate(accs), np.concatenate(bases)
