"""Linear attention (Katharopoulos et al. 2020): replace exp(q^T k) by phi(q)^T phi(k) and reassociate.

    out_i = phi(q_i)^T (sum_j phi(k_j) v_j^T) / phi(q_i)^T (sum_j phi(k_j))     = phi(Q) (phi(K)^T V) / ...

costs O(N r dv) instead of O(N^2 d). Causally the two sums become running sums, an RNN with an
O(1)-size state per step (r x dv matrix S, r-vector z):

    S_t = S_{t-1} + phi(k_t) v_t^T,   z_t = z_{t-1} + phi(k_t),   out_t = S_t^T phi(q_t) / z_t^T phi(q_t)

:func:`linear_attention` computes the causal case chunk by chunk (exact, O(N)): inside a chunk a
masked C x C product, across chunks the carried state. :func:`linear_attention_recurrent` is the
literal one-token-at-a-time RNN; both equal the masked quadratic form.
"""
from __future__ import annotations

import numpy as np

from ..functional._checks import floating_arrays, same_batch_kv
from .feature_maps import get_feature_map

__all__ = ["linear_attention", "linear_attention_recurrent", "linear_attention_from_features",
           "check_qkv"]


def check_qkv(q, k, v, causal: bool = False):
    """q: (..., Lq, d), k: (..., Lk, d), v: (..., Lk, dv) floating, equal leading axes (Lq == Lk if causal)."""
    q, k, v = floating_arrays("(..., L, d)", 2, q=q, k=k, v=v)
    same_batch_kv(q, k, v)
    if causal and q.shape[-2] != k.shape[-2]:
        raise ValueError(f"causal linear attention needs Lq == Lk, got q {q.shape} and k {k.shape}")
    ct = np.float64 if np.result_type(q, k, v) == np.float64 else np.float32
    return q.astype(ct, copy=False), k.astype(ct, copy=False), v.astype(ct, copy=False)


def _divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den[..., None], 0 where the normaliser is 0 (e.g. relu features that are all zero)."""
    return num / np.where(den == 0, 1, den)[..., None] * (den != 0)[..., None]


def linear_attention_from_features(fq, fk, v, causal: bool = False, chunk: int = 64) -> np.ndarray:
    """Linear attention given features fq: (..., Lq, r), fk: (..., Lk, r), v: (..., Lk, dv).

    Non-causal: out = fq (fk^T v) / fq (fk^T 1). Causal (Lq == Lk): chunked prefix sums, exact.
    """
    if not causal:
        kv = np.swapaxes(fk, -1, -2) @ v                                 # phi(K)^T V: (..., r, dv)
        z = fk.sum(axis=-2)                                              # phi(K)^T 1: (..., r)
        return _divide(fq @ kv, (fq * z[..., None, :]).sum(-1))
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ValueError(f"chunk must be an int >= 1, got {chunk!r}")
    L, r, dv = fq.shape[-2], fq.shape[-1], v.shape[-1]
    S = np.zeros(fq.shape[:-2] + (r, dv), dtype=np.result_type(fq, v))  # carried state sum phi(k) v^T
    z = np.zeros(fq.shape[:-2] + (r,), dtype=S.dtype)                    # carried sum phi(k)
    out = np.empty(fq.shape[:-1] + (dv,), dtype=S.dtype)
    for c0 in range(0, L, chunk):
        c1 = min(c0 + chunk, L)
        qc, kc, vc = fq[..., c0:c1, :], fk[..., c0:c1, :], v[..., c0:c1, :]
        a = np.tril(qc @ np.swapaxes(kc, -1, -2))                        # intra-chunk phi(q_i)^T phi(k_j), j <= i
        num = qc @ S + a @ vc                                            # past chunks + this chunk
        den = qc @ z[..., :, None] + a.sum(-1, keepdims=True)
        out[..., c0:c1, :] = _divide(num, den[..., 0])
        S = S + np.swapaxes(kc, -1, -2) @ vc                             # S += phi(K_c)^T V_c
        z = z + kc.sum(axis=-2)
    return out


def linear_attention(q, k, v, feature_map="elu1", causal: bool = False, chunk: int = 64) -> np.ndarray:
    """Linear attention. q: (..., Lq, d), k: (..., Lk, d), v: (..., Lk, dv) -> (..., Lq, dv).

    feature_map: "elu1" (default, elu(x) + 1), "relu", or a callable (..., L, d) -> (..., L, r).
    causal: query i sees keys j <= i (needs Lq == Lk), computed in chunks of ``chunk`` positions.
    A row whose normaliser phi(q)^T sum phi(k) is 0 returns 0. float16/float32 inputs are computed
    and returned in float32, float64 in float64.
    """
    q, k, v = check_qkv(q, k, v, causal)
    phi = get_feature_map(feature_map)
    return linear_attention_from_features(phi(q), phi(k), v, causal=causal, chunk=chunk)


def linear_attention_recurrent(q, k, v, feature_map="elu1", state=None):
    """Causal linear attention as an RNN, one token per step. q, k: (..., L, d), v: (..., L, dv).

    state: optional ``(S (..., r, dv), z (..., r))`` carried from a previous segment.
    Returns ``(out (..., L, dv), (S, z))``: the state size never depends on L.
    """
    q, k, v = check_qkv(q, k, v, causal=True)
    phi = get_feature_map(feature_map)
    fq, fk = phi(q), phi(k)
    r, dv = fq.shape[-1], v.shape[-1]
    if state is None:
        S = np.zeros(q.shape[:-2] + (r, dv), dtype=np.result_type(fq, v))
        z = np.zeros(q.shape[:-2] + (r,), dtype=S.dtype)
    else:
        S, z = (np.array(s, dtype=np.result_type(fq, v)) for s in state)
    out = np.empty(q.shape[:-1] + (dv,), dtype=S.dtype)
    for t in range(q.shape[-2]):
        S = S + fk[..., t, :, None] * v[..., t, None, :]                 # S_t = S_{t-1} + phi(k_t) v_t^T
        z = z + fk[..., t, :]                                            # z_t = z_{t-1} + phi(k_t)
        num = (fq[..., t, :, None] * S).sum(-2)                          # S_t^T phi(q_t)
        out[..., t, :] = _divide(num, (fq[..., t, :] * z).sum(-1))       # / z_t^T phi(q_t)
    return out, (S, z)
