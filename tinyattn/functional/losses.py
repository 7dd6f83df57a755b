"""Cross-entropy loss as one fused node (log-softmax + pick + mean, backward = softmax - onehot)."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd import custom_op
from ..tensor import Tensor
from ._checks import compute_dtype, float_input, reject_posinf


def cross_entropy(logits: Any, targets: Any, ignore_index: int = -100,
                  reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of integer class targets under softmax(logits).

    logits: (..., C) float; targets: (...) integer in [0, C) or ``ignore_index``.
    loss_i = lse(z_i) - z_i[t_i]; reduction "mean" averages over non-ignored positions (0 if
    every position is ignored, never NaN), "sum" adds them, "none" returns (...) with 0 at ignored.
    Backward: dz_i = (softmax(z_i) - onehot(t_i)) * g / n_valid.
    Integer/bool logits are computed in float32; float16 in float32 (returned as float16).
    +inf logits raise ValueError; a scored row whose logits are all -inf raises ValueError (no class
    has any probability); ignored rows may hold anything finite or -inf and cost 0 with 0 gradient.
    NaN logits in a scored row give a NaN loss (``train`` stops on it).
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    z = float_input(logits, "cross_entropy", "logits")
    t = np.asarray(targets.data if isinstance(targets, Tensor) else targets)
    Z = z.data
    if Z.ndim < 1:
        raise ValueError(f"cross_entropy: logits must be (..., C), got shape {Z.shape}")
    C = Z.shape[-1]
    if not np.issubdtype(t.dtype, np.integer):
        raise TypeError(f"cross_entropy: targets must be integers, got dtype {t.dtype} "
                        f"(shape {t.shape})")
    if t.shape != Z.shape[:-1]:
        raise ValueError(f"cross_entropy: targets shape {t.shape} must equal logits shape "
                         f"{Z.shape} without its last axis, i.e. {Z.shape[:-1]}")
    # float16 logits are computed in float32 (exp-sums over a vocabulary lose float16 precision)
    Z2 = Z.astype(compute_dtype(Z.dtype), copy=False).reshape(t.size, C)
    t1 = t.reshape(-1)
    valid = t1 != ignore_index
    if C == 0 and valid.any():
        raise ValueError(f"cross_entropy: logits {Z.shape} have C = 0 classes; the loss is undefined")
    bad = valid & ((t1 < 0) | (t1 >= C))
    if bad.any():
        raise ValueError(f"cross_entropy: target {t1[bad][0]} is outside [0, {C}) and is not "
                         f"ignore_index={ignore_index}")
    rows = np.arange(t1.size)
    ts = np.where(valid, t1, 0)
    m = Z2.max(axis=1, keepdims=True, initial=-np.inf)
    reject_posinf("cross_entropy", m[valid])
    empty = ~np.isfinite(m[:, 0]) & ~np.isnan(m[:, 0])            # every logit -inf (or C = 0)
    if (empty & valid).any():
        raise ValueError(f"cross_entropy: row {int(np.flatnonzero(empty & valid)[0])} (flattened) has "
                         "every logit = -inf but a scored target; mask it with ignore_index instead")
    m[empty] = 0.0                                                 # ignored all -inf rows: no NaN
    e = np.exp(Z2 - m)
    s = e.sum(axis=1, keepdims=True)
    s[empty] = 1.0                                                 # their softmax is 0, loss 0
    lse = (m + np.log(s))[:, 0]                                    # log sum_j exp(z_j)
    picked = Z2[rows, ts] if C else np.zeros(t1.size, Z2.dtype)   # C = 0: every row is ignored
    per = np.where(valid, lse - picked, 0).astype(Z.dtype, copy=False)   # -log p_t
    n_valid = int(valid.sum())
    if reduction == "none":
        out = per.reshape(t.shape)
    else:
        total = per.sum(dtype=np.float64)
        out = np.asarray(total / max(n_valid, 1) if reduction == "mean" else total, dtype=Z.dtype)

    def backward(g: np.ndarray) -> tuple:
        dz = e / s                                                 # softmax(z)
        if C:
            dz[rows, ts] -= 1                                      # - onehot(t)
        if reduction == "none":
            dz *= g.reshape(-1)[:, None]
        else:
            dz *= g / max(n_valid, 1) if reduction == "mean" else g
        dz = np.where(valid[:, None], dz, 0)                       # ignored rows: exactly 0 (even NaN)
        return (dz.reshape(Z.shape).astype(Z.dtype, copy=False),)
    return custom_op(out, (z,), backward, "cross_entropy")
