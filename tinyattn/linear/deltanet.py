"""The delta rule (DeltaNet, Schlag et al. 2021; Yang et al. 2024) and its gated form (Gated DeltaNet).

Linear attention only ever *adds* to its memory, S_t = S_{t-1} + v_t k_t^T: writing a second
value under the same key returns the sum of both. The delta rule first reads what the memory
already says for k_t and writes only the correction, with a learning rate beta_t in [0, 1]:

    S_t = S_{t-1} + beta_t (v_t - S_{t-1} k_t) k_t^T  = S_{t-1} (I - beta_t k_t k_t^T) + beta_t v_t k_t^T
    gated:  S_t = alpha_t S_{t-1} (I - beta_t k_t k_t^T) + beta_t v_t k_t^T,   alpha_t in [0, 1]
    out_t = S_t q_t                                                         S: (dv, dk)

(one online gradient step on ||S k_t - v_t||^2). Keys are L2-normalised, as in DeltaNet.
"""
from __future__ import annotations

import numpy as np

from .linear_attention import check_qkv

__all__ = ["delta_rule_attention"]


def _gate(name: str, x, shape) -> np.ndarray:
    try:
        a = np.broadcast_to(np.asarray(x, dtype=np.float64), shape)
    except ValueError:
        raise ValueError(f"{name} must broadcast to {shape}, got shape {np.shape(x)}") from None
    if np.any(a < 0) or np.any(a > 1) or np.any(np.isnan(a)):
        raise ValueError(f"{name} must lie in [0, 1]")
    return a


def delta_rule_attention(q, k, v, beta, alpha=None, *, normalize_keys: bool = True, state=None):
    """Recurrent (gated) delta rule. q, k: (..., L, dk), v: (..., L, dv); beta, alpha: scalars or
    (..., L) in [0, 1] (alpha=None: no decay). state: optional S (..., dv, dk).

    Returns ``(out (..., L, dv), S (..., dv, dk))``. O(1) state per step, like linear attention.
    """
    q, k, v = check_qkv(q, k, v, causal=True)
    L = q.shape[-2]
    beta = _gate("beta", beta, q.shape[:-1])
    alpha = None if alpha is None else _gate("alpha", alpha, q.shape[:-1])
    if normalize_keys:
        n = np.linalg.norm(k, axis=-1, keepdims=True)
        k = k / np.where(n == 0, 1, n)
    dk, dv = k.shape[-1], v.shape[-1]
    S = np.zeros(q.shape[:-2] + (dv, dk), dtype=q.dtype) if state is None else np.array(state, dtype=q.dtype)
    if S.shape != q.shape[:-2] + (dv, dk):
        raise ValueError(f"state must have shape {q.shape[:-2] + (dv, dk)}, got {S.shape}")
    out = np.empty(q.shape[:-1] + (dv,), dtype=q.dtype)
    for t in range(L):
        kt, vt, b = k[..., t, :], v[..., t, :], beta[..., t, None]
        if alpha is not None:
            S = alpha[..., t, None, None] * S                             # forget: S <- alpha_t S
        pred = (S @ kt[..., :, None])[..., 0]                             # what memory returns: S k_t
        S = S + (b * (vt - pred))[..., :, None] * kt[..., None, :]        # S += beta (v - S k) k^T
        out[..., t, :] = (S @ q[..., t, :, None])[..., 0]                 # out_t = S_t q_t
    return out, S
