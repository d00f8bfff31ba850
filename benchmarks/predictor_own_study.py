"""(c) of benchmarks/predictor_eval.py: the predictor on its own targets' held-out measurements.

Reported per target and per subset (NB201 networks, one-step zoo mutants, random-walk zoo mutants):
the PSC GNN with the embedding fitted on the collected measurements outside the held-out set (and
the one learnt in training, if any), least squares on [MACs, activation bytes, nodes] and on MACs,
for mutants the baselines that see the measured parent (its latency, scaled by the MACs ratio, and
the GNN's predicted ratio anchored on it), and a re-measurement of held-out networks now (the noise
ceiling of this machine).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from autogo_deploy.predictor import baselines as bl
from autogo_deploy.predictor import own, tasks


def _rebuild(space: str, rows: list[dict], n: int):
    """(row, ONNX bytes) for up to n of `rows` of one space, rebuilt from their keys: NB201 archs
    directly, zoo mutants by replaying the seeded collection plan (seed 0, the CLI default) until
    their keys come up."""
    from autogo_deploy.predictor import collect

    wanted = {r["key"]: r for r in rows if r["space"] == space}
    if space == "nb201":
        from autogo_deploy.zoo import nb201

        for r in list(wanted.values())[:n]:
            yield r, nb201(r["key"]).SerializeToString()
        return
    found, steps = 0, 0
    for key, build in collect.plan(space, 0):
        steps += 1
        if found >= n or steps > 4 * len(wanted) + 400:
            return
        if key in wanted:
            found += 1
            yield wanted[key], build()


def retest(target: str, rows: list[dict], n: int, space: str, nominal_ms: float | None = None) -> dict:
    """Measure n held-out networks of `space` again now: how often does a measurement reproduce within ±10%?

    This is the ceiling for (c) on this machine: a predictor cannot be closer to a measurement than
    the next measurement of the same network is. With `nominal_ms` (a drift-corrected database) the
    re-measurement is drift-corrected to the same nominal reference speed."""
    if n <= 0:
        return {"skipped": True}
    import tempfile

    from autogo_deploy import drift
    from autogo_deploy.measure import measure

    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        ref = drift.write_reference(Path(tmp)) if nominal_ms is not None else None
        for r, data in _rebuild(space, rows, n):
            m = measure(data, target, min_runs=30, max_runs=300, time_cap_s=5.0, reference=ref)
            if ref is not None:
                m, _ = drift.rescaled(m, nominal_ms)
            ratios.append(m.p50_ms / r["latency_ms"])
    if not ratios:
        return {"n": 0}
    ratios = np.array(ratios)
    return {"n": len(ratios), "within_10pct": float(np.mean(np.abs(ratios - 1) <= 0.10)),
            "median_abs_rel_diff": float(np.median(np.abs(ratios - 1))),
            "drift_corrected": nominal_ms is not None}  # fmt: skip


SUBSETS = {"zoo_mutants": "zoo", "zoo_walk": "zoo-walk"}  # reporting group → collection space


def _is_mutant(r: dict) -> bool:
    return r["space"] in ("zoo", "zoo-walk") and ":" in r["key"]


def _subset(r: dict) -> str:
    """nb201 | fbnet | zoo_parents | zoo_mutants (one step) | zoo_walk (several steps): the groups
    (c) is reported by."""
    if r["space"] == "zoo":
        return "zoo_mutants" if _is_mutant(r) else "zoo_parents"
    return {"zoo-walk": "zoo_walk"}.get(r["space"], r["space"])


def _parents_of(test: list[dict], all_rows: list[dict]) -> list[dict | None]:
    """The zoo network each mutant was made from, measured on the mutant's target (None where it was not)."""
    parents = {(r["target"], r["key"]): r for r in all_rows if r["space"] == "zoo" and not _is_mutant(r)}
    return [parents.get((r["target"], r["key"].split(":", 1)[0])) for r in test]


def _parent_anchored(parents: list[dict | None], pred_test, pred_parent) -> np.ndarray:
    """The parent's measured latency times a predicted ratio (mutant over parent; NaN without a
    measured parent): how the search uses predictions once the input has been measured."""
    out = [
        p["latency_ms"] * pt / pp if p and pp else np.nan
        for p, pt, pp in zip(parents, pred_test, pred_parent, strict=True)
    ]
    return np.array(out, np.float64)


def own_study(pred, db, retest_n: int = 0) -> dict:
    held = own.own_holdout(pred, db)
    if not held:
        return {"skipped": "no own-target measurements were held out (collect some, then rerun)"}
    ids = {r["id"] for r in held}
    from autogo_deploy.predictor.collect import MeasurementStore

    store = MeasurementStore(db)
    try:
        all_rows = store.rows(max_ci95_rel=own.MAX_CI95_REL)
        drift_of = {t: store.drift_nominal(t) for t in {r["target"] for r in held}}
    finally:
        store.close()
    out = {}
    for target in sorted({r["target"] for r in held}):
        test = [r for r in held if r["target"] == target]
        train_rows = [r for r in all_rows if r["target"] == target and r["id"] not in ids]
        y = np.array([r["latency_ms"] for r in test])
        trained = pred.trained_embedding(target)
        # the embedding fitted on this target's collected measurements outside the held-out set
        # (`predictor calibrate --from-db`); the one learnt in training (if any) is reported next to it
        collected = own.calibrate_from_store(pred, target, db=db)
        b_test = pred.basis([r["graph"] for r in test])  # columns 1-3: MACs, activation bytes, nodes
        ours = b_test @ np.asarray(collected.z_latency)
        ours_trained = b_test @ np.asarray(trained.z_latency) if trained else None
        ftr, fte = pred.basis([r["graph"] for r in train_rows])[:, 1:4], b_test[:, 1:4]
        ytr = np.array([r["latency_ms"] for r in train_rows])
        lsq3, lsq1 = bl.lsq_fit_predict(ftr, ytr, fte), bl.lsq_fit_predict(ftr[:, :1], ytr, fte[:, :1])
        nominal = drift_of[target][1] if drift_of[target][0] else None
        row = {
            "n_train": len(train_rows), "n_test": len(test),
            "psc_gnn": tasks.latency_metrics(ours, y),
            "psc_gnn_trained_embedding": tasks.latency_metrics(ours_trained, y) if trained else None,
            "collected_embedding_fit": {k: collected.fit[k] for k in ("lambda", "measurements", "spaces")},
            "lsq_macs_bytes_nodes": tasks.latency_metrics(lsq3, y),
            "lsq_macs_only": tasks.latency_metrics(lsq1, y),
            "measurement_ci95_rel_median": float(np.median([r["ci95_rel"] or 0 for r in test])),
            "drift_corrected": drift_of[target][0],
            "spaces": sorted({r["space"] for r in test}), "goal_within_10pct": 0.95, "by_subset": {},
        }  # fmt: skip
        for sub in sorted({_subset(r) for r in test}):
            te = np.array([_subset(r) == sub for r in test])
            sub_test = [r for r in test if _subset(r) == sub]
            tr = np.array([_subset(r) == sub for r in train_rows])
            if te.sum() < 5:
                continue
            entry = {"n_train": int(tr.sum()), "n_test": int(te.sum()),
                     "psc_gnn": tasks.latency_metrics(ours[te], y[te]),
                     "psc_gnn_trained_embedding": tasks.latency_metrics(ours_trained[te], y[te]) if trained else None,
                     "lsq_macs_bytes_nodes": tasks.latency_metrics(lsq3[te], y[te]),
                     "measurement_ci95_rel_median": float(np.median([r["ci95_rel"] or 0 for r in sub_test]))}  # fmt: skip
            if tr.sum() >= 10:  # the same baseline fitted on this subset's training rows only
                entry["lsq_macs_bytes_nodes_same_subset"] = tasks.latency_metrics(
                    bl.lsq_fit_predict(ftr[tr], ytr[tr], fte[te]), y[te]
                )
            if sub in SUBSETS:  # a mutant's parent was measured: baselines that use it, and ours
                parents = _parents_of(sub_test, all_rows)
                known = [p for p in parents if p]
                pred_parent = dict(
                    zip(
                        [p["id"] for p in known],
                        pred.basis([p["graph"] for p in known]) @ np.asarray(collected.z_latency),
                        strict=True,
                    )
                )
                pp = [pred_parent[p["id"]] if p else np.nan for p in parents]
                macs = [
                    (r["macs"], p["macs"] if p else np.nan) for r, p in zip(sub_test, parents, strict=True)
                ]
                for name, pt, pr in (("psc_gnn_parent_anchored", ours[te], pp),
                                     ("parent_scaled_by_macs", [m for m, _ in macs], [m for _, m in macs]),
                                     ("parent_unchanged", [1.0] * len(pp), [1.0] * len(pp))):  # fmt: skip
                    est = _parent_anchored(parents, pt, pr)
                    ok = np.isfinite(est)
                    entry[name] = dict(tasks.latency_metrics(est[ok], y[te][ok]), n=int(ok.sum()))
            if sub != "zoo_parents":
                entry["retest"] = retest(target, sub_test, retest_n, SUBSETS.get(sub, sub), nominal)
            row["by_subset"][sub] = entry
        out[target] = row
    return out
