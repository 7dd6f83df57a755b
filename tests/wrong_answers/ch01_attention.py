"""Plausible wrong answers to chapter 01's exercises; each must lose points (tests/test_grader_regression.py).

Each value is the full source of a replacement for one function of solutions/ch01_attention.py.
"""

WRONG = {
    # no max subtraction: exp(1e4) overflows to inf, inf / inf = nan
    "softmax_unstable": '''def softmax(x, axis=-1):
    e = np.exp(np.asarray(x, dtype=np.float64))
    return e / e.sum(axis=axis, keepdims=True)
''',
    # subtracts the GLOBAL max: a row far below it underflows to 0 / 0
    "softmax_global_max": '''def softmax(x, axis=-1):
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max())
    return e / e.sum(axis=axis, keepdims=True)
''',
    # always normalises over the last axis
    "softmax_ignores_axis": '''def softmax(x, axis=-1):
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)
''',
    # top-left aligned: right only when Lq == Lk
    "causal_mask_top_left": '''def causal_mask(lq, lk):
    return np.tril(np.ones((lq, lk), dtype=bool))
''',
    # strict inequality: a query cannot see its own key
    "causal_mask_strict": '''def causal_mask(lq, lk):
    return np.arange(lk)[None, :] < np.arange(lq)[:, None] + (lk - lq)
''',
    # scales by the value dimension
    "attention_scale_sqrt_dv": '''def attention(q, k, v, mask=None, scale=None):
    q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
    scale = 1.0 / np.sqrt(v.shape[-1]) if scale is None else scale
    s = q @ np.swapaxes(k, -1, -2) * scale
    if mask is not None:
        s = np.where(mask, s, -1e30)
    p = softmax(s)
    if mask is not None:
        p = np.where(np.broadcast_to(mask, s.shape).any(axis=-1, keepdims=True), p, 0.0)
    return p @ v
''',
    # ignores the scale argument
    "attention_ignores_scale": '''def attention(q, k, v, mask=None, scale=None):
    q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if mask is not None:
        s = np.where(mask, s, -1e30)
    p = softmax(s)
    if mask is not None:
        p = np.where(np.broadcast_to(mask, s.shape).any(axis=-1, keepdims=True), p, 0.0)
    return p @ v
''',
    # -inf for masked keys without a guard: an empty row becomes nan
    "attention_empty_rows_nan": '''def attention(q, k, v, mask=None, scale=None):
    q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    s = q @ np.swapaxes(k, -1, -2) * scale
    if mask is not None:
        s = np.where(mask, s, -np.inf)
    return softmax(s) @ v
''',
    # masks AFTER the softmax without renormalising the remaining weights
    "attention_mask_after_softmax": '''def attention(q, k, v, mask=None, scale=None):
    q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    p = softmax(q @ np.swapaxes(k, -1, -2) * scale)
    if mask is not None:
        p = p * mask
    return p @ v
''',
}
