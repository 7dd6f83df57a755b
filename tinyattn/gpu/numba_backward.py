"""FlashAttention-2 backward in Numba-CUDA, float32 (chapter 07): readable, runs in the simulator.

Given the forward's ``out`` and ``lse`` (per-row log-sum-exp), the gradients need no N x N array:
every tile recomputes ``P_ij = exp(scale q_i.k_j - lse_i)`` (exactly the softmax). Three kernels::

    1. delta  D_i = rowsum(dO_i * O_i)                 one thread per query row
    2. dkdv   K/V-outer: a block owns BK key rows, walks every query tile that sees them,
              dV_j += P^T dO,  dS = P * (dP - D) with dP = dO V^T,  dK_j += scale dS^T Q
    3. dq     Q-outer: a block owns BQ query rows, walks every key tile they see,
              dQ_i += scale dS K   (dS recomputed: no atomics, each dQ row has one writer)

Kernel 3 recomputes S and dP a second time (the price of no atomics: FA2 accumulates dQ with
atomic adds from kernel 2 instead; the CuPy tensor-core version is where that choice is measured).
Thread (tx, ty) owns rows ty*R + i (i < R) of its block and columns tx + TX*c (c < d/TX) of the
accumulators, and the "other side" entries tx + TX*j (j < C) of each tile: the forward's layout.
Causal masks are bottom-right aligned (query i sees keys j <= i + Nk - Nq); every constant is
float32 (a Python float literal would put .f64 instructions in the PTX).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numba import cuda, float32

from ._jit import jit_options, require_float32_array, simulator_enabled

NEG_INF = np.float32(-np.inf)
POS_INF = np.float32(np.inf)
ZERO = np.float32(0.0)


@dataclass(frozen=True)
class BwdConfig:
    """TX*TY threads; R owner rows per thread (block owns TY*R rows), C tile entries per thread
    (tiles of TX*C rows of the other side); d % TX == 0."""

    tx: int = 8
    ty: int = 16
    r: int = 2
    c: int = 4

    @property
    def own(self) -> int:
        return self.ty * self.r

    @property
    def tile(self) -> int:
        return self.tx * self.c


def default_bwd_config(d: int) -> BwdConfig:
    """Tiny tiles in the simulator; on a GPU sized to stay under 48 KB of static shared memory."""
    if simulator_enabled():
        return BwdConfig(tx=4, ty=4, r=2, c=2)
    if d <= 64:
        return BwdConfig(tx=8, ty=16, r=2, c=4)      # 32 x 32 tiles, ~42 KB shared at d = 64
    return BwdConfig(tx=8, ty=16, r=1, c=2)          # 16 x 16 tiles, ~35 KB shared at d = 128


@lru_cache(maxsize=None)
def make_delta_kernel(d: int):
    """``kernel[grid, block](out, dout, delta)``: delta[bh, i] = sum_c out[bh, i, c] dout[bh, i, c]."""

    @cuda.jit(**jit_options())
    def delta_kernel(out, dout, delta):
        bh = cuda.blockIdx.y
        i = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
        if i < out.shape[1]:
            acc = ZERO
            for c in range(d):
                acc += out[bh, i, c] * dout[bh, i, c]          # D_i = rowsum(dO_i * O_i)
            delta[bh, i] = acc
    return delta_kernel


@lru_cache(maxsize=None)
def make_dkdv_kernel(d: int, cfg: BwdConfig):
    """``kernel[grid, block](q, k, v, dout, lse, delta, dk, dv, scale, causal, offset)``, grid
    (ceil(Nk / (TY*R)), BH): q, dout (BH, Nq, d); k, v, dk, dv (BH, Nk, d); lse, delta (BH, Nq)."""
    TX, TY, R, C = cfg.tx, cfg.ty, cfg.r, cfg.c
    if d % TX:
        raise ValueError(f"d={d} must be a multiple of the config's tx={TX}")
    BK, BQ, DC, NT = TY * R, TX * C, d // TX, TX * TY
    P_, BQ1 = d + 1, BQ + 1                             # padded rows: fewer shared-memory bank conflicts

    @cuda.jit(**jit_options())
    def dkdv_kernel(q, k, v, dout, lse, delta, dk, dv, scale, causal, offset):
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        tid = ty * TX + tx
        bh = cuda.blockIdx.y
        k0 = cuda.blockIdx.x * BK
        nq = q.shape[1]
        nk = k.shape[1]

        sK = cuda.shared.array((BK, P_), float32)       # this block's keys (for dP and S)
        sV = cuda.shared.array((BK, P_), float32)       # this block's values
        sQ = cuda.shared.array((BQ, P_), float32)       # current query tile
        sdO = cuda.shared.array((BQ, P_), float32)      # its output gradients
        sL = cuda.shared.array(BQ, float32)             # its lse (+inf for rows with no key: P = 0)
        sD = cuda.shared.array(BQ, float32)             # its D = rowsum(dO * O)
        sP = cuda.shared.array((BK, BQ1), float32)   # P^T tile: sP[key, query]
        sdS = cuda.shared.array((BK, BQ1), float32)  # dS^T tile

        accdk = cuda.local.array((R, DC), float32)
        accdv = cuda.local.array((R, DC), float32)
        s = cuda.local.array((R, C), float32)
        dp = cuda.local.array((R, C), float32)
        for i in range(R):
            for c in range(DC):
                accdk[i, c] = ZERO
                accdv[i, c] = ZERO

        for idx in range(tid, BK * d, NT):              # stage K and V once (coalesced)
            r = idx // d
            c = idx - r * d
            ok = k0 + r < nk
            sK[r, c] = k[bh, k0 + r, c] if ok else ZERO
            sV[r, c] = v[bh, k0 + r, c] if ok else ZERO

        # causal: query i sees key k0 only if i >= k0 - offset; earlier query tiles are skipped
        t0 = 0
        if causal:
            t0 = max(0, k0 - offset) // BQ
        for t in range(t0, (nq + BQ - 1) // BQ):
            q0 = t * BQ
            cuda.syncthreads()                          # previous tile fully used
            for idx in range(tid, BQ * d, NT):
                r = idx // d
                c = idx - r * d
                ok = q0 + r < nq
                sQ[r, c] = q[bh, q0 + r, c] if ok else ZERO
                sdO[r, c] = dout[bh, q0 + r, c] if ok else ZERO
            for r in range(tid, BQ, NT):
                lv = lse[bh, q0 + r] if q0 + r < nq else NEG_INF
                sL[r] = lv if lv != NEG_INF else POS_INF
                sD[r] = delta[bh, q0 + r] if q0 + r < nq else ZERO
            cuda.syncthreads()

            # S^T = K Q^T and dP^T = V dO^T for this thread's R keys x C queries
            for i in range(R):
                for j in range(C):
                    s[i, j] = ZERO
                    dp[i, j] = ZERO
            for c in range(d):
                for i in range(R):
                    kc = sK[ty * R + i, c]
                    vc = sV[ty * R + i, c]
                    for j in range(C):
                        s[i, j] += kc * sQ[tx + TX * j, c]
                        dp[i, j] += vc * sdO[tx + TX * j, c]
            for i in range(R):
                kj = k0 + ty * R + i
                for j in range(C):
                    col = tx + TX * j
                    qi = q0 + col
                    p = ZERO
                    if kj < nk and qi < nq and not (causal and kj > qi + offset):
                        p = math.exp(s[i, j] * scale - sL[col])          # P_ij = exp(S_ij - lse_i)
                    sP[ty * R + i, col] = p
                    sdS[ty * R + i, col] = p * (dp[i, j] - sD[col])   # dS = P * (dP - D)
            cuda.syncthreads()

            # dV += P^T dO ;  dK += dS^T Q   (scale applied once at the end)
            for j in range(BQ):
                for i in range(R):
                    pv = sP[ty * R + i, j]
                    dsv = sdS[ty * R + i, j]
                    for c in range(DC):
                        accdv[i, c] += pv * sdO[j, tx + TX * c]
                        accdk[i, c] += dsv * sQ[j, tx + TX * c]

        for i in range(R):
            kj = k0 + ty * R + i
            if kj < nk:
                for c in range(DC):
                    dk[bh, kj, tx + TX * c] = accdk[i, c] * scale
                    dv[bh, kj, tx + TX * c] = accdv[i, c]
    return dkdv_kernel


@lru_cache(maxsize=None)
def make_dq_kernel(d: int, cfg: BwdConfig):
    """``kernel[grid, block](q, k, v, dout, lse, delta, dq, scale, causal, offset)``, grid
    (ceil(Nq / (TY*R)), BH): each block owns TY*R query rows and walks the key tiles they see."""
    TX, TY, R, C = cfg.tx, cfg.ty, cfg.r, cfg.c
    if d % TX:
        raise ValueError(f"d={d} must be a multiple of the config's tx={TX}")
    BQ, BK, DC, NT = TY * R, TX * C, d // TX, TX * TY
    P_, BK1 = d + 1, BK + 1                             # (shapes must be compile-time constants)

    @cuda.jit(**jit_options())
    def dq_kernel(q, k, v, dout, lse, delta, dq, scale, causal, offset):
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        tid = ty * TX + tx
        bh = cuda.blockIdx.y
        q0 = cuda.blockIdx.x * BQ
        nq = q.shape[1]
        nk = k.shape[1]

        sQ = cuda.shared.array((BQ, P_), float32)
        sdO = cuda.shared.array((BQ, P_), float32)
        sL = cuda.shared.array(BQ, float32)
        sD = cuda.shared.array(BQ, float32)
        sK = cuda.shared.array((BK, P_), float32)
        sV = cuda.shared.array((BK, P_), float32)
        sdS = cuda.shared.array((BQ, BK1), float32)  # dS tile: sdS[query, key]

        accdq = cuda.local.array((R, DC), float32)
        s = cuda.local.array((R, C), float32)
        dp = cuda.local.array((R, C), float32)
        for i in range(R):
            for c in range(DC):
                accdq[i, c] = ZERO

        for idx in range(tid, BQ * d, NT):
            r = idx // d
            c = idx - r * d
            ok = q0 + r < nq
            sQ[r, c] = q[bh, q0 + r, c] if ok else ZERO
            sdO[r, c] = dout[bh, q0 + r, c] if ok else ZERO
        for r in range(tid, BQ, NT):
            lv = lse[bh, q0 + r] if q0 + r < nq else NEG_INF
            sL[r] = lv if lv != NEG_INF else POS_INF
            sD[r] = delta[bh, q0 + r] if q0 + r < nq else ZERO

        n_tiles = (nk + BK - 1) // BK                   # causal: the block's last row sees keys <= last
        if causal:
            last = min(q0 + BQ, nq) - 1 + offset
            n_tiles = 0 if last < 0 else min(n_tiles, last // BK + 1)
        for t in range(n_tiles):
            k0 = t * BK
            cuda.syncthreads()
            for idx in range(tid, BK * d, NT):
                r = idx // d
                c = idx - r * d
                ok = k0 + r < nk
                sK[r, c] = k[bh, k0 + r, c] if ok else ZERO
                sV[r, c] = v[bh, k0 + r, c] if ok else ZERO
            cuda.syncthreads()

            for i in range(R):
                for j in range(C):
                    s[i, j] = ZERO
                    dp[i, j] = ZERO
            for c in range(d):
                for i in range(R):
                    qc = sQ[ty * R + i, c]
                    oc = sdO[ty * R + i, c]
                    for j in range(C):
                        s[i, j] += qc * sK[tx + TX * j, c]
                        dp[i, j] += oc * sV[tx + TX * j, c]
            for i in range(R):
                row = ty * R + i
                qi = q0 + row
                for j in range(C):
                    kj = k0 + tx + TX * j
                    p = ZERO
                    if kj < nk and qi < nq and not (causal and kj > qi + offset):
                        p = math.exp(s[i, j] * scale - sL[row])
                    sdS[row, tx + TX * j] = p * (dp[i, j] - sD[row])
            cuda.syncthreads()

            for j in range(BK):                          # dQ += dS K
                for i in range(R):
                    dsv = sdS[ty * R + i, j]
                    for c in range(DC):
                        accdq[i, c] += dsv * sK[j, tx + TX * c]

        for i in range(R):
            qi = q0 + ty * R + i
            if qi < nq:
                for c in range(DC):
                    dq[bh, qi, tx + TX * c] = accdq[i, c] * scale
    return dq_kernel


def launch_backward(q, k, v, out, lse, dout, dq, dk, dv, delta, *, is_causal: bool = False,
                    scale: float | None = None, config: BwdConfig | None = None) -> None:
    """The three kernels on 3-D arrays in place: q, out, dout, dq (BH, Nq, d); k, v, dk, dv
    (BH, Nk, d); lse, delta (BH, Nq); float32 device arrays (host arrays in the simulator)."""
    BH, nq, d = q.shape
    nk = k.shape[1]
    cfg = config or default_bwd_config(d)
    sc = np.float32(1.0 / math.sqrt(d) if scale is None else scale)
    causal, offset = np.int32(bool(is_causal)), np.int32(nk - nq)
    block = (cfg.tx, cfg.ty)
    make_delta_kernel(d)[((nq + 31) // 32, BH), 32](out, dout, delta)
    make_dkdv_kernel(d, cfg)[((nk + cfg.own - 1) // cfg.own, BH), block](
        q, k, v, dout, lse, delta, dk, dv, sc, causal, offset)
    make_dq_kernel(d, cfg)[((nq + cfg.own - 1) // cfg.own, BH), block](
        q, k, v, dout, lse, delta, dq, sc, causal, offset)


def numba_flash_backward(q, k, v, out, lse, dout, *, is_causal: bool = False, scale: float | None = None,
                         config: BwdConfig | None = None):
    """Gradients ``(dq, dk, dv)`` of ``out = numba_flash_attention(q, k, v)`` given ``dout``; float32.

    q, out, dout: (..., Nq, d); k, v: (..., Nk, d); lse: (..., Nq) from the forward with the same
    ``is_causal`` and ``scale`` (``return_lse=True``). Equal leading axes (no broadcasting).
    Runs on a GPU, or in the CUDA simulator when NUMBA_ENABLE_CUDASIM=1 (keep sizes tiny there).
    """
    q, k, v, out, dout = (require_float32_array(n, x) for n, x in
                          (("q", q), ("k", k), ("v", v), ("out", out), ("dout", dout)))
    lse = require_float32_array("lse", lse, ndim_min=1)
    if k.shape != v.shape or q.shape[:-2] != k.shape[:-2] or q.shape[-1] != k.shape[-1]:
        raise ValueError(f"expected q (..., Nq, d), k and v (..., Nk, d) with shared leading axes and d, "
                         f"got q {q.shape}, k {k.shape}, v {v.shape}")
    for name, x, shape in (("out", out, q.shape), ("dout", dout, q.shape), ("lse", lse, q.shape[:-1])):
        if x.shape != shape:
            raise ValueError(f"{name}: expected shape {shape}, got {x.shape}")
    lead, (nq, d), nk = q.shape[:-2], q.shape[-2:], k.shape[-2]
    cfg = config or default_bwd_config(d)
    if d % cfg.tx:
        raise ValueError(f"head dim d={d} must be a multiple of config.tx={cfg.tx}")
    BH = int(np.prod(lead, dtype=np.int64))
    dq, dk, dv = np.zeros_like(q), np.zeros_like(k), np.zeros_like(v)
    if BH == 0 or nq == 0 or nk == 0:                  # no query or no key: every gradient is 0
        return dq, dk, dv
    arrs = [x.reshape(BH, x.shape[-2], d) for x in (q, k, v, out)] + [lse.reshape(BH, nq)]
    arrs += [dout.reshape(BH, nq, d)]
    outs = [g.reshape(BH, g.shape[-2], d) for g in (dq, dk, dv)] + [np.zeros((BH, nq), np.float32)]
    if simulator_enabled():
        launch_backward(*arrs, *outs, is_causal=is_causal, scale=scale, config=cfg)
        return dq, dk, dv
    dev_in = [cuda.to_device(x) for x in arrs]
    dev_out = [cuda.to_device(x) for x in outs]
    launch_backward(*dev_in, *dev_out, is_causal=is_causal, scale=scale, config=cfg)
    return tuple(g.copy_to_host().reshape(x.shape) for g, x in zip(dev_out[:3], (q, k, v)))
