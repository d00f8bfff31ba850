"""Simple baselines the predictor is measured against (same data, same splits, same run).

- accuracy: gradient-boosted trees (scikit-learn HistGradientBoosting) on the one-hot NB201 cell
  (6 edges x 5 ops);
- few-shot latency from the 10 reference measurements: least squares of latency on [1, MACs,
  per-op counts], and on [1, MACs] alone.
"""

from __future__ import annotations

import numpy as np

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def nb201_onehot(archs) -> np.ndarray:
    from autogo_deploy.zoo.nb201 import parse_arch

    out = np.zeros((len(archs), 30), np.float64)
    for r, a in enumerate(archs):
        for e, op in enumerate(parse_arch(a)):
            out[r, 5 * e + NB201_OPS.index(op)] = 1.0
    return out


def nb201_op_counts(archs) -> np.ndarray:
    oh = nb201_onehot(archs).reshape(len(archs), 6, 5)
    return oh.sum(axis=1)


def gbt_accuracy(train_archs, train_acc, test_archs, *, seed: int = 0) -> np.ndarray:
    from sklearn.ensemble import HistGradientBoostingRegressor

    model = HistGradientBoostingRegressor(
        max_iter=1000, learning_rate=0.05, max_leaf_nodes=31, l2_regularization=1e-3, random_state=seed
    )
    model.fit(nb201_onehot(train_archs), np.asarray(train_acc))
    return model.predict(nb201_onehot(test_archs))


def lsq_fit_predict(features_ref: np.ndarray, y_ref: np.ndarray, features_all: np.ndarray) -> np.ndarray:
    a = np.hstack([np.ones((len(features_ref), 1)), features_ref])
    w, *_ = np.linalg.lstsq(a, np.asarray(y_ref, np.float64), rcond=None)
    return np.hstack([np.ones((len(features_all), 1)), features_all]) @ w


def macs_counts_features(macs: np.ndarray, archs) -> np.ndarray:
    m = np.asarray(macs, np.float64)[:, None] / 1e6
    return np.hstack([m, nb201_op_counts(archs)])
