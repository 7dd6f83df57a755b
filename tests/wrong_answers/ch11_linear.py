"""Plausible wrong answers for solutions/ch11_linear.py; each must lose points in tests/graded/test_ch11_linear.py."""

WRONG = {
    "causal_forgot_the_mask": '''def causal_linear_attention(q, k, v):
    import numpy as np
    fq, fk = elu1(q), elu1(k)
    kv = fk.T @ v
    return fq @ kv / (fq @ fk.sum(0))[:, None]
''',
    "causal_excludes_current_token": '''def causal_linear_attention(q, k, v):
    import numpy as np
    fq, fk = elu1(q), elu1(k)
    S = np.cumsum(fk[:, :, None] * v[:, None, :], axis=0) - fk[:, :, None] * v[:, None, :]
    z = np.cumsum(fk, axis=0) - fk
    num = np.einsum("ld,lde->le", fq, S)
    den = (fq * z).sum(axis=1)
    return num / np.where(den == 0, 1, den)[:, None]
''',
    "causal_quadratic_matrix": '''def causal_linear_attention(q, k, v):
    import numpy as np
    a = np.tril(elu1(q) @ elu1(k).T)
    return a @ v / a.sum(1, keepdims=True)
''',
    "favor_source_text_map": '''def favor_features(x, W):
    import numpy as np
    m, d = W.shape
    return np.exp((x / d ** 0.25) @ W.T) / np.sqrt(m)
''',
    "favor_forgot_the_scale": '''def favor_features(x, W):
    import numpy as np
    m, d = W.shape
    return np.exp(x @ W.T - 0.5 * (x ** 2).sum(axis=1, keepdims=True)) / np.sqrt(m)
''',
}
