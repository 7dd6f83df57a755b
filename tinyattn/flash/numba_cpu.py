"""FlashAttention-2 forward as a Numba CPU kernel: the fast CPU path.

This module imports numba at import time; ``tinyattn.flash`` only imports it when
:func:`flash_attention_numba` is first called, so ``import tinyattn`` stays numba-free.

One parallel task per (batch row, query block), like one GPU thread block per query tile: the
task copies its query tile into a local array (its "SRAM"), then streams key/value tiles through
local arrays, keeping ``m, l`` and the unnormalised output on chip, and divides once at the end.
The two tile products (``S = Q_i K_jᵀ`` and ``P~ V_j``) are ``np.dot`` calls, which numba compiles to
single-threaded BLAS ``sgemm`` on the tile (through SciPy's BLAS): the CPU's counterpart of the GPU's
tensor-core ``mma`` on a tile. The online softmax between them is explicit loops with a vectorisable
exponential. An earlier version did the products as hand-written loops with four query rows per
step; it measured 150 ms against BLAS tiles' 110 ms at N = 4096, d = 64 on 2 threads, where naive
NumPy takes 160-180 ms (benchmarks/cpu_flash.py has the committed numbers).
Fully-masked causal tiles are never visited: the key loop stops at the block holding the diagonal.
Arithmetic is float32 (inputs are converted), matching the GPU kernels of chapter 07.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

__all__ = ["flash_attention_numba"]


# fast-math without 'nnan'/'ninf': the kernel relies on -inf (empty rows, masked keys) behaving.
_FASTMATH = {"contract", "reassoc", "nsz", "arcp", "afn"}
_LOG2E = np.float32(1.4426950408889634)
_LN2 = np.float32(0.6931471805599453)


@njit(fastmath=_FASTMATH, cache=True, inline="always")
def _exp_rows(x, n, ebits):  # pragma: no cover - compiled
    """x[:n] <- exp(x[:n]) in place for x <= 0, in two loops LLVM can vectorise (libm's expf
    cannot be): exp(x) = 2^k * e^f with k = round(x log2 e), |f| <= ln2/2, e^f by its degree-7
    Taylor polynomial (error < 2e-7 relative), 2^k built from its IEEE-754 bits in ``ebits``
    (int32, viewed as float32). Arguments below 2^-126 give 0. Returns sum(exp(x[:n]))."""
    ev = ebits.view(np.float32)
    for j in range(n):
        t = x[j] * _LOG2E                                   # x log2(e) = k + f / ln2
        under = t < np.float32(-126.0)
        t = np.float32(-126.0) if under else t
        k = np.floor(t + np.float32(0.5))
        f = (t - k) * _LN2
        x[j] = np.float32(1.0) + f * (np.float32(1.0) + f * (np.float32(0.5) + f * (
            np.float32(1.0 / 6) + f * (np.float32(1.0 / 24) + f * (np.float32(1.0 / 120) + f * (
                np.float32(1.0 / 720) + f * np.float32(1.0 / 5040)))))))   # e^f, Horner
        ebits[j] = 0 if under else (np.int32(k) + np.int32(127)) << 23    # bits of 2^k
    total = np.float32(0.0)
    for j in range(n):
        x[j] = x[j] * ev[j]
        total += x[j]
    return total


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
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
        qt = q[b, q0:q0 + nq] * scale                     # Q_i tile, pre-scaled
        acc = np.zeros((nq, dv), dtype=np.float32)        # unnormalised O_i
        m = np.full(nq, -np.inf, dtype=np.float32)        # running row max
        l = np.zeros(nq, dtype=np.float32)                # running row sum
        ebits = np.empty(bk, dtype=np.int32)              # scratch for the fast exp
        k_end = Lk
        if causal:
            k_end = min(Lk, q0 + nq - 1 + off + 1)       # keys beyond the last row's limit: skipped
        for k0 in range(0, max(k_end, 0), bk):
            nk = min(bk, Lk - k0)
            st = np.dot(qt, k[b, k0:k0 + nk].T)           # S_ij = Q_i K_j^T (a BLAS tile product)
            for i in range(nq):                           # online softmax, row by row
                n = nk
                if causal:
                    n = max(0, min(nk, q0 + i + off - k0 + 1))
                srow = st[i]
                if n <= 0:
                    srow[:] = 0.0                         # contributes nothing to P V below
                    continue
                mx = m[i]
                for j in range(n):
                    mx = max(mx, srow[j])                 # m' = max(m, rowmax S); finite here
                alpha = math.exp(m[i] - mx)               # e^(m - m')
                for j in range(n):
                    srow[j] -= mx
                rs = _exp_rows(srow, n, ebits)            # P~ = exp(S - m'), rs = rowsum P~
                for j in range(n, nk):
                    srow[j] = 0.0                         # masked keys
                l[i] = alpha * l[i] + rs                  # l' = e^(m-m') l + rowsum P~
                m[i] = mx
                for x in range(dv):
                    acc[i, x] *= alpha                    # O' = e^(m-m') O ...
            acc += np.dot(st, v[b, k0:k0 + nk])           # ... + P~ V_j (a BLAS tile product)
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
    Threads: numba's (set ``NUMBA_NUM_THREADS`` or ``numba.set_num_threads``); BLAS is limited to one
    thread per call while the kernel runs, so the parallel tasks do not oversubscribe the cores.
    """
    from .forward import prepare_inputs

    q, k, v, scale, _ = prepare_inputs(q, k, v, block_q, block_k, scale)
    batch, Lq, dv = q.shape[:-2], q.shape[-2], v.shape[-1]
    q3, k3, v3 = (np.ascontiguousarray(x, dtype=np.float32).reshape((-1,) + x.shape[-2:])
                  for x in (q, k, v))
    out = np.empty((q3.shape[0], Lq, dv), dtype=np.float32)
    lse = np.empty((q3.shape[0], Lq), dtype=np.float32)
    import numba
    from threadpoolctl import threadpool_limits

    # one BLAS thread per tile product; query blocks handed out one at a time (balances causal work)
    with threadpool_limits(1, user_api="blas"), numba.parallel_chunksize(1):
        _fwd_kernel(q3, k3, v3, np.float32(scale), int(block_q), int(block_k), bool(is_causal), out, lse)
    return out.reshape(batch + (Lq, dv)), lse.reshape(batch + (Lq,))
