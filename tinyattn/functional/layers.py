"""Fused layer functions: linear, embedding (gather), dropout, masked_fill."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd import custom_op
from ..tensor import Tensor, as_tensor
from ._checks import float_input


def linear(x: Any, weight: Any, bias: Any = None) -> Tensor:
    """y = x @ W + b. x: (..., d_in), W: (d_in, d_out), b: (d_out,) -> (..., d_out).

    One 2-D matmul over the flattened batch; backward: dx = g W^T, dW = x^T g, db = sum g.
    """
    x, w = as_tensor(x), as_tensor(weight)
    X, W = x.data, w.data
    if W.ndim != 2 or X.ndim < 1 or X.shape[-1] != W.shape[0]:
        raise ValueError(f"linear: x has shape {X.shape} and weight {W.shape}; expected "
                         f"x (..., d_in) and weight (d_in, d_out) with equal d_in")
    d_in, d_out = W.shape
    X2 = X.reshape(-1, d_in)
    out = X2 @ W
    b = None
    if bias is not None:
        b = as_tensor(bias)
        if b.shape != (d_out,):
            raise ValueError(f"linear: bias has shape {b.shape}, expected ({d_out},)")
        out += b.data
    out = out.reshape(X.shape[:-1] + (d_out,))
    inputs = (x, w) if b is None else (x, w, b)

    def backward(g: np.ndarray) -> list:
        g2 = g.reshape(-1, d_out)
        grads = [(g2 @ W.T).reshape(X.shape) if x.requires_grad else None,
                 X2.T @ g2 if w.requires_grad else None]
        if b is not None:
            grads.append(g2.sum(axis=0) if b.requires_grad else None)
        return grads
    return custom_op(out, inputs, backward, "linear")


def embedding(weight: Any, indices: Any) -> Tensor:
    """Row gather: weight (V, d), indices int (...) -> (..., d).

    Backward scatter-adds rows: sort the indices once and sum equal runs (``np.add.reduceat``),
    which is several times faster than ``np.add.at`` for small vocabularies.
    """
    w = as_tensor(weight)
    idx = np.asarray(indices.data if isinstance(indices, Tensor) else indices)
    if not np.issubdtype(idx.dtype, np.integer):
        raise TypeError(f"embedding: indices must be integers, got dtype {idx.dtype} "
                        f"(shape {idx.shape})")
    V = w.shape[0]
    if idx.size and (idx.min() < 0 or idx.max() >= V):      # -1 (or -100 padding) would wrap silently
        raise ValueError(f"embedding: indices must lie in [0, {V}) for a weight of shape {w.shape}, "
                         f"got range [{idx.min()}, {idx.max()}]")
    W = w.data
    flat = idx.reshape(-1)
    out = W[flat].reshape(idx.shape + W.shape[1:])

    def backward(g: np.ndarray) -> tuple:
        gw = np.zeros_like(W)
        if flat.size:
            order = np.argsort(flat, kind="stable")
            sorted_idx = flat[order]
            starts = np.flatnonzero(np.r_[True, sorted_idx[1:] != sorted_idx[:-1]])
            g2 = g.reshape((flat.size,) + W.shape[1:])
            gw[sorted_idx[starts]] = np.add.reduceat(g2[order], starts, axis=0)
        return (gw,)
    return custom_op(out, (w,), backward, "embedding")


def dropout(x: Any, p: float, rng: np.random.Generator | None = None,
            training: bool = True) -> Tensor:
    """Inverted dropout: zero each element with probability p, scale survivors by 1 / (1 - p).

    x: (...) -> (...). Identity when ``training`` is False or p == 0. Needs an explicit
    ``rng`` (np.random.Generator) when it drops anything; p must be in [0, 1).
    Integer/bool x is computed in float32 (survivors are scaled by a non-integer 1 / (1 - p)).
    """
    x = float_input(x, "dropout")
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    if not training or p == 0.0:
        return x
    if rng is None:
        raise ValueError("dropout: pass rng=np.random.default_rng(seed) when training with p > 0")
    # mask entries are 0 or 1/(1-p), so E[mask] = 1 and E[out] = x
    mask = (rng.random(x.shape) >= p).astype(x.dtype) * x.dtype.type(1.0 / (1.0 - p))
    return custom_op(x.data * mask, (x,), lambda g: (g * mask,), "dropout")


def _check_fill(value: Any, dtype: np.dtype) -> None:
    """A value x's dtype holds exactly: any real for float x; an in-range integer for int/bool x
    (int(-inf) raises deep in NumPy and int(0.5) silently gives 0)."""
    if not isinstance(value, (int, float, np.number, np.bool_)):        # bool is an int subclass
        raise TypeError(f"masked_fill: value must be a real number, got {value!r}")
    if np.issubdtype(dtype, np.floating):
        return
    v = float(value)
    lo, hi = (0, 1) if dtype == np.bool_ else (np.iinfo(dtype).min, np.iinfo(dtype).max)
    if not (np.isfinite(v) and v.is_integer() and lo <= v <= hi):
        raise TypeError(f"masked_fill: value {value!r} cannot be stored exactly in x's dtype {dtype}; "
                        "cast x to a float dtype first")


def masked_fill(x: Any, mask: Any, value: float) -> Tensor:
    """Where ``mask`` is True put ``value`` (e.g. -inf before a softmax), else keep x.

    x: (...), mask: bool, broadcastable to x's shape. No gradient flows to filled positions.
    """
    x = as_tensor(x)
    M = np.asarray(mask.data if isinstance(mask, Tensor) else mask)
    if M.dtype != np.bool_:
        raise TypeError(f"masked_fill: mask must be bool, got dtype {M.dtype} (shape {M.shape})")
    try:
        ok = np.broadcast_shapes(M.shape, x.shape) == x.shape
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"masked_fill: mask of shape {M.shape} does not broadcast to x's shape {x.shape}")
    _check_fill(value, x.dtype)
    out = np.where(M, x.dtype.type(value), x.data)
    return custom_op(out, (x,), lambda g: (np.where(M, 0, g),), "masked_fill")
