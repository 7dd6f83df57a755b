"""Linformer (Wang et al. 2020): project keys and values along the *sequence* axis to length k_proj.

    K' = E K,  V' = F V   with E, F in R^(k_proj x n),    out = softmax(Q K'^T / sqrt d) V'

Cost O(n k_proj d). The projections are tied to one sequence length n, and mixing positions
before the softmax breaks causality: Linformer is non-causal and fixed-length.
"""
from __future__ import annotations

import math

import numpy as np

from .linear_attention import check_qkv

__all__ = ["linformer_projections", "linformer_attention"]


def linformer_projections(n: int, k_proj: int, rng: np.random.Generator):
    """E, F: (k_proj, n) with entries N(0, 1/k_proj) (random init, as in the paper's JL argument)."""
    for name, val in (("n", n), ("k_proj", k_proj)):
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < 1:
            raise ValueError(f"{name} must be an int >= 1, got {val!r}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return (rng.standard_normal((k_proj, n)) / math.sqrt(k_proj),
            rng.standard_normal((k_proj, n)) / math.sqrt(k_proj))


def linformer_attention(q, k, v, E: np.ndarray, F: np.ndarray, scale: float | None = None) -> np.ndarray:
    """q: (..., Lq, d), k: (..., n, d), v: (..., n, dv), E, F: (k_proj, n) -> (..., Lq, dv)."""
    q, k, v = check_qkv(q, k, v)
    n = k.shape[-2]
    E, F = np.asarray(E), np.asarray(F)
    for name, P in (("E", E), ("F", F)):
        if P.ndim != 2 or P.shape[1] != n:
            raise ValueError(f"{name} must have shape (k_proj, n={n}) for k {k.shape}, got {P.shape}")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    kp, vp = E @ k, F @ v                                               # K' = E K, V' = F V: (..., k_proj, .)
    s = (q @ np.swapaxes(kp, -1, -2)) * scale                           # (..., Lq, k_proj)
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    return (p / p.sum(axis=-1, keepdims=True)) @ vp
