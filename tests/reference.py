"""Independent float64 references shared by several test files (plain NumPy, no tinyattn code)."""
from __future__ import annotations

import math

import numpy as np


def dense_attention(q, k, v, is_causal: bool = False, scale: float | None = None):
    """softmax(q kᵀ · scale) v in float64 -> (out (..., Lq, dv), lse (..., Lq)).

    q: (..., Lq, d), k: (..., Lk, d), v: (..., Lk, dv). Causal is bottom-right aligned (query i sees
    keys j <= i + Lk - Lq); a row with no allowed key gives out 0 and lse -inf.
    """
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = q @ np.swapaxes(k, -1, -2) * scale
    lq, lk = s.shape[-2:]
    ok = np.arange(lk)[None, :] <= np.arange(lq)[:, None] + (lk - lq) if is_causal else np.ones((lq, lk), bool)
    s = np.where(ok, s, -np.inf)
    m = s.max(-1, keepdims=True)
    e = np.where(ok, np.exp(s - np.where(np.isfinite(m), m, 0)), 0.0)
    l = e.sum(-1, keepdims=True)
    out = (e / np.where(l == 0, 1, l)) @ v
    empty = l[..., 0] == 0
    lse = np.where(empty, -np.inf, m[..., 0] + np.log(np.where(empty, 1, l[..., 0])))
    return out, lse
