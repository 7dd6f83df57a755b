"""Fixed sparse attention patterns as boolean masks (True = query i may attend to key j).

Every function returns a bool ndarray ``(L, L)`` (or ``(Lq, Lk)``), so it can be handed to
``F.scaled_dot_product_attention(mask=...)`` for a dense reference, or turned into a tile map with
:func:`block_mask_from_mask` for :func:`tinyattn.sparse.block_sparse_attention`.

    sliding window (Longformer)   |i - j| <= radius                      (causal: 0 <= i - j <= radius)
    dilated window                |i - j| <= radius * dilation and (i - j) % dilation == 0
    strided (Sparse Transformer)  (i - j) % stride == 0, with the local window of width ``stride``
    global tokens                 rows and columns of the global positions are all True
    BigBird                       window + global + r random key blocks per query block (seeded)
"""
from __future__ import annotations

import numpy as np

__all__ = ["sliding_window_mask", "dilated_window_mask", "strided_mask", "global_tokens_mask",
           "bigbird_mask", "block_mask_from_mask", "expand_block_mask", "density", "causal_mask"]


def _int(name: str, value, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise ValueError(f"{name} must be an int >= {lo}, got {value!r}")
    return int(value)


def _offsets(L: int) -> np.ndarray:
    """``(L, L)`` int array of i - j (query minus key position)."""
    pos = np.arange(L)
    return pos[:, None] - pos[None, :]


def causal_mask(L: int) -> np.ndarray:
    """bool (L, L): key j <= query i."""
    L = _int("L", L, 0)
    return _offsets(L) >= 0


def sliding_window_mask(L: int, radius: int, causal: bool = False) -> np.ndarray:
    """bool (L, L): ``|i - j| <= radius`` (causal: ``0 <= i - j <= radius``). radius >= 0."""
    L, radius = _int("L", L, 0), _int("radius", radius, 0)
    off = _offsets(L)
    ok = np.abs(off) <= radius                          # |i - j| <= w
    return ok & (off >= 0) if causal else ok


def dilated_window_mask(L: int, radius: int, dilation: int, causal: bool = False) -> np.ndarray:
    """bool (L, L): keys ``j = i + t * dilation`` for ``|t| <= radius`` (Longformer's dilated window).

    The receptive field per layer grows to ``radius * dilation`` with the same ``2 radius + 1`` keys.
    """
    L, radius, dilation = _int("L", L, 0), _int("radius", radius, 0), _int("dilation", dilation, 1)
    off = _offsets(L)
    ok = (np.abs(off) <= radius * dilation) & (off % dilation == 0)
    return ok & (off >= 0) if causal else ok


def strided_mask(L: int, stride: int, causal: bool = True) -> np.ndarray:
    """bool (L, L): the Sparse Transformer's strided pattern (Child et al. 2019), both heads merged:
    local ``|i - j| < stride`` plus every key with ``(i - j) % stride == 0``. Causal by default."""
    L, stride = _int("L", L, 0), _int("stride", stride, 1)
    off = _offsets(L)
    ok = (np.abs(off) < stride) | (off % stride == 0)
    return ok & (off >= 0) if causal else ok


def global_tokens_mask(L: int, global_idx, base: np.ndarray | None = None) -> np.ndarray:
    """bool (L, L): ``base`` (default all False) plus full rows and columns at ``global_idx``.

    Global tokens (e.g. [CLS]) attend to every position and every position attends to them.
    global_idx: ints in [0, L).
    """
    L = _int("L", L, 0)
    idx = np.asarray(global_idx, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= L):
        raise ValueError(f"global_idx must lie in [0, {L}), got {idx.tolist()}")
    mask = np.zeros((L, L), bool) if base is None else np.array(base, dtype=bool)
    if mask.shape != (L, L):
        raise ValueError(f"base must have shape ({L}, {L}), got {mask.shape}")
    mask[idx, :] = True
    mask[:, idx] = True
    return mask


def bigbird_mask(L: int, block: int, n_window_blocks: int = 3, n_global_blocks: int = 1,
                 n_random_blocks: int = 3, rng: np.random.Generator | None = None,
                 return_blocks: bool = False):
    """BigBird's block pattern (Zaheer et al. 2020): window + global + random key blocks.

    The sequence is cut into ``nb = ceil(L / block)`` blocks. Query block ``a`` sees key block ``b``
    if ``|a - b| <= n_window_blocks // 2`` (window), if ``a`` or ``b`` is one of the first
    ``n_global_blocks`` blocks (global), or if ``b`` is one of ``n_random_blocks`` blocks drawn for
    ``a`` without replacement from the blocks it does not already see (fewer if fewer are left).
    Draws come from ``rng`` only (row ``a`` draws once, in order a = 0, 1, ...), so a seed fixes
    the mask. Returns bool (L, L); with ``return_blocks`` also the block mask (nb, nb).
    (HF's BigBird defaults: block 64, 3 random blocks.)
    """
    L, block = _int("L", L, 0), _int("block", block, 1)
    n_window_blocks = _int("n_window_blocks", n_window_blocks, 1)
    n_global_blocks = _int("n_global_blocks", n_global_blocks, 0)
    n_random_blocks = _int("n_random_blocks", n_random_blocks, 0)
    if n_random_blocks and not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator when n_random_blocks > 0, got {type(rng).__name__}")
    nb = -(-L // block)
    a = np.arange(nb)
    blocks = np.abs(a[:, None] - a[None, :]) <= n_window_blocks // 2      # window
    blocks[:n_global_blocks, :] = True                                     # global rows
    blocks[:, :n_global_blocks] = True                                     # global columns
    for row in range(n_global_blocks, nb):
        free = np.flatnonzero(~blocks[row])
        take = min(n_random_blocks, free.size)
        if take:
            blocks[row, rng.choice(free, size=take, replace=False)] = True
    mask = expand_block_mask(blocks, block, block, L, L)
    return (mask, blocks) if return_blocks else mask


def block_mask_from_mask(mask: np.ndarray, block_q: int, block_k: int) -> np.ndarray:
    """bool (ceil(Lq/block_q), ceil(Lk/block_k)): True where the tile holds at least one True."""
    mask = np.asarray(mask)
    if mask.dtype != bool or mask.ndim != 2:
        raise ValueError(f"mask must be a bool (Lq, Lk) array, got dtype {mask.dtype} shape {mask.shape}")
    block_q, block_k = _int("block_q", block_q, 1), _int("block_k", block_k, 1)
    Lq, Lk = mask.shape
    tq, tk = -(-Lq // block_q), -(-Lk // block_k)
    padded = np.zeros((tq * block_q, tk * block_k), bool)
    padded[:Lq, :Lk] = mask
    return padded.reshape(tq, block_q, tk, block_k).any(axis=(1, 3))


def expand_block_mask(blocks: np.ndarray, block_q: int, block_k: int, Lq: int, Lk: int) -> np.ndarray:
    """bool (Lq, Lk): every element of a True tile of ``blocks (ceil(Lq/block_q), ceil(Lk/block_k))``."""
    blocks = np.asarray(blocks, dtype=bool)
    want = (-(-Lq // block_q), -(-Lk // block_k))
    if blocks.shape != want:
        raise ValueError(f"blocks must have shape {want} for Lq={Lq}, Lk={Lk}, block_q={block_q}, "
                         f"block_k={block_k}; got {blocks.shape}")
    return np.repeat(np.repeat(blocks, block_q, axis=0), block_k, axis=1)[:Lq, :Lk]


def density(mask: np.ndarray) -> float:
    """Fraction of True entries of a mask (0.0 for an empty mask)."""
    mask = np.asarray(mask, dtype=bool)
    return float(mask.mean()) if mask.size else 0.0
