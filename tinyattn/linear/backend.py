"""Linear attention inside the Transformer: the SDPA backend ``"linear"`` (differentiable).

``TransformerLM(..., backend="linear")`` replaces every softmax attention by elu+1 linear
attention. For training we use the *parallel* causal form,

    A = tril(phi(Q) phi(K)^T),   out = A V / rowsum(A)

(O(N²), but identical to the O(N) recurrence, tested in tests/test_linear_attention.py); it is
built from Tensor operations so autograd gives the gradient. ``scale`` is ignored (phi has none).
"""
from __future__ import annotations

import numpy as np

__all__ = ["linear_sdpa", "register"]


def _elu1(x):
    """Differentiable elu(x) + 1 on a Tensor: d/dx = 1 for x > 0, exp(x) otherwise."""
    from ..autograd import custom_op

    xd = x.data
    e = np.exp(np.minimum(xd, 0))
    out = np.where(xd > 0, xd + 1, e).astype(xd.dtype, copy=False)
    grad = np.where(xd > 0, 1, e).astype(xd.dtype, copy=False)
    return custom_op(out, [x], lambda g: [g * grad], name="elu1")


def linear_sdpa(q, k, v, mask=None, *, bias=None, is_causal=False, scale=None, dropout_p=0.0, rng=None):
    """q: (..., H, Lq, d), k: (..., H, Lk, d), v: (..., H, Lk, dv) Tensors -> Tensor (..., H, Lq, dv).

    Same heads for q and k (no GQA), no bias, no dropout; ``mask`` (bool, True = keep) and
    ``is_causal`` zero the masked products phi(q_i)^T phi(k_j).
    """
    if bias is not None:
        raise ValueError("the linear backend has no additive bias (ALiBi/T5 need softmax attention)")
    if dropout_p:
        raise ValueError("the linear backend does not implement attention dropout")
    if q.shape[-3] != k.shape[-3]:
        raise ValueError(f"the linear backend needs as many KV heads as query heads, got q {q.shape}, k {k.shape}")
    lq, lk = q.shape[-2], k.shape[-2]
    keep = np.ones((lq, lk), bool) if mask is None else np.broadcast_to(mask, q.shape[:-1] + (lk,))
    if is_causal:
        keep = keep & (np.arange(lk)[None, :] <= np.arange(lq)[:, None] + lk - lq)
    fq, fk = _elu1(q), _elu1(k)
    a = (fq @ fk.transpose(*range(fk.ndim - 2), fk.ndim - 1, fk.ndim - 2)) * keep.astype(q.data.dtype)
    den = a.sum(axis=-1, keepdims=True) + 1e-6                           # > 0: elu+1 features are positive
    return (a @ v) / den


def register() -> None:
    from ..functional.attention import register_sdpa_backend

    register_sdpa_backend("linear", linear_sdpa)
