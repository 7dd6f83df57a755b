"""Performer attention (FAVOR+, Choromanski et al. 2021): softmax attention through random features.

    out = D^-1 phi(Q) (phi(K)^T V),   D = diag(phi(Q) (phi(K)^T 1)),   phi = favor_features

Numerics: phi = exp(log phi). Any constant multiplying every feature of a *query row* cancels in
D^-1, and one constant shared by *all* key features cancels too, so we subtract the row max of
log phi(q) and the global max of log phi(k) before exp (no overflow, same result).
"""
from __future__ import annotations

import numpy as np

from .feature_maps import favor_features, gaussian_features_matrix
from .linear_attention import check_qkv, linear_attention_from_features

__all__ = ["performer_attention", "performer_features", "favor_kernel_estimate"]


def performer_features(q, k, W: np.ndarray):
    """Stabilised FAVOR+ features of q: (..., Lq, d) and k: (..., Lk, d) with W: (m, d).

    Returns (fq (..., Lq, m), fk (..., Lk, m)) equal to favor_features up to a positive factor per
    query row and one positive factor per key set (both cancel in attention).
    """
    lq, lk = favor_features(q, W, log=True), favor_features(k, W, log=True)
    fq = np.exp(lq - lq.max(axis=-1, keepdims=True))                   # per query row: cancels in D^-1
    kmax = lk.max(axis=(-2, -1), keepdims=True) if lk.shape[-2] else 0.0
    fk = np.exp(lk - kmax)                                              # one constant for all keys
    return fq, fk


def performer_attention(q, k, v, n_features: int, rng: np.random.Generator, orthogonal: bool = True,
                        causal: bool = False, W: np.ndarray | None = None) -> np.ndarray:
    """FAVOR+ approximation of softmax(q k^T / sqrt d) v.

    q: (..., Lq, d), k: (..., Lk, d), v: (..., Lk, dv) -> (..., Lq, dv).
    n_features: m >= 1 random features drawn from ``rng`` (orthogonal blocks by default);
    pass ``W (m, d)`` to reuse features. causal: prefix sums (needs Lq == Lk).
    float16/float32 inputs are computed and returned in float32, float64 in float64.
    The estimate of each kernel value is unbiased; the ratio D^-1 (...) is consistent (error
    falls as m grows) but not exactly unbiased.
    """
    q, k, v = check_qkv(q, k, v, causal)
    if isinstance(n_features, bool) or not isinstance(n_features, (int, np.integer)) or n_features < 1:
        raise ValueError(f"n_features must be an int >= 1, got {n_features!r}")
    if W is None:
        W = gaussian_features_matrix(n_features, q.shape[-1], rng, orthogonal=orthogonal)
    elif W.shape != (n_features, q.shape[-1]):
        raise ValueError(f"W must have shape (n_features={n_features}, d={q.shape[-1]}), got {W.shape}")
    fq, fk = (f.astype(q.dtype, copy=False) for f in performer_features(q, k, W))
    return linear_attention_from_features(fq, fk, v, causal=causal)


def favor_kernel_estimate(q, k, W: np.ndarray) -> np.ndarray:
    """phi(q)^T phi(k) with the exact (unstabilised) FAVOR+ map: (..., Lq, Lk) estimate of
    exp(q k^T / sqrt d). q: (..., Lq, d), k: (..., Lk, d), W: (m, d)."""
    return favor_features(q, W) @ np.swapaxes(favor_features(k, W), -1, -2)
