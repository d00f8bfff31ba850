"""Predictor evaluation: accuracy ranking, few-shot latency (leave one device out), own target, training time.

    .venv/bin/python benchmarks/predictor_eval.py                # full study (long: run with nice -n 10)
    .venv/bin/python benchmarks/predictor_eval.py --quick        # 3 devices, fewer epochs
    .venv/bin/python benchmarks/predictor_eval.py --ship         # also install the main model as the
                                                                 # packaged default checkpoint
    .venv/bin/python benchmarks/predictor_eval.py --ship --reuse # re-evaluate without retraining
    .venv/bin/python benchmarks/predictor_eval.py --only-fewshot --reuse  # only (b), merged into --out
    .venv/bin/python benchmarks/predictor_eval.py --checkpoint autogo_deploy/predictor/checkpoint \
        --skip-lodo --own npu-sim --out …          # score a given checkpoint, no training

Every figure is printed next to simple baselines measured in the same run on the same rows:
(a) NB201 CIFAR-10 accuracy, held-out 20%: PSC GNN vs gradient-boosted trees on the one-hot cell;
(b) few-shot latency, leave one of HELP's nine device settings out, 10 reference measurements:
    PSC GNN few-shot fit (basis + target embedding, or least squares on MACs + the arch's op counts
    where leave-one-out CV over the 10 references prefers it) vs least squares on [MACs, op counts] and on MACs alone,
    plus a *ceiling* reference that is not few-shot: trees trained on 80% of that device's own data;
(c) own target (ort-cpu measurements collected by `predictor collect`), held-out 20%: PSC GNN (its
    basis with the target embedding fitted on the collected measurements outside the held-out set,
    `predictor calibrate --from-db`; the embedding learnt in training reported next to it) vs
    least squares on [MACs, activation bytes, nodes] and on MACs alone, fitted on the training rows,
    reported by subset (NB201 networks, one-step zoo mutants, zoo random-walk mutants): also that
    least squares fitted on the subset's own training rows and, for mutants, the measured parent's
    latency scaled by the MACs ratio, next to the PSC GNN's predicted ratio to that parent;
    a re-measurement of up to --retest held-out networks per subset shows this machine's noise;
(d) wall time of the main (default-checkpoint) training on this machine, one torch thread.
Results: benchmarks/results/predictor_eval.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from predictor_own_study import own_study  # noqa: E402

from autogo_deploy.predictor import baselines as bl  # noqa: E402
from autogo_deploy.predictor import datasets as ds  # noqa: E402
from autogo_deploy.predictor import tasks  # noqa: E402
from autogo_deploy.predictor.own import calibrate_from_store  # noqa: E402
from autogo_deploy.predictor.train import TrainConfig  # noqa: E402

HELP_REPORTED_SPEARMAN = 0.932  # HELP (NeurIPS 2021), mean over six unseen devices, 10 samples


def _scratch() -> Path:
    """Checkpoints the study trains but does not ship live in the cache folder, not the repository."""
    from autogo_deploy.paths import cache_dir

    return cache_dir() / "predictor" / "benchmark"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def accuracy_study(pred, seed: int) -> dict:
    acc = ds.nb201_accuracy()
    tr, te = ds.nb201_split(seed)
    t = time.monotonic()
    gbt = bl.gbt_accuracy(
        [acc.archs[i] for i in tr], acc.values[tr, 0], [acc.archs[i] for i in te], seed=seed
    )
    gbt_s = time.monotonic() - t
    from autogo_deploy.predictor.trainsets import nb201_graphs

    ours, _ = pred.raw(nb201_graphs([acc.archs[i] for i in te]))
    y = acc.values[te, 0]
    return {"n_test": int(len(te)), "psc_gnn": tasks.rank_metrics(ours, y),
            "gbt_onehot": {**tasks.rank_metrics(gbt, y), "fit_seconds": round(gbt_s, 1)},
            "goal": {"spearman": 0.98, "kendall": 0.90}}  # fmt: skip


def _macs(archs) -> np.ndarray:
    from autogo_deploy.predictor.arch_graphs import nb201_tensors
    from autogo_deploy.predictor.features import NUM_OPS

    out = []
    for a in archs:
        g = nb201_tensors(a)
        out.append(float(((np.exp2(g.x[:, NUM_OPS + 12] * 32.0) - 1.0) * g.repeat).sum()))
    return np.round(np.array(out))


def _reuse(folder: Path, cfg: TrainConfig):
    """A checkpoint trained earlier with the same config (--reuse), else None."""
    from autogo_deploy.errors import InputError
    from autogo_deploy.predictor import checkpoint as ckpt

    try:
        ck = ckpt.load(folder)
    except InputError:
        return None
    return ck if ck.manifest.get("train", {}).get("config") == cfg.to_dict() else None


def fewshot_study(devices, cfg: TrainConfig, macs: np.ndarray, reuse: bool = False) -> dict:
    from autogo_deploy.predictor.fewshot import NB201_FEATURES, fit_embedding, nb201_count_features
    from autogo_deploy.predictor.inference import Predictor
    from autogo_deploy.predictor.trainsets import nb201_graphs

    lat = ds.nb201_latency()
    tr, te = ds.nb201_split(cfg.seed)
    refs = list(ds.reference_archs("nb201"))
    pos = {a: i for i, a in enumerate(lat.archs)}
    ri = np.array([pos[a] for a in refs])
    rest = np.setdiff1d(np.arange(len(lat.archs)), ri)
    feats = bl.macs_counts_features(macs, lat.archs)
    graphs = nb201_graphs(list(lat.archs))
    out = {}
    for d in devices:
        j = lat.columns.index(d)
        y = lat.values[:, j]
        t = time.monotonic()
        folder = _scratch() / "lodo" / d
        ck = _reuse(folder, cfg) if reuse else None
        ck = ck or tasks.train_checkpoint(folder, cfg=cfg, exclude_devices=(d,))
        pred = Predictor(ck)
        basis = pred.basis(graphs)
        counts = nb201_count_features(lat.archs, basis)  # what `predictor fewshot --space nb201` uses
        z, rep = fit_embedding(
            basis[ri], y[ri], pred.z_train(), ref_features=counts[ri], features=NB201_FEATURES
        )
        basis_only = basis @ z
        ours = basis_only
        if rep["selected"] == "lsq":
            w = np.asarray(rep["head"]["weights"])
            head = w[0] + counts @ w[1:]
            ours = np.where(head > 0, head, basis_only)  # as tasks.fewshot_space
        lsq = bl.lsq_fit_predict(feats[ri], y[ri], feats)
        macs_only = bl.lsq_fit_predict(feats[ri, :1], y[ri], feats[:, :1])
        from sklearn.ensemble import HistGradientBoostingRegressor

        oh = bl.nb201_onehot(lat.archs)
        ceiling = HistGradientBoostingRegressor(max_iter=600, learning_rate=0.05, random_state=0)
        ceiling.fit(oh[tr], y[tr])
        row = {
            "psc_gnn_fewshot": tasks.latency_metrics(ours[rest], y[rest]),
            "lsq_macs_opcounts": tasks.latency_metrics(lsq[rest], y[rest]),
            "lsq_macs_only": tasks.latency_metrics(macs_only[rest], y[rest]),
            "ceiling_same_device_8000_samples": tasks.latency_metrics(ceiling.predict(oh[te]), y[te]),
            "psc_gnn_fewshot_on_test_split": tasks.latency_metrics(ours[te], y[te]),
            "psc_gnn_basis_only": tasks.latency_metrics(basis_only[rest], y[rest]),
            "selected": rep["selected"], "cv_loo_median_abs_log_error": rep.get("candidates_loo_median_abs_log_error"),
            "lambda": rep["lambda"], "train_seconds": ck.manifest["train"]["seconds_total"], "fold_seconds": round(time.monotonic() - t, 1),
        }  # fmt: skip
        out[d] = row
        log(f"[fewshot] {d}: selected {rep['selected']}; ours Spearman {row['psc_gnn_fewshot']['spearman']:.4f} "
            f"±10% {row['psc_gnn_fewshot']['within_10pct']:.3f} | lsq {row['lsq_macs_opcounts']['spearman']:.4f} "
            f"{row['lsq_macs_opcounts']['within_10pct']:.3f} | ceiling "
            f"{row['ceiling_same_device_8000_samples']['spearman']:.4f}")  # fmt: skip
    keys = ("psc_gnn_fewshot", "psc_gnn_basis_only", "lsq_macs_opcounts", "lsq_macs_only",
            "ceiling_same_device_8000_samples")  # fmt: skip
    mean = {k: {m: float(np.mean([out[d][k][m] for d in out])) for m in ("spearman", "kendall", "within_10pct")}
            for k in keys}  # fmt: skip
    return {"devices": out, "mean": mean, "help_reported_mean_spearman": HELP_REPORTED_SPEARMAN,
            "n_eval": int(len(rest)), "goal": {"mean_spearman": 0.98, "mean_within_10pct": 0.90}}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 LODO devices, fewer epochs")
    ap.add_argument("--epochs", type=int, default=None, help="main model epochs (default: TrainConfig)")
    ap.add_argument("--lodo-epochs", type=int, default=None)
    ap.add_argument("--devices", default=None, help="comma list of LODO devices (default: all nine)")
    ap.add_argument("--skip-lodo", action="store_true")
    ap.add_argument("--own", default="ort-cpu", help="own target(s), comma list; '' for none")
    ap.add_argument("--db", default=None, help="measurement database (default: cache folder)")
    ap.add_argument(
        "--retest", type=int, default=30, help="own-target networks to re-measure (noise ceiling)"
    )
    ap.add_argument(
        "--reuse", action="store_true", help="reuse checkpoints trained earlier with the same config"
    )
    ap.add_argument("--ship", action="store_true", help="write the main model as the packaged checkpoint")
    ap.add_argument(
        "--checkpoint",
        default=None,
        help="evaluate this checkpoint folder (e.g. the packaged one) instead of training",
    )
    ap.add_argument(
        "--only-fewshot",
        action="store_true",
        help="run only the few-shot study (b) and merge it into the existing --out JSON",
    )
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "predictor_eval.json"))
    args = ap.parse_args()
    from autogo_deploy.predictor import checkpoint as ckpt
    from autogo_deploy.predictor.inference import Predictor

    base = TrainConfig()
    main_cfg = TrainConfig(epochs=args.epochs or (12 if args.quick else base.epochs))
    lodo_cfg = TrainConfig(epochs=args.lodo_epochs or (8 if args.quick else 12), acc_weight=0.0)
    own = tuple(t for t in args.own.split(",") if t)
    if args.only_fewshot:
        lat = ds.nb201_latency()
        devices = args.devices.split(",") if args.devices else list(lat.columns)
        results = json.loads(Path(args.out).read_text()) if Path(args.out).is_file() else {}
        results["fewshot"] = fewshot_study(devices, lodo_cfg, _macs(lat.archs), reuse=args.reuse)
        results["lodo_config"] = lodo_cfg.to_dict()
        results.pop("fewshot_note", None)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
        if "accuracy" in results and "training_time" in results:
            print_table(results)
        return 0
    results: dict = {"machine_note": "2 shared CPU cores (other jobs running); torch with 1 intra-op thread",
                     "main_config": main_cfg.to_dict(), "lodo_config": lodo_cfg.to_dict()}  # fmt: skip
    out_dir = ckpt.packaged_dir() if args.ship else _scratch() / "main_checkpoint"
    ck = ckpt.load(args.checkpoint) if args.checkpoint else _reuse(out_dir, main_cfg) if args.reuse else None
    results["reused_checkpoints"] = bool(ck)
    ck = ck or tasks.train_checkpoint(out_dir, cfg=main_cfg, own_db=args.db, own_targets=own, log=log)
    results["training_time"] = {"wall_seconds_total": ck.manifest["train"]["seconds_total"],
                                "seconds_training_loop": ck.manifest["train"]["seconds_training"],
                                "goal_seconds": 1200, "checkpoint": str(out_dir), "id": ck.id,
                                "weights_bytes": (out_dir / ckpt.WEIGHTS).stat().st_size}  # fmt: skip
    pred = Predictor(ck)
    results["accuracy"] = accuracy_study(pred, main_cfg.seed)
    log(f"[accuracy] {json.dumps(results['accuracy'])}")
    results["own_target"] = own_study(pred, args.db, args.retest) if own else {"skipped": "no own target"}
    log(f"[own] {json.dumps(results['own_target'])}")
    if args.ship:  # the shipped checkpoint carries the embeddings (c) scored, fitted outside the held-out set
        for t in own:
            emb = calibrate_from_store(pred, t, db=args.db)
            results.setdefault("shipped_embeddings", {})[t] = str(emb.save(ckpt.embedding_file(out_dir, t)))
    if not args.skip_lodo:
        lat = ds.nb201_latency()
        devices = args.devices.split(",") if args.devices else (
            ["1080ti_1", "silver_4114", "samsung_s7"] if args.quick else list(lat.columns))  # fmt: skip
        results["fewshot"] = fewshot_study(devices, lodo_cfg, _macs(lat.archs), reuse=args.reuse)
    elif Path(args.out).is_file():  # keep the last few-shot study (it does not use the main model)
        previous = json.loads(Path(args.out).read_text())
        if "fewshot" in previous:
            results["fewshot"] = previous["fewshot"]
            results["lodo_config"] = previous.get("lodo_config")
            results["fewshot_note"] = "few-shot study carried over from the previous run (--skip-lodo)"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    return 0


def _pair(c: dict) -> str:
    return f"{c['spearman']:.4f} / {c['within_10pct']:.3f}  "


def print_table(r: dict) -> None:
    a = r["accuracy"]
    print(f"(a) NB201 CIFAR-10 accuracy, held-out 20% (n={a['n_test']})")
    for name, key in (("PSC GNN", "psc_gnn"), ("GBT one-hot (baseline)", "gbt_onehot")):
        print(f"    {name:<28} Spearman {a[key]['spearman']:.4f}  Kendall {a[key]['kendall']:.4f}")
    print("    goal: Spearman >= 0.98, Kendall >= 0.90")
    if "fewshot" in r:
        f = r["fewshot"]
        keys = ("psc_gnn_fewshot", "psc_gnn_basis_only", "lsq_macs_opcounts", "lsq_macs_only",
                "ceiling_same_device_8000_samples")  # fmt: skip
        keys = tuple(k for k in keys if k in f["mean"])
        print(
            "(b) few-shot latency, leave one device out, 10 reference measurements (Spearman / within ±10%)"
        )
        head = {"psc_gnn_fewshot": "ours (CV-selected)", "psc_gnn_basis_only": "GNN basis only",
                "lsq_macs_opcounts": "LSQ MACs+ops", "lsq_macs_only": "LSQ MACs",
                "ceiling_same_device_8000_samples": "ceiling*"}  # fmt: skip
        print(f"    {'device':<16} " + "".join(f"{head[k]:<18}" for k in keys) + "selected")
        for d, row in f["devices"].items():
            print(f"    {d:<16} " + "".join(_pair(row[k]) for k in keys) + row.get("selected", ""))
        print(f"    {'mean':<16} " + "".join(_pair(f["mean"][k]) for k in keys))
        print(
            "    *ceiling: trees trained on 8000 measurements of the same device (not few-shot); HELP reports 0.932"
        )
    for t, row in r.get("own_target", {}).items():
        if isinstance(row, dict) and "psc_gnn" in row:
            print(
                f"(c) own target {t}: held-out n={row['n_test']} within ±10%: PSC GNN "
                f"{row['psc_gnn']['within_10pct']:.3f} (trained embedding "
                f"{(row.get('psc_gnn_trained_embedding') or {}).get('within_10pct', float('nan')):.3f}), LSQ MACs+bytes+nodes "
                f"{row['lsq_macs_bytes_nodes']['within_10pct']:.3f}, LSQ MACs {row['lsq_macs_only']['within_10pct']:.3f}"
                f" (goal 0.95; measurement CI median ±{100 * row['measurement_ci95_rel_median']:.1f}%)"
            )
            for sub, e in row.get("by_subset", {}).items():
                extra = "".join(
                    f", {name} {e[key]['within_10pct']:.3f}"
                    for key, name in (("lsq_macs_bytes_nodes_same_subset", "LSQ fitted on this subset"),
                                      ("psc_gnn_parent_anchored", "PSC GNN anchored on the measured parent"),
                                      ("parent_scaled_by_macs", "parent x MACs ratio"),
                                      ("parent_unchanged", "the parent's own latency"))
                    if key in e
                )  # fmt: skip
                again = e.get("retest", {})
                print(
                    f"    {sub:<12} n={e['n_test']:<4} PSC GNN {e['psc_gnn']['within_10pct']:.3f} "
                    f"(Spearman {e['psc_gnn']['spearman']:.3f}; trained embedding "
                    f"{(e.get('psc_gnn_trained_embedding') or {}).get('within_10pct', float('nan')):.3f}), "
                    f"LSQ {e['lsq_macs_bytes_nodes']['within_10pct']:.3f}{extra}"
                    + (f"; re-measured now within ±10%: {again['within_10pct']:.3f} (n={again['n']})"
                       if "within_10pct" in again else "")
                )  # fmt: skip
    tt = r["training_time"]
    print(
        f"(d) main training: {tt['seconds_training_loop']:.0f} s loop, {tt['wall_seconds_total']:.0f} s total "
        f"(goal <= 1200 s), weights {tt['weights_bytes'] / 1e6:.2f} MB"
    )


if __name__ == "__main__":
    sys.exit(main())
