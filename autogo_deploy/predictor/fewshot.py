"""Target embeddings: what conditions the latency/energy heads on one piece of hardware.

A target embedding z (K + 1 non-negative numbers) turns the model's per-graph latency basis G into
latency_ms = G · z. Targets seen in training own a learned z. A new target needs only its measured
latencies of HELP's 10 NB201 reference archs (optionally a few more graphs): z is the solution of a
small non-negative, robust, regularised least-squares problem —

    minimise  Σ_i huber( (G_i · ẑ − ŷ_i) / ŷ_i )  +  λ Σ_k ((ẑ_k − μ_k) / σ_k)²   subject to ẑ ≥ 0

on latencies normalised by their mean (ŷ = y / mean(y), z = mean(y) · ẑ). The prior (μ, σ) is the
spread of the training targets' embeddings normalised the same way, so a target is read as "like the
known devices, re-weighted"; λ is chosen by leave-one-out cross-validation over the reference
measurements themselves, so no test data tunes it. The Huber weights keep one bad reference
measurement (the Samsung S7 column has one at 2x its neighbours) from bending the fit.

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

LAMBDAS = (1e-5, 1e-4, 3e-4, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)


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


def fit_embedding(
    ref_basis: np.ndarray, latency_ms: np.ndarray, z_train: np.ndarray, *, lam: float | None = None
) -> tuple[np.ndarray, dict]:
    """z (K + 1) for a target from its measured reference latencies; returns (z, fit report)."""
    g = np.asarray(ref_basis, np.float64)
    y = np.asarray(latency_ms, np.float64)
    if g.ndim != 2 or len(g) != len(y):
        raise InputError("reference basis and measurements do not match")
    if len(y) < 3:
        raise InputError(f"need at least 3 reference measurements, got {len(y)}")
    if not np.all(np.isfinite(y)) or np.any(y <= 0):
        raise InputError("reference latencies must be positive numbers")
    s = float(y.mean())
    yn = y / s
    mu, sd = prior_from(z_train, g)
    cv = {}
    if lam is None:
        for cand in LAMBDAS:
            errs = []
            for i in range(len(y)):
                keep = np.arange(len(y)) != i
                z = _robust_fit(g[keep], yn[keep], mu, sd, cand)
                errs.append(abs(math.log(max(float(g[i] @ z), 1e-9) / yn[i])))
            cv[cand] = float(np.median(errs))
        lam = min(cv, key=lambda k: (cv[k], -k))
    z = _robust_fit(g, yn, mu, sd, lam) * s
    resid = (g @ z) / y - 1.0
    report = {"lambda": lam, "loo_median_abs_log_error": cv, "n": int(len(y)),
              "reference_rel_error": [round(float(r), 4) for r in resid]}  # fmt: skip
    return z, report
