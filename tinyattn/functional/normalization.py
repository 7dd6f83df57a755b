"""LayerNorm and RMSNorm over the last axis, each one fused graph node.

x: (..., d), weight/bias: (d,) -> (..., d). The statistics are computed in float32 at least:
float16 inputs are upcast (x^2 overflows float16 from |x| >= 256, which made the norm 0) and the
result is cast back to the inputs' dtype. Integer/bool x is computed in float32. eps must be > 0
(eps = 0 divides by zero on a constant row). d = 0 gives the empty result.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd import custom_op
from ..tensor import Tensor
from ._checks import compute_dtype, float_input, positive


def _check_affine(name: str, p: Any, d: int) -> Tensor | None:
    if p is None:
        return None
    p = float_input(p, name)
    if p.shape != (d,):
        raise ValueError(f"{name}: expected shape ({d},) to match x's last axis, got {p.shape}")
    return p


def _prepare(fn: str, x: Any, params: tuple, eps: float):
    """(x Tensor, X in the compute dtype, affine Tensors, output dtype, eps as float)."""
    x = float_input(x, fn)
    if x.ndim < 1:
        raise ValueError(f"{fn}: x must be (..., d), got a scalar of shape {x.shape}")
    d = x.shape[-1]
    ps = tuple(_check_affine(f"{fn} {name}", p, d) for name, p in params)
    out_dtype = np.result_type(x.data.dtype, *(p.data.dtype for p in ps if p is not None))
    ct = compute_dtype(out_dtype)
    return x, x.data.astype(ct, copy=False), ps, out_dtype, positive(fn, "eps", eps)


def _mean(a: np.ndarray, d: int) -> np.ndarray:
    """Mean over the last axis; d = 0 gives 0 instead of NumPy's 'mean of empty slice' NaN."""
    return a.sum(axis=-1, keepdims=True) / max(d, 1)


def _sum_lead(a: np.ndarray) -> np.ndarray:
    """(..., d) -> (d,): sum over every leading axis (reshape(-1, d) fails for d = 0)."""
    return a.sum(axis=tuple(range(a.ndim - 1)))


def layer_norm(x: Any, weight: Any = None, bias: Any = None, eps: float = 1e-5) -> Tensor:
    """y = (x - mean) / sqrt(var + eps) * weight + bias, statistics over the last axis (biased var).

    Backward with xhat = (x - mu) * rstd and dxhat = g * weight:
    dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)).
    """
    x, X, (w, b), out_dtype, eps = _prepare("layer_norm", x, (("weight", weight), ("bias", bias)), eps)
    d = X.shape[-1]
    W = None if w is None else w.data.astype(X.dtype, copy=False)
    mu = _mean(X, d)
    xc = X - mu
    rstd = 1.0 / np.sqrt(_mean(xc * xc, d) + eps)                  # 1 / sqrt(var + eps)
    xhat = xc * rstd
    out = xhat * W if W is not None else xhat.copy()
    if b is not None:
        out += b.data
    inputs = (x,) + tuple(p for p in (w, b) if p is not None)

    def backward(g: np.ndarray) -> tuple:
        g = g.astype(X.dtype, copy=False)
        dxhat = g * W if W is not None else g
        gx = rstd * (dxhat - _mean(dxhat, d) - xhat * _mean(dxhat * xhat, d))
        grads = [gx]
        if w is not None:
            grads.append(_sum_lead(g * xhat))                       # dL/dw = sum g * xhat
        if b is not None:
            grads.append(_sum_lead(g))                              # dL/db = sum g
        return grads
    return custom_op(out.astype(out_dtype, copy=False), inputs, backward, "layer_norm")


def rms_norm(x: Any, weight: Any = None, eps: float = 1e-6) -> Tensor:
    """y = x / sqrt(mean(x^2) + eps) * weight (Zhang & Sennrich 2019), over the last axis.

    Backward with r = 1 / sqrt(mean(x^2) + eps), xhat = x r, dxhat = g * weight:
    dx = r * (dxhat - xhat * mean(dxhat * xhat)).
    """
    x, X, (w,), out_dtype, eps = _prepare("rms_norm", x, (("weight", weight),), eps)
    d = X.shape[-1]
    W = None if w is None else w.data.astype(X.dtype, copy=False)
    r = 1.0 / np.sqrt(_mean(X * X, d) + eps)                        # 1 / sqrt(mean(x^2) + eps)
    xhat = X * r
    out = xhat * W if W is not None else xhat
    inputs = (x,) if w is None else (x, w)

    def backward(g: np.ndarray) -> tuple:
        g = g.astype(X.dtype, copy=False)
        dxhat = g * W if W is not None else g
        gx = r * (dxhat - xhat * _mean(dxhat * xhat, d))
        if w is None:
            return (gx,)
        return gx, _sum_lead(g * xhat)
    return custom_op(out.astype(out_dtype, copy=False), inputs, backward, "rms_norm")
