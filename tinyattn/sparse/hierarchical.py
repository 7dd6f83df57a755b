"""Hierarchical coarse-to-fine attention: pick key blocks from pooled scores, then attend exactly.

    stage 1 (coarse): K_c = AvgPool(K, b)  (N/b, d);  A_c = softmax(Q K_c^T)          N * N/b scores
    stage 2 (select): per query block, the r key blocks with the largest summed A_c
    stage 3 (fine):   exact attention over the selected blocks (block-sparse tile loop)  N * r * b scores

Total ``N²/b + N r b`` scores: the coarse stage is still quadratic in N (just divided by b), so
the source text's "≈ O(N)" is wrong; it is O(N²/b). Both stages are counted and returned.
"""
from __future__ import annotations

import numpy as np

from ..flash.io_sim import HBMCounter
from ._grouped import check_qkv
from .block_sparse import block_sparse_attention

__all__ = ["hierarchical_attention", "avg_pool_blocks"]


def avg_pool_blocks(x: np.ndarray, block: int) -> np.ndarray:
    """x: (..., L, d) -> (..., ceil(L/block), d), the mean of each block (the last may be shorter)."""
    L = x.shape[-2]
    nb = -(-L // block)
    sums = np.add.reduceat(x, np.arange(0, L, block), axis=-2) if L else x[..., :0, :]
    counts = np.minimum(block, L - np.arange(nb) * block)
    return sums / counts[:, None]


def hierarchical_attention(q, k, v, block: int, top_blocks: int, *, causal: bool = False,
                           scale: float | None = None):
    """Coarse-to-fine attention. q: (Lq, d) or (..., Lq, d); k: (..., Lk, d); v: (..., Lk, dv).

    block: pooling size b (also the query block); top_blocks: r key blocks kept per query block
    (shared by all leading axes: the selection sums the coarse weights over them). With causal,
    only blocks with a visible key are candidates and each query block keeps its own diagonal
    block. Returns ``(out, block_mask, cost)``; out equals dense attention with the mask
    ``expand(block_mask) (& causal)``. cost = {"coarse_scores", "fine_scores", "dense_scores"}.
    """
    q, k, v, scale = check_qkv(q, k, v, scale)
    for name, val in (("block", block), ("top_blocks", top_blocks)):
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < 1:
            raise ValueError(f"{name} must be an int >= 1, got {val!r}")
    Lq, Lk = q.shape[-2], k.shape[-2]
    nq, nk = -(-Lq // block), -(-Lk // block)
    kc = avg_pool_blocks(k, block)                                     # K_c = AvgPool(K, b)
    sc = (q @ np.swapaxes(kc, -1, -2)) * scale                         # (..., Lq, nk) coarse scores
    qpos, kblk = np.arange(Lq), np.arange(nk)
    allowed = np.ones((Lq, nk), bool)
    if causal:
        allowed = kblk[None, :] * block <= qpos[:, None] + Lk - Lq     # block has a visible key
        sc = np.where(allowed, sc, -np.inf)
    mx = sc.max(axis=-1, keepdims=True)
    a = np.exp(sc - np.where(np.isfinite(mx), mx, 0))
    a = a / np.maximum(a.sum(axis=-1, keepdims=True), 1e-300)          # A_c = softmax(Q K_c^T)
    w = a.reshape(-1, Lq, nk).sum(axis=0)                              # summed over leading axes
    w = np.add.reduceat(w, np.arange(0, Lq, block), axis=0) if Lq else np.zeros((0, nk))  # per query block
    blk_ok = np.add.reduceat(allowed.astype(int), np.arange(0, Lq, block), axis=0) > 0 if Lq else w > 0
    w = np.where(blk_ok, w, -np.inf)
    r = min(int(top_blocks), nk)
    bm = np.zeros((nq, nk), bool)
    if r and nq:
        top = np.argpartition(-w, r - 1, axis=1)[:, :r]                # r best key blocks per row
        np.put_along_axis(bm, top, True, axis=1)
        bm &= blk_ok
        if causal:                                                      # the diagonal block always
            diag = np.minimum((np.arange(nq) * block + Lk - Lq) // block, nk - 1)
            ok = (np.arange(nq) * block + Lk - Lq) >= 0
            bm[np.arange(nq)[ok], diag[ok]] = True
    elem = None
    if causal:
        elem = np.arange(Lk)[None, :] <= qpos[:, None] + Lk - Lq
    counter = HBMCounter()
    out, _ = block_sparse_attention(q, k, v, bm, block_q=block, block_k=block, mask=elem,
                                    scale=scale, counter=counter)
    lead = int(np.prod(q.shape[:-2], dtype=np.int64))
    fine = 0
    for i, j in zip(*np.nonzero(bm)):                                  # scores of the computed tiles
        fine += (min(block, Lq - i * block)) * (min(block, Lk - j * block))
    cost = {"coarse_scores": lead * Lq * nk, "fine_scores": lead * fine, "dense_scores": lead * Lq * Lk}
    return out, bm, cost
