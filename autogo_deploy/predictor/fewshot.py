"""Target embeddings: what conditions the latency/energy heads on one piece of hardware.

A target embedding z (K + 1 non-negative numbers) turns the model's per-graph latency basis G into
latency_ms = G · z. Targets seen in training own a learned z. A new target needs only its measured
latencies of HELP's 10 NB201 reference archs (optionally a few more graphs): z is the solution of a
small non-negative, robust, regularised least-squares problem —

    minimise  Σ_i huber( (G_i · ẑ − ŷ_i) / ŷ_i )  +  λ Σ_k ((ẑ_k − μ_k) / σ_k)²   subject to ẑ ≥ 0

on latencies normalised by their mean (ŷ = y / mean(y), z = mean(y) · ẑ). The prior (μ, σ) is the
spread of the training targets' embeddings normalised the same way, so a target is read as "like the
known devices, re-weighted"; λ is chosen by leave-one-out cross-validation over the reference
measurements themselves (5-fold CV above 40 of them, e.g. a target's collected measurements), so no
test data tunes it. The Huber weights keep one bad reference
measurement (the Samsung S7 column has one at 2x its neighbours) from bending the fit.

Second candidate (issue #6): when the caller also gives count features of the references (MACs and
per-op counts, see `count_features` / `nb201_count_features`), plain least squares of latency on
[1, features] is fitted too, and leave-one-out cross-validation over the same reference measurements
(nested: the basis fit re-chooses its λ inside every fold) picks the candidate with the smaller median
|log(predicted / measured)|. On devices whose latency is close to linear in MACs and op counts (the
GPU columns of HELP) the 7-parameter least squares wins; on the mobile/CPU columns the basis does.
The choice is recorded in the fit report ("selected") and, when it is least squares, in the
embedding's `head` ({"method": "lsq", "features": name, "weights": [intercept, ...]}); `z_latency`
always keeps the basis fit, which is what a graph the head's features cannot describe falls back to.

The stored embedding also keeps the HELP-style input it came from: the reference latencies and their
log-normalised vector (log y − mean log y).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from autogo_deploy.errors import InputError

COUNT_FEATURES = "graph_counts_v1"  # count_features (features.op_counts): any graph
NB201_FEATURES = "nb201_op_counts_v1"  # nb201_count_features: NB201 arch strings only
LAMBDAS = (1e-5, 1e-4, 3e-4, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
LOO_MAX = 40  # λ by leave-one-out up to this many measurements, by CV_FOLDS-fold CV above
CV_FOLDS = 5


@dataclass
class TargetEmbedding:
    name: str
    z_latency: list[float]
    z_energy: list[float] | None = None
    method: str = "fewshot"  # 'trained' (seen in training) | 'fewshot' (fitted from measurements)
    checkpoint: str = ""  # id of the checkpoint whose basis z belongs to
    reference: dict[str, float] = field(default_factory=dict)  # arch/graph key → measured latency_ms
    reference_log_norm: list[float] = field(default_factory=list)
    fit: dict = field(default_factory=dict)
    # {} (use G · z_latency) or {"method": "lsq", "features": COUNT_FEATURES | NB201_FEATURES,
    # "weights": [intercept, w_1, ...]}: latency_ms = weights · [1, features] (see module doc)
    head: dict = field(default_factory=dict)

    def head_applies(self, features: str) -> bool:
        return self.head.get("method") == "lsq" and self.head.get("features") == features

    def head_predict(self, x: np.ndarray) -> np.ndarray:
        w = np.asarray(self.head["weights"], np.float64)
        x = np.asarray(x, np.float64)
        return np.maximum(w[0] + x @ w[1:], 0.0)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict) -> TargetEmbedding:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in doc.items() if k in known})

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> TargetEmbedding:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise InputError(f"cannot read target embedding {path}: {exc}") from None


def log_normalised(latency_ms: np.ndarray) -> np.ndarray:
    logs = np.log(np.asarray(latency_ms, np.float64))
    return logs - logs.mean()


def prior_from(
    z_train: np.ndarray, ref_basis: np.ndarray, floor: float = 0.25
) -> tuple[np.ndarray, np.ndarray]:
    """(μ, σ) of the training embeddings, each normalised by its mean predicted reference latency."""
    z = np.asarray(z_train, np.float64)
    scale = (ref_basis @ z.T).mean(axis=0)
    zn = z / scale[:, None]
    mu = zn.mean(axis=0)
    sd = zn.std(axis=0) if len(zn) > 1 else np.abs(mu)
    sd = np.maximum(sd, floor * np.abs(mu) + 1e-6 * (np.abs(mu).max() + 1e-9))
    return mu, sd


def _solve(g: np.ndarray, y: np.ndarray, mu: np.ndarray, sd: np.ndarray, lam: float, w: np.ndarray):
    from scipy.optimize import lsq_linear

    rows = (g / y[:, None]) * np.sqrt(w)[:, None]
    rhs = np.sqrt(w)
    reg = math.sqrt(lam) * np.diag(1.0 / sd)
    a = np.vstack([rows, reg])
    b = np.concatenate([rhs, math.sqrt(lam) * mu / sd])
    return lsq_linear(a, b, bounds=(0.0, np.inf), method="bvls").x


def _robust_fit(g, y, mu, sd, lam, iters: int = 8, c: float = 1.345) -> np.ndarray:
    w = np.ones(len(y))
    z = _solve(g, y, mu, sd, lam, w)
    for _ in range(iters):
        r = (g @ z - y) / y
        scale = max(np.median(np.abs(r)) / 0.6745, 0.01)
        u = np.abs(r) / (c * scale)
        w = np.where(u <= 1.0, 1.0, 1.0 / np.maximum(u, 1e-12))
        z = _solve(g, y, mu, sd, lam, w)
    return z


def count_features(graphs, basis: np.ndarray) -> np.ndarray:
    """COUNT_FEATURES rows for graphs (GraphTensors): [MACs (basis column 1), features.op_counts]."""
    from autogo_deploy.predictor.features import op_counts

    basis = np.asarray(basis, np.float64)
    counts = np.array([op_counts(g) for g in graphs], np.float64).reshape(len(basis), -1)
    return np.hstack([basis[:, 1:2], counts])


def nb201_count_features(archs, basis: np.ndarray) -> np.ndarray:
    """NB201_FEATURES rows: [MACs (basis column 1), counts of the five NB201 edge ops of the cell].

    These count every edge op as written in the arch string, including edges the ONNX graph prunes
    or shares (dead branches, duplicate pools): that is what HELP's PyTorch measurements executed."""
    from autogo_deploy.predictor.baselines import nb201_op_counts

    return np.hstack([np.asarray(basis, np.float64)[:, 1:2], nb201_op_counts(archs)])


def _folds(n: int) -> list[np.ndarray]:
    """Leave-one-out up to LOO_MAX measurements; a seeded CV_FOLDS-fold split above (hundreds of
    collected measurements would otherwise cost hundreds of fits per λ)."""
    if n <= LOO_MAX:
        return [np.array([i]) for i in range(n)]
    return np.array_split(np.random.default_rng(0).permutation(n), CV_FOLDS)


def _basis_fit(g, y, z_train, lam):
    """(z, λ, λ → CV median error) — the prior-regularised robust fit of the module doc."""
    s = float(y.mean())
    yn = y / s
    mu, sd = prior_from(z_train, g)
    cv = {}
    if lam is None:
        folds = _folds(len(y))
        for cand in LAMBDAS:
            errs = []
            for out in folds:
                keep = np.ones(len(y), bool)
                keep[out] = False
                z = _robust_fit(g[keep], yn[keep], mu, sd, cand)
                errs.extend(np.abs(np.log(np.maximum(g[out] @ z, 1e-9) / yn[out])).tolist())
            cv[cand] = float(np.median(errs))
        lam = min(cv, key=lambda k: (cv[k], -k))
    return _robust_fit(g, yn, mu, sd, lam) * s, lam, cv


def lsq_weights(x: np.ndarray, y: np.ndarray, rcond: float = 1e-6) -> np.ndarray:
    """Least squares of y on [1, x]: [intercept, w...].

    Columns are centred and scaled first and directions with singular values below rcond (relative)
    are dropped (minimum norm): MACs of an NB201 cell is an affine function of its convolution counts
    and the op counts sum to 6, so the plain problem is (numerically) singular and would otherwise
    return huge cancelling weights."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    m = x.mean(axis=0)
    sd = x.std(axis=0)
    live = sd > 1e-12 * (np.abs(m) + 1.0)
    xs = (x[:, live] - m[live]) / sd[live]
    v = np.linalg.lstsq(xs, y - y.mean(), rcond=rcond)[0] if live.any() else np.zeros(0)
    w = np.zeros(x.shape[1])
    w[live] = v / sd[live]
    return np.concatenate([[y.mean() - float(m @ w)], w])


def _log_err(pred: float, y: float) -> float:
    return abs(math.log(max(pred, 1e-9) / y))


def fit_embedding(
    ref_basis: np.ndarray,
    latency_ms: np.ndarray,
    z_train: np.ndarray,
    *,
    lam: float | None = None,
    ref_features: np.ndarray | None = None,
    features: str = COUNT_FEATURES,
) -> tuple[np.ndarray, dict]:
    """z (K + 1) for a target from its measured reference latencies; returns (z, fit report).

    With `ref_features` (rows = references), least squares on [1, features] competes with the basis
    fit by nested leave-one-out CV; report["selected"] is "basis" or "lsq", and for "lsq"
    report["head"] holds the dict to store as TargetEmbedding.head. z is the basis fit either way."""
    g = np.asarray(ref_basis, np.float64)
    y = np.asarray(latency_ms, np.float64)
    if g.ndim != 2 or len(g) != len(y):
        raise InputError("reference basis and measurements do not match")
    if len(y) < 3:
        raise InputError(f"need at least 3 reference measurements, got {len(y)}")
    if not np.all(np.isfinite(y)) or np.any(y <= 0):
        raise InputError("reference latencies must be positive numbers")
    lam_given = lam
    z, lam, cv = _basis_fit(g, y, z_train, lam)
    resid = (g @ z) / y - 1.0
    report = {"lambda": lam, "loo_median_abs_log_error": cv, "n": int(len(y)),
              "reference_rel_error": [round(float(r), 4) for r in resid], "selected": "basis"}  # fmt: skip
    if ref_features is None:
        return z, report
    x = np.asarray(ref_features, np.float64)
    if x.shape[0] != len(y) or not np.all(np.isfinite(x)):
        raise InputError("reference features and measurements do not match")
    n = len(y)
    if n < 5:  # leave-one-out over fewer points says nothing; keep the basis fit
        return z, report
    err_basis, err_lsq = [], []
    for i in range(n):
        keep = np.arange(n) != i
        zi, _, _ = _basis_fit(g[keep], y[keep], z_train, lam_given)
        err_basis.append(_log_err(float(g[i] @ zi), y[i]))
        w = lsq_weights(x[keep], y[keep])
        err_lsq.append(_log_err(float(w[0] + x[i] @ w[1:]), y[i]))
    loo = {"basis": float(np.median(err_basis)), "lsq": float(np.median(err_lsq))}
    report["candidates_loo_median_abs_log_error"] = loo
    if loo["lsq"] < loo["basis"]:
        w = lsq_weights(x, y)
        report["selected"] = "lsq"
        report["head"] = {"method": "lsq", "features": features, "weights": [float(v) for v in w]}
        report["reference_rel_error_lsq"] = [round(float(r), 4) for r in (w[0] + x @ w[1:]) / y - 1.0]
    return z, report
