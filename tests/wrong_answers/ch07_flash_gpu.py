"""Plausible wrong answers to chapter 07's exercises; each must lose points (tests/test_grader_regression.py).

Each value is the full source of a replacement for one function of solutions/ch07_flash_gpu.py. The
kernel variants are the solution's kernel with one edit each (``_edit`` fails loudly if an edit no
longer applies, so a changed solution cannot silently turn a wrong answer into the right one).

Not included, because it is not wrong: ``n_key_tiles`` computing the block's last row as
``q0 + block - 1`` (ignoring a short last query block). For the last block that row is >= nq - 1, so
the last visible key is >= nk - 1 and the count is clamped to ceil(nk / block), exactly the right
answer; for every other block min(q0 + block, nq) = q0 + block. Checked on all 98,163 (q0, nq, nk,
block) with nq, nk < 40, block < 12 while writing this file.
"""

_KERNEL = '''@cuda.jit(**jit_options())
def flash_rows_kernel(q, k, v, out, scale, causal, tiles):
    tid = cuda.threadIdx.x
    bh = cuda.blockIdx.y
    q0 = cuda.blockIdx.x * BLOCK
    qi = q0 + tid
    nq = q.shape[1]
    nk = k.shape[1]
    d = q.shape[2]
    sK = cuda.shared.array((BLOCK, D_MAX), float32)
    sV = cuda.shared.array((BLOCK, D_MAX), float32)
    acc = cuda.local.array(D_MAX, float32)
    for c in range(d):
        acc[c] = ZERO
    m = NEG_INF
    l = ZERO
    for t in range(tiles[cuda.blockIdx.x]):
        k0 = t * BLOCK
        for c in range(d):
            if k0 + tid < nk:
                sK[tid, c] = k[bh, k0 + tid, c]
                sV[tid, c] = v[bh, k0 + tid, c]
            else:
                sK[tid, c] = ZERO
                sV[tid, c] = ZERO
        cuda.syncthreads()
        if qi < nq:
            for j in range(BLOCK):
                kj = k0 + j
                if kj < nk and (causal == 0 or kj <= qi + nk - nq):
                    s = ZERO
                    for c in range(d):
                        s += q[bh, qi, c] * sK[j, c]
                    s *= scale
                    m_new = max(m, s)
                    alpha = math.exp(m - m_new)
                    p = math.exp(s - m_new)
                    l = l * alpha + p
                    for c in range(d):
                        acc[c] = acc[c] * alpha + p * sV[j, c]
                    m = m_new
        cuda.syncthreads()
    if qi < nq:
        inv = ONE / l if l > ZERO else ZERO
        for c in range(d):
            out[bh, qi, c] = acc[c] * inv
'''


def _edit(old: str, new: str) -> str:
    assert _KERNEL.count(old) == 1, f"edit {old!r} does not apply to the kernel template"
    return _KERNEL.replace(old, new)


WRONG = {
    # hole from issue 9: Python float literals are float64 (right numbers in the simulator, slow on a GPU)
    "kernel_float64_constants": _edit("s = ZERO\n", "s = 0.0\n"),
    # forgets to rescale l and acc when the running max grows
    "kernel_no_rescale": _edit("l = l * alpha + p", "l = l + p").replace(
        "acc[c] = acc[c] * alpha + p * sV[j, c]", "acc[c] = acc[c] + p * sV[j, c]"),
    # top-left causal alignment: right only when nq == nk
    "kernel_causal_top_left": _edit("kj <= qi + nk - nq", "kj <= qi"),
    # no bound check: the zero-padded keys of the last tile get weight exp(0 - m)
    "kernel_no_key_bound": _edit("if kj < nk and (causal == 0", "if (causal == 0"),
    # forgets the 1/sqrt(d) scale
    "kernel_ignores_scale": _edit("                    s *= scale\n", ""),
    # counts from the block's FIRST row: misses the keys its later rows see
    "n_key_tiles_first_row": '''def n_key_tiles(q0, nq, nk, block, causal):
    n = (nk + block - 1) // block
    if causal:
        last = q0 + nk - nq
        if last < 0:
            return 0
        n = min(n, last // block + 1)
    return n
''',
    # ignores the short last query block AND drops the clamp to the tiles that exist: for a short last
    # block the row q0 + block - 1 does not exist and "sees" keys past the end
    "n_key_tiles_short_block_no_clamp": '''def n_key_tiles(q0, nq, nk, block, causal):
    if not causal:
        return (nk + block - 1) // block
    last = q0 + block - 1 + nk - nq
    return 0 if last < 0 else last // block + 1
''',
    # a block with no visible key still gets one tile (max(..., 1))
    "n_key_tiles_never_zero": '''def n_key_tiles(q0, nq, nk, block, causal):
    n = (nk + block - 1) // block
    if causal:
        last = min(q0 + block, nq) - 1 + nk - nq
        n = min(n, max(last, 0) // block + 1)
    return n
''',
}
