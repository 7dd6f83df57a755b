"""Plausible wrong answers to chapter 06's exercises; each must lose points (tests/test_grader_regression.py).

Each value is the full source of a replacement for one function of solutions/ch06_flash.py.
"""

WRONG = {
    # no -inf guard: merging two empty states gives exp(-inf + inf) = nan
    "online_merge_no_guard": '''def online_merge(m1, l1, o1, m2, l2, o2):
    m = np.maximum(m1, m2)
    a1, a2 = np.exp(m1 - m), np.exp(m2 - m)
    return m, a1 * l1 + a2 * l2, a1[:, None] * o1 + a2[:, None] * o2
''',
    # rescales l but adds the outputs as they are
    "online_merge_o_not_rescaled": '''def online_merge(m1, l1, o1, m2, l2, o2):
    m = np.maximum(m1, m2)
    shift = np.where(np.isneginf(m), 0.0, m)
    a1, a2 = np.exp(m1 - shift), np.exp(m2 - shift)
    return m, a1 * l1 + a2 * l2, o1 + o2
''',
    # forgets to rescale the running output by exp(m - m')
    "tile_update_no_rescale": '''def tile_update(m, l, o, s, v):
    m_new = np.maximum(m, s.max(axis=1))
    shift = np.where(np.isneginf(m_new), 0.0, m_new)
    alpha = np.exp(m - shift)
    p = np.exp(s - shift[:, None])
    return m_new, alpha * l + p.sum(axis=1), o + p @ v
''',
    # no guard: a row whose tiles so far are all masked becomes nan
    "tile_update_no_guard": '''def tile_update(m, l, o, s, v):
    m_new = np.maximum(m, s.max(axis=1))
    alpha = np.exp(m - m_new)
    p = np.exp(s - m_new[:, None])
    return m_new, alpha * l + p.sum(axis=1), alpha[:, None] * o + p @ v
''',
    # top-left causal alignment (right only when Lq == Lk)
    "classify_tiles_top_left": '''def classify_tiles(Lq, Lk, block_q, block_k):
    t_r, t_c = -(-Lq // block_q), -(-Lk // block_k)
    out = np.empty((t_r, t_c), dtype=int)
    for i in range(t_r):
        q0, q1 = i * block_q, min((i + 1) * block_q, Lq) - 1
        for j in range(t_c):
            k0, k1 = j * block_k, min((j + 1) * block_k, Lk) - 1
            out[i, j] = 0 if k0 > q1 else 2 if k1 <= q0 else 1
    return out
''',
    # treats every block as full length (a short last block ends at (i+1)*block - 1)
    "classify_tiles_ignores_short_blocks": '''def classify_tiles(Lq, Lk, block_q, block_k):
    off = Lk - Lq
    t_r, t_c = -(-Lq // block_q), -(-Lk // block_k)
    out = np.empty((t_r, t_c), dtype=int)
    for i in range(t_r):
        q0, q1 = i * block_q, (i + 1) * block_q - 1
        for j in range(t_c):
            k0, k1 = j * block_k, (j + 1) * block_k - 1
            out[i, j] = 0 if k0 > q1 + off else 2 if k1 <= q0 + off else 1
    return out
''',
    # hole from issue 9: D recomputed tile-locally as rowsum(P * dP) over this tile's keys only
    "backward_tile_local_D": '''def backward_tile(q_i, k_j, v_j, do_i, lse_i, D_i, scale):
    p = np.exp(q_i @ k_j.T * scale - lse_i[:, None])
    dv = p.T @ do_i
    dp = do_i @ v_j.T
    ds = p * (dp - (p * dp).sum(axis=1, keepdims=True))
    return ds @ k_j * scale, ds.T @ q_i * scale, dv
''',
    # hole from issue 9: P as a softmax over this tile's keys instead of exp(s - lse)
    "backward_tile_local_softmax": '''def backward_tile(q_i, k_j, v_j, do_i, lse_i, D_i, scale):
    s = q_i @ k_j.T * scale
    p = np.exp(s - s.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    dv = p.T @ do_i
    dp = do_i @ v_j.T
    ds = p * (dp - D_i[:, None])
    return ds @ k_j * scale, ds.T @ q_i * scale, dv
''',
    # uses 1/sqrt(d) instead of the scale argument
    "backward_tile_ignores_scale": '''def backward_tile(q_i, k_j, v_j, do_i, lse_i, D_i, scale):
    scale = 1.0 / np.sqrt(q_i.shape[1])
    p = np.exp(q_i @ k_j.T * scale - lse_i[:, None])
    dv = p.T @ do_i
    dp = do_i @ v_j.T
    ds = p * (dp - D_i[:, None])
    return ds @ k_j * scale, ds.T @ q_i * scale, dv
''',
    # forgets the chain-rule factor `scale` in dK
    "backward_tile_dk_unscaled": '''def backward_tile(q_i, k_j, v_j, do_i, lse_i, D_i, scale):
    p = np.exp(q_i @ k_j.T * scale - lse_i[:, None])
    dv = p.T @ do_i
    dp = do_i @ v_j.T
    ds = p * (dp - D_i[:, None])
    return ds @ k_j * scale, ds.T @ q_i, dv
''',
}
