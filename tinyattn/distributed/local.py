"""What one device computes in ring attention: a partial attention over the keys it holds now,
and the log-sum-exp merge of two partials (chapter 06's rule, reused across devices).

A partial result over a key subset S is ``(o_S, lse_S)`` with ``o_S = softmax_S(s) v`` normalised
over S alone and ``lse_S = log sum_{j in S} exp(s_j)``. Two disjoint subsets merge exactly:

    lse = log(e^lse_1 + e^lse_2),   o = e^(lse_1 - lse) o_1 + e^(lse_2 - lse) o_2

which is chapter 06's :func:`tinyattn.flash.merge_partials` with ``m = lse`` and ``l = 1``: a
normalised output with its lse *is* an unnormalised state whose running max is the lse. Rows that
saw no key yet have ``lse = -inf`` and ``o = 0`` and merge without NaN.
"""
from __future__ import annotations

import numpy as np

from ..flash.online_softmax import block_update, merge_partials

Array = np.ndarray

__all__ = ["partial_attention", "merge_lse", "block_visible"]


def block_visible(q_pos: Array, k_pos: Array, is_causal: bool) -> bool:
    """False when a causal mask hides every key of the block from every query: skip its compute."""
    return not is_causal or (len(q_pos) > 0 and len(k_pos) > 0 and k_pos.min() <= q_pos.max())


def partial_attention(q: Array, k: Array, v: Array, q_pos: Array, k_pos: Array, *,
                      is_causal: bool, scale: float) -> tuple[Array, Array]:
    """Attention of ``q: (..., Lq, d)`` over the keys ``k: (..., Lk, d)``, ``v: (..., Lk, dv)`` only.

    ``q_pos: (Lq,)`` and ``k_pos: (Lk,)`` are global token positions; with ``is_causal`` key j is
    visible to query i iff ``k_pos[j] <= q_pos[i]``. Returns ``(o (..., Lq, dv), lse (..., Lq))``
    in the inputs' float dtype; rows with no visible key give ``o = 0``, ``lse = -inf``.
    """
    s = (q @ np.swapaxes(k, -1, -2)) * scale                              # S = Q Kᵀ · scale
    if is_causal:
        s = np.where(k_pos[None, :] <= q_pos[:, None], s, -np.inf)       # global-position mask
    shape = s.shape[:-1]
    m0 = np.full(shape, -np.inf, dtype=s.dtype)
    m, l, o = block_update(m0, np.zeros(shape, s.dtype), np.zeros(shape + v.shape[-1:], s.dtype), s, v)
    empty = l == 0
    o = o / np.where(empty, 1, l)[..., None]                              # normalise over this block
    lse = np.where(empty, -np.inf, m + np.log(np.where(empty, 1, l)))     # lse = m + log l
    return o, lse


def merge_lse(o1: Array, lse1: Array, o2: Array, lse2: Array) -> tuple[Array, Array]:
    """Merge two normalised partials over disjoint key sets -> ``(o, lse)`` of their union."""
    one1 = np.where(np.isneginf(lse1), 0.0, 1.0).astype(o1.dtype)       # l = 1, or 0 for an empty row
    one2 = np.where(np.isneginf(lse2), 0.0, 1.0).astype(o2.dtype)
    m, l, o = merge_partials(lse1, one1, o1, lse2, one2, o2)              # chapter 06's merge
    empty = l == 0
    return o / np.where(empty, 1, l)[..., None], np.where(empty, -np.inf, m + np.log(np.where(empty, 1, l)))
