"""Chapter 10 exercises: sparse attention masks and the block-sparse tile loop, in plain NumPy.

Exercise 10.1  sliding_window_mask     Longformer's band, optionally causal
Exercise 10.2  bigbird_block_mask      window + global + seeded random blocks (BigBird)
Exercise 10.3  block_sparse_attention  FlashAttention's tile loop that skips empty tiles

Use NumPy only (no tinyattn): the graded tests compare your functions with ``tinyattn.sparse`` and
with dense float64 attention. Masks are bool arrays, True = query i may attend to key j.
"""
from __future__ import annotations

import numpy as np


def sliding_window_mask(L: int, radius: int, causal: bool = False) -> np.ndarray:
    """bool (L, L): True where key j lies within ``radius`` positions of query i.

    causal=True additionally forbids keys after the query (j > i). L >= 0, radius >= 0.
    """
    # BEGIN SOLUTION
    # HINT: build the (L, L) table of offsets i - j with broadcasting
    off = np.arange(L)[:, None] - np.arange(L)[None, :]
    ok = np.abs(off) <= radius
    if causal:
        ok &= off >= 0
    return ok
    # END SOLUTION


def bigbird_block_mask(n_blocks: int, n_window_blocks: int, n_global_blocks: int,
                       n_random_blocks: int, rng: np.random.Generator) -> np.ndarray:
    """bool (n_blocks, n_blocks): which key blocks each query block attends to.

    1. window: block a sees block b when |a - b| <= n_window_blocks // 2;
    2. global: the first n_global_blocks rows and columns are all True;
    3. random: then, for every non-global row a in increasing order, draw
       ``rng.choice(free, size=min(n_random_blocks, free.size), replace=False)`` where ``free`` is
       the increasing array of the blocks row a does not see yet, and switch those on
       (skip the call when the size would be 0).
    """
    # BEGIN SOLUTION
    a = np.arange(n_blocks)
    blocks = np.abs(a[:, None] - a[None, :]) <= n_window_blocks // 2
    blocks[:n_global_blocks, :] = True
    blocks[:, :n_global_blocks] = True
    # HINT: draw per row only among the blocks that are still False in that row
    for row in range(n_global_blocks, n_blocks):
        free = np.flatnonzero(~blocks[row])
        take = min(n_random_blocks, free.size)
        if take:
            blocks[row, rng.choice(free, size=take, replace=False)] = True
    return blocks
    # END SOLUTION


def block_sparse_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, block_mask: np.ndarray,
                           block_q: int, block_k: int):
    """softmax(q k^T / sqrt(d)) v restricted to the True tiles of ``block_mask``.

    q: (Lq, d), k: (Lk, d), v: (Lk, dv); block_mask: bool (ceil(Lq/block_q), ceil(Lk/block_k));
    the last blocks may be shorter. Walk query blocks, and for each the key blocks, keeping a
    running max, sum and unnormalised output (online softmax, chapter 06); a False tile must not
    be read at all. Returns ``(out (Lq, dv), n_tiles)`` with n_tiles = tiles actually computed.
    A query row with no True tile returns zeros.
    """
    # BEGIN SOLUTION
    Lq, d = q.shape
    Lk, dv = v.shape
    scale = 1.0 / np.sqrt(d)
    out = np.zeros((Lq, dv))
    n_tiles = 0
    for i, q0 in enumerate(range(0, Lq, block_q)):
        qi = q[q0:q0 + block_q]
        m = np.full(qi.shape[0], -np.inf)
        l = np.zeros(qi.shape[0])
        o = np.zeros((qi.shape[0], dv))
        for j, k0 in enumerate(range(0, Lk, block_k)):
            # HINT: `continue` before touching k or v
            if not block_mask[i, j]:
                continue
            n_tiles += 1
            s = qi @ k[k0:k0 + block_k].T * scale
            m_new = np.maximum(m, s.max(axis=1))
            alpha = np.exp(m - m_new)
            p = np.exp(s - m_new[:, None])
            l = alpha * l + p.sum(axis=1)
            o = alpha[:, None] * o + p @ v[k0:k0 + block_k]
            m = m_new
        seen = l > 0
        out[q0:q0 + block_q][seen] = o[seen] / l[seen, None]
    return out, n_tiles
    # END SOLUTION
