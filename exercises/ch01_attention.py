# GENERATED from solutions/ch01_attention.py by `python3 course.py exercises`.
# Fill in each `raise NotImplementedError(...)`; edit solutions/, never this file, as an author.
"""Chapter 01 exercises: softmax and scaled dot-product attention, in plain NumPy.

Exercise 01.1  softmax        a numerically stable softmax along any axis
Exercise 01.2  causal_mask    the bottom-right aligned causal mask for Lq queries and Lk keys
Exercise 01.3  attention      softmax(Q K^T / sqrt(d)) V with a boolean mask; empty rows give 0
Exercise 01.4  attention_backward   the gradients dQ, dK, dV of exercise 01.3 (the bridge to chapter 06)

Use NumPy only (no tinyattn): the graded tests compare your functions with the library.
"""
from __future__ import annotations

import numpy as np


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """exp(x) / sum(exp(x)) along ``axis``, same shape as x (float64).

    Must stay finite, without overflow warnings, for huge logits (entries around +-1e4).
    """
    # HINT: softmax(x) == softmax(x - c) for any constant c along the axis; pick c = the maximum
    # HINT: m = x.max(axis=axis, keepdims=True); the largest exponent is then exp(0) = 1
    raise NotImplementedError("Exercise 01.1: softmax")


def causal_mask(lq: int, lk: int) -> np.ndarray:
    """Bool (lq, lk), True = may attend. The lq queries are the LAST lq positions of a sequence
    of lk keys (decoding with a cache); each query may see the key at its own position and every
    earlier key, never a later one. When lq > lk the first queries see no key at all.
    """
    # HINT: query i sits at absolute position i + (lk - lq)
    # HINT: compare a column of query indices with a row of key indices (broadcasting)
    raise NotImplementedError("Exercise 01.2: causal_mask")


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None = None,
              scale: float | None = None) -> np.ndarray:
    """Scaled dot-product attention for one head (any leading batch axes).

    q: (..., Lq, d), k: (..., Lk, d), v: (..., Lk, dv); mask: bool broadcastable to (..., Lq, Lk),
    True = may attend; scale defaults to 1/sqrt(d). Returns (..., Lq, dv) float64.
    A query row whose mask is all False returns zeros (never NaN, no warning).
    """
    # HINT: set forbidden scores to -inf, but a row that is entirely -inf must not reach exp(-inf - -inf)
    # HINT: divide only where the row has an allowed key; elsewhere the weights stay 0
    raise NotImplementedError("Exercise 01.3: attention")


def attention_backward(q: np.ndarray, k: np.ndarray, v: np.ndarray, dout: np.ndarray,
                       mask: np.ndarray | None = None,
                       scale: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of ``out = attention(q, k, v, mask, scale)`` (exercise 01.3) for one head, any
    leading batch axes, given ``dout = dL/dout``.

    q: (..., Lq, d), k: (..., Lk, d), v: (..., Lk, dv), dout: (..., Lq, dv); mask and scale as in
    ``attention`` (scale defaults to 1/sqrt(d)); q, k, v, dout share their leading axes.
    Returns (dq (..., Lq, d), dk (..., Lk, d), dv (..., Lk, dv)), float64. A fully masked query row contributes nothing to any gradient
    (and nothing is NaN). The softmax step must cost O(Lq * Lk): no (Lk, Lk) Jacobian per row.
    """
    # HINT: recompute the forward's probabilities P (..., Lq, Lk) first, as in exercise 01.3
    # HINT: out = P V is a matmul: exercise 00.3 gives dV and dP from dout
    # HINT: the softmax VJP's row sum, sum_j dP_ij P_ij, equals a row sum of dout * out
    # HINT: S = scale * Q K^T: one more matmul backward, and do not forget the scale
    raise NotImplementedError("Exercise 01.4: attention_backward")
