"""Scores for search candidates from the hardware-conditioned PSC predictor (labelled predicted).

The target's embedding comes from the predictor's trained devices or from a calibration (the 10
HELP reference NB201 networks measured on the target); when neither exists the calibration is run
once here and cached, so `optimize` works on a fresh machine.
"""

from __future__ import annotations

from collections.abc import Callable

from autogo_deploy.candidate import Candidate
from autogo_deploy.errors import AutogoError


def make_scorer(target, *, space: str | None = None, log: Callable[[str], None] | None = None):
    """Return (scorer, info). scorer(candidates) → [{'acc', 'latency_ms', 'energy_mj', 'source'}]."""
    from autogo_deploy.predictor import Predictor
    from autogo_deploy.predictor.tasks import calibrate

    predictor = Predictor.load_default()
    try:
        emb = predictor.embedding(target.name)
        how = {"collected": "fitted on collected measurements", "fewshot": "calibrated"}.get(
            emb.method, emb.method
        )
    except AutogoError:
        if log:
            log(f"calibrating the predictor for {target.name} (10 reference networks, once)")
        emb = calibrate(predictor, target, log=log)  # the Target: a TOML path has no packaged name
        how = "calibrated now"
    info = {
        "checkpoint": predictor.id,
        "target_embedding": f"{target.name} ({how})",
        "accuracy_source": "predicted: PSC GNN accuracy head trained on NAS-Bench-201 CIFAR-10 labels",
        # the head learnt accuracy from NAS-Bench cell networks: only the NB201 space is inside what
        # it saw; anything else (a zoo network, a user's model) is an extrapolation, and on zoo
        # networks its ordering is wrong (ResNet-18 above ResNet-101 above ResNet-50)
        "accuracy_in_distribution": space == "nb201",
        "latency_source": "predicted: PSC GNN latency head conditioned on the target embedding",
    }

    def scorer(cands: list[Candidate]) -> list[dict]:
        # the candidates themselves: each model is read (from memory or its spill file) and loaded
        # one at a time, so a batch of big mutants is never in memory at once
        preds = predictor.predict(list(cands), emb, ids=[c.cid for c in cands])
        out = []
        for c, p in zip(cands, preds, strict=True):
            if p.id != c.cid:  # predictions must stay attached to their candidates
                raise AssertionError("predictor returned predictions out of order")
            out.append(
                {
                    "acc": p.acc,
                    "latency_ms": p.latency_ms,
                    "energy_mj": p.energy_mj,
                    "source": "predicted",
                }
            )
        return out

    return scorer, info
