"""Reformer-style LSH bucketing (Kitaev et al. 2020): attend only inside hash buckets.

Angular LSH: draw a random matrix ``R (d, n_buckets/2)``; the bucket of x is
``h(x) = argmax([x R ; -x R])``. Vectors with a small angle land in the same bucket with high
probability, so a query's largest-score keys (for unit-norm keys) tend to share its bucket.
Reformer ties queries and keys (shared-QK) so each query lands with itself; here q and k are
hashed with the same R, and the tied case is ``k = q / |q|``.
"""
from __future__ import annotations

import numpy as np

from ._grouped import check_qkv, grouped_attention

__all__ = ["lsh_buckets", "lsh_attention"]


def lsh_buckets(x, rotations: np.ndarray) -> np.ndarray:
    """x: (..., d), rotations: (d, n_buckets // 2) -> int (...) in [0, n_buckets)."""
    x = np.asarray(x)
    rotations = np.asarray(rotations)
    if rotations.ndim != 2 or rotations.shape[0] != x.shape[-1]:
        raise ValueError(f"rotations must have shape ({x.shape[-1]}, n_buckets // 2), got {rotations.shape}")
    proj = x @ rotations                                               # x R: (..., n_buckets / 2)
    return np.argmax(np.concatenate([proj, -proj], axis=-1), axis=-1)  # h(x) = argmax [xR; -xR]


def lsh_attention(q, k, v, n_buckets: int, rng: np.random.Generator, *, causal: bool = False,
                  scale: float | None = None):
    """One hashing round of LSH attention. q: (..., Lq, d), k: (..., Lk, d), v: (..., Lk, dv).

    n_buckets: even int >= 2; rng draws R. Returns ``(out, q_bucket, k_bucket, n_scores)``: out
    equals dense attention with the mask ``q_bucket[:, None] == k_bucket[None, :]`` (and causal);
    n_scores is the number of scores computed (sum over buckets of |Q_b| |K_b|).
    """
    q, k, v, scale = check_qkv(q, k, v, scale)
    if isinstance(n_buckets, bool) or not isinstance(n_buckets, (int, np.integer)) or n_buckets < 2 or n_buckets % 2:
        raise ValueError(f"n_buckets must be an even int >= 2, got {n_buckets!r}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    R = rng.standard_normal((q.shape[-1], n_buckets // 2))
    qb, kb = lsh_buckets(q, R), lsh_buckets(k, R)
    out, n_scores = grouped_attention(q, k, v, qb, kb, causal, scale)
    return out, qb, kb, n_scores
