"""Plausible wrong answers for solutions/ch10_sparse.py; each must lose points in tests/graded/test_ch10_sparse.py."""

WRONG = {
    "window_strict_inequality": '''def sliding_window_mask(L, radius, causal=False):
    import numpy as np
    off = np.arange(L)[:, None] - np.arange(L)[None, :]
    ok = np.abs(off) < radius
    if causal:
        ok &= off >= 0
    return ok
''',
    "window_causal_transposed": '''def sliding_window_mask(L, radius, causal=False):
    import numpy as np
    off = np.arange(L)[:, None] - np.arange(L)[None, :]
    ok = np.abs(off) <= radius
    if causal:
        ok &= off <= 0
    return ok
''',
    "bigbird_draws_among_all_blocks": '''def bigbird_block_mask(n_blocks, n_window_blocks, n_global_blocks, n_random_blocks, rng):
    import numpy as np
    a = np.arange(n_blocks)
    blocks = np.abs(a[:, None] - a[None, :]) <= n_window_blocks // 2
    blocks[:n_global_blocks, :] = True
    blocks[:, :n_global_blocks] = True
    for row in range(n_global_blocks, n_blocks):
        blocks[row, rng.choice(n_blocks, size=min(n_random_blocks, n_blocks), replace=False)] = True
    return blocks
''',
    "block_sparse_dense_then_mask": '''def block_sparse_attention(q, k, v, block_mask, block_q, block_k):
    import numpy as np
    Lq, Lk = q.shape[0], k.shape[0]
    mask = np.repeat(np.repeat(block_mask, block_q, 0), block_k, 1)[:Lq, :Lk]
    s = np.where(mask, q @ k.T / np.sqrt(q.shape[1]), -np.inf)
    m = s.max(1, keepdims=True)
    e = np.exp(s - np.where(np.isfinite(m), m, 0))
    den = e.sum(1, keepdims=True)
    return e / np.where(den == 0, 1, den) @ v, int(block_mask.sum())
''',
    "block_sparse_tile_softmax_not_rescaled": '''def block_sparse_attention(q, k, v, block_mask, block_q, block_k):
    import numpy as np
    Lq, d = q.shape
    Lk, dv = v.shape
    out = np.zeros((Lq, dv))
    n_tiles = 0
    for i, q0 in enumerate(range(0, Lq, block_q)):
        qi = q[q0:q0 + block_q]
        o = np.zeros((qi.shape[0], dv))
        cnt = 0
        for j, k0 in enumerate(range(0, Lk, block_k)):
            if not block_mask[i, j]:
                continue
            n_tiles += 1
            cnt += 1
            s = qi @ k[k0:k0 + block_k].T / np.sqrt(d)
            p = np.exp(s - s.max(1, keepdims=True))
            o += p / p.sum(1, keepdims=True) @ v[k0:k0 + block_k]
        if cnt:
            out[q0:q0 + block_q] = o / cnt
    return out, n_tiles
''',
}
