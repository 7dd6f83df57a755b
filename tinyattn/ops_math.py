"""Arithmetic, elementwise, matmul and reduction ops of :class:`tinyattn.Tensor`, each with its backward.

Every op builds its output with ``Tensor._make(data, parents, backward, name)``; ``backward(g)``
gets ``g = dL/d(out)`` (shaped like the output) and returns ``dL/d(parent)`` for each parent.
Broadcasting rule: if ``x`` was broadcast from shape ``s`` to the output shape, its gradient is
the output gradient summed over the broadcast axes (:func:`unbroadcast`).
Python scalars stay Python scalars (NumPy treats them as "weak", so float32 stays float32).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .tensor import Tensor

Axis = int | tuple[int, ...] | None


def unbroadcast(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``g`` over the axes along which an array of ``shape`` was broadcast to ``g.shape``.

    g: (*batch, *shape-with-1s-expanded) -> (shape). Leading extra axes and axes where
    ``shape`` has size 1 but ``g`` does not are summed (one ``np.sum`` call).
    """
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape)
                                      if s == 1 and g.shape[lead + i] != 1)
    return g.sum(axis=axes, keepdims=True).reshape(shape)


def _other(x: Any) -> Any:
    """Tensor stays; numpy scalars become Python scalars (weak dtype); lists become arrays."""
    if isinstance(x, Tensor) or isinstance(x, (int, float)):
        return x
    if isinstance(x, np.generic):
        return x.item()
    return np.asarray(x)


def add(a: Tensor, b: Any) -> Tensor:
    b = _other(b)
    if isinstance(b, Tensor):
        sa, sb = a.data.shape, b.data.shape
        return Tensor._make(a.data + b.data, (a, b),
                            lambda g: (unbroadcast(g, sa), unbroadcast(g, sb)), "add")
    sa = a.data.shape
    return Tensor._make(a.data + b, (a,), lambda g: (unbroadcast(g, sa),), "add")


def sub(a: Tensor, b: Any) -> Tensor:
    b = _other(b)
    if isinstance(b, Tensor):
        sa, sb = a.data.shape, b.data.shape
        return Tensor._make(a.data - b.data, (a, b),
                            lambda g: (unbroadcast(g, sa), unbroadcast(-g, sb)), "sub")
    sa = a.data.shape
    return Tensor._make(a.data - b, (a,), lambda g: (unbroadcast(g, sa),), "sub")


def rsub(a: Tensor, b: Any) -> Tensor:
    """b - a for a non-Tensor b."""
    sa = a.data.shape
    return Tensor._make(_other(b) - a.data, (a,), lambda g: (unbroadcast(-g, sa),), "sub")


def neg(a: Tensor) -> Tensor:
    return Tensor._make(-a.data, (a,), lambda g: (-g,), "neg")


def mul(a: Tensor, b: Any) -> Tensor:
    b = _other(b)
    A = a.data
    if isinstance(b, Tensor):
        B = b.data

        def backward(g: np.ndarray) -> tuple:
            # d(ab)/da = b, d(ab)/db = a
            ga = unbroadcast(g * B, A.shape) if a.requires_grad else None
            gb = unbroadcast(g * A, B.shape) if b.requires_grad else None
            return ga, gb
        return Tensor._make(A * B, (a, b), backward, "mul")
    return Tensor._make(A * b, (a,), lambda g: (unbroadcast(g * b, A.shape),), "mul")


def div(a: Tensor, b: Any) -> Tensor:
    b = _other(b)
    A = a.data
    if isinstance(b, Tensor):
        B = b.data
        out = A / B

        def backward(g: np.ndarray) -> tuple:
            # d(a/b)/da = 1/b, d(a/b)/db = -a/b^2 = -out/b
            ga = unbroadcast(g / B, A.shape) if a.requires_grad else None
            gb = unbroadcast(-g * out / B, B.shape) if b.requires_grad else None
            return ga, gb
        return Tensor._make(out, (a, b), backward, "div")
    return Tensor._make(A / b, (a,), lambda g: (unbroadcast(g / b, A.shape),), "div")


def rdiv(a: Tensor, b: Any) -> Tensor:
    """b / a for a non-Tensor b: d(b/a)/da = -b/a^2 = -out/a."""
    A = a.data
    out = _other(b) / A
    return Tensor._make(out, (a,), lambda g: (unbroadcast(-g * out / A, A.shape),), "div")


def power(a: Tensor, p: Any) -> Tensor:
    p = _other(p)
    A = a.data
    if isinstance(p, Tensor):
        P = p.data
        out = A ** P

        def backward(g: np.ndarray) -> tuple:
            # d(a^p)/da = p a^(p-1); d(a^p)/dp = a^p log a   (a > 0 for the latter)
            ga = unbroadcast(g * P * A ** (P - 1), A.shape) if a.requires_grad else None
            gp = unbroadcast(g * out * np.log(A), P.shape) if p.requires_grad else None
            return ga, gp
        return Tensor._make(out, (a, p), backward, "pow")
    return Tensor._make(A ** p, (a,), lambda g: (unbroadcast(g * p * A ** (p - 1), A.shape),),
                        "pow")


def rpower(a: Tensor, base: Any) -> Tensor:
    """base ** a for a non-Tensor base: d(c^a)/da = c^a log c."""
    base = _other(base)
    out = base ** a.data
    return Tensor._make(out, (a,), lambda g: (unbroadcast(g * out * np.log(base), a.data.shape),),
                        "pow")


# ----------------------------------------------------------------------------- elementwise
def exp(a: Tensor) -> Tensor:
    out = np.exp(a.data)
    return Tensor._make(out, (a,), lambda g: (g * out,), "exp")          # (e^x)' = e^x


def log(a: Tensor) -> Tensor:
    A = a.data
    return Tensor._make(np.log(A), (a,), lambda g: (g / A,), "log")      # (log x)' = 1/x


def tanh(a: Tensor) -> Tensor:
    out = np.tanh(a.data)
    return Tensor._make(out, (a,), lambda g: (g * (1 - out * out),), "tanh")   # 1 - tanh^2


def sqrt(a: Tensor) -> Tensor:
    out = np.sqrt(a.data)
    return Tensor._make(out, (a,), lambda g: (g / (2 * out),), "sqrt")   # 1 / (2 sqrt x)


def relu(a: Tensor) -> Tensor:
    A = a.data
    return Tensor._make(np.maximum(A, 0), (a,), lambda g: (g * (A > 0),), "relu")


def sigmoid(a: Tensor) -> Tensor:
    out = 0.5 * (1 + np.tanh(0.5 * a.data))     # sigma(x) = (1 + tanh(x/2)) / 2, no overflow
    return Tensor._make(out, (a,), lambda g: (g * out * (1 - out),), "sigmoid")


def absolute(a: Tensor) -> Tensor:
    A = a.data
    return Tensor._make(np.abs(A), (a,), lambda g: (g * np.sign(A),), "abs")


# ----------------------------------------------------------------------------- matmul
def matmul(a: Tensor, b: Any) -> Tensor:
    """a: (..., m, k) @ b: (..., k, n) -> (..., m, n), batch dims broadcast (1-D operands as NumPy).

    Backward: dA = dO @ B^T, dB = A^T @ dO, each summed over the axes it was broadcast along.
    """
    if not isinstance(b, Tensor):
        b = Tensor(b)
    A, B = a.data, b.data
    if A.ndim == 0 or B.ndim == 0:
        raise ValueError(f"matmul: operands must have at least 1 dimension, got shapes "
                         f"{A.shape} and {B.shape}")
    ka, kb = A.shape[-1], (B.shape[-2] if B.ndim >= 2 else B.shape[0])
    if ka != kb:
        raise ValueError(f"matmul: shapes {A.shape} and {B.shape} are not aligned: "
                         f"a.shape[-1] = {ka} must equal b.shape[-2] = {kb}")
    try:
        np.broadcast_shapes(A.shape[:-2], B.shape[:-2])
    except ValueError:
        raise ValueError(f"matmul: batch dimensions of shapes {A.shape} and {B.shape} "
                         f"do not broadcast ({A.shape[:-2]} vs {B.shape[:-2]})") from None
    if B.ndim == 2 and A.ndim > 2:
        # (..., k) @ (k, n) as one 2-D BLAS call; dB = A2^T @ dO2 needs no batch sum
        n = B.shape[1]
        A2 = A.reshape(-1, ka)                  # a view when A is contiguous; reused in backward
        out = (A2 @ B).reshape(A.shape[:-1] + (n,))

        def backward(g: np.ndarray) -> tuple:
            g2 = g.reshape(-1, n)
            ga = (g2 @ B.T).reshape(A.shape) if a.requires_grad else None
            gb = A2.T @ g2 if b.requires_grad else None
            return ga, gb
        return Tensor._make(out, (a, b), backward, "matmul")

    out = np.matmul(A, B)

    def backward_general(g: np.ndarray) -> tuple:
        A2 = A if A.ndim > 1 else A[None, :]           # 1-D operands as a row / a column
        B2 = B if B.ndim > 1 else B[:, None]
        g2 = g[..., None] if B.ndim == 1 else g
        g2 = g2[..., None, :] if A.ndim == 1 else g2
        ga = gb = None
        if a.requires_grad:
            ga = unbroadcast(np.matmul(g2, np.swapaxes(B2, -1, -2)), A2.shape).reshape(A.shape)
        if b.requires_grad:
            gb = unbroadcast(np.matmul(np.swapaxes(A2, -1, -2), g2), B2.shape).reshape(B.shape)
        return ga, gb
    return Tensor._make(out, (a, b), backward_general, "matmul")


# ----------------------------------------------------------------------------- reductions
def _axes(axis: Axis, ndim: int) -> tuple[int, ...]:
    """Normalise ``axis`` (None, int or tuple, negatives allowed) to sorted positive axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for ax in axes:
        if not -ndim <= ax < ndim:
            raise ValueError(f"axis {ax} is out of range for a tensor with {ndim} dimensions")
        out.append(int(ax) % ndim)
    return tuple(sorted(out))


def _expand(g: np.ndarray, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
    """Re-insert reduced axes (as size 1) so ``g`` broadcasts against the input."""
    return g if keepdims else np.expand_dims(g, axes)


def sum_(a: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    A = a.data
    axes = _axes(axis, A.ndim)
    out = np.asarray(A.sum(axis=axes, keepdims=keepdims))
    # d(sum)/dx_i = 1: the gradient is copied (broadcast) back over the reduced axes
    return Tensor._make(out, (a,), lambda g: (np.broadcast_to(_expand(g, axes, keepdims), A.shape),),
                        "sum")


def mean(a: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    A = a.data
    axes = _axes(axis, A.ndim)
    n = int(np.prod([A.shape[ax] for ax in axes]))
    out = np.asarray(A.mean(axis=axes, keepdims=keepdims))
    return Tensor._make(
        out, (a,), lambda g: (np.broadcast_to(_expand(g, axes, keepdims) / n, A.shape),), "mean")


def max_(a: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Maximum over ``axis``; the gradient is split equally among tied maxima."""
    A = a.data
    if A.size == 0:
        raise ValueError(f"max of an empty tensor (shape {A.shape})")
    axes = _axes(axis, A.ndim)
    m = A.max(axis=axes, keepdims=True)
    out = np.asarray(m if keepdims else m.reshape([s for i, s in enumerate(A.shape)
                                                   if i not in axes]))

    def backward(g: np.ndarray) -> tuple:
        hit = A == m
        return (hit * (_expand(g, axes, keepdims) / hit.sum(axis=axes, keepdims=True)),)
    return Tensor._make(out, (a,), backward, "max")
