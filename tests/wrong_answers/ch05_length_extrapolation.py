"""Plausible wrong answers for solutions/ch05_length_extrapolation.py: each must lose points."""

WRONG = {
    "pi_multiplies_by_s": '''def pi_inv_freq(head_dim, factor, base=10000.0):
    theta = base ** (-np.arange(0, head_dim, 2) / head_dim)
    return theta * factor
''',
    "ntk_base_without_exponent": '''def ntk_inv_freq(head_dim, factor, base=10000.0):
    new_base = base * factor
    return new_base ** (-np.arange(0, head_dim, 2) / head_dim)
''',
    "yarn_ramp_backwards": '''def yarn_ramp(head_dim, original_max_position, base=10000.0, alpha=1.0, beta=32.0):
    theta = base ** (-np.arange(0, head_dim, 2) / head_dim)
    r = original_max_position * theta / (2 * math.pi)
    return 1.0 - np.clip((r - alpha) / (beta - alpha), 0.0, 1.0)
''',
    "yarn_source_text_version": '''def yarn_inv_freq(head_dim, factor, original_max_position, base=10000.0, alpha=1.0, beta=32.0):
    theta = base ** (-np.arange(0, head_dim, 2) / head_dim)
    gamma = yarn_ramp(head_dim, original_max_position, base, alpha, beta)
    inv = gamma * theta * factor + (1.0 - gamma) * theta
    return inv, 0.1 * math.log(factor) + 1.0
''',
    "yarn_temperature_squared": '''def yarn_inv_freq(head_dim, factor, original_max_position, base=10000.0, alpha=1.0, beta=32.0):
    theta = base ** (-np.arange(0, head_dim, 2) / head_dim)
    gamma = yarn_ramp(head_dim, original_max_position, base, alpha, beta)
    inv = (1.0 - gamma) * theta / factor + gamma * theta
    return inv, (0.1 * math.log(factor) + 1.0) ** 2
''',
    "dynamic_no_clamp": '''def dynamic_ntk_inv_freq(head_dim, factor, original_max_position, seq_len, base=10000.0):
    L = seq_len
    new_base = base * ((factor * L / original_max_position) - (factor - 1)) ** (head_dim / (head_dim - 2))
    return new_base ** (-np.arange(0, head_dim, 2) / head_dim)
''',
    "dynamic_ratio_only": '''def dynamic_ntk_inv_freq(head_dim, factor, original_max_position, seq_len, base=10000.0):
    L = max(seq_len, original_max_position)
    new_base = base * (factor * L / original_max_position) ** (head_dim / (head_dim - 2))
    return new_base ** (-np.arange(0, head_dim, 2) / head_dim)
''',
}
