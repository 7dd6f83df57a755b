"""Shared helpers: attention restricted to groups (clusters, buckets) and top-k gathering."""
from __future__ import annotations

import math

import numpy as np

from ..functional._checks import floating_arrays, same_batch_kv

__all__ = ["check_qkv", "grouped_attention", "group_mask"]


def check_qkv(q, k, v, scale):
    """Validate q (..., Lq, d), k (..., Lk, d), v (..., Lk, dv) with equal leading axes -> float arrays."""
    q, k, v = floating_arrays("(..., L, d)", 2, q=q, k=k, v=v)
    same_batch_kv(q, k, v)
    ct = np.float64 if np.result_type(q, k, v) == np.float64 else np.float32
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    return q.astype(ct, copy=False), k.astype(ct, copy=False), v.astype(ct, copy=False), scale


def group_mask(q_group: np.ndarray, k_group: np.ndarray, causal: bool = False) -> np.ndarray:
    """bool (..., Lq, Lk): query i and key j share a group (and j <= i + Lk - Lq if causal)."""
    m = q_group[..., :, None] == k_group[..., None, :]
    if causal:
        lq, lk = q_group.shape[-1], k_group.shape[-1]
        m = m & (np.arange(lk)[None, :] <= np.arange(lq)[:, None] + lk - lq)
    return m


def grouped_attention(q, k, v, q_group, k_group, causal: bool, scale: float):
    """Attention where query i sees only keys of its own group; cost sum_g |Q_g| |K_g| scores.

    q: (..., Lq, d), k: (..., Lk, d), v: (..., Lk, dv), q_group: int (..., Lq), k_group: int (..., Lk).
    Returns out (..., Lq, dv) (0 for a query whose group has no visible key) and the number of
    scores computed (the real cost).
    """
    lead = q.shape[:-2]
    Lq, Lk, dv = q.shape[-2], k.shape[-2], v.shape[-1]
    qf, kf, vf = q.reshape(-1, Lq, q.shape[-1]), k.reshape(-1, Lk, k.shape[-1]), v.reshape(-1, Lk, dv)
    qg, kg = np.asarray(q_group).reshape(-1, Lq), np.asarray(k_group).reshape(-1, Lk)
    out = np.zeros((qf.shape[0], Lq, dv), dtype=q.dtype)
    n_scores = 0
    for b in range(qf.shape[0]):
        for g in np.unique(qg[b]):
            qi, ki = np.flatnonzero(qg[b] == g), np.flatnonzero(kg[b] == g)   # gather the group
            if ki.size == 0:
                continue
            s = (qf[b, qi] @ kf[b, ki].T) * scale                            # |Q_g| x |K_g| scores
            n_scores += s.size
            if causal:
                s = np.where(ki[None, :] <= qi[:, None] + Lk - Lq, s, -np.inf)
            mx = s.max(axis=1, keepdims=True)
            p = np.exp(s - np.where(np.isfinite(mx), mx, 0))
            den = p.sum(axis=1, keepdims=True)
            out[b, qi] = (p / np.where(den == 0, 1, den)) @ vf[b, ki]         # scatter back
    return out.reshape(lead + (Lq, dv)), n_scores
