"""MLA (DeepSeek-V2): the module against a per-head float64 loop written from the paper's equations;
naive == absorbed; the absorbed cache holds only c^KV and k^R; RoPE on the content keys breaks
absorption (numbers); gradients of the naive form by finite differences."""
import numpy as np
import pytest

import tinyattn as ta
from tinyattn.attention import MultiHeadLatentAttention, rope_on_content_absorption_error
from tinyattn.cache import KVCache
from tinyattn.positional import apply_rope, rope_inv_freq


def _mla(q_lora_rank=None, seed=0, **kw):
    args = dict(d_model=20, n_heads=3, kv_lora_rank=7, qk_nope_head_dim=5, qk_rope_head_dim=4, v_head_dim=6)
    args.update(kw)
    return MultiHeadLatentAttention(**args, q_lora_rank=q_lora_rank, rng=np.random.default_rng(seed),
                                    dtype=np.float64)


def reference(m, x, pos):
    """Per-head loop from DeepSeek-V2 eqs. (9)-(19), float64, causal."""
    W = {n: getattr(m, n).weight.data for n in ("w_q", "w_dkv", "w_kr", "w_uk", "w_uv", "o_proj")}
    H, dn, dr, dv, dc = m.n_heads, m.d_nope, m.d_rope, m.d_v, m.d_c
    inv = rope_inv_freq(dr)
    B, L, _ = x.shape
    cq = x if m.w_dq is None else x @ m.w_dq.weight.data
    c = x @ W["w_dkv"]                                            # c^KV (B, L, d_c)
    kr = apply_rope(x @ W["w_kr"], pos, inv)                       # k^R (B, L, d_R)
    out = np.zeros((B, L, m.d_model))
    for i in range(H):
        qi = cq @ W["w_q"][:, i * (dn + dr):(i + 1) * (dn + dr)]
        qc, qr = qi[..., :dn], apply_rope(qi[..., dn:], pos, inv)
        kc = c @ W["w_uk"][:, i * dn:(i + 1) * dn]
        vi = c @ W["w_uv"][:, i * dv:(i + 1) * dv]
        s = (qc @ kc.transpose(0, 2, 1) + qr @ kr.transpose(0, 2, 1)) / np.sqrt(dn + dr)
        s = np.where(np.tri(L, dtype=bool), s, -np.inf)
        p = np.exp(s - s.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        out += (p @ vi) @ W["o_proj"][i * dv:(i + 1) * dv]
    return out


@pytest.mark.parametrize("q_lora_rank", [None, 9])
@pytest.mark.parametrize("absorbed", [False, True])
def test_matches_per_head_reference(q_lora_rank, absorbed):
    m = _mla(q_lora_rank, seed=1)
    x = np.random.default_rng(2).standard_normal((2, 9, 20))
    pos = np.arange(3, 12)
    got = m(x, positions=pos, absorbed=absorbed).data
    np.testing.assert_allclose(got, reference(m, x, pos), rtol=0, atol=1e-12)


def test_naive_equals_absorbed_with_cache_and_cache_has_latent_only():
    m = _mla(q_lora_rank=6, seed=4, kv_lora_rank=11, qk_rope_head_dim=6)
    x = np.random.default_rng(5).standard_normal((3, 10, 20))
    outs = {}
    for absorbed in (False, True):
        cache = KVCache(1, 3, 10, m.cache_fields, dtype=np.float64)
        parts = [m(x[:, :4], cache=cache.layer(0), absorbed=absorbed).data]
        cache.advance(4)
        for t in range(4, 10):
            parts.append(m(x[:, t:t + 1], positions=np.array([t]), cache=cache.layer(0), absorbed=absorbed).data)
            cache.advance(1)
        outs[absorbed] = np.concatenate(parts, 1)
        assert set(cache.buffers[0]) == {"c_kv", "k_rope"}
        assert cache.buffers[0]["c_kv"].shape == (3, 10, 11) and cache.buffers[0]["k_rope"].shape == (3, 10, 6)
        np.testing.assert_allclose(cache.buffers[0]["c_kv"], x @ m.w_dkv.weight.data, atol=1e-12)
    np.testing.assert_allclose(outs[True], outs[False], rtol=0, atol=1e-12)
    np.testing.assert_allclose(outs[False], m(x).data, rtol=0, atol=1e-12)


def test_absorbed_weights_fold_the_up_projections():
    m = _mla(seed=6)
    w_uk, w_uvo = m.absorbed_weights()
    assert w_uk.shape == (3, 5, 7) and w_uvo.shape == (3, 7, 20)
    i = 1
    np.testing.assert_allclose(w_uk[i], m.w_uk.weight.data[:, 5:10].T)
    np.testing.assert_allclose(w_uvo[i], m.w_uv.weight.data[:, 6:12] @ m.o_proj.weight.data[6:12], atol=1e-14)


def test_scale_is_one_over_sqrt_of_nope_plus_rope():
    assert _mla().scale == pytest.approx(1 / np.sqrt(5 + 4))


def test_naive_form_gradients_finite_differences():
    m = _mla(q_lora_rank=4, seed=7, d_model=8, n_heads=2, kv_lora_rank=3, qk_nope_head_dim=2,
             qk_rope_head_dim=2, v_head_dim=3)
    x = ta.Tensor(np.random.default_rng(8).standard_normal((1, 4, 8)), requires_grad=True)
    ta.gradcheck(lambda x_, w: (m(x_) * np.linspace(-1, 1, 8)).sum(), x, m.w_uk.weight)


def test_rope_on_content_keys_breaks_absorption():
    r = rope_on_content_absorption_error(np.random.default_rng(0))
    assert r["no_rope"] < 1e-12                   # without RoPE the folded matrix is exact
    assert r["content_shift_change"] < 1e-12      # the true scores are relative (shift-invariant)
    assert r["rope_on_content"] > 0.1 * r["score_scale"]   # with RoPE on k^C the folded scores are wrong


def test_bad_input_raises():
    with pytest.raises(ValueError, match="qk_rope_head_dim must be even"):
        _mla(qk_rope_head_dim=3)
    with pytest.raises(ValueError, match="kv_lora_rank"):
        _mla(kv_lora_rank=0)
    m = _mla()
    with pytest.raises(ValueError, match="d_model=20"):
        m(np.zeros((1, 3, 19)))
    with pytest.raises(ValueError, match="positions must have shape"):
        m(np.zeros((1, 3, 20)), positions=np.arange(4))
