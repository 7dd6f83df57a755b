"""Plausible wrong answers for solutions/ch08_kv_cache.py; each must lose points."""
WRONG = {
    "append_writes_before_checking": '''def append_kv(k_cache, v_cache, length, k_new, v_new):
    L = k_new.shape[2]
    k_cache[:, :, length:length + L] = k_new[:, :, :k_cache.shape[2] - length]
    v_cache[:, :, length:length + L] = v_new[:, :, :k_cache.shape[2] - length]
    if length + L > k_cache.shape[2]:
        raise ValueError("cache overflow")
    return length + L
''',
    "append_returns_old_length": '''def append_kv(k_cache, v_cache, length, k_new, v_new):
    L = k_new.shape[2]
    if length + L > k_cache.shape[2]:
        raise ValueError("cache overflow")
    k_cache[:, :, length:length + L] = k_new
    v_cache[:, :, length:length + L] = v_new
    return length
''',
    "rope_positions_restart_at_zero": '''def rope_for_decode(q_new, k_new, cache_length, inv_freq):
    pos = np.arange(q_new.shape[2])
    return apply_rope(q_new, pos, inv_freq), apply_rope(k_new, pos, inv_freq)
''',
    "gqa_heads_tiled_not_grouped": '''def gqa_decode_attention(q, k_cache, v_cache, length, scale=None):
    B, hq, d = q.shape
    hkv = k_cache.shape[1]
    scale = 1.0 / np.sqrt(d) if scale is None else scale
    kv_head = np.arange(hq) % hkv
    k, v = k_cache[:, kv_head, :length], v_cache[:, kv_head, :length]
    s = np.einsum("bhd,bhtd->bht", q, k) * scale
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    return np.einsum("bht,bhtd->bhd", p, v)
''',
    "gqa_reads_stale_slots": '''def gqa_decode_attention(q, k_cache, v_cache, length, scale=None):
    B, hq, d = q.shape
    hkv = k_cache.shape[1]
    scale = 1.0 / np.sqrt(d) if scale is None else scale
    kv_head = np.arange(hq) // (hq // hkv)
    k, v = k_cache[:, kv_head], v_cache[:, kv_head]
    s = np.einsum("bhd,bhtd->bht", q, k) * scale
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    return np.einsum("bht,bhtd->bhd", p, v)
''',
    "mla_forgets_rotary_part": '''def mla_absorbed_scores(q_nope, q_rope, c_kv, k_rope, w_uk, scale):
    B, H, dn = q_nope.shape
    w = w_uk.reshape(w_uk.shape[0], H, dn)
    q_lat = np.einsum("bhn,chn->bhc", q_nope, w)
    return np.einsum("bhc,btc->bht", q_lat, c_kv) * scale
''',
    "mla_head_split_transposed": '''def mla_absorbed_scores(q_nope, q_rope, c_kv, k_rope, w_uk, scale):
    B, H, dn = q_nope.shape
    w = w_uk.reshape(w_uk.shape[0], dn, H)
    q_lat = np.einsum("bhn,cnh->bhc", q_nope, w)
    content = np.einsum("bhc,btc->bht", q_lat, c_kv)
    return (content + np.einsum("bhr,btr->bht", q_rope, k_rope)) * scale
''',
}
