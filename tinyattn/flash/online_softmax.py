"""Online softmax (在线Softmax): the running statistics that let attention stream over keys.

A softmax row needs two global numbers, the maximum ``m`` and the normaliser ``l = sum exp(x - m)``.
Both can be maintained block by block: when a new block arrives with its own max ``m~`` and sum
``l~``, the old sum is *rescaled* by ``exp(m - m')`` to the new max ``m' = max(m, m~)``.
Everything here is plain NumPy on the last axis; leading axes are batch axes.

Guard used throughout: a row that has seen no key has ``m = -inf``; ``exp(-inf - (-inf))`` would be
NaN, so the max used for shifting is replaced by 0 there (every term is then ``exp(-inf) = 0``).
"""
from __future__ import annotations

import numpy as np

Array = np.ndarray

__all__ = [
    "safe_max", "online_softmax_stats", "merge_stats", "merge_partials",
    "block_update", "source_text_block_update",
]


def safe_max(m: Array) -> Array:
    """``m`` with -inf replaced by 0: the shift to use in ``exp(x - shift)`` (avoids -inf - -inf)."""
    return np.where(np.isneginf(m), 0.0, m).astype(m.dtype, copy=False)


def online_softmax_stats(x: Array, block: int = 1) -> tuple[Array, Array]:
    """Stream ``x: (..., n)`` in blocks of ``block`` and return ``(m, l)``, each ``(...,)``.

    ``m = max_j x_j`` and ``l = sum_j exp(x_j - m)``, computed with one pass and O(1) state per row
    (the source text's recurrence for ``block=1``; any block size gives the same result).
    """
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    m = np.full(x.shape[:-1], -np.inf, dtype=x.dtype)
    l = np.zeros(x.shape[:-1], dtype=x.dtype)
    for s in range(0, x.shape[-1], block):
        xb = x[..., s:s + block]
        m_new = np.maximum(m, xb.max(axis=-1))                       # m' = max(m, max_j x_j)
        sh = safe_max(m_new)
        l = l * np.exp(m - sh) + np.exp(xb - sh[..., None]).sum(-1)  # l' = l e^(m-m') + sum e^(x-m')
        m = m_new
    return m, l


def merge_stats(m1: Array, l1: Array, m2: Array, l2: Array) -> tuple[Array, Array]:
    """Merge the softmax statistics of two disjoint blocks: ``(m, l)`` of their union."""
    m = np.maximum(m1, m2)                                            # m = max(m1, m2)
    sh = safe_max(m)
    l = np.exp(m1 - sh) * l1 + np.exp(m2 - sh) * l2                   # l = e^(m1-m) l1 + e^(m2-m) l2
    return m, l


def merge_partials(m1: Array, l1: Array, o1: Array, m2: Array, l2: Array, o2: Array
                   ) -> tuple[Array, Array, Array]:
    """Merge two *unnormalised* partial attention states over disjoint key sets.

    ``m*, l*: (..., Lq)``, ``o*: (..., Lq, dv)`` with ``o = sum_j exp(s_j - m) v_j``. Returns the
    state of the union; the final output is ``o / l`` (0 where ``l == 0``).
    """
    m = np.maximum(m1, m2)
    sh = safe_max(m)
    a1, a2 = np.exp(m1 - sh), np.exp(m2 - sh)                         # rescale factors e^(m_k - m)
    return m, a1 * l1 + a2 * l2, a1[..., None] * o1 + a2[..., None] * o2


def block_update(m: Array, l: Array, o: Array, s: Array, v: Array) -> tuple[Array, Array, Array]:
    """One FlashAttention-2 tile step (REFERENCE section 4), unnormalised.

    ``m, l: (..., Bq)`` running max / sum, ``o: (..., Bq, dv)`` running ``sum exp(s - m) v``,
    ``s: (..., Bq, Bk)`` scaled scores of the new key block (masked entries = -inf),
    ``v: (..., Bk, dv)``. Returns the new ``(m, l, o)``; divide ``o`` by ``l`` once at the end.
    """
    m_new = np.maximum(m, s.max(axis=-1))                             # m' = max(m, rowmax(S))
    sh = safe_max(m_new)
    alpha = np.exp(m - sh)                                            # e^(m - m'), 0 if m = -inf
    p = np.exp(s - sh[..., None])                                     # P~ = exp(S - m')
    l_new = alpha * l + p.sum(axis=-1)                                # l' = e^(m-m') l + rowsum(P~)
    o_new = alpha[..., None] * o + p @ v                              # O' = e^(m-m') O + P~ V
    return m_new, l_new, o_new


def source_text_block_update(m: Array, l: Array, o: Array, s: Array, v: Array
                             ) -> tuple[Array, Array, Array]:
    """WRONG on purpose: the source text's (section 2.3) tile update, kept to show its error.

    It rescales the old output by ``e^(m - m')`` but then adds ``softmax(S_ij) V_j``, a block
    normalised by its *own* sum and max, so blocks are mixed with the wrong weights.
    """
    m_ij = s.max(axis=-1)
    sh_ij = safe_max(m_ij)
    p = np.exp(s - sh_ij[..., None])
    l_ij = p.sum(axis=-1)
    m_new = np.maximum(m, m_ij)
    sh = safe_max(m_new)
    l_new = l * np.exp(m - sh) + l_ij * np.exp(m_ij - sh)
    local_softmax = p / np.where(l_ij == 0, 1, l_ij)[..., None]       # softmax(S_ij): locally normalised
    o_new = o * np.exp(m - sh)[..., None] + local_softmax @ v         # the source text's line
    return m_new, l_new, o_new
