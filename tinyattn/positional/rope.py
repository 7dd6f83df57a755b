"""Rotary position embeddings, RoPE (Su et al. 2021, "RoFormer").

Each pair of coordinates of a query/key at position m is rotated by the angle ``m * theta_i``,
``theta_i = base^(-2i/d)``. Viewing a pair as a complex number z, the rotation is
``z * exp(1j * m * theta_i)``, so ``<R_m q, R_n k> = Re(sum_i q_i conj(k_i) e^{i (m-n) theta_i})``
depends on m - n only (source text 2.2).

Two layouts pair the coordinates differently (same maths, different memory order):
- ``"interleaved"``: pairs (2i, 2i+1)              (RoFormer, GPT-J, the source text's code)
- ``"half"``:        pairs (i, i + r/2), r = 2*len(inv_freq)  (GPT-NeoX, Llama / HF ``rotate_half``)
With ``perm = [0, 2, 4, ..., 1, 3, 5, ...]``: ``interleaved(x)[..., perm] == half(x[..., perm])``.

Partial rotary: if ``inv_freq`` has fewer than d/2 entries (odd d, or ``rotary_pct < 1``), only the
first ``r = 2 * len(inv_freq)`` coordinates are rotated; the rest pass through unchanged.
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["rope_inv_freq", "apply_rope", "rope_angles", "rope_matrix", "half_permutation",
           "rope_decay_bound",
           "LAYOUTS"]

LAYOUTS = ("half", "interleaved")


def rope_inv_freq(head_dim: int, base: float = 10000.0) -> np.ndarray:
    """``theta_i = base^(-2i/head_dim)`` for i = 0..head_dim//2 - 1 -> (head_dim // 2,) float64.

    An odd head_dim gives (head_dim - 1)/2 frequencies: the last coordinate is passed through.
    """
    if isinstance(head_dim, bool) or not isinstance(head_dim, (int, np.integer)):
        raise TypeError(f"head_dim must be an int, got {type(head_dim).__name__}")
    if head_dim < 2:
        raise ValueError(f"head_dim must be >= 2, got {head_dim}")
    if not base > 1.0:
        raise ValueError(f"base must be > 1, got {base}")
    return base ** (-np.arange(0, head_dim - 1, 2, dtype=np.float64) / head_dim)  # base^(-2i/d)


def half_permutation(d: int) -> np.ndarray:
    """``perm = [0, 2, 4, ..., 1, 3, 5, ...]`` (d even): ``interleaved(x)[perm] == half(x[perm])``."""
    if d % 2:
        raise ValueError(f"d must be even, got {d}")
    return np.concatenate([np.arange(0, d, 2), np.arange(1, d, 2)])


def rope_angles(positions, inv_freq) -> np.ndarray:
    """Angles ``m * theta_i``: positions (..., L), inv_freq (P,) -> (..., L, P) float64."""
    pos = np.asarray(positions, dtype=np.float64)
    return pos[..., None] * np.asarray(inv_freq, dtype=np.float64)  # m * theta_i


def _rotate(x: np.ndarray, cos: np.ndarray, sin: np.ndarray, layout: str) -> np.ndarray:
    """Rotate the first 2P coordinates of x (..., L, d) by the angles behind cos/sin (..., L, P)."""
    P = cos.shape[-1]
    r = 2 * P
    out = x.copy()
    if layout == "half":
        x1, x2 = x[..., :P], x[..., P:r]              # pair i = (x_i, x_{i+P})
        out[..., :P] = x1 * cos - x2 * sin            # Re((x1 + i x2) e^{i a})
        out[..., P:r] = x2 * cos + x1 * sin           # Im((x1 + i x2) e^{i a})
    else:
        x1, x2 = x[..., 0:r:2], x[..., 1:r:2]         # pair i = (x_{2i}, x_{2i+1})
        out[..., 0:r:2] = x1 * cos - x2 * sin
        out[..., 1:r:2] = x2 * cos + x1 * sin
    return out


def _check(x_shape: tuple, pos_shape: tuple, n_pairs: int, layout: str) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if len(x_shape) < 2:
        raise ValueError(f"x must have shape (..., L, d), got {x_shape}")
    L, d = x_shape[-2], x_shape[-1]
    if n_pairs < 1 or 2 * n_pairs > d:
        raise ValueError(
            f"inv_freq must have shape (P,) with 1 <= P <= d//2 = {d // 2} for x of shape {x_shape}, "
            f"got P = {n_pairs}")
    if len(pos_shape) == 0 or pos_shape[-1] != L:
        raise ValueError(f"positions must have shape (L,) = ({L},) (or (..., L) broadcastable to "
                         f"x's leading axes), got {pos_shape}")


def apply_rope(x: Any, positions, inv_freq, layout: str = "half",
               attention_factor: float = 1.0) -> Any:
    """Rotate queries or keys by their positions.

    x: (..., L, d) ndarray or ``ta.Tensor`` (floating). positions: (L,) ints or floats (or
    (..., L) broadcastable against x's leading axes). inv_freq: (P,), P <= d // 2.
    layout: "half" (Llama/HF) or "interleaved" (RoFormer). attention_factor multiplies cos and sin
    (YaRN's temperature: applied to both q and k it scales the logits by its square).
    Returns the same kind as x (ndarray -> ndarray of x.dtype; Tensor -> Tensor, one autograd node
    whose backward rotates the gradient by the negative angle). float16 inputs are rotated in
    float32 and the result cast back to float16.
    """
    from ..tensor import Tensor  # layer 1, imported lazily so the NumPy path needs nothing else

    is_tensor = isinstance(x, Tensor)
    data = x.data if is_tensor else np.asarray(x)
    if not np.issubdtype(data.dtype, np.floating):
        raise TypeError(f"x must be floating point, got dtype {data.dtype}")
    inv = np.asarray(inv_freq, dtype=np.float64)
    if inv.ndim != 1:
        raise ValueError(f"inv_freq must have shape (P,), got {inv.shape}")
    pos_shape = np.shape(positions)
    _check(data.shape, pos_shape, inv.shape[0], layout)

    ct = np.result_type(data.dtype, np.float32)      # float16 is rotated in float32, cast back
    angles = rope_angles(positions, inv)                              # (..., L, P)
    cos = (attention_factor * np.cos(angles)).astype(ct)              # f * cos(m theta_i)
    sin = (attention_factor * np.sin(angles)).astype(ct)              # f * sin(m theta_i)
    out = _rotate(data.astype(ct, copy=False), cos, sin, layout).astype(data.dtype, copy=False)
    if not is_tensor:
        return out

    from ..autograd import custom_op

    def backward(g: np.ndarray):
        # out = f R(a) x  =>  dL/dx = f R(a)^T g = f R(-a) g on the rotated part, g elsewhere
        gx = _rotate(g.astype(ct, copy=False), cos, -sin, layout)
        return (gx.astype(data.dtype, copy=False),)

    return custom_op(out, (x,), backward, name="apply_rope")


def rope_matrix(m: float, inv_freq, d: int, layout: str = "half") -> np.ndarray:
    """The (d, d) float64 matrix R_m with ``apply_rope(x, [m], ...)[0] == R_m @ x`` (for teaching)."""
    eye = np.eye(d, dtype=np.float64)
    # column j of R_m is R_m e_j: rotate every basis vector as a length-d "sequence" at position m
    return apply_rope(eye, np.full(d, m, dtype=np.float64), inv_freq, layout=layout).T


def rope_decay_bound(distances, head_dim: int, base: float = 10000.0) -> np.ndarray:
    """RoFormer's long-range decay curve (Su et al. 2021, section 3.4.3) -> (len(distances),).

    By Abel summation, ``|sum_i h_i e^{i D theta_i}| <= max_i |h_{i+1} - h_i| * sum_j |S_j|`` with
    ``S_j = sum_{k<j} e^{i D theta_k}``. The curve is the relative bound ``(2/d) sum_{j=1}^{d/2} |S_j|``
    at distance D: it shrinks (with ripples) as D grows, an intended property (a token attends less
    to far-away tokens unless q and k are strongly aligned), not a defect.
    """
    D = np.asarray(distances, dtype=np.float64)
    theta = rope_inv_freq(head_dim, base)
    S = np.cumsum(np.exp(1j * D[..., None] * theta), axis=-1)     # S_j, j = 1..d/2
    return np.abs(S).mean(axis=-1)                                # (1/(d/2)) sum_j |S_j|
