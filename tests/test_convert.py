"""MHA -> GQA conversion by mean-pooling KV heads: the converted model equals an MHA model whose
per-head K/V weights were replaced by their group means (an independent construction)."""
import numpy as np
import pytest

from tinyattn.models import TransformerLM, mha_to_gqa


def _model():
    m = TransformerLM(17, 24, 2, 6, 16, positional="rope", rng=np.random.default_rng(0))
    for p in m.parameters():
        p.data = p.data.astype(np.float64)
    return m.eval()


@pytest.mark.parametrize("hkv", [1, 2, 3])
def test_gqa_equals_mha_with_group_mean_weights(hkv):
    m = _model()
    g = mha_to_gqa(m, hkv)
    ref = _model()
    hd, rep = 4, 6 // hkv
    for blk in ref.blocks:
        for proj in (blk.attn.k_proj, blk.attn.v_proj):
            w = proj.weight.data.copy()
            for grp in range(hkv):                     # explicit loop: heads grp*rep .. grp*rep+rep-1
                cols = [w[:, h * hd:(h + 1) * hd] for h in range(grp * rep, (grp + 1) * rep)]
                mean = sum(cols) / rep
                for h in range(grp * rep, (grp + 1) * rep):
                    proj.weight.data[:, h * hd:(h + 1) * hd] = mean
    tokens = np.random.default_rng(1).integers(0, 17, (2, 9))
    np.testing.assert_allclose(g(tokens).data, ref(tokens).data, rtol=0, atol=1e-12)
    assert all(b.attn.n_kv_heads == hkv and b.attn.k_proj.weight.shape == (24, hkv * hd) for b in g.blocks)
    assert all(b.attn.n_kv_heads == 6 for b in m.blocks)          # original untouched


def test_identity_and_cache_after_conversion_and_errors():
    m = _model()
    tokens = np.random.default_rng(2).integers(0, 17, (1, 7))
    np.testing.assert_array_equal(mha_to_gqa(m, 6)(tokens).data, m(tokens).data)
    g = mha_to_gqa(m, 2)
    cache = g.new_cache(1, 7)
    assert cache.fields["k"] == (2, 4)
    out = np.concatenate([g(tokens[:, :3], cache=cache).data] + [g(tokens[:, t:t + 1], cache=cache).data
                                                                for t in range(3, 7)], 1)
    np.testing.assert_allclose(out, g(tokens).data, atol=1e-10)
    with pytest.raises(ValueError, match="dividing the model's 6 KV heads"):
        mha_to_gqa(m, 4)
