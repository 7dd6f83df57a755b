"""Plausible wrong answers to exercise 07.3 (dkdv_rows_kernel); each must lose points in
tests/graded/test_ch07_backward.py. Each value replaces the whole kernel (a cuda.jit function)."""
MODULE = "ch07_flash_gpu"

_HEAD = '''@cuda.jit(**jit_options())
def dkdv_rows_kernel(q, k, v, dout, lse, delta, dk, dv, scale, causal):
    tid = cuda.threadIdx.x
    bh = cuda.blockIdx.y
    kj = cuda.blockIdx.x * BLOCK + tid
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
            for r in range(BLOCK):
                i = q0 + r
                if i < nq and (causal == 0 or kj <= i + nk - nq):
                    s = ZERO
                    dp = ZERO
                    for c in range(d):
                        s += sQ[r, c] * k[bh, kj, c]
                        dp += sdO[r, c] * v[bh, kj, c]
'''
_TAIL = '''        cuda.syncthreads()
    if kj < nk:
        for c in range(d):
            dk[bh, kj, c] = acc_dk[c]
            dv[bh, kj, c] = acc_dv[c]
'''

WRONG = {
    # dK without the softmax scale (dS = dL/d(scaled S), so dK = scale dS^T Q)
    "dk_missing_scale": _HEAD + '''                    p = math.exp(s * scale - sL[r])
                    ds = p * (dp - sD[r])
                    for c in range(d):
                        acc_dv[c] += p * sdO[r, c]
                        acc_dk[c] += ds * sQ[r, c]
''' + _TAIL,
    # dS = P * dP: forgets the -D_i term (the softmax Jacobian's rank-one part)
    "ds_without_delta": _HEAD + '''                    p = math.exp(s * scale - sL[r])
                    ds = p * dp
                    for c in range(d):
                        acc_dv[c] += p * sdO[r, c]
                        acc_dk[c] += ds * sQ[r, c] * scale
''' + _TAIL,
    # P from the raw score, not normalised by lse
    "p_not_from_lse": _HEAD + '''                    p = math.exp(s * scale)
                    ds = p * (dp - sD[r])
                    for c in range(d):
                        acc_dv[c] += p * sdO[r, c]
                        acc_dk[c] += ds * sQ[r, c] * scale
''' + _TAIL,
}
