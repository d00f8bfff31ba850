"""Data-free per-channel activation moments, used to set BatchNorm running statistics of zoo models.

An untrained network has no data statistics; identity BatchNorms (mean 0, var 1) let activations of
deep residual networks grow to 1e4..1e6, a trap for fp16 and int8 backends. Instead the zoo builder
propagates, per channel, an estimate of the mean and variance of every tensor for a standard-normal
input (independence and Gaussian assumptions, borders ignored) and gives each BatchNorm the estimated
mean and variance of its input, as a BN calibrated on data would have. Each BN then normalises to
roughly unit scale, errors do not compound through BN, and outputs stay O(1)-O(10).

All arithmetic is float64 numpy without BLAS (einsum, optimize=False) so results are bit-stable.
"""

from __future__ import annotations

import math

import numpy as np

Moments = tuple[np.ndarray, np.ndarray]  # (per-channel mean, per-channel variance), float64

# Mean shift (in std units) of the max of n iid standard normals (pool windows). The variance is kept:
# neighbouring activations are strongly correlated, and measured on the zoo the variance after a max-pool
# stays within 0.85..1.35x of its input, far from the iid ratio (0.36 for 3x3).
_MAX_SHIFT = {1: 0.0, 4: 1.0294, 9: 1.4850}


def _ndtr(z: np.ndarray) -> np.ndarray:
    """Standard normal CDF via Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), vectorised numpy."""
    x = np.abs(z) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    erf = 1.0 - poly * np.exp(-x * x)
    return 0.5 * (1.0 + np.sign(z) * erf)


def standard(channels: int) -> Moments:
    return np.zeros(channels), np.ones(channels)


def conv(
    tap_sum: np.ndarray, tap_sq: np.ndarray, std: float, bias: np.ndarray | None, group: int, x: Moments
) -> Moments:
    """Conv with weights std*z, z (Cout, Cin/g, kh, kw) given by its tap sums (Cout, Cin/g):
    mean = std * sum_taps(z) . mean_in, var = std^2 * sum_taps(z^2) . var_in."""
    cout, cig = tap_sum.shape
    wsum = tap_sum.reshape(group, cout // group, cig)
    wsq = tap_sq.reshape(group, cout // group, cig)
    mean = std * np.einsum("gok,gk->go", wsum, x[0].reshape(group, cig)).reshape(cout)
    var = (std * std) * np.einsum("gok,gk->go", wsq, x[1].reshape(group, cig)).reshape(cout)
    if bias is not None:
        mean = mean + bias
    return mean, var


def gemm_expected(out_features: int, gain: float, x: Moments) -> Moments:
    """Linear layer with N(0, gain^2/fan_in) weights, in expectation over the weights (cheap for 4096x25088)."""
    second = float(np.mean(x[0] * x[0] + x[1]))
    return np.zeros(out_features), np.full(out_features, gain * gain * second)


def relu(x: Moments) -> Moments:
    """Moments of max(X, 0) for X ~ N(mean, var) per channel (the upper clip of ReLU6 is ignored)."""
    mu, var = x
    sd = np.sqrt(np.maximum(var, 0.0))
    safe = np.where(sd > 0, sd, 1.0)
    z = mu / safe
    cdf = _ndtr(z)
    pdf = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    m1 = mu * cdf + sd * pdf
    m2 = (mu * mu + var) * cdf + mu * sd * pdf
    m1 = np.where(sd > 0, m1, np.maximum(mu, 0.0))
    m2 = np.where(sd > 0, m2, np.maximum(mu, 0.0) ** 2)
    return m1, np.maximum(m2 - m1 * m1, 0.0)


def maxpool(x: Moments, k: int) -> Moments:
    shift = _MAX_SHIFT.get(k * k, math.sqrt(2.0 * math.log(k * k)))
    return x[0] + shift * np.sqrt(x[1]), x[1]


def add(a: Moments, b: Moments) -> Moments:
    return a[0] + b[0], a[1] + b[1]


def scale(x: Moments, factor: float) -> Moments:
    return x[0] * factor, x[1] * factor * factor


def channel_shuffle(x: Moments, groups: int) -> Moments:
    c = x[0].shape[0]
    perm = np.arange(c).reshape(groups, c // groups).T.reshape(c)
    return x[0][perm], x[1][perm]


def depth_to_space(x: Moments, r: int) -> Moments:
    """CRD order: output channel c gathers input channels c*r*r .. c*r*r + r*r - 1."""
    mu = x[0].reshape(-1, r * r)
    var = x[1].reshape(-1, r * r)
    mean = mu.mean(axis=1)
    return mean, var.mean(axis=1) + ((mu - mean[:, None]) ** 2).mean(axis=1)


def concat(xs: list[Moments]) -> Moments:
    return np.concatenate([x[0] for x in xs]), np.concatenate([x[1] for x in xs])


def flatten(x: Moments, spatial: int) -> Moments:
    return np.repeat(x[0], spatial), np.repeat(x[1], spatial)
