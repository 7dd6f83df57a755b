"""FlashAttention-2 forward in Numba-CUDA, float32 (chapter 07).

Work decomposition (FA2: outer loop over query tiles, parallel across thread blocks)::

    grid  = (ceil(Nq / BQ), B*H)       one thread block per (query tile, batch*head)
    block = (TX, TY) threads            thread (tx, ty) owns query rows  ty*RQ + i, i < RQ
                                        scores of keys tx + TX*j, j < CK   -> BK = TX*CK keys a tile
                                        output columns tx + TX*c, c < d/TX

Per block: Q tile (pre-scaled) in shared memory once; for each K/V tile: stage K^T and V in shared
memory, scores S (RQ x CK per thread) and the output accumulator O (RQ x d/TX) live in registers,
the online softmax keeps (m, l) per row, P goes through shared memory for the P @ V product. Rows are
reduced across the TX threads that share them through shared memory (the simulator has no warp
shuffles, so the same code runs on CPU and GPU). Causal: tiles entirely above the diagonal are never
loaded; only tiles crossing it are masked element-wise.

Shared memory is *dynamic*: one flat float32 buffer whose size is given at launch, cut into the
tiles (``shared_layout``) and indexed ``row * stride + col``. Static ``cuda.shared.array`` tiles are
capped at 48 KB per block, which forced d = 128 onto 32x16 tiles (7.7 TFLOP/s vs 14.1 at d = 64);
above 48 KB the kernel must opt in once (``cuKernelSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES)``,
done by ``launch``): d = 128 gets 64x32 tiles (69 KB: P reuses K's space, three blocks per SM) and
d = 64 64x64 tiles (53 KB). Indices into it are cast to unsigned 64-bit (``U``): Numba wraps a negative index around
the array's length like Python, and the length of a dynamic array is a run-time value, so a signed
index costs a compare and a select per access (run 7, measured: d = 64 fell from 14.1 to 8.5 TFLOP/s;
163 registers instead of 123). A 32-bit unsigned cast is no better: the truncation stops the compiler
from folding the unrolled column offsets into the load instructions.

Every constant is float32: a Python float literal such as ``0.0`` would be float64 and put .f64
instructions in the PTX (tests/test_gpu_compile.py checks there are none).
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numba import cuda, float32   # module-level: the simulator swaps the global `cuda` while a kernel runs

from ._jit import jit_options, require_float32_array, simulator_enabled
from .numba_tiles import NumbaConfig, batched_staging, default_config, shared_bytes, shared_layout  # noqa: F401

U = np.uint64                      # unsigned shared-memory index: no negative-index wrap-around code
NEG_INF = np.float32(-np.inf)
ZERO = np.float32(0.0)
ONE = np.float32(1.0)


@lru_cache(maxsize=None)
def make_kernel(d: int, cfg: NumbaConfig):
    """Compile-time specialised kernel
    ``kernel[grid, block, stream, shared_bytes(d, cfg)](q, k, v, out, lse, scale, causal, offset)``.

    q, out: (BH, Nq, d) float32; lse: (BH, Nq) float32 (log-sum-exp of each row's scaled scores,
    -inf for a row that sees no key: what the backward pass needs); k, v: (BH, Nk, d) float32 (device or, in the simulator, host arrays);
    scale: float32 softmax scale; causal: int32 0/1; offset = Nk - Nq (bottom-right causal alignment:
    query i sees keys j <= i + offset).
    """
    TX, TY, RQ, CK = cfg.tx, cfg.ty, cfg.rq, cfg.ck
    if d % TX:
        raise ValueError(f"d={d} must be a multiple of the config's tx={TX}")
    BQ, BK, DC = TY * RQ, TX * CK, d // TX
    NT = TX * TY
    SUM_ONCE = bool(cfg.sum_once)
    STAGE, STAGE_GROUP = batched_staging(d, cfg), max(1, cfg.stage)
    PREFETCH = STAGE and bool(cfg.prefetch)
    RSTEP, NGROUP = NT // d, (BK * d) // (NT * STAGE_GROUP)   # stage > 0: rows per pass; groups per tile
    L = shared_layout(d, cfg)
    QP, KP = L["sQ"][1], L["sKT"][1]   # d+1, BK+1: padded rows, so rows read by one warp hit different banks
    PS, MS = L["sP"][1], L["sMax"][1]  # BK+1, TX (shipped) or BK+w, TX+w (pad=1): row strides of sP, sMax/sSum
    O_Q, O_KT, O_V = L["sQ"][0], L["sKT"][0], L["sV"][0]
    O_MAX, O_SUM, O_END = L["sMax"][0], L["sSum"][0], L["end"][0]

    @cuda.jit(**jit_options(**({"max_registers": cfg.max_regs} if cfg.max_regs else {})))
    def kernel(q, k, v, out, lse, scale, causal, offset):
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        tid = ty * TX + tx
        bh = cuda.blockIdx.y
        q0 = cuda.blockIdx.x * BQ
        nq = q.shape[1]
        nk = k.shape[1]

        # dynamic shared memory (size set at launch): one flat buffer cut into tiles, [U(r * stride + c)]
        smem = cuda.shared.array(0, float32)
        sQ = smem[O_Q:O_KT]          # (BQ, QP) Q tile, pre-multiplied by scale
        sKT = smem[O_KT:O_V]         # (d, KP)  K tile transposed: sKT[c*KP + j] = K[k0 + j, c]
        sP = smem[O_KT:O_V]          # (BQ, PS) P = exp(S - m) of this tile: reuses K's space
        sV = smem[O_V:O_MAX]         # (BK, d)  V tile
        sMax = smem[O_MAX:O_SUM]     # (BQ, MS) per-thread partial row maxima
        sSum = smem[O_SUM:O_END]     # (BQ, MS) per-thread partial row sums

        acc = cuda.local.array((RQ, DC), float32)      # O accumulator (unnormalised), registers
        s = cuda.local.array((RQ, CK), float32)        # scores of this tile, registers
        m = cuda.local.array(RQ, float32)              # running row max
        l = cuda.local.array(RQ, float32)              # running row sum of exp
        qv = cuda.local.array(RQ, float32)
        kv = cuda.local.array(CK, float32)
        kg = cuda.local.array(STAGE_GROUP, float32)    # stage > 0: one group of K / V words in flight
        vg = cuda.local.array(STAGE_GROUP, float32)

        for i in range(RQ):
            m[i] = NEG_INF
            l[i] = ZERO
            for c in range(DC):
                acc[i, c] = ZERO

        # stage the Q tile once; rows past the end are zero
        for idx in range(tid, BQ * d, NT):
            r = idx // d
            c = idx - r * d
            if q0 + r < nq:
                sQ[U(r * QP + c)] = q[bh, q0 + r, c] * scale
            else:
                sQ[U(r * QP + c)] = ZERO

        # causal tile skipping: the last query row of this tile sees keys <= last + offset
        n_tiles = (nk + BK - 1) // BK
        if causal:
            last = min(q0 + BQ, nq) - 1 + offset
            if last < 0:
                n_tiles = 0
            else:
                n_tiles = min(n_tiles, last // BK + 1)

        cs = tid % d                                    # stage: this thread copies column cs of rows
        rs = tid // d                                   # rs + RSTEP * u of every full K / V tile
        have = False                                    # prefetch: group 0 of tile t is already in kg / vg
        for t in range(n_tiles):
            k0 = t * BK
            if STAGE and k0 + BK <= nk:
                # full tile: each group's loads are all issued before its first store, so a group costs
                # about one memory latency instead of one per word
                g0 = 0
                if PREFETCH and have:                   # loaded during the previous tile's P V loop
                    for u in range(STAGE_GROUP):
                        r = rs + RSTEP * u
                        sKT[U(cs * KP + r)] = kg[u]
                        sV[U(r * d + cs)] = vg[u]
                    g0 = 1
                for g in range(g0, NGROUP):
                    for u in range(STAGE_GROUP):
                        r = rs + RSTEP * (g * STAGE_GROUP + u)
                        kg[u] = k[bh, U(k0 + r), U(cs)]
                        vg[u] = v[bh, U(k0 + r), U(cs)]
                    for u in range(STAGE_GROUP):
                        r = rs + RSTEP * (g * STAGE_GROUP + u)
                        sKT[U(cs * KP + r)] = kg[u]
                        sV[U(r * d + cs)] = vg[u]
            else:                                       # ragged last tile (or stage = 0): word by word
                for idx in range(tid, BK * d, NT):      # coalesced reads: consecutive threads, consecutive c
                    r = idx // d
                    c = idx - r * d
                    if k0 + r < nk:
                        sKT[U(c * KP + r)] = k[bh, k0 + r, c]
                        sV[U(r * d + c)] = v[bh, k0 + r, c]
                    else:
                        sKT[U(c * KP + r)] = ZERO
                        sV[U(r * d + c)] = ZERO
            cuda.syncthreads()

            # S = (scale Q) K^T for this thread's RQ x CK scores
            for i in range(RQ):
                for j in range(CK):
                    s[i, j] = ZERO
            for c in range(d):
                for i in range(RQ):
                    qv[i] = sQ[U((ty * RQ + i) * QP + c)]
                for j in range(CK):
                    kv[j] = sKT[U(c * KP + tx + TX * j)]
                for i in range(RQ):
                    for j in range(CK):
                        s[i, j] += qv[i] * kv[j]

            # mask (ragged end, causal) and partial row max
            for i in range(RQ):
                qi = q0 + ty * RQ + i
                mx = NEG_INF
                for j in range(CK):
                    kj = k0 + tx + TX * j
                    if kj >= nk or (causal and kj > qi + offset):
                        s[i, j] = NEG_INF
                    mx = max(mx, s[i, j])
                sMax[U((ty * RQ + i) * MS + tx)] = mx
            cuda.syncthreads()

            # online softmax: m' = max(m, rowmax S), P = exp(S - m'), alpha = exp(m - m')
            for i in range(RQ):
                r = ty * RQ + i
                mt = m[i]
                for x in range(TX):
                    mt = max(mt, sMax[U(r * MS + x)])
                m_use = mt if mt != NEG_INF else ZERO   # fully masked row so far: exp(-inf - 0) = 0, no NaN
                alpha = math.exp(m[i] - m_use)
                m[i] = mt
                ps = ZERO
                for j in range(CK):
                    p = math.exp(s[i, j] - m_use)
                    sP[U(r * PS + tx + TX * j)] = p
                    ps += p
                if SUM_ONCE:
                    l[i] = alpha * l[i] + ps              # this thread's keys only; summed after the loop
                else:
                    sSum[U(r * MS + tx)] = ps
                    l[i] *= alpha
                for c in range(DC):
                    acc[i, c] *= alpha
            cuda.syncthreads()

            if PREFETCH:                                  # next tile's first group, in flight during P V
                k1 = k0 + BK
                have = t + 1 < n_tiles and k1 + BK <= nk
                if have:
                    for u in range(STAGE_GROUP):
                        r = rs + RSTEP * u
                        kg[u] = k[bh, U(k1 + r), U(cs)]
                        vg[u] = v[bh, U(k1 + r), U(cs)]

            # l' = alpha l + rowsum(P);  O' = alpha O + P V
            if not SUM_ONCE:
                for i in range(RQ):
                    for x in range(TX):
                        l[i] += sSum[U((ty * RQ + i) * MS + x)]
            for j in range(BK):
                for i in range(RQ):
                    qv[i] = sP[U((ty * RQ + i) * PS + j)]
                for c in range(DC):
                    vj = sV[U(j * d + tx + TX * c)]
                    for i in range(RQ):
                        acc[i, c] += qv[i] * vj
            cuda.syncthreads()                            # tile fully used before the next overwrite

        if SUM_ONCE:                                      # l = sum of the TX threads' partial sums
            for i in range(RQ):
                sSum[U((ty * RQ + i) * MS + tx)] = l[i]
            cuda.syncthreads()
            for i in range(RQ):
                lt = ZERO
                for x in range(TX):
                    lt += sSum[U((ty * RQ + i) * MS + x)]
                l[i] = lt

        # O = O / l, once at the end (FA2); a row that saw no key gives 0
        for i in range(RQ):
            qi = q0 + ty * RQ + i
            if qi < nq:
                inv = ONE / l[i] if l[i] > ZERO else ZERO
                for c in range(DC):
                    out[bh, qi, tx + TX * c] = acc[i, c] * inv
                if tx == 0:                               # lse = m + log l (natural log), -inf if no key
                    lse[bh, qi] = m[i] + math.log(l[i]) if l[i] > ZERO else NEG_INF

    return kernel


def launch(q, k, v, out, lse=None, *, is_causal: bool = False, scale: float | None = None,
           config: NumbaConfig | None = None):
    """Run the kernel on 3-D arrays already in place: q, out (BH, Nq, d); k, v (BH, Nk, d), float32;
    lse (BH, Nq) float32 or None (then a fresh buffer is allocated). Returns lse.

    Accepts Numba device arrays or anything with ``__cuda_array_interface__`` (CuPy, torch); used by
    the benchmark to time the kernel without host transfers. Asynchronous on a real GPU.
    """
    BH, nq, d = q.shape
    nk = k.shape[1]
    cfg = config or default_config(d)
    kern = make_kernel(d, cfg)
    sc = np.float32(1.0 / math.sqrt(d) if scale is None else scale)
    if lse is None:
        lse = np.empty((BH, nq), np.float32) if simulator_enabled() else cuda.device_array((BH, nq), np.float32)
    grid = ((nq + cfg.block_q - 1) // cfg.block_q, BH)
    args = (q, k, v, out, lse, sc, np.int32(bool(is_causal)), np.int32(nk - nq))
    nbytes = shared_bytes(d, cfg)
    if nbytes > STATIC_SHARED_LIMIT and not simulator_enabled():
        allow_shared_bytes(kern, args, nbytes)
    kern[grid, (cfg.tx, cfg.ty), 0, nbytes](*args)
    return lse


STATIC_SHARED_LIMIT = 48 * 1024     # a block may use more only after opting in (per kernel, per device)
_OPTED_IN: set = set()


def allow_shared_bytes(kern, args, nbytes: int) -> None:
    """Let the compiled kernel for ``args`` use ``nbytes`` > 48 KB of dynamic shared memory (real GPU).

    CUDA's rule: a kernel may use up to 48 KB of shared memory per block by default; more (up to
    227 KB on Hopper) needs ``MAX_DYNAMIC_SHARED_SIZE_BYTES`` set on the function first. numba-cuda
    0.30 has no wrapper for it, so this calls the driver through the binding numba itself uses.
    """
    from numba.cuda.cudadrv.driver import binding, driver

    compiled = kern.compile(tuple(kern.typeof_pyval(a) for a in args))
    cufunc = compiled._codelibrary.get_cufunc()
    key = (id(cufunc), cufunc.device.id, nbytes)
    if key in _OPTED_IN:
        return
    attr = binding.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
    driver.cuKernelSetAttribute(attr, nbytes, cufunc.handle, cufunc.device.id)
    _OPTED_IN.add(key)


def numba_flash_attention(q, k, v, *, is_causal: bool = False, scale: float | None = None,
                          config: NumbaConfig | None = None, return_lse: bool = False):
    """softmax(q k^T * scale [+ causal mask]) v with the Numba kernel; float32 in, float32 ndarray out.

    With ``return_lse=True`` returns ``(out, lse)`` like chapter 06's ``flash_attention``: lse
    (..., Nq) float32 = log sum_j exp(scale q_i.k_j) over the keys row i sees, -inf if it sees none.

    q: (..., Nq, d), k: (..., Nk, d), v: (..., Nk, d) with equal leading (batch, head) axes; any N.
    Causal masking is bottom-right aligned (query i sees keys j <= i + Nk - Nq); a query row that
    sees no key gives 0. scale defaults to 1/sqrt(d). Runs on a GPU, or in the CUDA simulator when
    NUMBA_ENABLE_CUDASIM=1 (keep sizes tiny there).
    """
    q = require_float32_array("q", q)
    k = require_float32_array("k", k)
    v = require_float32_array("v", v)
    if k.shape != v.shape:
        raise ValueError(f"k and v must have the same shape (..., Nk, d), got k {k.shape}, v {v.shape}")
    if q.shape[:-2] != k.shape[:-2] or q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q (..., Nq, d) and k (..., Nk, d) must share leading axes and d, "
                         f"got q {q.shape}, k {k.shape}")
    lead, (nq, d), nk = q.shape[:-2], q.shape[-2:], k.shape[-2]
    cfg = config or default_config(d)
    if d % cfg.tx:
        raise ValueError(f"head dim d={d} must be a multiple of config.tx={cfg.tx}")
    BH = int(np.prod(lead, dtype=np.int64))
    out = np.zeros((BH, nq, d), np.float32)
    lse = np.full((BH, nq), -np.inf, np.float32)

    def result(o, ls):
        o = o.reshape(q.shape)
        return (o, ls.reshape(q.shape[:-1])) if return_lse else o

    if BH == 0 or nq == 0 or nk == 0:           # no keys at all: every row gives 0, lse = -inf
        return result(out, lse)
    q3, k3, v3 = (x.reshape(BH, x.shape[-2], d) for x in (q, k, v))

    if simulator_enabled():
        launch(q3, k3, v3, out, lse, is_causal=is_causal, scale=scale, config=cfg)
        return result(out, lse)
    dq, dk, dv = cuda.to_device(q3), cuda.to_device(k3), cuda.to_device(v3)
    dout, dlse = cuda.device_array_like(out), cuda.device_array_like(lse)
    launch(dq, dk, dv, dout, dlse, is_causal=is_causal, scale=scale, config=cfg)
    return result(dout.copy_to_host(), dlse.copy_to_host())
