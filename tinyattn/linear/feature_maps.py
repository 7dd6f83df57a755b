"""Feature maps phi for kernelised attention: sim(q, k) = phi(q)^T phi(k) replaces exp(q^T k / sqrt d).

Deterministic maps (Katharopoulos et al. 2020): ``elu1(x) = elu(x) + 1`` (positive, smooth), ``relu``.
Random positive features for the softmax kernel (Performer FAVOR+, Choromanski et al. 2021):

    x_bar = x / d^(1/4)                      so that x_bar^T y_bar = x^T y / sqrt(d)
    phi(x) = m^(-1/2) exp(W x_bar - |x_bar|^2 / 2),   rows w_i ~ N(0, I_d)
    E[phi(q)^T phi(k)] = exp(q_bar^T k_bar) = exp(q^T k / sqrt d)        (unbiased)

since E[exp(w^T u)] = exp(|u|^2 / 2) for u = q_bar + k_bar. The source text's map
``m^(-1/2) exp(W x)`` omits ``exp(-|x|^2/2)``: its expectation is exp(q^T k + |q|^2/2 + |k|^2/2),
which stays wrong however many features are drawn (kept as :func:`source_text_features`).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["elu1", "relu", "get_feature_map", "gaussian_features_matrix", "favor_features",
           "source_text_features", "softmax_kernel", "FEATURE_MAPS"]


def elu1(x: np.ndarray) -> np.ndarray:
    """elu(x) + 1 = x + 1 for x > 0, exp(x) otherwise; always > 0."""
    x = np.asarray(x)
    return np.where(x > 0, x + 1, np.exp(np.minimum(x, 0)))


def relu(x: np.ndarray) -> np.ndarray:
    """max(x, 0): non-negative, but can be all zero (then the row's normaliser is 0)."""
    return np.maximum(np.asarray(x), 0)


FEATURE_MAPS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"elu1": elu1, "relu": relu}


def get_feature_map(feature_map) -> Callable[[np.ndarray], np.ndarray]:
    """A name in ``FEATURE_MAPS`` or a callable (..., L, d) -> (..., L, r) -> that callable."""
    if callable(feature_map):
        return feature_map
    if feature_map not in FEATURE_MAPS:
        raise ValueError(f"feature_map must be one of {sorted(FEATURE_MAPS)} or a callable, got {feature_map!r}")
    return FEATURE_MAPS[feature_map]


def gaussian_features_matrix(m: int, d: int, rng: np.random.Generator, orthogonal: bool = True) -> np.ndarray:
    """W: (m, d) with rows marginally N(0, I_d).

    orthogonal=True: rows come in blocks of d mutually orthogonal directions (QR of a Gaussian
    matrix), each row rescaled to the norm of an independent d-dim Gaussian vector (chi_d), so
    every row is still N(0, I_d) but rows of a block are exactly orthogonal (lower variance).
    """
    for name, val in (("m", m), ("d", d)):
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < 1:
            raise ValueError(f"{name} must be an int >= 1, got {val!r}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if not orthogonal:
        return rng.standard_normal((m, d))
    blocks = []
    for _ in range(-(-m // d)):
        qmat, r = np.linalg.qr(rng.standard_normal((d, d)))
        qmat = qmat * np.sign(np.diag(r))                               # Haar-uniform rotation
        blocks.append(qmat.T)                                           # rows orthonormal
    dirs = np.concatenate(blocks)[:m]
    norms = np.linalg.norm(rng.standard_normal((m, d)), axis=1)         # chi_d lengths
    return dirs * norms[:, None]


def _check_w(x: np.ndarray, W: np.ndarray) -> None:
    if W.ndim != 2 or W.shape[1] != x.shape[-1]:
        raise ValueError(f"W must have shape (m, {x.shape[-1]}) for x {x.shape}, got {W.shape}")


def favor_features(x, W: np.ndarray, *, log: bool = False) -> np.ndarray:
    """FAVOR+ positive features. x: (..., L, d), W: (m, d) -> (..., L, m).

    phi(x) = m^(-1/2) exp(W x_bar - |x_bar|^2 / 2) with x_bar = x / d^(1/4). ``log=True`` returns
    log phi (for numerically stable use: constants can be subtracted before exp).
    """
    x = np.asarray(x)
    W = np.asarray(W)
    _check_w(x, W)
    m, d = W.shape
    xb = x / d ** 0.25                                                   # x_bar = x / d^(1/4)
    logphi = xb @ W.T - 0.5 * (xb * xb).sum(-1, keepdims=True) - 0.5 * np.log(m)
    return logphi if log else np.exp(logphi)


def source_text_features(x, W: np.ndarray) -> np.ndarray:
    """WRONG ON PURPOSE: the source text's map phi(x) = m^(-1/2) exp(W x_bar), no exp(-|x_bar|^2/2).

    Applied to x_bar = x / d^(1/4) like FAVOR+. x: (..., L, d), W: (m, d) -> (..., L, m).
    E[phi(q)^T phi(k)] = exp(q_bar^T k_bar) exp(|q_bar|^2/2) exp(|k_bar|^2/2): biased for every m.
    """
    x = np.asarray(x)
    W = np.asarray(W)
    _check_w(x, W)
    m, d = W.shape
    return np.exp((x / d ** 0.25) @ W.T) / np.sqrt(m)


def softmax_kernel(q, k) -> np.ndarray:
    """exp(q k^T / sqrt d): (..., Lq, d), (..., Lk, d) -> (..., Lq, Lk), the kernel FAVOR+ estimates."""
    q, k = np.asarray(q), np.asarray(k)
    return np.exp(q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1]))
