"""Block-sparse FlashAttention: chapter 06's tile loop that never touches an empty tile.

A block mask ``B (T_r, T_c)`` says which (query block, key block) tiles may hold an allowed pair.
The FlashAttention-2 loop (query blocks outside, key blocks inside, running ``(m, l, O)``) simply
skips tiles with ``B[i, j] = False``: no K/V read, no score, no exp. The work is therefore
proportional to the number of True tiles, ``nnz(B) = density * T_r * T_c`` (Dao et al. 2022, §3.3:
IO ``Θ(Nd + N²d² s / M)`` for block density ``s``). An optional element mask refines the computed
tiles (e.g. a sliding window whose diagonal tiles are only partly inside the band).
"""
from __future__ import annotations

import numpy as np

from ..flash.forward import prepare_inputs
from ..flash.io_sim import HBMCounter
from ..flash.online_softmax import block_update
from .masks import block_mask_from_mask

__all__ = ["block_sparse_attention", "sparse_attention", "masked_dense_attention"]


def _check_block_mask(block_mask, Lq: int, Lk: int, block_q: int, block_k: int) -> np.ndarray:
    bm = np.asarray(block_mask)
    want = (-(-Lq // block_q), -(-Lk // block_k))
    if bm.dtype != bool:
        raise TypeError(f"block_mask must be a bool array, got dtype {bm.dtype}")
    if bm.shape != want:
        raise ValueError(f"block_mask must have shape (ceil(Lq/block_q), ceil(Lk/block_k)) = {want} "
                         f"for Lq={Lq}, Lk={Lk}, block_q={block_q}, block_k={block_k}; got {bm.shape}")
    return bm


def block_sparse_attention(q, k, v, block_mask, *, block_q: int, block_k: int,
                           mask: np.ndarray | None = None, scale: float | None = None,
                           counter: HBMCounter | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact attention restricted to the True tiles of ``block_mask`` (and to ``mask`` inside them).

    q: (..., Lq, d), k: (..., Lk, d), v: (..., Lk, dv); leading axes broadcast.
    block_mask: bool (ceil(Lq/block_q), ceil(Lk/block_k)); mask: optional bool (Lq, Lk) element
    mask applied inside computed tiles (a False tile is skipped whatever ``mask`` says there).
    Equals dense attention with the element mask ``expand(block_mask) & mask``.
    Returns ``out (..., Lq, dv)`` and ``lse (..., Lq)``; rows that see no key give 0 and -inf.
    ``counter`` (an :class:`HBMCounter`) counts computed and skipped tiles and the elements moved.
    """
    q, k, v, scale, out_dtype = prepare_inputs(q, k, v, block_q, block_k, scale)
    Lq, Lk, dv = q.shape[-2], k.shape[-2], v.shape[-1]
    bm = _check_block_mask(block_mask, Lq, Lk, block_q, block_k)
    if mask is not None:
        mask = np.asarray(mask)
        if mask.dtype != bool or mask.shape != (Lq, Lk):
            raise ValueError(f"mask must be bool ({Lq}, {Lk}), got dtype {mask.dtype} shape {mask.shape}")
    c = counter if counter is not None else HBMCounter()
    out = np.empty(q.shape[:-1] + (dv,), dtype=q.dtype)
    lse = np.empty(q.shape[:-1], dtype=q.dtype)
    for i, q0 in enumerate(range(0, Lq, block_q)):
        q1 = min(q0 + block_q, Lq)
        qi = q[..., q0:q1, :]
        c.read(qi.size, "Q")
        m = np.full(qi.shape[:-1], -np.inf, dtype=q.dtype)                 # running max
        l = np.zeros(qi.shape[:-1], dtype=q.dtype)                         # running sum
        o = np.zeros(qi.shape[:-1] + (dv,), dtype=q.dtype)                 # unnormalised output
        for j, k0 in enumerate(range(0, Lk, block_k)):
            c.tile(skipped=not bm[i, j])
            if not bm[i, j]:
                continue                                                   # empty tile: no IO, no FLOPs
            k1 = min(k0 + block_k, Lk)
            kj, vj = k[..., k0:k1, :], v[..., k0:k1, :]
            c.read(kj.size, "K"); c.read(vj.size, "V")
            s = (qi @ np.swapaxes(kj, -1, -2)) * scale                     # S_ij = Q_i K_j^T * scale
            if mask is not None:
                s = np.where(mask[q0:q1, k0:k1], s, -np.inf)
            m, l, o = block_update(m, l, o, s, vj)
        empty = l == 0
        out[..., q0:q1, :] = o / np.where(empty, 1, l)[..., None]          # O = O~ / l
        lse[..., q0:q1] = np.where(empty, -np.inf, m + np.log(np.where(empty, 1, l)))
        c.write(o.size, "O"); c.write(m.size, "lse")
    return out.astype(out_dtype, copy=False), lse


def sparse_attention(q, k, v, mask: np.ndarray, *, block_q: int = 16, block_k: int = 16,
                     scale: float | None = None, counter: HBMCounter | None = None):
    """Attention under an element mask (bool (Lq, Lk)), computing only tiles the mask touches.

    Same shapes and returns as :func:`block_sparse_attention`; equals dense masked attention.
    """
    mask = np.asarray(mask)
    if mask.dtype != bool or mask.ndim != 2:
        raise ValueError(f"mask must be a bool (Lq, Lk) array, got dtype {mask.dtype} shape {mask.shape}")
    bm = block_mask_from_mask(mask, block_q, block_k)
    return block_sparse_attention(q, k, v, bm, block_q=block_q, block_k=block_k, mask=mask,
                                  scale=scale, counter=counter)


def masked_dense_attention(q, k, v, mask: np.ndarray, scale: float | None = None) -> np.ndarray:
    """Dense ``softmax(q k^T * scale, masked) v`` materialising the (Lq, Lk) scores; for timing
    baselines. q: (..., Lq, d) etc.; rows with no allowed key give 0."""
    q, k, v = (np.asarray(x) for x in (q, k, v))
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    s = np.where(mask, (q @ np.swapaxes(k, -1, -2)) * scale, -np.inf)
    mx = s.max(axis=-1, keepdims=True)
    p = np.exp(s - np.where(np.isfinite(mx), mx, 0))
    den = p.sum(axis=-1, keepdims=True)
    return (p / np.where(den == 0, 1, den)) @ v
