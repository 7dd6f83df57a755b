"""Plausible wrong answers to chapter 03's exercises; each must lose points (tests/test_grader_regression.py).

Each value is the full source of a replacement for one function of solutions/ch03_positional.py.
"""

WRONG = {
    # [sin | cos] halves instead of interleaved columns
    "sinusoidal_concatenated": '''def sinusoidal_table(n_positions, d_model, base=10000.0):
    w = base ** (-np.arange(0, d_model, 2) / d_model)
    angles = np.arange(n_positions)[:, None] * w[None, :]
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)
''',
    # exponent i/d instead of 2i/d
    "sinusoidal_exponent_i_over_d": '''def sinusoidal_table(n_positions, d_model, base=10000.0):
    w = base ** (-np.arange(d_model // 2) / d_model)
    angles = np.arange(n_positions)[:, None] * w[None, :]
    pe = np.empty((n_positions, d_model))
    pe[:, 0::2] = np.sin(angles)
    pe[:, 1::2] = np.cos(angles)
    return pe
''',
    "sinusoidal_ignores_base": '''def sinusoidal_table(n_positions, d_model, base=10000.0):
    w = 10000.0 ** (-np.arange(0, d_model, 2) / d_model)
    angles = np.arange(n_positions)[:, None] * w[None, :]
    pe = np.empty((n_positions, d_model))
    pe[:, 0::2] = np.sin(angles)
    pe[:, 1::2] = np.cos(angles)
    return pe
''',
    # hole from issue 9: base hard-coded
    "rope_interleaved_ignores_base": '''def rope_interleaved(x, positions, base=10000.0):
    d = x.shape[-1]
    theta = 10000.0 ** (-np.arange(0, d, 2) / d)
    angles = np.asarray(positions, dtype=np.float64)[:, None] * theta[None, :]
    cos, sin = np.cos(angles), np.sin(angles)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = np.empty(x.shape, dtype=np.float64)
    out[..., 0::2] = x1 * cos - x2 * sin
    out[..., 1::2] = x2 * cos + x1 * sin
    return out
''',
    # rotates by -m theta (still relative, still norm-preserving)
    "rope_interleaved_opposite_rotation": '''def rope_interleaved(x, positions, base=10000.0):
    d = x.shape[-1]
    theta = base ** (-np.arange(0, d, 2) / d)
    angles = np.asarray(positions, dtype=np.float64)[:, None] * theta[None, :]
    cos, sin = np.cos(angles), np.sin(angles)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = np.empty(x.shape, dtype=np.float64)
    out[..., 0::2] = x1 * cos + x2 * sin
    out[..., 1::2] = x2 * cos - x1 * sin
    return out
''',
    # uses 0..L-1 instead of the given positions
    "rope_interleaved_ignores_positions": '''def rope_interleaved(x, positions, base=10000.0):
    d = x.shape[-1]
    theta = base ** (-np.arange(0, d, 2) / d)
    angles = np.arange(x.shape[-2], dtype=np.float64)[:, None] * theta[None, :]
    cos, sin = np.cos(angles), np.sin(angles)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = np.empty(x.shape, dtype=np.float64)
    out[..., 0::2] = x1 * cos - x2 * sin
    out[..., 1::2] = x2 * cos + x1 * sin
    return out
''',
    # rotates the interleaved pairs although the layout is "half"
    "rope_half_interleaved_pairs": '''def rope_half(x, positions, base=10000.0):
    return rope_interleaved(x, positions, base)
''',
    "rope_half_ignores_base": '''def rope_half(x, positions, base=10000.0):
    d = x.shape[-1]
    h = d // 2
    theta = 10000.0 ** (-np.arange(0, d, 2) / d)
    angles = np.asarray(positions, dtype=np.float64)[:, None] * theta[None, :]
    cos = np.concatenate([np.cos(angles)] * 2, axis=-1)
    sin = np.concatenate([np.sin(angles)] * 2, axis=-1)
    rotated = np.concatenate([-x[..., h:], x[..., :h]], axis=-1)
    return x * cos + rotated * sin
''',
    # the power-of-two formula for every head count
    "alibi_power_of_two_formula_always": '''def alibi_slopes(n_heads):
    return 2.0 ** (-8.0 * np.arange(1, n_heads + 1) / n_heads)
''',
    # picks the odd entries of the 2c-head sequence
    "alibi_odd_entries": '''def alibi_slopes(n_heads):
    def power_of_two(n):
        return 2.0 ** (-8.0 * np.arange(1, n + 1) / n)
    c = 2 ** int(np.floor(np.log2(n_heads)))
    if c == n_heads:
        return power_of_two(n_heads)
    return np.concatenate([power_of_two(c), power_of_two(2 * c)[1::2][: n_heads - c]])
''',
}
