# GENERATED from solutions/ch06_flash.py by `python3 course.py exercises`.
# Fill in each `raise NotImplementedError(...)`; edit solutions/, never this file, as an author.
"""Chapter 06 exercises: the pieces of FlashAttention, in plain NumPy.

Exercise 06.1  online_merge     merge the softmax states of two key blocks (online softmax)
Exercise 06.2  tile_update      one FlashAttention-2 tile step with rescaling
Exercise 06.3  classify_tiles   which (query block, key block) tiles a causal mask skips
Exercise 06.4  backward_tile    one tile of the backward pass, P recomputed from lse

Use NumPy only (no tinyattn): the graded tests compare your functions with ``tinyattn.flash`` and
with a dense float64 computation. Conventions: "state" of a set of keys for each query row is
``m`` (max score), ``l = sum exp(s - m)`` and the UNnormalised output ``o = sum exp(s - m) v``;
a row that has seen no key has ``m = -inf, l = 0, o = 0`` and must never produce NaN.
"""
from __future__ import annotations

import numpy as np


def online_merge(m1: np.ndarray, l1: np.ndarray, o1: np.ndarray,
                 m2: np.ndarray, l2: np.ndarray, o2: np.ndarray):
    """Merge two states over disjoint key sets. m*, l*: (N,), o*: (N, dv) -> (m, l, o).

    m = max(m1, m2); each state is rescaled to the new max: l = e^(m1-m) l1 + e^(m2-m) l2,
    o = e^(m1-m) o1 + e^(m2-m) o2. Rows where both m1 and m2 are -inf stay (-inf, 0, 0).
    """
    # HINT: the new running max is the larger of the two
    # HINT: exp(-inf - (-inf)) is NaN: shift by 0 instead of m where m is -inf
    raise NotImplementedError("Exercise 06.1: online_merge")


def tile_update(m: np.ndarray, l: np.ndarray, o: np.ndarray, s: np.ndarray, v: np.ndarray):
    """One FlashAttention-2 step. m, l: (Bq,), o: (Bq, dv) running state; s: (Bq, Bk) scaled
    scores of a new key block (-inf = masked); v: (Bk, dv). Returns the new (m, l, o):

        m' = max(m, rowmax(s)),  P = exp(s - m'),  l' = e^(m - m') l + rowsum(P),
        o' = e^(m - m') o + P v          (no division: that happens once, at the very end)
    """
    # HINT: guard rows whose new max is still -inf (everything masked so far)
    raise NotImplementedError("Exercise 06.2: tile_update")


def classify_tiles(Lq: int, Lk: int, block_q: int, block_k: int) -> np.ndarray:
    """Bottom-right causal tiles: query i may see key j iff j <= i + Lk - Lq.

    Returns an int array (T_r, T_c), T_r = ceil(Lq / block_q), T_c = ceil(Lk / block_k), with
    0 where no (query, key) pair of the tile is allowed (skip it), 2 where every pair is allowed
    (no mask needed), 1 otherwise (needs an element mask). The last blocks may be shorter.
    """
    # HINT: the last row sees the most keys, the first row the fewest
    raise NotImplementedError("Exercise 06.3: classify_tiles")


def backward_tile(q_i: np.ndarray, k_j: np.ndarray, v_j: np.ndarray, do_i: np.ndarray,
                  lse_i: np.ndarray, D_i: np.ndarray, scale: float):
    """One (non-causal) tile of the FlashAttention backward.

    q_i: (Bq, d), k_j: (Bk, d), v_j: (Bk, dv), do_i: (Bq, dv), lse_i: (Bq,) from the forward,
    D_i = rowsum(dO_i * O_i): (Bq,). Recompute P_ij = exp(q_i k_j^T * scale - lse_i), then return
    this tile's contributions (dq_i (Bq, d), dk_j (Bk, d), dv_j (Bk, dv)):
        dV = P^T dO,  dP = dO V^T,  dS = P * (dP - D),  dQ = dS K * scale,  dK = dS^T Q * scale.
    """
    # HINT: no max subtraction is needed: lse already is the row's log-normaliser
    raise NotImplementedError("Exercise 06.4: backward_tile")
