"""Top-k attention: compute every score, keep the k largest per query row, softmax over those.

    S = Q K^T * scale (masked),  T_i = indices of the k largest S_ij,  out_i = softmax(S_i,T_i) V_T_i

It saves the softmax and the P V product, not the scores (step 1 is still N x N): the source text
says so too ("内存节省,但时间节省有限").
"""
from __future__ import annotations

import numpy as np

from ._grouped import check_qkv

__all__ = ["topk_attention", "topk_mask"]


def topk_mask(scores: np.ndarray, top_k: int) -> np.ndarray:
    """bool (..., Lq, Lk): True at the ``top_k`` largest finite entries of each row of ``scores``."""
    scores = np.asarray(scores)
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ValueError(f"top_k must be an int >= 1, got {top_k!r}")
    kk = min(int(top_k), scores.shape[-1])
    idx = np.argpartition(-scores, kk - 1, axis=-1)[..., :kk]
    mask = np.zeros(scores.shape, bool)
    np.put_along_axis(mask, idx, True, axis=-1)
    return mask & np.isfinite(scores)


def topk_attention(q, k, v, top_k: int, *, causal: bool = False, scale: float | None = None):
    """Top-k sparse attention. q: (..., Lq, d), k: (..., Lk, d), v: (..., Lk, dv); top_k >= 1.

    causal: key j <= i + Lk - Lq (masked keys are never selected). Returns ``(out (..., Lq, dv),
    idx (..., Lq, min(top_k, Lk)))`` where idx lists the chosen keys (masked picks are dropped by a
    zero weight). Equals dense attention with the mask :func:`topk_mask` of the masked scores.
    """
    q, k, v, scale = check_qkv(q, k, v, scale)
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ValueError(f"top_k must be an int >= 1, got {top_k!r}")
    Lq, Lk = q.shape[-2], k.shape[-2]
    s = (q @ np.swapaxes(k, -1, -2)) * scale                           # step 1: all N x N scores
    if causal:
        s = np.where(np.arange(Lk)[None, :] <= np.arange(Lq)[:, None] + Lk - Lq, s, -np.inf)
    kk = min(int(top_k), Lk)
    if kk == 0:
        return np.zeros(q.shape[:-1] + (v.shape[-1],), q.dtype), np.zeros(q.shape[:-1] + (0,), np.int64)
    idx = np.argpartition(-s, kk - 1, axis=-1)[..., :kk]               # step 2: k largest per row
    st = np.take_along_axis(s, idx, axis=-1)                           # (..., Lq, kk) kept scores
    mx = st.max(axis=-1, keepdims=True)
    p = np.exp(st - np.where(np.isfinite(mx), mx, 0))                  # step 3: softmax over the k
    den = p.sum(axis=-1, keepdims=True)
    p = p / np.where(den == 0, 1, den)
    vt = np.take_along_axis(v[..., None, :, :], idx[..., None], axis=-2)   # (..., Lq, kk, dv) gathered V
    out = (p[..., None, :] @ vt)[..., 0, :]                            # out_i = sum_t p_it v_t
    return out, idx
