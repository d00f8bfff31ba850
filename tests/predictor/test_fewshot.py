"""Target embeddings from a few measurements: recovery, robustness, persistence."""

from __future__ import annotations

import numpy as np
import pytest

from autogo_deploy.errors import InputError
from autogo_deploy.predictor.fewshot import TargetEmbedding, fit_embedding, log_normalised


def _problem(seed=0, n=10, k=5):
    rng = np.random.default_rng(seed)
    basis = np.hstack([np.ones((n, 1)), rng.uniform(1, 20, (n, k))])
    z_train = rng.uniform(0.05, 1.0, (6, k + 1))
    z_true = z_train.mean(axis=0) * rng.uniform(0.7, 1.3, k + 1)
    return basis, z_train, z_true


def test_recovers_noise_free_target():
    basis, z_train, z_true = _problem()
    y = basis @ z_true
    z, rep = fit_embedding(basis, y, z_train)
    assert np.max(np.abs(basis @ z / y - 1)) < 0.02
    assert np.all(z >= 0) and rep["n"] == 10


def test_one_bad_reference_does_not_bend_the_fit():
    basis, z_train, z_true = _problem(seed=1)
    y = basis @ z_true
    y_bad = y.copy()
    y_bad[3] *= 2.0  # one measurement at twice its true value
    z, _ = fit_embedding(basis, y_bad, z_train)
    others = np.arange(10) != 3
    assert np.median(np.abs(basis[others] @ z / y[others] - 1)) < 0.05


def test_rejects_bad_measurements():
    basis, z_train, _ = _problem()
    with pytest.raises(InputError):
        fit_embedding(basis, -np.ones(10), z_train)
    with pytest.raises(InputError):
        fit_embedding(basis[:2], np.ones(2), z_train)


def test_embedding_json_roundtrip(tmp_path):
    emb = TargetEmbedding(
        "dev", [0.1, 0.2], None, reference={"a": 1.0}, reference_log_norm=[0.0], fit={"lambda": 1}
    )
    path = emb.save(tmp_path / "e.json")
    assert TargetEmbedding.load(path) == emb
    assert np.isclose(log_normalised([1.0, np.e]).sum(), 0.0)
