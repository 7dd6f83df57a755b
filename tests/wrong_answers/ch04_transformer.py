"""Plausible wrong answers to chapter 04's exercises; each must lose points (tests/test_grader_regression.py).

Each value is the full source of a replacement for one function of solutions/ch04_transformer.py.
"""

_BLOCK = '''def prenorm_block_forward(x, p, n_heads):
    B, L, d = x.shape
    dh = d // n_heads
    z = layer_norm(x, p["ln1_g"], p["ln1_b"])

    def heads(w):
        return (z @ w).reshape(B, L, n_heads, dh).transpose(0, 2, 1, 3)

    q, k, v = heads(p["Wq"]), heads(p["Wk"]), heads(p["Wv"])
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(dh)
    future = np.triu(np.ones((L, L), dtype=bool), k=1)
    scores = np.where(future, -np.inf, scores)
    attn = softmax(scores) @ v
    h = x + attn.transpose(0, 2, 1, 3).reshape(B, L, d) @ p["Wo"]
    return h + gelu(layer_norm(h, p["ln2_g"], p["ln2_b"]) @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"]
'''

WRONG = {
    # hole from issue 9: scores scaled by sqrt(d_model) instead of sqrt(d_head)
    "block_scale_sqrt_d_model": _BLOCK.replace("/ np.sqrt(dh)", "/ np.sqrt(d)"),
    # hole from issue 9: one head of size d whatever n_heads says
    "block_ignores_n_heads": _BLOCK.replace("dh = d // n_heads", "n_heads = 1\n    dh = d"),
    # head h takes the strided features h, h+H, ... instead of a contiguous block
    "block_heads_strided": _BLOCK.replace("reshape(B, L, n_heads, dh).transpose(0, 2, 1, 3)",
                                          "reshape(B, L, dh, n_heads).transpose(0, 3, 1, 2)"),
    # post-norm (2017 layout) instead of pre-norm
    "block_post_norm": '''def prenorm_block_forward(x, p, n_heads):
    B, L, d = x.shape
    dh = d // n_heads

    def heads(w):
        return (x @ w).reshape(B, L, n_heads, dh).transpose(0, 2, 1, 3)

    q, k, v = heads(p["Wq"]), heads(p["Wk"]), heads(p["Wv"])
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(dh)
    scores = np.where(np.triu(np.ones((L, L), dtype=bool), k=1), -np.inf, scores)
    attn = softmax(scores) @ v
    h = layer_norm(x + attn.transpose(0, 2, 1, 3).reshape(B, L, d) @ p["Wo"], p["ln1_g"], p["ln1_b"])
    return layer_norm(h + gelu(h @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"], p["ln2_g"], p["ln2_b"])
''',
    # forgets the causal mask
    "block_not_causal": _BLOCK.replace("scores = np.where(future, -np.inf, scores)", "pass"),
    # no shift: position t scored against token t
    "loss_no_shift": '''def causal_lm_loss(logits, tokens, ignore_index=-100):
    pred = np.asarray(logits, dtype=np.float64)
    target = np.asarray(tokens)
    keep = target != ignore_index
    if not keep.any():
        raise ValueError("every target is ignore_index")
    m = pred.max(axis=-1, keepdims=True)
    logp = pred - m - np.log(np.exp(pred - m).sum(axis=-1, keepdims=True))
    picked = np.take_along_axis(logp, np.where(keep, target, 0)[..., None], axis=-1)[..., 0]
    return float(-picked[keep].mean())
''',
    # ignore_index hard-coded to -100
    "loss_ignores_ignore_index": '''def causal_lm_loss(logits, tokens, ignore_index=-100):
    pred = np.asarray(logits, dtype=np.float64)[:, :-1]
    target = np.asarray(tokens)[:, 1:]
    keep = target != -100
    if not keep.any():
        raise ValueError("every target is ignore_index")
    m = pred.max(axis=-1, keepdims=True)
    logp = pred - m - np.log(np.exp(pred - m).sum(axis=-1, keepdims=True))
    picked = np.take_along_axis(logp, np.where(keep, target, 0)[..., None], axis=-1)[..., 0]
    return float(-picked[keep].mean())
''',
    # ignored positions add 0 to the sum but still count in the mean
    "loss_mean_counts_ignored": '''def causal_lm_loss(logits, tokens, ignore_index=-100):
    pred = np.asarray(logits, dtype=np.float64)[:, :-1]
    target = np.asarray(tokens)[:, 1:]
    keep = target != ignore_index
    if not keep.any():
        raise ValueError("every target is ignore_index")
    m = pred.max(axis=-1, keepdims=True)
    logp = pred - m - np.log(np.exp(pred - m).sum(axis=-1, keepdims=True))
    picked = np.take_along_axis(logp, np.where(keep, target, 0)[..., None], axis=-1)[..., 0]
    return float(-np.where(keep, picked, 0.0).mean())
''',
    "param_count_no_final_layernorm": '''def lm_parameter_count(vocab_size, d_model, n_layers, d_ff=None, tie_weights=False):
    d = d_model
    ff = 4 * d if d_ff is None else d_ff
    per_block = 2 * (2 * d) + 4 * d * d + (d * ff + ff) + (ff * d + d)
    head = 0 if tie_weights else d * vocab_size
    return int(vocab_size * d + n_layers * per_block + head)
''',
    "param_count_ignores_d_ff": '''def lm_parameter_count(vocab_size, d_model, n_layers, d_ff=None, tie_weights=False):
    d = d_model
    ff = 4 * d
    per_block = 2 * (2 * d) + 4 * d * d + (d * ff + ff) + (ff * d + d)
    head = 0 if tie_weights else d * vocab_size
    return int(vocab_size * d + n_layers * per_block + 2 * d + head)
''',
    "param_count_ignores_tie_weights": '''def lm_parameter_count(vocab_size, d_model, n_layers, d_ff=None, tie_weights=False):
    d = d_model
    ff = 4 * d if d_ff is None else d_ff
    per_block = 2 * (2 * d) + 4 * d * d + (d * ff + ff) + (ff * d + d)
    return int(2 * vocab_size * d + n_layers * per_block + 2 * d)
''',
}
