"""FP8 (e4m3) rounding and FlashAttention-3's incoherent processing, in NumPy on the CPU (chapter 07 §9).

Nothing here needs a GPU: the functions show *why* the FP8 kernel of :mod:`tinyattn.gpu.hopper_fp8`
loses accuracy on inputs with outliers and how a random rotation repairs it.

- :func:`round_e4m3` - round float64 values to the nearest e4m3 number (1 sign, 4 exponent bits with
  bias 7, 3 mantissa bits; largest finite 448, smallest subnormal 2^-9), saturating at +-448.
- :func:`quantize_e4m3` - x ~ s * e4m3(x / s) with one scale s = amax / 448 per block of rows.
- :func:`hadamard` / :func:`incoherent_rotation` - M = diag(signs) H_d / sqrt(d): orthogonal, so
  (Q M)(K M)^T = Q M M^T K^T = Q K^T exactly, while every rotated entry is a +-1/sqrt(d)-weighted sum of
  a whole row: an outlier channel is spread over all d channels, amax drops, and the per-block scale
  wastes less of e4m3's 3-bit mantissa on one large value.
"""
from __future__ import annotations

import numpy as np

E4M3_MAX = 448.0          # (1 + 6/8) * 2^8
E4M3_MIN_EXP = -6         # smallest normal 2^-6; subnormals step 2^-9


def round_e4m3(x: np.ndarray) -> np.ndarray:
    """x (any shape) float -> float64 array of the nearest e4m3 values (ties to even), clipped to +-448.

    An e4m3 number is (-1)^s 2^e (1 + m/8), e in [-6, 8], m in 0..7 (except e = 8, m = 7: NaN), and
    the subnormals 2^-6 * m/8. Rounding keeps 3 mantissa bits: spacing 2^(e-3) for |x| in [2^e, 2^(e+1))."""
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"round_e4m3 needs finite inputs, got {np.count_nonzero(~np.isfinite(x))} non-finite of shape {x.shape}")
    a = np.minimum(np.abs(x), E4M3_MAX)
    e = np.floor(np.log2(np.where(a > 0, a, 1.0)))                  # exponent of the leading bit
    e = np.maximum(e, E4M3_MIN_EXP)                                  # subnormals share 2^-6's spacing
    step = 2.0 ** (e - 3)                                            # 3 mantissa bits
    r = np.round(a / step) * step                                    # np.round: ties to even
    return np.sign(x) * np.minimum(r, E4M3_MAX)


def quantize_e4m3(x: np.ndarray, block_rows: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """x (..., N, d) -> (xq, scales): xq = s * e4m3(x / s) (float64, the dequantised values) with one
    s = amax / 448 per block of block_rows rows of each leading index; scales (..., ceil(N / block_rows))."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 2 or block_rows < 1:
        raise ValueError(f"quantize_e4m3 needs x (..., N, d) and block_rows >= 1, got shape {x.shape}, block_rows {block_rows}")
    n = x.shape[-2]
    nb = -(-n // block_rows)
    pad = nb * block_rows - n
    xp = np.concatenate([x, np.zeros(x.shape[:-2] + (pad, x.shape[-1]))], axis=-2) if pad else x
    xb = xp.reshape(x.shape[:-2] + (nb, block_rows, x.shape[-1]))
    amax = np.abs(xb).max(axis=(-2, -1))                             # (..., nb)
    s = np.where(amax > 0, amax / E4M3_MAX, 1.0)
    xq = round_e4m3(xb / s[..., None, None]) * s[..., None, None]
    return xq.reshape(xp.shape)[..., :n, :], s


def hadamard(d: int) -> np.ndarray:
    """Sylvester Hadamard matrix (d, d) of +-1 entries, d a power of two: H_2d = [[H, H], [H, -H]]."""
    if d < 1 or d & (d - 1):
        raise ValueError(f"hadamard needs d a power of two, got {d}")
    h = np.ones((1, 1))
    while h.shape[0] < d:
        h = np.block([[h, h], [h, -h]])
    return h


def incoherent_rotation(d: int, rng: np.random.Generator) -> np.ndarray:
    """(d, d) float64 orthogonal M = diag(s) H_d / sqrt(d), s_i = +-1 drawn from rng (d a power of two).

    Apply the SAME M to q and k of a head before quantising: (q M)(k M)^T = q k^T (M M^T = I)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    signs = rng.choice(np.array([-1.0, 1.0]), size=d)
    return signs[:, None] * hadamard(d) / np.sqrt(d)


def fp8_attention_error(q: np.ndarray, k: np.ndarray, v: np.ndarray, m: np.ndarray | None = None,
                        block_rows: int = 128) -> float:
    """Relative error ||o8 - o|| / ||o|| of attention with q, k, v (N, d) rounded to e4m3 (per-block
    scales), against float64 attention on the unrounded inputs; m (d, d): rotate q and k by m first.

    softmax(q k^T / sqrt(d)) v computed densely in float64 in both cases (only the rounding differs)."""
    def attend(a, b, c):
        s = a @ b.T / np.sqrt(a.shape[-1])
        p = np.exp(s - s.max(axis=-1, keepdims=True))
        return (p / p.sum(axis=-1, keepdims=True)) @ c

    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    ref = attend(q, k, v)
    if m is not None:
        q, k = q @ m, k @ m                                          # q k^T unchanged (m orthogonal)
    q8, k8, v8 = (quantize_e4m3(x, block_rows)[0] for x in (q, k, v))
    return float(np.linalg.norm(attend(q8, k8, v8) - ref) / np.linalg.norm(ref))
