"""Plausible wrong answers to exercises 04.4 (sampling_distribution) and 04.5 (sample_token);
each must lose points in tests/graded/test_ch04_sampling.py."""
MODULE = "ch04_transformer"

_TOP = '''def sampling_distribution(logits, temperature=1.0, top_k=None, top_p=None):
    z = np.asarray(logits, dtype=np.float64)
    if temperature == 0:
        return np.eye(z.shape[-1])[np.argmax(z, axis=-1)]
'''

WRONG = {
    # keeps tokens while the running total is <= p: drops the token that crosses p
    "top_p_stops_before_crossing": _TOP + '''    z = z / temperature
    if top_k is not None:
        kth = np.sort(z, axis=-1)[:, -top_k][:, None]
        z = np.where(z >= kth, z, -np.inf)
    probs = softmax(z)
    if top_p is not None:
        order = np.argsort(-probs, axis=-1, kind="stable")
        sorted_p = np.take_along_axis(probs, order, axis=-1)
        keep_sorted = np.cumsum(sorted_p, axis=-1) <= top_p
        keep_sorted[:, 0] = True
        keep = np.zeros_like(keep_sorted)
        np.put_along_axis(keep, order, keep_sorted, axis=-1)
        probs = np.where(keep, probs, 0.0)
        probs = probs / probs.sum(axis=-1, keepdims=True)
    return probs
''',
    # top-p measured on the full distribution, before top-k
    "top_p_before_top_k": _TOP + '''    z = z / temperature
    if top_p is not None:
        probs = softmax(z)
        order = np.argsort(-probs, axis=-1, kind="stable")
        sorted_p = np.take_along_axis(probs, order, axis=-1)
        keep_sorted = np.cumsum(sorted_p, axis=-1) - sorted_p < top_p
        keep = np.zeros_like(keep_sorted)
        np.put_along_axis(keep, order, keep_sorted, axis=-1)
        z = np.where(keep, z, -np.inf)
    if top_k is not None:
        kth = np.sort(z, axis=-1)[:, -top_k][:, None]
        z = np.where(z >= kth, z, -np.inf)
    return softmax(z)
''',
    # the first index whose CDF reaches u (>=), which returns a banned token 0 for u = 0
    "sample_searchsorted_left": '''def sample_token(logits, u, temperature=1.0, top_k=None, top_p=None):
    probs = sampling_distribution(logits, temperature, top_k, top_p)
    cdf = np.cumsum(probs, axis=-1)
    return np.array([min(int(np.searchsorted(c, ub, side="left")), probs.shape[-1] - 1)
                     for c, ub in zip(cdf, np.asarray(u, dtype=np.float64))], dtype=np.int64)
''',
}
