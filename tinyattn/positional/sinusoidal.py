"""Sinusoidal position encodings (Vaswani et al. 2017), interleaved layout.

``PE[p, 2i] = sin(p * w_i)``, ``PE[p, 2i+1] = cos(p * w_i)`` with ``w_i = base^(-2i/d)``.
Pair i = 0 has the highest frequency (wavelength 2*pi); the last pair the lowest
(wavelength 2*pi * base^((d-2)/d), just under 2*pi*base). Many libraries concatenate
``[sin | cos]`` instead of interleaving: same numbers, permuted columns.

The key property (source text 2.1): ``PE(p + k) = T_k PE(p)`` where ``T_k`` is block-diagonal
with one 2x2 rotation per pair that depends on k only (``shift_matrix``).
"""
from __future__ import annotations

import numpy as np

__all__ = ["sinusoidal", "sinusoidal_at", "sinusoidal_frequencies", "shift_matrix", "wavelengths"]


def _check_dim(d_model: int, name: str = "d_model") -> int:
    if isinstance(d_model, bool) or not isinstance(d_model, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(d_model).__name__}")
    if d_model < 2 or d_model % 2:
        raise ValueError(
            f"{name} must be even and >= 2 (one sin/cos pair per frequency), got {d_model}; "
            "pad the embedding or use an even width")
    return int(d_model)


def sinusoidal_frequencies(d_model: int, base: float = 10000.0) -> np.ndarray:
    """Angular frequencies ``w_i = base^(-2i/d)``, i = 0..d/2-1 -> (d/2,) float64."""
    d = _check_dim(d_model)
    if not base > 1.0:
        raise ValueError(f"base must be > 1, got {base}")
    return base ** (-np.arange(0, d, 2, dtype=np.float64) / d)  # w_i = base^(-2i/d)


def wavelengths(d_model: int, base: float = 10000.0) -> np.ndarray:
    """Wavelength (in positions) of each pair: ``lambda_i = 2*pi / w_i`` -> (d/2,) float64."""
    return 2.0 * np.pi / sinusoidal_frequencies(d_model, base)


def sinusoidal_at(positions, d_model: int, base: float = 10000.0,
                  dtype=np.float32) -> np.ndarray:
    """Encodings at arbitrary (possibly fractional) positions.

    positions: (L,) real numbers (CAPE feeds shifted, scaled float positions) -> (L, d_model).
    The angles are formed in float64 and only the result is cast to ``dtype``, so large positions
    do not lose precision in the argument of sin/cos.
    """
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim != 1:
        raise ValueError(f"positions must have shape (L,), got {pos.shape}")
    if not np.all(np.isfinite(pos)):
        raise ValueError("positions must be finite")
    w = sinusoidal_frequencies(d_model, base)
    angles = pos[:, None] * w[None, :]                # (L, d/2): p * w_i
    pe = np.empty((pos.shape[0], d_model), dtype=np.float64)
    pe[:, 0::2] = np.sin(angles)                      # PE[p, 2i]   = sin(p w_i)
    pe[:, 1::2] = np.cos(angles)                      # PE[p, 2i+1] = cos(p w_i)
    return pe.astype(dtype)


def sinusoidal(n_positions: int, d_model: int, base: float = 10000.0,
               dtype=np.float32) -> np.ndarray:
    """Table of encodings for positions 0..n_positions-1 -> (n_positions, d_model), interleaved.

    d_model must be even (raises ValueError otherwise).
    """
    if isinstance(n_positions, bool) or not isinstance(n_positions, (int, np.integer)):
        raise TypeError(f"n_positions must be an int, got {type(n_positions).__name__}")
    if n_positions < 0:
        raise ValueError(f"n_positions must be >= 0, got {n_positions}")
    return sinusoidal_at(np.arange(n_positions), d_model, base, dtype=dtype)


def shift_matrix(k: float, d_model: int, base: float = 10000.0) -> np.ndarray:
    """The linear map ``T_k`` with ``PE(p + k) = T_k @ PE(p)`` for every p -> (d, d) float64.

    Block i acts on (PE[2i], PE[2i+1]) = (sin a, cos a), a = p w_i, b = k w_i:
        sin(a + b) =  cos(b) sin(a) + sin(b) cos(a)
        cos(a + b) = -sin(b) sin(a) + cos(b) cos(a)
    so the block is [[cos b, sin b], [-sin b, cos b]]: a rotation by -b, independent of p.
    """
    w = sinusoidal_frequencies(d_model, base)
    b = k * w
    T = np.zeros((d_model, d_model), dtype=np.float64)
    i = np.arange(0, d_model, 2)
    T[i, i] = np.cos(b)
    T[i, i + 1] = np.sin(b)
    T[i + 1, i] = -np.sin(b)
    T[i + 1, i + 1] = np.cos(b)
    return T
