"""FlashAttention-2 forward as a Numba CPU kernel: the fast CPU path.

This module imports numba at import time; ``tinyattn.flash`` only imports it when
:func:`flash_attention_numba` is first called, so ``import tinyattn`` stays numba-free.

One parallel task per (batch row, query block), like one GPU thread block per query tile. The task
keeps its running ``m, l`` and unnormalised output ``O~`` in local arrays (its "SRAM") and streams
key/value tiles past them. Per key tile:

1. ``S = Q_i K_jᵀ · scale · log2(e)``: one BLAS ``sgemm`` call (the CPU's tensor-core ``mma``),
   written into a reused local tile, the scale folded into sgemm's ``alpha``;
2. per row, the online softmax in base 2: ``m' = max(m, rowmax S)``, ``P~ = 2^(S - m')`` in place,
   ``l' = 2^(m - m') l + rowsum P~``, ``O~ *= 2^(m - m')`` (skipped when the max did not move);
3. ``O~ += P~ V_j``: one ``sgemm`` with ``beta = 1`` (accumulates in place, no temporary).

At the end ``O = O~ / l`` and ``lse = ln2 · (m + log2 l)``. Working in base 2 (``e^x = 2^(x log2 e)``,
FlashAttention-2's trick) saves one multiply per score. ``2^t`` is computed in registers (a
polynomial times ``2^k`` built from IEEE-754 bits), so the loop vectorises; libm's ``expf`` does not.
The sgemm is SciPy's BLAS (``scipy.linalg.cython_blas``) called through a function pointer, on
views of the inputs with leading dimensions, so no tile is copied and nothing is allocated per tile.
Fully-masked causal tiles are never visited: the key loop stops at the block holding the diagonal;
only tiles crossing the diagonal limit each row's key count. The tasks are handed out one at a time
from an atomic counter, largest causal workload first, so the threads finish together (numba's
``prange`` alone splits its range into equal contiguous parts: with causal masks one thread got
the long query blocks and the other the short ones).
Arithmetic is float32 (inputs are converted), like the GPU kernels of chapter 07.
Measured speed and the profile behind these choices: ``benchmarks/cpu_flash.py`` and chapter 06.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  (loads the BLAS whose sgemm the kernel calls)
from llvmlite import binding as llvm_binding, ir
from numba import get_num_threads, njit, prange, types
from numba.extending import get_cython_function_address, intrinsic

__all__ = ["flash_attention_numba", "DEFAULT_BLOCKS"]

DEFAULT_BLOCKS = (256, 256)   # (block_q, block_k): S tile 256 KB; Q, K, V tiles 64 KB each at d = 64
# fast-math without 'nnan'/'ninf': the kernel relies on -inf (masked keys, empty rows) behaving.
_FASTMATH = {"contract", "reassoc", "nsz", "arcp", "afn"}
_LOG2E = 1.4426950408889634
_LN2 = np.float32(0.6931471805599453)
# Fortran BLAS: sgemm(transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc), all by pointer.
# Registered as a named symbol (not a ctypes pointer) so that numba can cache the compiled kernel.
llvm_binding.add_symbol("tinyattn_scipy_sgemm",
                        get_cython_function_address("scipy.linalg.cython_blas", "sgemm"))
_sgemm = types.ExternalFunction("tinyattn_scipy_sgemm", types.void(*([types.voidptr] * 13)))


@intrinsic
def _f32_from_bits(typingctx, bits):
    """Reinterpret an int32's bits as a float32 (no conversion): LLVM ``bitcast``."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


@intrinsic
def _next_task(typingctx, counter):
    """``old = counter[0]; counter[0] += 1`` as one atomic step (LLVM ``atomicrmw add``); returns old.
    counter: int64 1-D array shared by the worker threads (a task queue's head)."""
    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        one = ir.Constant(ir.IntType(64), 1)
        return builder.atomic_rmw("add", ary.data, one, "seq_cst")
    return types.int64(counter), codegen


@njit(fastmath=_FASTMATH, cache=True, inline="always")
def _exp2(t):  # pragma: no cover - compiled
    """2^t for float32 t <= 0: 2^t = 2^k · 2^f with k = round(t), |f| <= 1/2, 2^f = e^(f ln2) by its
    degree-7 Taylor polynomial (relative error < 2e-7), 2^k from its exponent bits (k + 127) << 23.
    t <= -127 gives exactly 0 (k = -127 gives exponent bits 0), which also covers -inf."""
    t = max(t, np.float32(-127.0))
    k = np.floor(t + np.float32(0.5))
    u = (t - k) * _LN2                                           # f ln2, |u| <= 0.347
    p = np.float32(1.0) + u * (np.float32(1.0) + u * (np.float32(0.5) + u * (
        np.float32(1.0 / 6) + u * (np.float32(1.0 / 24) + u * (np.float32(1.0 / 120) + u * (
            np.float32(1.0 / 720) + u * np.float32(1.0 / 5040)))))))   # e^u, Horner
    return p * _f32_from_bits((np.int32(k) + np.int32(127)) << 23)     # · 2^k


@njit(fastmath=_FASTMATH, cache=True)
def _exp2_rows(x, n, shift):  # pragma: no cover - compiled
    """x[:n] <- 2^(x[:n] - shift) in place (needs x - shift <= 0); returns the sum of the new x[:n]."""
    total = np.float32(0.0)
    for j in range(n):
        p = _exp2(x[j] - shift)
        x[j] = p
        total += p
    return total


@intrinsic
def _fmax_finite(typingctx, a, b):
    """max(a, b) of two float32 that are not NaN: ``fcmp``/``select`` flagged no-NaN, which lets LLVM
    vectorise a max reduction (numba's ``max`` leaves the select unflagged, so the loop stays scalar)."""
    def codegen(context, builder, signature, args):
        gt = builder.fcmp_ordered(">", args[0], args[1], flags=("nnan", "nsz"))
        return builder.select(gt, args[0], args[1], flags=("nnan", "nsz"))
    return types.float32(types.float32, types.float32), codegen


@njit(fastmath=_FASTMATH, cache=True)
def _row_max(x, n, init):  # pragma: no cover - compiled
    """max(init, x[0], ..., x[n-1]) for x without NaN (-inf is fine); vectorised."""
    mx = init
    for j in range(n):
        mx = _fmax_finite(mx, x[j])
    return mx


@njit(cache=True, inline="always")
def _gemm(ch, iv, fv, ta, tb, m, n, kk, alpha, a, lda, b, ldb, beta, c, ldc):  # pragma: no cover
    """Column-major C(m, n) = alpha · op(A) op(B) + beta · C through BLAS sgemm; ``a``, ``b``, ``c``
    are arrays whose first element is the matrix start; ``ch, iv, fv`` are scratch for the
    by-pointer scalars (ch = [ord('N'), ord('T')]; ``ta``, ``tb`` index it)."""
    iv[0], iv[1], iv[2], iv[3], iv[4], iv[5] = m, n, kk, lda, ldb, ldc
    fv[0], fv[1] = alpha, beta
    _sgemm(ch[ta:ta + 1].ctypes, ch[tb:tb + 1].ctypes, iv[0:1].ctypes, iv[1:2].ctypes, iv[2:3].ctypes,
           fv[0:1].ctypes, a.ctypes, iv[3:4].ctypes, b.ctypes, iv[4:5].ctypes, fv[1:2].ctypes,
           c.ctypes, iv[5:6].ctypes)


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def _fwd_kernel(q, k, v, scale, bq, bk, causal, out, lse, n_workers):  # pragma: no cover
    """q: (B, Lq, d), k: (B, Lk, d), v: (B, Lk, dv) float32 C-contiguous; writes out, lse.

    ``n_workers`` workers (one per thread: pass numba.get_num_threads()); each takes the next
    (batch row, query block) task from a shared atomic counter until none is left (dynamic
    scheduling: numba's prange splits its range statically).
    Tasks are numbered largest causal workload first (the last query blocks, for every batch row),
    so the last tasks handed out are the shortest and the workers finish together.
    """
    B, Lq, d = q.shape
    Lk, dv = k.shape[1], v.shape[2]
    off = Lk - Lq                                         # query i sees keys j <= i + off
    n_qblocks = (Lq + bq - 1) // bq
    n_tasks = B * n_qblocks
    alpha_s = np.float32(scale * _LOG2E)                  # S in base 2: scores · scale · log2(e)
    head = np.zeros(1, dtype=np.int64)                    # the task queue's head
    for _ in prange(min(n_workers, n_tasks)):            # one iteration per worker thread
        st = np.empty((bq, bk), dtype=np.float32)         # S / P~ tile, reused for every key tile
        acc = np.empty((bq, dv), dtype=np.float32)        # unnormalised O_i
        m = np.empty(bq, dtype=np.float32)                # running row max (base-2 units)
        l = np.empty(bq, dtype=np.float32)                # running row sum
        ch = np.array([78, 84], dtype=np.uint8)           # 'N', 'T'
        iv = np.empty(6, dtype=np.int32)
        fv = np.empty(2, dtype=np.float32)
        task = _next_task(head)
        while task < n_tasks:
            b = task % B
            q0 = (n_qblocks - 1 - task // B) * bq         # last (largest causal) query blocks first
            nq = min(bq, Lq - q0)
            acc[:nq] = 0.0
            m[:nq] = -np.inf
            l[:nq] = 0.0
            k_end = min(Lk, q0 + nq + off) if causal else Lk   # keys beyond the last row's limit: skipped
            for k0 in range(0, max(k_end, 0), bk):
                nk = min(bk, Lk - k0)
                # row-major S(nq, nk) = Q_i K_j^T is column-major S^T = K_j Q_i^T: sgemm('T', 'N')
                _gemm(ch, iv, fv, 1, 0, nk, nq, d, alpha_s, k[b, k0:], d, q[b, q0:], d, 0.0, st, bk)
                whole = not causal or k0 + nk - 1 <= q0 + off  # every row of the block sees every key
                for i in range(nq):                       # online softmax, row by row
                    n = nk if whole else max(0, min(nk, q0 + i + off - k0 + 1))
                    srow = st[i]
                    if n > 0:
                        mx = _row_max(srow, n, m[i])      # m' = max(m, rowmax S)
                        rs = _exp2_rows(srow, n, mx)      # P~ = 2^(S - m'), rs = rowsum P~
                        if mx > m[i]:                     # max moved: rescale the old sums
                            a = _exp2(m[i] - mx)          # 2^(m - m'), 0 on the first tile
                            l[i] = a * l[i]
                            for x in range(dv):
                                acc[i, x] *= a            # O~' = 2^(m-m') O~ ...
                            m[i] = mx
                        l[i] += rs                        # l' = 2^(m-m') l + rowsum P~
                    for j in range(n, nk):
                        srow[j] = 0.0                     # masked keys contribute nothing to P~V
                # ... + P~ V_j: row-major acc(nq, dv) += P~(nq, nk) V_j(nk, dv): column-major sgemm('N', 'N')
                _gemm(ch, iv, fv, 0, 0, dv, nq, nk, 1.0, v[b, k0:], dv, st, bk, 1.0, acc, dv)
            for i in range(nq):
                if l[i] > 0:
                    inv = np.float32(1.0) / l[i]
                    for x in range(dv):
                        out[b, q0 + i, x] = acc[i, x] * inv   # O = O~ / l
                    lse[b, q0 + i] = _LN2 * (m[i] + np.log2(l[i]))   # lse = ln2 (m + log2 l) = ln sum e^s
                else:                                     # row saw no key: 0 and -inf, no NaN
                    for x in range(dv):
                        out[b, q0 + i, x] = 0.0
                    lse[b, q0 + i] = -np.inf
            task = _next_task(head)


_CONTROLLER = []   # one threadpoolctl controller, built on first use (building one scans the libraries)


def _one_blas_thread():
    """Context manager: BLAS libraries limited to one thread (each tile product runs on the numba
    thread that calls it; a multi-threaded sgemm there would oversubscribe the cores)."""
    if not _CONTROLLER:
        from threadpoolctl import ThreadpoolController
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=1, user_api="blas")


def flash_attention_numba(q, k, v, *, is_causal: bool = False, scale: float | None = None,
                          block_q: int = DEFAULT_BLOCKS[0], block_k: int = DEFAULT_BLOCKS[1]
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Numba FlashAttention-2 forward. q: (..., Lq, d), k: (..., Lk, d), v: (..., Lk, dv).

    Returns ``out: (..., Lq, dv)`` float32 and ``lse: (..., Lq)`` float32; same semantics as
    :func:`tinyattn.flash.flash_attention` (bottom-right causal, 0 / -inf for rows with no key;
    size-0 axes give correctly shaped results: ``Lk = 0`` zeros and -inf, ``d = 0`` the mean of v).
    Threads: numba's (set ``NUMBA_NUM_THREADS`` or ``numba.set_num_threads``); BLAS is limited to one
    thread per call while the kernel runs, so the parallel tasks do not oversubscribe the cores.
    The default blocks (256, 256) keep a task's tiles in a 2 MB L2 cache at d = 64; larger query
    blocks ran faster in our tile sweep (one thread, N = 4096), but leave fewer tasks to balance.
    """
    from .forward import prepare_inputs

    q, k, v, scale, _ = prepare_inputs(q, k, v, block_q, block_k, scale)
    batch, Lq, dv = q.shape[:-2], q.shape[-2], v.shape[-1]
    if 0 in batch or Lq == 0 or k.shape[-2] == 0:                  # nothing to compute, or no key
        return (np.zeros(batch + (Lq, dv), dtype=np.float32),        # Lk = 0: rows see no key
                np.full(batch + (Lq,), -np.inf, dtype=np.float32))
    nb = int(np.prod(batch))                     # explicit, not -1: reshape cannot infer -1 at size 0
    q3, k3, v3 = (np.ascontiguousarray(x, dtype=np.float32).reshape((nb,) + x.shape[-2:])
                  for x in (q, k, v))
    # d = 0 (scores are 0) or dv = 0: BLAS wants leading dimensions >= 1, so add one zero column
    q3, k3, v3 = (np.concatenate([x, np.zeros(x.shape[:-1] + (1,), np.float32)], axis=-1)
                  if x.shape[-1] == 0 else x for x in (q3, k3, v3))
    out = np.empty(q3.shape[:-1] + (v3.shape[-1],), dtype=np.float32)
    lse = np.empty(q3.shape[:-1], dtype=np.float32)
    with _one_blas_thread():                     # one BLAS thread per tile product
        _fwd_kernel(q3, k3, v3, float(scale), int(block_q), int(block_k), bool(is_causal), out, lse,
                    get_num_threads())
    return out[..., :dv].reshape(batch + (Lq, dv)), lse.reshape(batch + (Lq,))
