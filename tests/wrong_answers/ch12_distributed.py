"""Plausible wrong answers for chapter 12; each must lose points (tests/test_grader_regression.py)."""

WRONG = {
    # averages the two partials instead of weighting them by their normalisers
    "merge_mean": '''def merge_lse(o1, lse1, o2, lse2):
    return (o1 + o2) / 2, np.logaddexp(lse1, lse2)
''',
    # right weights but keeps the larger lse instead of the log of the summed normalisers
    "merge_max_lse": '''def merge_lse(o1, lse1, o2, lse2):
    lse = np.logaddexp(lse1, lse2)
    w1 = np.exp(lse1 - lse)
    return w1[:, None] * o1 + (1 - w1)[:, None] * o2, np.maximum(lse1, lse2)
''',
    # the causal mask compares local indices instead of global positions
    "ring_local_mask": '''_orig_ring_step = ring_step


def ring_step(q, k_block, v_block, q_pos, k_pos, o, lse, *, is_causal, scale):
    return _orig_ring_step(q, k_block, v_block, np.arange(len(q_pos)), np.arange(len(k_pos)), o, lse,
                           is_causal=is_causal, scale=scale)
''',
    # ignores the scale argument (always 1/sqrt(d))
    "ring_default_scale": '''_orig_ring_step = ring_step


def ring_step(q, k_block, v_block, q_pos, k_pos, o, lse, *, is_causal, scale):
    return _orig_ring_step(q, k_block, v_block, q_pos, k_pos, o, lse, is_causal=is_causal,
                           scale=1 / np.sqrt(q.shape[1]))
''',
    # contiguous shards instead of zig-zag
    "zigzag_contiguous": '''def zigzag_shards(n, n_devices):
    if n % (2 * n_devices):
        raise ValueError("n")
    return list(np.arange(n).reshape(n_devices, -1))
''',
    # pairs chunk r with chunk P + r (striding by P) instead of 2P-1-r
    "zigzag_shifted": '''def zigzag_shards(n, n_devices):
    parts = 2 * n_devices
    if n % parts:
        raise ValueError("n")
    c = np.arange(n).reshape(parts, -1)
    return [np.concatenate([c[r], c[n_devices + r]]) for r in range(n_devices)]
''',
}
