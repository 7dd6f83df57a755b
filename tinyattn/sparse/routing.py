"""Routing attention (Roy et al. 2021, the Routing Transformer): online k-means over queries and keys.

The source text's "routing attention" (an MLP with Gumbel-softmax choosing fixed regions) is not
the Routing Transformer. There, queries and keys are unit-normalised and assigned to the nearest of
``C`` shared centroids; a query attends only to keys of its own cluster. The centroids are not
trained by gradient: after each batch they move towards the mean of the vectors assigned to them,

    mu_c <- decay * mu_c + (1 - decay) * mean{ x : cluster(x) = c },   then renormalised,

(mini-batch / online k-means). With balanced clusters of size N/C the cost is N²/C scores; the
paper picks C ~ sqrt(N) for O(N^1.5).
"""
from __future__ import annotations

import numpy as np

from ._grouped import check_qkv, grouped_attention

__all__ = ["OnlineKMeans", "routing_attention"]


def _unit(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(n == 0, 1, n)


class OnlineKMeans:
    """Spherical online k-means. centroids: (n_clusters, d), unit rows drawn from ``rng``.

    ``assign(x: (..., d)) -> int (...)``: index of the centroid with the largest cosine.
    ``update(x: (..., d))``: one exponential-moving-average step towards the assigned means.
    """

    def __init__(self, n_clusters: int, d: int, rng: np.random.Generator, decay: float = 0.9):
        for name, val in (("n_clusters", n_clusters), ("d", d)):
            if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < 1:
                raise ValueError(f"{name} must be an int >= 1, got {val!r}")
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.centroids = _unit(rng.standard_normal((int(n_clusters), int(d))))

    def _check(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.shape[-1:] != self.centroids.shape[1:]:
            raise ValueError(f"x must have shape (..., {self.centroids.shape[1]}), got {x.shape}")
        return x

    def assign(self, x) -> np.ndarray:
        """x: (..., d) -> int (...): argmax_c <x/|x|, mu_c>."""
        return np.argmax(_unit(self._check(x)) @ self.centroids.T, axis=-1)

    def update(self, x) -> np.ndarray:
        """One online k-means step on x: (..., d); returns the assignments used."""
        x = _unit(self._check(x)).reshape(-1, self.centroids.shape[1])
        c = self.assign(x)
        for j in np.unique(c):
            mean = x[c == j].mean(axis=0)                               # mean of the assigned vectors
            self.centroids[j] = self.decay * self.centroids[j] + (1 - self.decay) * mean
        self.centroids = _unit(self.centroids)
        return c


def routing_attention(q, k, v, kmeans: OnlineKMeans, *, causal: bool = False,
                      scale: float | None = None, update: bool = False):
    """Attention inside k-means clusters. q: (..., Lq, d), k: (..., Lk, d), v: (..., Lk, dv).

    Queries and keys are assigned with the same centroids (``kmeans``); query i sees key j iff
    they share a cluster (and j <= i + Lk - Lq if causal). ``update=True`` first moves the
    centroids towards this batch's queries and keys (training-time behaviour).
    Returns ``(out (..., Lq, dv), q_cluster (..., Lq), k_cluster (..., Lk), n_scores)``; out equals
    dense attention with the mask ``q_cluster[:, None] == k_cluster[None, :]`` (rows with an empty
    cluster give 0). n_scores = sum over clusters of |Q_c| |K_c|: the scores really computed.
    """
    q, k, v, scale = check_qkv(q, k, v, scale)
    if not isinstance(kmeans, OnlineKMeans):
        raise TypeError(f"kmeans must be an OnlineKMeans, got {type(kmeans).__name__}")
    if update:
        kmeans.update(np.concatenate([q.reshape(-1, q.shape[-1]), k.reshape(-1, k.shape[-1])]))
    qc, kc = kmeans.assign(q), kmeans.assign(k)
    out, n_scores = grouped_attention(q, k, v, qc, kc, causal, scale)
    return out, qc, kc, n_scores
