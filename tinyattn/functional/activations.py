"""Softmax, log-softmax and pointwise activations, each one fused graph node.

x: (..., n) -> same shape. Softmax is computed stably: ``softmax(x) = softmax(x - max x)``.
Integer/bool inputs are computed in float32 (never truncated); float16 in float32, returned as float16.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd import custom_op
from ..tensor import Tensor, as_tensor
from ._checks import compute_dtype, float_input, reject_posinf

_GELU_C = float(np.sqrt(2.0 / np.pi))     # sqrt(2/pi) of the tanh approximation


def _softmax_parts(X: np.ndarray, axis: int, fn: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (m, e, s): m = max, e = exp(x - m), s = sum e, with all -inf rows mapped to 0/1.

    float16 is computed in float32 (x - m overflows float16 for |x| > 32752); callers cast back.
    An empty axis gives empty e (``initial=-inf``: no reduction error). A row containing +inf
    raises ValueError; a row containing NaN gives NaN (NaN propagates, row by row).
    """
    X = X.astype(compute_dtype(X.dtype), copy=False)
    m = X.max(axis=axis, keepdims=True, initial=-np.inf)
    reject_posinf(fn, m)
    m = np.where(np.isfinite(m), m, 0.0).astype(X.dtype, copy=False)   # all -inf row: no NaN
    e = np.exp(X - m)
    s = e.sum(axis=axis, keepdims=True)
    s[s == 0] = 1                                                     # empty row -> p = 0
    return m, e, s


def softmax(x: Any, axis: int = -1) -> Tensor:
    """p_i = exp(x_i - m) / sum_j exp(x_j - m), m = max_j x_j. A row of all -inf gives zeros.

    Backward (Jacobian dp_i/dx_j = p_i (delta_ij - p_j)): dx = p * (g - sum(g * p)).
    """
    x = float_input(x, "softmax")
    _, e, s = _softmax_parts(x.data, axis, "softmax")
    e /= s
    p = e.astype(x.dtype, copy=False)

    def backward(g: np.ndarray) -> tuple:
        gp = g * p
        gp -= p * gp.sum(axis=axis, keepdims=True)          # p * (g - sum(g p))
        return (gp,)
    return custom_op(p, (x,), backward, "softmax")


def log_softmax(x: Any, axis: int = -1) -> Tensor:
    """log p_i = x_i - lse(x), lse = m + log sum exp(x - m). Backward: dx = g - softmax(x) * sum(g)."""
    x = float_input(x, "log_softmax")
    X = x.data
    m, e, s = _softmax_parts(X, axis, "log_softmax")
    out = (X.astype(m.dtype, copy=False) - (m + np.log(s))).astype(X.dtype, copy=False)

    def backward(g: np.ndarray) -> tuple:
        return (g - np.exp(out) * g.sum(axis=axis, keepdims=True),)
    return custom_op(out, (x,), backward, "log_softmax")


def gelu(x: Any, approximate: str = "tanh") -> Tensor:
    """GELU, tanh form (GPT-2, Hendrycks & Gimpel 2016): 0.5 x (1 + tanh(c (x + 0.044715 x^3))).

    Only ``approximate="tanh"`` is implemented (NumPy has no erf); it differs from the exact
    x * Phi(x) by less than 1e-3 everywhere.
    """
    if approximate != "tanh":
        raise ValueError(f"gelu: approximate must be 'tanh', got {approximate!r}")
    x = float_input(x, "gelu")
    X = x.data.astype(compute_dtype(x.data.dtype), copy=False)   # fp16: x^2 overflows from |x| 256
    # u = c (x + 0.044715 x^3) = x (c + 0.044715 c x^2), built in place (few temporaries)
    t = X * X
    t *= 0.044715 * _GELU_C
    t += _GELU_C
    t *= X
    np.tanh(t, out=t)                                # t = tanh(u)
    out = t + 1
    out *= X
    out *= 0.5                                       # 0.5 x (1 + t)
    out = out.astype(x.data.dtype, copy=False)

    def backward(g: np.ndarray) -> tuple:
        # d/dx = 0.5 (1 + t + x (1 - t^2) du/dx),  du/dx = c (1 + 3 * 0.044715 x^2)
        du = X * X
        du *= 3 * 0.044715 * _GELU_C
        du += _GELU_C
        d = t * t
        np.subtract(1, d, out=d)
        d *= du
        d *= X
        d += t
        d += 1
        d *= g
        d *= 0.5
        return (d,)
    return custom_op(out, (x,), backward, "gelu")


def silu(x: Any) -> Tensor:
    """SiLU / swish: x * sigmoid(x). Backward: s (1 + x (1 - s))."""
    x = float_input(x, "silu")
    X = x.data
    s = 0.5 * (1 + np.tanh(0.5 * X))           # sigmoid without overflow
    out = X * s

    def backward(g: np.ndarray) -> tuple:
        return (g * (s * (1 + X * (1 - s))),)
    return custom_op(out, (x,), backward, "silu")


def relu(x: Any) -> Tensor:
    """max(x, 0); gradient 1 where x > 0."""
    return as_tensor(x).relu()


def sigmoid(x: Any) -> Tensor:
    """1 / (1 + exp(-x)), computed as (1 + tanh(x / 2)) / 2."""
    return as_tensor(x).sigmoid()


def tanh(x: Any) -> Tensor:
    return as_tensor(x).tanh()
