"""ALiBi, Attention with Linear Biases (Press et al. 2022).

No position vectors at all: head h adds ``-m_h * (i - j)`` to the (already 1/sqrt(d)-scaled) score
of query i for key j <= i. The slopes form a fixed geometric sequence, they are not learned or tuned.

Slopes: for n a power of two, ``m_h = 2^(-8h/n)``, h = 1..n (n = 8 -> 1/2, 1/4, ..., 1/256).
Otherwise, with c = 2^floor(log2 n): the c slopes of c heads, then every other slope of the 2c-head
sequence, ``slopes(2c)[0::2][:n - c]`` (n = 12 -> 2^-1..2^-8, then 2^-0.5, 2^-1.5, 2^-2.5, 2^-3.5).
"""
from __future__ import annotations

import numpy as np

__all__ = ["alibi_slopes", "alibi_bias"]


def _check_pos_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def _power_of_two_slopes(n: int) -> np.ndarray:
    h = np.arange(1, n + 1, dtype=np.float64)
    return 2.0 ** (-8.0 * h / n)                      # m_h = 2^(-8h/n)


def alibi_slopes(n_heads: int) -> np.ndarray:
    """Per-head slopes -> (n_heads,) float64, for any n_heads >= 1."""
    n = _check_pos_int(n_heads, "n_heads")
    c = 2 ** int(np.floor(np.log2(n)))                # largest power of two <= n
    slopes = _power_of_two_slopes(c)
    if c == n:
        return slopes
    extra = _power_of_two_slopes(2 * c)[0::2][: n - c]  # interleave the 2c-head slopes
    return np.concatenate([slopes, extra])


def alibi_bias(n_heads: int, Lq: int, Lk: int, dtype=np.float32) -> np.ndarray:
    """The additive bias -> (n_heads, Lq, Lk).

    ``bias[h, i, j] = -m_h * (p_i - j)`` for keys j <= p_i and 0 for j > p_i, where the query's
    absolute position is ``p_i = i + Lk - Lq`` (bottom-right aligned, like the causal mask: with a KV
    cache the last query is the last key). Future keys get 0 here because the causal mask removes
    them anyway: use this bias together with ``is_causal=True``. Add it after the 1/sqrt(d) scaling.
    """
    Lq = _check_pos_int(Lq, "Lq")
    Lk = _check_pos_int(Lk, "Lk")
    if Lq > Lk:
        raise ValueError(f"Lq must be <= Lk (queries are the last Lq of the Lk positions), "
                         f"got Lq={Lq}, Lk={Lk}")
    m = alibi_slopes(n_heads)                                   # (H,)
    p = np.arange(Lq)[:, None] + (Lk - Lq)                      # (Lq, 1) absolute query positions
    dist = p - np.arange(Lk)[None, :]                           # (Lq, Lk): i - j
    dist = np.where(dist >= 0, dist, 0)                         # future keys: 0 (masked elsewhere)
    return (-m[:, None, None] * dist[None]).astype(dtype)       # -m_h (i - j)
