"""Target embeddings from a few measurements: recovery, robustness, persistence."""

from __future__ import annotations

import numpy as np
import pytest
from predictor_fixtures import needs_data

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


def _counts_problem(seed=0, n=10, kind="lsq"):
    """Reference basis + op-count features where the truth is linear in one of the two."""
    rng = np.random.default_rng(seed)
    k = 5
    basis = np.hstack([np.ones((n + 200, 1)), rng.uniform(1, 20, (n + 200, k))])
    counts = np.hstack([basis[:, 1:2], rng.integers(0, 7, (n + 200, 3)).astype(float)])
    z_train = rng.uniform(0.05, 1.0, (6, k + 1))
    if kind == "lsq":  # latency linear in [1, MACs, counts] with a negative per-op weight
        w = np.array([2.0, 0.8, 1.5, -0.6, 3.0])
        y = w[0] + counts @ w[1:]
    else:  # latency = G · z (strongly non-linear in the counts' terms)
        z_true = z_train.mean(axis=0) * rng.uniform(0.7, 1.3, k + 1)
        y = basis @ z_true
        w = None
    return basis, counts, z_train, y, w


def test_cv_selects_least_squares_when_latency_is_linear_in_counts():
    basis, counts, z_train, y, w = _counts_problem(kind="lsq")
    z, rep = fit_embedding(basis[:10], y[:10], z_train, ref_features=counts[:10], features="test")
    assert rep["selected"] == "lsq"
    loo = rep["candidates_loo_median_abs_log_error"]
    assert loo["lsq"] < 1e-6 < loo["basis"]
    assert np.allclose(rep["head"]["weights"], w, atol=1e-6)  # recovers the known weights
    emb = TargetEmbedding("dev", z.tolist(), head=rep["head"])
    assert emb.head_applies("test") and not emb.head_applies("other")
    held = slice(10, None)  # archs the fit never saw
    assert np.allclose(emb.head_predict(counts[held]), y[held], rtol=1e-6)


def test_cv_keeps_the_basis_when_latency_is_its_embedding():
    basis, counts, z_train, y, _ = _counts_problem(seed=3, kind="basis")
    z, rep = fit_embedding(basis[:10], y[:10], z_train, ref_features=counts[:10])
    assert rep["selected"] == "basis" and "head" not in rep
    held = slice(10, None)
    assert np.median(np.abs(basis[held] @ z / y[held] - 1)) < 0.02


def test_old_embedding_json_without_head_still_loads(tmp_path):
    path = tmp_path / "old.json"
    path.write_text('{"name": "d", "z_latency": [0.1, 0.2], "method": "fewshot", "fit": {"lambda": 1}}')
    emb = TargetEmbedding.load(path)
    assert emb.head == {} and not emb.head_applies("graph_counts_v1")


@needs_data
def test_predictor_uses_the_selected_head_on_unseen_graphs(tiny_checkpoint):
    """End to end: references whose latency is linear in the graph's MACs + op counts → the fit picks
    least squares, stores it as the embedding's head, and Predictor.predict applies it to new graphs."""
    from autogo_deploy.predictor.arch_graphs import nb201_tensors
    from autogo_deploy.predictor.datasets import reference_archs
    from autogo_deploy.predictor.fewshot import COUNT_FEATURES, count_features
    from autogo_deploy.predictor.inference import Predictor
    from autogo_deploy.predictor.tasks import fit_nb201_embedding
    from autogo_deploy.zoo.nb201 import arch_from_ordinal

    pred = Predictor(tiny_checkpoint)
    w = np.array([0.3, 2.0, 0.01, 0.02, 0.015, 0.004, 0.001])

    def truth(archs):
        graphs = [nb201_tensors(a) for a in archs]
        return w[0] + count_features(graphs, pred.basis(graphs)) @ w[1:]

    refs = list(reference_archs("nb201"))
    emb = fit_nb201_embedding(pred, list(zip(refs, truth(refs), strict=True)), "synthetic")
    assert emb.fit["selected"] == "lsq" and emb.head_applies(COUNT_FEATURES)
    new = [arch_from_ordinal(i * 997 + 5) for i in range(12)]
    got = np.array([p.latency_ms for p in pred.predict([nb201_tensors(a) for a in new], emb)])
    assert np.allclose(got, truth(new), rtol=0.02)


def test_lsq_weights_stay_small_on_collinear_nb201_like_counts():
    """MACs affine in the conv counts (up to float32 rounding) and counts summing to 6, as in an NB201
    cell, with 1% measurement noise: plain least squares returns weights in the thousands that cancel;
    the fit must return moderate weights that still predict new rows."""
    from autogo_deploy.predictor.fewshot import lsq_weights

    for seed in range(5):
        rng = np.random.default_rng(seed)
        counts = rng.multinomial(6, [0.2] * 5, size=40).astype(float)  # none, skip, c1, c3, pool
        macs = (7.8 + 3.9 * counts[:, 2] + 35.4 * counts[:, 3]) * (1 + 3e-7 * rng.standard_normal(40))
        x = np.hstack([macs[:, None], counts])
        truth = 1.0 + 0.05 * macs + 0.4 * counts[:, 4] + 0.1 * counts[:, 1]
        y = truth * (1 + 0.01 * rng.standard_normal(40))
        w = lsq_weights(x[:10], y[:10])
        assert np.max(np.abs(w)) < 50
        assert np.max(np.abs((w[0] + x[10:] @ w[1:]) / truth[10:] - 1)) < 0.05


@needs_data
def test_fit_nb201_embedding_sees_each_arch_once(tiny_checkpoint):
    """Twins would sit in both folds of the leave-one-out CV that picks basis vs lsq: they are merged
    (exact) or refused (different latencies), and fewer than 3 distinct archs are refused."""
    from autogo_deploy.predictor.datasets import reference_archs
    from autogo_deploy.predictor.inference import Predictor
    from autogo_deploy.predictor.tasks import fit_nb201_embedding

    pred = Predictor(tiny_checkpoint)
    refs = list(reference_archs("nb201"))
    rows = [(a, 1.0 + 0.1 * i) for i, a in enumerate(refs)]
    once = fit_nb201_embedding(pred, rows, "once")
    twice = fit_nb201_embedding(pred, rows + rows[::-1], "twice")
    assert twice.fit["n"] == 10 and twice.fit["reference_archs_used"] == 10
    assert twice.z_latency == once.z_latency and twice.fit == once.fit and twice.reference == once.reference
    with pytest.raises(InputError, match="has two different latencies: 1.0 and 1.5 ms"):
        fit_nb201_embedding(pred, [*rows, (refs[0], 1.5)], "conflict")
    with pytest.raises(InputError, match="need at least 3 distinct reference archs, got 2"):
        fit_nb201_embedding(pred, rows[:2] * 5, "two")
