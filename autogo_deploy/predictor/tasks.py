"""What the `predictor` commands do, as library functions (the CLI only parses and renders)."""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from autogo_deploy.errors import InputError
from autogo_deploy.predictor import checkpoint as ckpt
from autogo_deploy.predictor.fewshot import (
    COUNT_FEATURES,
    NB201_FEATURES,
    TargetEmbedding,
    count_features,
    fit_embedding,
    log_normalised,
    nb201_count_features,
)
from autogo_deploy.predictor.own import HOLDOUT_FRACTION, own_holdout, own_rows

Log = Callable[[str], None] | None


def train_checkpoint(
    out: str | Path | None = None,
    *,
    cfg=None,
    rows: str = "train",
    fbnet_rows: int = 0,
    own_db: str | Path | None = None,
    own_targets: tuple[str, ...] = (),
    exclude_devices: tuple[str, ...] = (),
    holdout_fraction: float = HOLDOUT_FRACTION,
    log: Log = None,
) -> ckpt.Checkpoint:
    """Train and save a checkpoint. rows='train' keeps the held-out 20% NB201 split out of training.

    Own measurements (collect.py) of `own_targets` enter training; a seeded `holdout_fraction` of them
    stays out so `evaluate` can report honest held-out errors.
    """
    from autogo_deploy.predictor import datasets as ds
    from autogo_deploy.predictor import trainsets
    from autogo_deploy.predictor.train import TrainConfig, train

    cfg = cfg or TrainConfig()
    if rows not in ("train", "all"):
        raise InputError(f"rows must be 'train' or 'all', got {rows!r}")
    tr, _ = ds.nb201_split(cfg.seed)
    own, own_held = own_rows(own_db, own_targets, holdout_fraction, cfg.seed) if own_targets else ([], [])
    start = time.monotonic()
    ts = trainsets.build(
        nb201_rows=tr if rows == "train" else None,
        exclude_devices=exclude_devices,
        fbnet_rows=fbnet_rows,
        own=own,
        seed=cfg.seed,
        log=log,
    )
    if log:
        log(f"training on {len(ts)} graphs, targets: {', '.join(ts.devices)}")
    model, stats = train(ts, cfg, log=log)
    energy_devices = [d for j, d in enumerate(ts.devices) if np.isfinite(ts.energy[:, j]).any()]
    manifest = {
        "acc_mu": stats["acc_mu"],
        "acc_sd": stats["acc_sd"],
        "acc_outputs": ["cifar10", "cifar100", "imagenet16_120"],
        "energy_devices": energy_devices,
        # how the energy labels were obtained per target (measure()'s power method: measured or modeled)
        "energy_methods": {d: sorted({str(r.get("power_method")) for r in own if r["target"] == d}) for d in energy_devices},
        "train": {"config": cfg.to_dict(), "rows": rows, "split_seed": cfg.seed, "test_fraction": 0.2,
                  "fbnet_rows": fbnet_rows, "own_targets": list(own_targets),
                  "own_rows": len(own), "own_holdout_ids": [r["id"] for r in own_held],
                  "own_max_id": max((r["id"] for r in own + own_held), default=0),
                  "exclude_devices": list(exclude_devices), "samples": len(ts),
                  "seconds_total": round(time.monotonic() - start, 1),
                  "seconds_training": stats["train_seconds"], "history": stats["history"]},
        "data": "../shared/data: NB201 accuracy/latency train10k (NATS-Bench, HELP), FBNet latency (HELP)",
    }  # fmt: skip
    return ckpt.save(model, manifest, out or ckpt.cache_checkpoint_dir())


def nb201_all_graphs(log: Log = None):
    from autogo_deploy.predictor.datasets import all_nb201_archs
    from autogo_deploy.predictor.trainsets import nb201_graphs

    archs = all_nb201_archs()

    def progress(i, n):
        if log:
            log(f"graph tensors {i}/{n} (cached after the first run)")

    return archs, nb201_graphs(archs, progress=progress)


def check_space(space: str) -> str:
    if space != "nb201":
        raise InputError(f"space {space!r} is not supported here", hint="valid: nb201")
    return space


def accuracy_space(predictor, space: str = "nb201", log: Log = None) -> tuple[list[str], np.ndarray]:
    check_space(space)
    archs, graphs = nb201_all_graphs(log)
    if log:
        log(f"predicting the accuracy of {len(archs):,} archs (~10-30 s)")
    acc, _ = predictor.raw(graphs)
    return archs, acc


def _same_value(a: float, b: float) -> bool:
    """Two measurements of one arch agree (relative difference at most 1e-9)."""
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)


def read_measurements(path: str | Path, log: Log = None) -> list[tuple[str, float]]:
    """arch_str,latency_ms rows of a CSV (header required), one per arch: a row repeating an earlier
    arch with the same latency is dropped, one with a different latency is an error."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"measurements file {path} not found")
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: Excel's "CSV UTF-8" starts with a BOM
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    cols = set(reader.fieldnames or [])
    if not {"arch_str", "latency_ms"} <= cols:
        raise InputError(
            f"{path} needs columns arch_str,latency_ms (has {', '.join(sorted(cols)) or 'none'})"
        )
    seen: dict[str, tuple[int, float]] = {}  # arch -> (line, latency)
    duplicates = 0
    for i, row in enumerate(reader, start=2):
        try:
            value = float(row["latency_ms"])
        except (TypeError, ValueError):
            raise InputError(f"{path}:{i}: latency_ms {row['latency_ms']!r} is not a number") from None
        arch = (row["arch_str"] or "").strip()
        if arch in seen:
            line, first = seen[arch]
            if not _same_value(value, first):
                raise InputError(
                    f"{path}:{i}: {arch} measured again with latency_ms {value} "
                    f"(line {line} has {first}); keep one row per arch"
                )
            duplicates += 1
            continue
        seen[arch] = (i, value)
    if not seen:
        raise InputError(f"{path} has no rows")
    if duplicates and log:
        log(f"{path}: {duplicates} duplicate row(s) merged, {len(seen)} distinct archs")
    return [(arch, value) for arch, (_, value) in seen.items()]


def fit_nb201_embedding(
    predictor, measurements: list[tuple[str, float]], name: str, *, features: str = COUNT_FEATURES
) -> TargetEmbedding:
    """Fit a target from measured NB201 archs. `features` names the op-count features the
    least-squares candidate uses (fewshot.fit_embedding): COUNT_FEATURES (from the ONNX graph; the
    head then applies to any graph) or NB201_FEATURES (the arch string's edge ops; NB201 archs only).
    The fit sees each arch once (a twin would sit in both folds of its leave-one-out CV)."""
    from autogo_deploy.predictor.arch_graphs import nb201_tensors
    from autogo_deploy.predictor.datasets import reference_archs

    distinct: dict[str, float] = {}
    for a, v in measurements:
        if a in distinct and not _same_value(v, distinct[a]):
            raise InputError(f"arch {a} has two different latencies: {distinct[a]} and {v} ms")
        distinct.setdefault(a, v)
    if len(distinct) < 3:
        raise InputError(f"need at least 3 distinct reference archs, got {len(distinct)}")
    archs = list(distinct)
    y = np.array(list(distinct.values()), np.float64)
    graphs = [nb201_tensors(a) for a in archs]  # validates every arch string
    basis = predictor.basis(graphs)
    x = nb201_count_features(archs, basis) if features == NB201_FEATURES else count_features(graphs, basis)
    z, report = fit_embedding(basis, y, predictor.z_train(), ref_features=x, features=features)
    refs = set(reference_archs("nb201"))
    report["reference_archs_used"] = sum(a in refs for a in archs)
    return TargetEmbedding(
        name=name,
        z_latency=z.tolist(),
        method="fewshot",
        checkpoint=predictor.id,
        reference=dict(zip(archs, y.tolist(), strict=True)),
        reference_log_norm=log_normalised(y).tolist(),
        fit=report,
        head=report.get("head", {}),
    )


def fewshot_space(predictor, measurements_csv, space: str = "nb201", log: Log = None):
    """Predicted latency of every arch of the space from measurements of a few (HELP's setting: the
    measurements are of the PyTorch cells, so the least-squares candidate counts the arch's edge ops)."""
    check_space(space)
    emb = fit_nb201_embedding(
        predictor, read_measurements(measurements_csv, log), name=Path(measurements_csv).stem,
        features=NB201_FEATURES,
    )  # fmt: skip
    archs, graphs = nb201_all_graphs(log)
    if log:
        log(f"predicting the latency of {len(archs):,} archs (~10-30 s)")
    basis = predictor.basis(graphs)
    lat = basis @ np.asarray(emb.z_latency)
    if emb.head_applies(NB201_FEATURES):  # as Predictor.latency: G · z where the linear head gives <= 0
        head = emb.head_predict(nb201_count_features(archs, basis))
        lat = np.where(head > 0, head, lat)
    return archs, lat, emb


def calibrate(predictor, target, *, measure_kw: dict | None = None, log: Log = None) -> TargetEmbedding:
    """Measure the 10 reference archs on `target` (a name, a TOML path or a Target), fit and store its
    embedding in the cache folder."""
    from autogo_deploy.backends.npu_sim import fast_stand_in
    from autogo_deploy.measure import measure
    from autogo_deploy.predictor.arch_graphs import nb201_tensors
    from autogo_deploy.predictor.datasets import reference_archs
    from autogo_deploy.predictor.inference import embeddings_dir
    from autogo_deploy.target import load_target
    from autogo_deploy.zoo import nb201

    tgt, _ = fast_stand_in(load_target(target))  # npu-sim: TVM's fusion rule on ONNX, same figures
    archs = list(reference_archs("nb201"))
    lat, energy = [], []
    for i, arch in enumerate(archs):
        m = measure(nb201(arch).SerializeToString(), tgt, **(measure_kw or {}))
        lat.append(m.p50_ms)
        energy.append(m.energy_mj)
        if log:
            log(f"[{i + 1}/{len(archs)}] {arch}: {m.p50_ms:.3f} ms")
    emb = fit_nb201_embedding(predictor, list(zip(archs, lat, strict=True)), tgt.name)
    if all(e is not None and e > 0 for e in energy):
        basis = predictor.basis([nb201_tensors(a) for a in archs])
        ze, rep = fit_embedding(basis, np.array(energy), predictor.z_train())
        emb.z_energy = ze.tolist()
        emb.fit["energy"] = rep
    emb.fit["reference_energy_mj"] = energy
    emb.save(embeddings_dir(predictor.id) / f"{tgt.name}.json")
    return emb


def csv_text(header: tuple[str, str], rows) -> str:
    """The CSV document (header + arch,value rows, values to 6 significant digits)."""
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(header)
    for a, v in rows:
        w.writerow([a, f"{float(v):.6g}"])
    return buf.getvalue()


def rank_metrics(pred, true) -> dict:
    from scipy.stats import kendalltau, spearmanr

    pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    return {
        "spearman": float(spearmanr(pred, true)[0]),
        "kendall": float(kendalltau(pred, true)[0]),
        "n": int(len(true)),
    }


def latency_metrics(pred, true) -> dict:
    pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    out = rank_metrics(pred, true)
    rel = np.abs(pred / true - 1.0)
    out.update({"within_10pct": float(np.mean(rel <= 0.10)), "median_rel_error": float(np.median(rel))})
    return out


def evaluate(predictor, *, db=None, log: Log = None) -> dict:
    """Held-out figures of a checkpoint: NB201 accuracy (20% split), trained HELP devices on the same
    held-out archs, and own-target measurements held out of training."""
    from autogo_deploy.predictor import datasets as ds
    from autogo_deploy.predictor.trainsets import nb201_graphs

    man = predictor.checkpoint.manifest.get("train", {})
    seed = int(man.get("split_seed", 0))
    _, te = ds.nb201_split(seed)
    if man.get("rows") == "all" and log:
        log(
            "warning: this checkpoint was trained on all NB201 rows; the 'held-out' split was seen in training"
        )
    acc, lat = ds.nb201_accuracy(), ds.nb201_latency()
    graphs = nb201_graphs([acc.archs[i] for i in te])
    pred_acc, basis = predictor.raw(graphs)
    report = {"checkpoint": predictor.id, "held_out_rows": int(len(te)),
              "accuracy_cifar10": rank_metrics(pred_acc, acc.values[te, 0]), "latency": {}, "own": {},
              "own_by_space": {}}  # fmt: skip
    for j, d in enumerate(lat.columns):
        if d in predictor.model.devices:
            z = np.asarray(predictor.embedding(d).z_latency)
            report["latency"][d] = latency_metrics(basis @ z, lat.values[te, j])
    held = own_holdout(predictor, db)
    by_target: dict[str, list[dict]] = {}
    for r in held:
        by_target.setdefault(r["target"], []).append(r)
    for t, rows in by_target.items():
        try:  # trained, kept in the checkpoint folder or calibrated on this machine
            emb = predictor.embedding(t)
        except InputError:
            continue
        graphs = [r["graph"] for r in rows]
        pred = predictor.latency(emb, graphs, predictor.basis(graphs))
        y = np.array([r["latency_ms"] for r in rows])
        report["own"][t] = latency_metrics(pred, y)
        spaces = np.array([r["space"] for r in rows])
        if len(set(spaces)) > 1:  # NB201 networks and zoo mutants are different questions
            report["own_by_space"][t] = {
                sp: latency_metrics(pred[spaces == sp], y[spaces == sp]) for sp in sorted(set(spaces))
            }
    return report
