# GENERATED from solutions/ch03_positional.py by `python3 course.py exercises`.
# Fill in each `raise NotImplementedError(...)`; edit solutions/, never this file, as an author.
"""Chapter 03 exercises: position encodings, in plain NumPy.

Exercise 03.1  sinusoidal_table    the interleaved sin/cos table of Vaswani et al. (2017)
Exercise 03.2  rope_interleaved    RoPE with pairs (2i, 2i+1) (RoFormer)
Exercise 03.3  rope_half           RoPE with pairs (i, i + d/2) (GPT-NeoX / Llama "rotate_half")
Exercise 03.4  alibi_slopes        ALiBi's per-head slopes for ANY number of heads

Use NumPy only (no tinyattn): the graded tests compare your functions with the library.
"""
from __future__ import annotations

import numpy as np


def sinusoidal_table(n_positions: int, d_model: int, base: float = 10000.0) -> np.ndarray:
    """Return PE: (n_positions, d_model) float64 with, for p = 0..n-1 and i = 0..d/2-1,
        PE[p, 2i]   = sin(p * w_i),   PE[p, 2i+1] = cos(p * w_i),   w_i = base^(-2i/d).
    d_model is even.
    """
    # HINT: build the angles p * w_i as an outer product of shape (n, d/2)
    # HINT: write sin into the even columns (0::2) and cos into the odd ones (1::2)
    raise NotImplementedError("Exercise 03.1: sinusoidal_table")


def rope_interleaved(x: np.ndarray, positions: np.ndarray, base: float = 10000.0) -> np.ndarray:
    """Rotary embedding, interleaved layout.

    x: (..., L, d) with d even; positions: (L,) integers. theta_i = base^(-2i/d), i = 0..d/2-1.
    Pair i is (x[..., 2i], x[..., 2i+1]); at position m it is rotated by the angle m * theta_i:
        out[2i]   = x[2i] cos(m theta_i) - x[2i+1] sin(m theta_i)
        out[2i+1] = x[2i+1] cos(m theta_i) + x[2i] sin(m theta_i)
    (the complex view: (x[2i] + 1j x[2i+1]) * exp(1j m theta_i)). Returns (..., L, d) float64.
    """
    # HINT: angles has shape (L, d/2); it broadcasts against x[..., 0::2] of shape (..., L, d/2)
    raise NotImplementedError("Exercise 03.2: rope_interleaved")


def rope_half(x: np.ndarray, positions: np.ndarray, base: float = 10000.0) -> np.ndarray:
    """Rotary embedding, half layout (GPT-NeoX / Llama): pair i is (x[..., i], x[..., i + d/2]).

    x: (..., L, d) with d even; positions: (L,). Same angles m * theta_i as rope_interleaved:
        out = x * cos + rotate_half(x) * sin,   rotate_half(x) = concat(-x[d/2:], x[:d/2]),
    where cos and sin repeat the d/2 angles twice: cos = concat(cos(m theta), cos(m theta)).
    Returns (..., L, d) float64.
    """
    # HINT: concatenate the (L, d/2) tables with themselves to get (L, d)
    raise NotImplementedError("Exercise 03.3: rope_half")


def alibi_slopes(n_heads: int) -> np.ndarray:
    """ALiBi slopes (Press et al. 2022) -> (n_heads,) float64.

    If n is a power of two: m_h = 2^(-8h/n) for h = 1..n.
    Otherwise let c be the largest power of two below n: the c slopes for c heads, followed by
    the first n - c entries of every-other slope (indices 0, 2, 4, ...) of the 2c-head sequence.
    Example: n = 12 -> 2^-1, ..., 2^-8, then 2^-0.5, 2^-1.5, 2^-2.5, 2^-3.5.
    """
    # HINT: c = 2 ** floor(log2(n)); check c == n first
    raise NotImplementedError("Exercise 03.4: alibi_slopes")
