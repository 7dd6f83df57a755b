"""Chapter 11 exercises: linear attention as prefix sums, and FAVOR+ positive random features.

Exercise 11.1  causal_linear_attention  the RNN view: running sums instead of an L x L matrix
Exercise 11.2  favor_features           positive random features for the softmax kernel

Use NumPy only (no tinyattn): the graded tests compare your functions with ``tinyattn.linear``,
with the masked quadratic form, and with Monte-Carlo averages.
"""
from __future__ import annotations

import numpy as np


def elu1(x: np.ndarray) -> np.ndarray:
    """The feature map elu(x) + 1 (given): x + 1 for x > 0, exp(x) otherwise."""
    return np.where(x > 0, x + 1, np.exp(np.minimum(x, 0)))


def causal_linear_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Causal linear attention with phi = elu1. q, k: (L, d), v: (L, dv) -> (L, dv):

        out_i = sum_{j <= i} (phi(q_i) . phi(k_j)) v_j  /  sum_{j <= i} phi(q_i) . phi(k_j)

    Requirement: never build an (L, L) array; memory and time must grow linearly with L.
    """
    # BEGIN SOLUTION
    fq, fk = elu1(q), elu1(k)
    # HINT: the numerator needs the running sum of the outer products phi(k_j) v_j^T (a (d, dv) state)
    S = np.cumsum(fk[:, :, None] * v[:, None, :], axis=0)      # S_i = sum_{j<=i} phi(k_j) v_j^T
    z = np.cumsum(fk, axis=0)                                   # z_i = sum_{j<=i} phi(k_j)
    num = np.einsum("ld,lde->le", fq, S)                        # phi(q_i)^T S_i
    den = (fq * z).sum(axis=1)                                  # phi(q_i)^T z_i
    return num / den[:, None]
    # END SOLUTION


def favor_features(x: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Positive random features for the softmax kernel. x: (L, d), W: (m, d) -> (L, m).

    With x_bar = x / d**0.25 and rows w_i of W drawn from N(0, I_d), return
    phi(x)_i = c * f(x_bar) * exp(w_i . x_bar) with a constant c and a scalar factor f(x_bar) that
    you must determine so that  E_W[phi(q) . phi(k)] = exp(q . k / sqrt(d))  exactly, for every q, k.
    """
    # BEGIN SOLUTION
    m, d = W.shape
    xb = x / d ** 0.25
    # HINT: for w ~ N(0, I), E[exp(w . u)] = exp(|u|^2 / 2); take u = q_bar + k_bar
    return np.exp(xb @ W.T - 0.5 * (xb ** 2).sum(axis=1, keepdims=True)) / np.sqrt(m)
    # END SOLUTION
