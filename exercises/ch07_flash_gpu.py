# GENERATED from solutions/ch07_flash_gpu.py by `python3 course.py exercises`.
# Fill in each `raise NotImplementedError(...)`; edit solutions/, never this file, as an author.
"""Chapter 07 exercises: a FlashAttention kernel in Numba-CUDA, graded in the CUDA simulator.

Exercise 07.1  n_key_tiles        how many key tiles a block of query rows must visit (causal skipping)
Exercise 07.2  flash_rows_kernel  complete the tile loop: the online-softmax update over one K/V tile
Exercise 07.3  dkdv_rows_kernel   the backward pass's dK/dV tile loop (P recomputed from lse)

The kernel is the simplest honest FlashAttention: one thread per query row, BLOCK rows per thread
block, K/V tiles of BLOCK keys staged in shared memory by the whole block, the running max ``m``,
sum ``l`` and unnormalised output ``acc`` of each row kept in the thread's registers. Without a GPU
it runs in Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``, set by tests/conftest.py and by the
notebook), one Python thread per CUDA thread, so keep sizes tiny (N <= 64, d <= 32).

Rules of the kernel (they are what a real GPU needs): every constant is float32 (``ZERO``,
``NEG_INF``; a Python ``0.0`` would be float64), every ``cuda.syncthreads()`` is reached by all
threads of the block (so the row bound check sits *inside* the loop, not around it).
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda, float32       # module-level: the simulator swaps `cuda` while a kernel runs

from tinyattn.gpu._jit import jit_options, simulator_enabled

BLOCK = 16            # threads per block = query rows per block = keys per tile
D_MAX = 32            # largest head dim the register accumulator holds
NEG_INF = np.float32(-np.inf)
ZERO = np.float32(0.0)
ONE = np.float32(1.0)
POS_INF = np.float32(np.inf)


def n_key_tiles(q0: int, nq: int, nk: int, block: int, causal: bool) -> int:
    """Key tiles [0, n) that query rows q0 .. min(q0 + block, nq) - 1 must visit (ints -> int).

    The launcher calls this once per thread block and hands the kernel the counts (a tiny schedule,
    like the block list of block-sparse FlashAttention), so the kernel's loop bound is one load.

    Tiles hold ``block`` keys; there are ceil(nk / block) of them. Causal (bottom-right aligned):
    query i sees key j iff j <= i + nk - nq, so tiles that start after the block's last visible key
    are skipped; if even the last row sees no key, the answer is 0.
    """
    # HINT: the block's last row is min(q0 + block, nq) - 1; which key may it see last?
    raise NotImplementedError("Exercise 07.1: n_key_tiles")


@cuda.jit(**jit_options())
def flash_rows_kernel(q, k, v, out, scale, causal, tiles):
    """out[b, i] = softmax_j(scale q[b, i] . k[b, j] [causal: j <= i + nk - nq]) v[b, j].

    q, out: (BH, nq, d); k, v: (BH, nk, d); float32, d <= D_MAX; scale float32; causal int 0/1;
    tiles: int32 (ceil(nq / BLOCK),), key tiles each block visits. Launch: grid (ceil(nq / BLOCK), BH),
    block BLOCK threads. A row that sees no key gets 0.
    """
    tid = cuda.threadIdx.x
    bh = cuda.blockIdx.y
    q0 = cuda.blockIdx.x * BLOCK
    qi = q0 + tid                         # this thread's query row
    nq = q.shape[1]
    nk = k.shape[1]
    d = q.shape[2]
    sK = cuda.shared.array((BLOCK, D_MAX), float32)
    sV = cuda.shared.array((BLOCK, D_MAX), float32)
    acc = cuda.local.array(D_MAX, float32)
    for c in range(d):
        acc[c] = ZERO
    m = NEG_INF                           # running max of this row's scores
    l = ZERO                              # running sum of exp(score - m)

    for t in range(tiles[cuda.blockIdx.x]):       # causal: tiles above the diagonal are never visited
        k0 = t * BLOCK
        # stage the tile: thread tid copies key row k0 + tid (zeros past the end)
        for c in range(d):
            if k0 + tid < nk:
                sK[tid, c] = k[bh, k0 + tid, c]
                sV[tid, c] = v[bh, k0 + tid, c]
            else:
                sK[tid, c] = ZERO
                sV[tid, c] = ZERO
        cuda.syncthreads()
        if qi < nq:
            # HINT: visit keys kj = k0 + j, j < BLOCK; skip kj >= nk and (causal) kj > qi + nk - nq
            # HINT: m' = max(m, s); alpha = exp(m - m') rescales l and acc; p = exp(s - m')
            raise NotImplementedError("Exercise 07.2: flash_rows_kernel")
        cuda.syncthreads()                # everyone is done with the tile before it is overwritten

    if qi < nq:
        inv = ONE / l if l > ZERO else ZERO
        for c in range(d):
            out[bh, qi, c] = acc[c] * inv


def flash_attention_rows(q, k, v, *, is_causal: bool = False) -> np.ndarray:
    """Run flash_rows_kernel on float32 q (..., nq, d), k, v (..., nk, d), d <= D_MAX -> ndarray."""
    q, k, v = (np.ascontiguousarray(x, dtype=np.float32) for x in (q, k, v))
    if q.shape[-1] > D_MAX or k.shape != v.shape or q.shape[:-2] != k.shape[:-2] or q.shape[-1] != k.shape[-1]:
        raise ValueError(f"expected q (..., nq, d <= {D_MAX}), k, v (..., nk, d), got {q.shape}, {k.shape}, {v.shape}")
    nq, d = q.shape[-2:]
    nk = k.shape[-2]
    bh = int(np.prod(q.shape[:-2], dtype=np.int64))
    q3, k3, v3 = q.reshape(bh, nq, d), k.reshape(bh, nk, d), v.reshape(bh, nk, d)
    out = np.zeros((bh, nq, d), np.float32)
    n_blocks = (nq + BLOCK - 1) // BLOCK
    if is_causal:
        tiles = np.array([n_key_tiles(b * BLOCK, nq, nk, BLOCK, True) for b in range(n_blocks)], np.int32)
    else:
        tiles = np.full(n_blocks, (nk + BLOCK - 1) // BLOCK, np.int32)
    args = (np.float32(1.0 / math.sqrt(d)), np.int32(bool(is_causal)), tiles)
    grid = (n_blocks, bh)
    if simulator_enabled():
        flash_rows_kernel[grid, BLOCK](q3, k3, v3, out, *args)
        return out.reshape(q.shape)
    dout = cuda.to_device(out)
    flash_rows_kernel[grid, BLOCK](cuda.to_device(q3), cuda.to_device(k3), cuda.to_device(v3), dout,
                                   args[0], args[1], cuda.to_device(tiles))
    return dout.copy_to_host().reshape(q.shape)


@cuda.jit(**jit_options())
def dkdv_rows_kernel(q, k, v, dout, lse, delta, dk, dv, scale, causal):
    """dK and dV of attention, K/V-outer (FlashAttention-2's backward, readable form).

    q, dout: (BH, nq, d); k, v, dk, dv: (BH, nk, d); lse, delta: (BH, nq) float32, with
    lse[i] = log sum_j exp(scale q_i.k_j) from the forward (+inf for a row that sees no key, so
    its probabilities are 0) and delta[i] = sum_c dout[i, c] out[i, c]. Launch: grid
    (ceil(nk / BLOCK), BH), block BLOCK threads; thread tid owns key row kj = blockIdx.x*BLOCK + tid
    and accumulates its dK and dV rows over every query tile. Causal: query i sees key j iff
    j <= i + nk - nq.
    """
    tid = cuda.threadIdx.x
    bh = cuda.blockIdx.y
    kj = cuda.blockIdx.x * BLOCK + tid    # this thread's key row
    nq = q.shape[1]
    nk = k.shape[1]
    d = q.shape[2]
    sQ = cuda.shared.array((BLOCK, D_MAX), float32)
    sdO = cuda.shared.array((BLOCK, D_MAX), float32)
    sL = cuda.shared.array(BLOCK, float32)
    sD = cuda.shared.array(BLOCK, float32)
    acc_dk = cuda.local.array(D_MAX, float32)
    acc_dv = cuda.local.array(D_MAX, float32)
    for c in range(d):
        acc_dk[c] = ZERO
        acc_dv[c] = ZERO

    for t in range((nq + BLOCK - 1) // BLOCK):
        q0 = t * BLOCK
        # stage the query tile: thread tid copies query row q0 + tid, its dout, lse and delta
        for c in range(d):
            if q0 + tid < nq:
                sQ[tid, c] = q[bh, q0 + tid, c]
                sdO[tid, c] = dout[bh, q0 + tid, c]
            else:
                sQ[tid, c] = ZERO
                sdO[tid, c] = ZERO
        sL[tid] = lse[bh, q0 + tid] if q0 + tid < nq else POS_INF
        sD[tid] = delta[bh, q0 + tid] if q0 + tid < nq else ZERO
        cuda.syncthreads()
        if kj < nk:
            # HINT: for each query i = q0 + r of the tile (r < BLOCK) that exists and sees key kj:
            # HINT: P_ij comes from lse (chapter 06), dS_ij from P_ij, dP_ij and D_i; which of dK, dV carries the scale?
            raise NotImplementedError("Exercise 07.3: dkdv_rows_kernel")
        cuda.syncthreads()

    if kj < nk:
        for c in range(d):
            dk[bh, kj, c] = acc_dk[c]
            dv[bh, kj, c] = acc_dv[c]


def flash_backward_dkdv(q, k, v, out, lse, dout, *, is_causal: bool = False):
    """(dk, dv) of softmax(q k^T / sqrt(d) [causal]) v with dkdv_rows_kernel; float32 ndarrays.

    q, out, dout: (..., nq, d); k, v: (..., nk, d), d <= D_MAX; lse: (..., nq) from the forward
    (-inf for a row that sees no key). D = rowsum(dout * out) is computed here on the host.
    """
    q, k, v, out, dout = (np.ascontiguousarray(x, dtype=np.float32) for x in (q, k, v, out, dout))
    if q.shape[-1] > D_MAX or k.shape != v.shape or q.shape[:-2] != k.shape[:-2] or q.shape[-1] != k.shape[-1]:
        raise ValueError(f"expected q (..., nq, d <= {D_MAX}), k, v (..., nk, d), got {q.shape}, {k.shape}, {v.shape}")
    if out.shape != q.shape or dout.shape != q.shape or np.shape(lse) != q.shape[:-1]:
        raise ValueError(f"out, dout must be {q.shape} and lse {q.shape[:-1]}, got {out.shape}, {dout.shape}, "
                         f"{np.shape(lse)}")
    nq, d = q.shape[-2:]
    nk = k.shape[-2]
    bh = int(np.prod(q.shape[:-2], dtype=np.int64))
    lse = np.asarray(lse, np.float32).reshape(bh, nq)
    lse = np.where(np.isneginf(lse), np.inf, lse).astype(np.float32)      # no key: P = exp(-inf) = 0
    delta = (dout.astype(np.float32) * out).sum(-1).reshape(bh, nq).astype(np.float32)
    arrs = [x.reshape(bh, x.shape[-2], d) for x in (q, k, v, dout)] + [lse, delta]
    dk, dv = np.zeros((bh, nk, d), np.float32), np.zeros((bh, nk, d), np.float32)
    grid = ((nk + BLOCK - 1) // BLOCK, bh)
    args = (np.float32(1.0 / math.sqrt(d)), np.int32(bool(is_causal)))
    if simulator_enabled():
        dkdv_rows_kernel[grid, BLOCK](*arrs, dk, dv, *args)
        return dk.reshape(k.shape), dv.reshape(v.shape)
    ddk, ddv = cuda.to_device(dk), cuda.to_device(dv)
    dkdv_rows_kernel[grid, BLOCK](*(cuda.to_device(x) for x in arrs), ddk, ddv, *args)
    return ddk.copy_to_host().reshape(k.shape), ddv.copy_to_host().reshape(v.shape)


# for tests/test_gpu_compile.py: compile for sm_90 and check the PTX has no fp64
_A3, _A2 = "float32[:, :, ::1]", "float32[:, ::1]"
PTX_KERNELS = {"ch07_flash_rows": (flash_rows_kernel, f"void({_A3}, {_A3}, {_A3}, {_A3}, float32, int32, int32[::1])"),
               "ch07_dkdv_rows": (dkdv_rows_kernel, f"void({_A3}, {_A3}, {_A3}, {_A3}, {_A2}, {_A2}, {_A3}, {_A3}, "
                                                    "float32, int32)")}
