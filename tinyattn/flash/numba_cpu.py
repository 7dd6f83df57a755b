"""FlashAttention-2 forward as a Numba CPU kernel: the fast CPU path.

This module imports numba at import time; ``tinyattn.flash`` only imports it when
:func:`flash_attention_numba` is first called, so ``import tinyattn`` stays numba-free.

One parallel task per (batch row, query block), like one GPU thread block per query tile: the
task copies its query tile into a local array (its "SRAM"), then streams key/value tiles through
local arrays, keeping ``m, l`` and the unnormalised output on chip, and divides once at the end.
Fully-masked causal tiles are never visited: the key loop stops at the block holding the diagonal.
Arithmetic is float32 (inputs are converted), matching the GPU kernels of chapter 07.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

__all__ = ["flash_attention_numba"]


@njit(parallel=True, cache=True, fastmath=True)
def _fwd_kernel(q, k, v, scale, bq, bk, causal, out, lse):  # pragma: no cover - compiled
    """q: (B, Lq, d), k: (B, Lk, d), v: (B, Lk, dv) float32 C-contiguous; writes out, lse."""
    B, Lq, d = q.shape
    Lk, dv = k.shape[1], v.shape[2]
    off = Lk - Lq
    n_qblocks = (Lq + bq - 1) // bq
    for task in prange(B * n_qblocks):
        b = task // n_qblocks
        q0 = (task % n_qblocks) * bq
        nq = min(bq, Lq - q0)
        qt = np.empty((bq, d), dtype=np.float32)          # Q_i tile, pre-scaled
        kt = np.empty((d, bk), dtype=np.float32)          # K_j^T tile (rows contiguous over keys)
        vt = np.empty((bk, dv), dtype=np.float32)         # V_j tile
        srow = np.empty(bk, dtype=np.float32)             # one row of S_ij / P_ij
        acc = np.zeros((bq, dv), dtype=np.float32)        # unnormalised O_i
        m = np.full(bq, -np.inf, dtype=np.float32)        # running row max
        l = np.zeros(bq, dtype=np.float32)                # running row sum
        for i in range(nq):
            for x in range(d):
                qt[i, x] = q[b, q0 + i, x] * scale
        k_end = Lk
        if causal:
            k_end = min(Lk, q0 + nq - 1 + off + 1)       # keys beyond the last row's limit: skipped
        for k0 in range(0, max(k_end, 0), bk):
            nk = min(bk, Lk - k0)
            for j in range(nk):
                for x in range(d):
                    kt[x, j] = k[b, k0 + j, x]
                for x in range(dv):
                    vt[j, x] = v[b, k0 + j, x]
            for i in range(nq):
                lim = nk
                if causal:
                    lim = min(nk, q0 + i + off - k0 + 1)  # row sees keys j <= i + off
                if lim <= 0:
                    continue
                for j in range(lim):
                    srow[j] = 0.0
                for x in range(d):                        # s_j = sum_x q_x k_jx (axpy over keys)
                    qx = qt[i, x]
                    for j in range(lim):
                        srow[j] += qx * kt[x, j]
                mx = m[i]
                for j in range(lim):
                    mx = max(mx, srow[j])                 # m' = max(m, rowmax S)
                alpha = math.exp(m[i] - mx)               # e^(m - m'); m' is finite here
                rs = np.float32(0.0)
                for j in range(lim):
                    srow[j] = math.exp(srow[j] - mx)      # P~ = exp(S - m')
                    rs += srow[j]
                l[i] = alpha * l[i] + rs                  # l' = e^(m-m') l + rowsum P~
                m[i] = mx
                for x in range(dv):
                    acc[i, x] *= alpha                    # O' = e^(m-m') O ...
                for j in range(lim):
                    p = srow[j]
                    for x in range(dv):
                        acc[i, x] += p * vt[j, x]         # ... + P~ V
        for i in range(nq):
            if l[i] > 0:
                inv = 1.0 / l[i]
                for x in range(dv):
                    out[b, q0 + i, x] = acc[i, x] * inv   # O = O~ / l
                lse[b, q0 + i] = m[i] + math.log(l[i])    # lse = m + log l
            else:                                         # row saw no key: 0 and -inf, no NaN
                for x in range(dv):
                    out[b, q0 + i, x] = 0.0
                lse[b, q0 + i] = -np.inf


def flash_attention_numba(q, k, v, *, is_causal: bool = False, scale: float | None = None,
                          block_q: int = 64, block_k: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Numba FlashAttention-2 forward. q: (..., Lq, d), k: (..., Lk, d), v: (..., Lk, dv).

    Returns ``out: (..., Lq, dv)`` float32 and ``lse: (..., Lq)`` float32; same semantics as
    :func:`tinyattn.flash.flash_attention` (bottom-right causal, 0 / -inf for rows with no key).
    Threads: numba's (set ``NUMBA_NUM_THREADS`` or ``numba.set_num_threads``).
    """
    from .forward import prepare_inputs

    q, k, v, scale, _ = prepare_inputs(q, k, v, block_q, block_k, scale)
    batch, (Lq, d), (Lk, dv) = q.shape[:-2], q.shape[-2:], v.shape[-2:]
    q3, k3, v3 = (np.ascontiguousarray(x, dtype=np.float32).reshape((-1,) + x.shape[-2:])
                  for x in (q, k, v))
    out = np.empty((q3.shape[0], Lq, dv), dtype=np.float32)
    lse = np.empty((q3.shape[0], Lq), dtype=np.float32)
    _fwd_kernel(q3, k3, v3, np.float32(scale), int(block_q), int(block_k), bool(is_causal), out, lse)
    return out.reshape(batch + (Lq, dv)), lse.reshape(batch + (Lq,))
