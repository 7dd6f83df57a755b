# GENERATED from solutions/ch10_sparse.py by `python3 course.py exercises`.
# Fill in each `raise NotImplementedError(...)`; edit solutions/, never this file, as an author.
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
    # HINT: build the (L, L) table of offsets i - j with broadcasting
    raise NotImplementedError("Exercise 10.1: sliding_window_mask")


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
    # HINT: draw per row only among the blocks that are still False in that row
    raise NotImplementedError("Exercise 10.2: bigbird_block_mask")


def block_sparse_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, block_mask: np.ndarray,
                           block_q: int, block_k: int):
    """softmax(q k^T / sqrt(d)) v restricted to the True tiles of ``block_mask``.

    q: (Lq, d), k: (Lk, d), v: (Lk, dv); block_mask: bool (ceil(Lq/block_q), ceil(Lk/block_k));
    the last blocks may be shorter. Walk query blocks, and for each the key blocks, keeping a
    running max, sum and unnormalised output (online softmax, chapter 06); a False tile must not
    be read at all. Returns ``(out (Lq, dv), n_tiles)`` with n_tiles = tiles actually computed.
    A query row with no True tile returns zeros.
    """
    # HINT: `continue` before touching k or v
    raise NotImplementedError("Exercise 10.3: block_sparse_attention")
