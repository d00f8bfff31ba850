"""Own measurements (those `predictor collect` stored) as a checkpoint sees them: which rows trained
it, which are held out from it for good, and a target embedding fitted on the rest.

The held-out split: the rows a checkpoint's training held out (manifest own_holdout_ids) and, of the
rows its training never saw, a fixed share chosen by a hash of the row's key, so `predictor eval`,
`calibrate --from-db` and benchmarks/predictor_eval.py agree on it run after run.
"""

from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np

from autogo_deploy.errors import InputError
from autogo_deploy.predictor.fewshot import TargetEmbedding, fit_embedding

MAX_CI95_REL = 0.05  # own measurements less precise than ±5% (95% CI of the median) are not used
HOLDOUT_FRACTION = 0.2


def own_rows(db, targets, holdout_fraction, seed) -> tuple[list[dict], list[dict]]:
    """(training rows, held-out rows) of `targets` for a new checkpoint: a seeded share held out."""
    from autogo_deploy.predictor.collect import MeasurementStore

    store = MeasurementStore(db)
    try:
        rows = [r for t in targets for r in store.rows(target=t, max_ci95_rel=MAX_CI95_REL)]
    finally:
        store.close()
    rng = np.random.default_rng(seed + 7)
    held = rng.random(len(rows)) < holdout_fraction
    return [r for r, h in zip(rows, held, strict=True) if not h], [
        r for r, h in zip(rows, held, strict=True) if h
    ]


def _key_fraction(r: dict) -> float:
    """A number in [0, 1) fixed by the row's (target, space, key): a split no run can reshuffle."""
    digest = hashlib.sha256(f"{r['target']}|{r['space']}|{r['key']}".encode()).hexdigest()
    return int(digest[:8], 16) / 2**32


def held_out_ids(predictor, rows: list[dict]) -> set[int]:
    """Ids of the own measurements `predictor` must be scored on and never fitted to: those its
    training held out (manifest own_holdout_ids) and, of the rows its training never saw (a target it
    did not train on, or stored after it was trained: id above the manifest's own_max_id), a fixed
    HOLDOUT_FRACTION chosen by key. Without own_max_id (older checkpoints) every row of a trained
    target counts as seen."""
    man = predictor.checkpoint.manifest.get("train", {})
    trained, newest = set(man.get("own_targets", [])), man.get("own_max_id")

    def seen(r: dict) -> bool:
        return r["target"] in trained and (newest is None or r["id"] <= newest)

    ids = set(man.get("own_holdout_ids", []))
    return ids | {r["id"] for r in rows if not seen(r) and _key_fraction(r) < HOLDOUT_FRACTION}


def own_holdout(predictor, db=None) -> list[dict]:
    """The own-target measurements held out from the checkpoint (see held_out_ids)."""
    from autogo_deploy.predictor.collect import MeasurementStore

    store = MeasurementStore(db)
    try:
        rows = store.rows()
    finally:
        store.close()
    ids = held_out_ids(predictor, rows)
    return [r for r in rows if r["id"] in ids]


def calibrate_from_store(
    predictor, target: str, *, db=None, exclude_ids=None, min_rows: int = 20, log=None
) -> TargetEmbedding:
    """Fit `target`'s embedding on the measurements `predictor collect` stored for it (the same robust,
    prior-regularised fit as `calibrate`, λ by 5-fold CV) instead of on 10 reference archs.

    The checkpoint's held-out own measurements (held_out_ids) are left out unless `exclude_ids` says
    otherwise, so `evaluate` still scores measurements no fit has seen. Energy
    is fitted too when every row has one. Returns the embedding (method "collected"); not saved."""
    from autogo_deploy.predictor.collect import MeasurementStore

    store = MeasurementStore(db)
    try:
        rows = store.rows(target=target, max_ci95_rel=MAX_CI95_REL)
        where = str(store.path)
    finally:
        store.close()
    exclude = held_out_ids(predictor, rows) if exclude_ids is None else set(exclude_ids)
    n_excluded = sum(r["id"] in exclude for r in rows)
    rows = [r for r in rows if r["id"] not in exclude]
    if len(rows) < min_rows:
        raise InputError(
            f"{where} holds {len(rows)} usable {target} measurements outside the held-out set; "
            f"need at least {min_rows}",
            hint=f"run `autogo-deploy predictor collect --target {target} --space zoo -n 200`",
        )
    if log:
        log(f"fitting {target} on {len(rows)} collected measurements")
    basis = predictor.basis([r["graph"] for r in rows])
    y = np.array([r["latency_ms"] for r in rows], np.float64)
    z, report = fit_embedding(basis, y, predictor.z_train())
    spaces = dict(Counter(r["space"] for r in rows))
    report.pop("reference_rel_error", None)  # one entry per row: the summary below says enough
    rel = (basis @ z) / y - 1.0
    report.update(measurements=len(rows), spaces=spaces, held_out_excluded=n_excluded, db=where,
                  within_10pct_in_sample=float(np.mean(np.abs(rel) <= 0.10)))  # fmt: skip
    emb = TargetEmbedding(
        name=target, z_latency=z.tolist(), method="collected", checkpoint=predictor.id, fit=report
    )
    energy = np.array([r["energy_mj"] if r["energy_mj"] else np.nan for r in rows], np.float64)
    if np.all(np.isfinite(energy)) and np.all(energy > 0):
        ze, rep_e = fit_embedding(basis, energy, predictor.z_train())
        rep_e.pop("reference_rel_error", None)
        emb.z_energy = ze.tolist()
        emb.fit["energy"] = dict(rep_e, power_methods=sorted({str(r["power_method"]) for r in rows}))
    return emb
