"""Plausible wrong answers to exercise 01.4 (attention_backward); each must lose points in
tests/graded/test_ch01_backward.py."""
MODULE = "ch01_attention"

_HEAD = '''def attention_backward(q, k, v, dout, mask=None, scale=None):
    q, k, v, dout = (np.asarray(a, dtype=np.float64) for a in (q, k, v, dout))
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    s = q @ np.swapaxes(k, -1, -2) * scale
'''
_MASKED_P = '''    if mask is not None:
        s = np.where(np.broadcast_to(mask, s.shape), s, -np.inf)
    m = s.max(axis=-1, keepdims=True)
    e = np.exp(s - np.where(np.isfinite(m), m, 0.0))
    total = e.sum(axis=-1, keepdims=True)
    p = e / np.where(total > 0, total, 1.0)
'''

WRONG = {
    # the row sum of dP alone, instead of sum_j P_ij dP_ij = dO_i . O_i
    "rowsum_of_dP": _HEAD + _MASKED_P + '''    dv = np.swapaxes(p, -1, -2) @ dout
    dp = dout @ np.swapaxes(v, -1, -2)
    ds = p * (dp - dp.sum(axis=-1, keepdims=True))
    return scale * ds @ k, scale * np.swapaxes(ds, -1, -2) @ q, dv
''',
    # forgets that S = scale * Q K^T
    "no_scale_in_dq_dk": _HEAD + _MASKED_P + '''    out = p @ v
    dv = np.swapaxes(p, -1, -2) @ dout
    dp = dout @ np.swapaxes(v, -1, -2)
    ds = p * (dp - (dout * out).sum(axis=-1, keepdims=True))
    return ds @ k, np.swapaxes(ds, -1, -2) @ q, dv
''',
    # recomputes P without the mask
    "mask_ignored_in_backward": _HEAD + '''    e = np.exp(s - s.max(axis=-1, keepdims=True))
    p = e / e.sum(axis=-1, keepdims=True)
    out = p @ v
    dv = np.swapaxes(p, -1, -2) @ dout
    dp = dout @ np.swapaxes(v, -1, -2)
    ds = p * (dp - (dout * out).sum(axis=-1, keepdims=True))
    return scale * ds @ k, scale * np.swapaxes(ds, -1, -2) @ q, dv
''',
}
