"""Plausible wrong answers to chapter 02's exercises; each must lose points (tests/test_grader_regression.py).

Each value is the full source of a replacement for one function of solutions/ch02_multi_head.py.
"""

WRONG = {
    # reshapes straight to (B, H, L, d): mixes positions and heads
    "split_heads_no_transpose": '''def split_heads(x, n_heads):
    b, l, hd = x.shape
    return x.reshape(b, n_heads, l, hd // n_heads)
''',
    # head h gets the strided features h, h+H, h+2H, ... instead of a contiguous block
    "split_heads_strided": '''def split_heads(x, n_heads):
    b, l, hd = x.shape
    return x.reshape(b, l, hd // n_heads, n_heads).transpose(0, 3, 1, 2)
''',
    "merge_heads_no_transpose": '''def merge_heads(x):
    b, h, l, d = x.shape
    return x.reshape(b, l, h * d)
''',
    # interleaved groups (query head i -> KV head i mod n_kv)
    "kv_head_modulo": '''def kv_head_for_query_head(i, n_heads, n_kv_heads):
    return i % n_kv_heads
''',
    # the source's floor(i / g) with g the number of KV heads (issue 9, item 1)
    "kv_head_divides_by_n_kv": '''def kv_head_for_query_head(i, n_heads, n_kv_heads):
    return i // n_kv_heads
''',
    # scales by sqrt(d_model) instead of sqrt(d_head)
    "mha_scale_sqrt_d_model": '''def mha_forward(x, wq, wk, wv, wo, n_heads, n_kv_heads=None, causal=False):
    n_kv_heads = n_heads if n_kv_heads is None else n_kv_heads
    x = np.asarray(x, dtype=np.float64)
    q = split_heads(x @ wq, n_heads)
    k = split_heads(x @ wk, n_kv_heads)
    v = split_heads(x @ wv, n_kv_heads)
    idx = [kv_head_for_query_head(i, n_heads, n_kv_heads) for i in range(n_heads)]
    k, v = k[:, idx], v[:, idx]
    s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(x.shape[-1])
    if causal:
        L = x.shape[1]
        s = np.where(np.tri(L, L, dtype=bool), s, -np.inf)
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    return merge_heads(p @ v) @ wo
''',
    # np.tile instead of np.repeat: KV heads interleaved over the query heads
    "mha_kv_heads_tiled": '''def mha_forward(x, wq, wk, wv, wo, n_heads, n_kv_heads=None, causal=False):
    n_kv_heads = n_heads if n_kv_heads is None else n_kv_heads
    x = np.asarray(x, dtype=np.float64)
    q = split_heads(x @ wq, n_heads)
    k = np.tile(split_heads(x @ wk, n_kv_heads), (1, n_heads // n_kv_heads, 1, 1))
    v = np.tile(split_heads(x @ wv, n_kv_heads), (1, n_heads // n_kv_heads, 1, 1))
    s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(q.shape[-1])
    if causal:
        L = x.shape[1]
        s = np.where(np.tri(L, L, dtype=bool), s, -np.inf)
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    return merge_heads(p @ v) @ wo
''',
    # forgets the causal flag
    "mha_ignores_causal": '''def mha_forward(x, wq, wk, wv, wo, n_heads, n_kv_heads=None, causal=False):
    n_kv_heads = n_heads if n_kv_heads is None else n_kv_heads
    x = np.asarray(x, dtype=np.float64)
    q = split_heads(x @ wq, n_heads)
    k = split_heads(x @ wk, n_kv_heads)
    v = split_heads(x @ wv, n_kv_heads)
    idx = [kv_head_for_query_head(i, n_heads, n_kv_heads) for i in range(n_heads)]
    k, v = k[:, idx], v[:, idx]
    s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(q.shape[-1])
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    return merge_heads(p @ v) @ wo
''',
}
