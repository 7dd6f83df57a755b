"""LayerNorm and RMSNorm over the last axis, each one fused graph node.

x: (..., d), weight/bias: (d,) -> (..., d).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd import custom_op
from ..tensor import Tensor, as_tensor


def _check_affine(name: str, p: Any, d: int) -> Tensor | None:
    if p is None:
        return None
    p = as_tensor(p)
    if p.shape != (d,):
        raise ValueError(f"{name}: expected shape ({d},) to match x's last axis, got {p.shape}")
    return p


def layer_norm(x: Any, weight: Any = None, bias: Any = None, eps: float = 1e-5) -> Tensor:
    """y = (x - mean) / sqrt(var + eps) * weight + bias, statistics over the last axis (biased var).

    Backward with xhat = (x - mu) * rstd and dxhat = g * weight:
    dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)).
    """
    x = as_tensor(x)
    X = x.data
    d = X.shape[-1]
    w, b = _check_affine("layer_norm weight", weight, d), _check_affine("layer_norm bias", bias, d)
    mu = X.mean(axis=-1, keepdims=True)
    xc = X - mu
    rstd = 1.0 / np.sqrt((xc * xc).mean(axis=-1, keepdims=True) + eps)   # 1 / sqrt(var + eps)
    xhat = xc * rstd
    out = xhat * w.data if w is not None else xhat.copy()
    if b is not None:
        out += b.data
    inputs = (x,) + tuple(p for p in (w, b) if p is not None)

    def backward(g: np.ndarray) -> tuple:
        dxhat = g * w.data if w is not None else g
        gx = rstd * (dxhat - dxhat.mean(axis=-1, keepdims=True)
                     - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))
        grads = [gx]
        g2 = g.reshape(-1, d)
        if w is not None:
            grads.append((g * xhat).reshape(-1, d).sum(axis=0))    # dL/dw = sum g * xhat
        if b is not None:
            grads.append(g2.sum(axis=0))                            # dL/db = sum g
        return grads
    return custom_op(out, inputs, backward, "layer_norm")


def rms_norm(x: Any, weight: Any = None, eps: float = 1e-6) -> Tensor:
    """y = x / sqrt(mean(x^2) + eps) * weight (Zhang & Sennrich 2019), over the last axis.

    Backward with r = 1 / sqrt(mean(x^2) + eps), xhat = x r, dxhat = g * weight:
    dx = r * (dxhat - xhat * mean(dxhat * xhat)).
    """
    x = as_tensor(x)
    X = x.data
    d = X.shape[-1]
    w = _check_affine("rms_norm weight", weight, d)
    r = 1.0 / np.sqrt((X * X).mean(axis=-1, keepdims=True) + eps)
    xhat = X * r
    out = xhat * w.data if w is not None else xhat
    inputs = (x,) if w is None else (x, w)

    def backward(g: np.ndarray) -> tuple:
        dxhat = g * w.data if w is not None else g
        gx = r * (dxhat - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))
        if w is None:
            return (gx,)
        return gx, (g * xhat).reshape(-1, d).sum(axis=0)
    return custom_op(out, inputs, backward, "rms_norm")
