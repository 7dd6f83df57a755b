"""MultiHeadAttention (MHA / GQA / MQA) and the head helpers, against a float64 per-head loop that
follows the paper's formula Concat(head_1, ..., head_h) W^O literally."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinyattn as ta
from tinyattn.attention import (MultiHeadAttention, kv_head_for_query_head, merge_heads,
                                repeat_kv, split_heads)


def softmax(s):
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def ref_mha(x, wq, wk, wv, wo, n_heads, n_kv_heads, biases=None, causal=False, kv=None):
    """x (B, L, d_model); w* (d_in, d_out). One head at a time with explicit column slices."""
    kv = x if kv is None else kv
    bq, bk, bv, bo = biases if biases is not None else (0.0, 0.0, 0.0, 0.0)
    dh = wq.shape[1] // n_heads
    rep = n_heads // n_kv_heads
    heads = []
    for i in range(n_heads):
        g = i // rep
        cq, ck = slice(i * dh, (i + 1) * dh), slice(g * dh, (g + 1) * dh)
        qi = x @ wq[:, cq] + (bq[cq] if biases is not None else 0.0)      # (B, L, dh)
        kg = kv @ wk[:, ck] + (bk[ck] if biases is not None else 0.0)
        vg = kv @ wv[:, ck] + (bv[ck] if biases is not None else 0.0)
        s = qi @ kg.swapaxes(-1, -2) / np.sqrt(dh)
        if causal:
            s = np.where(np.tri(s.shape[-2], s.shape[-1], s.shape[-1] - s.shape[-2], dtype=bool), s, -np.inf)
        heads.append(softmax(s) @ vg)
    return np.concatenate(heads, axis=-1) @ wo + bo


def weights_of(m):
    return [np.asarray(p.weight.data, np.float64) for p in (m.q_proj, m.k_proj, m.v_proj, m.o_proj)]


def test_split_merge_heads_layout_and_inverse():
    x = np.arange(2 * 3 * 12, dtype=float).reshape(2, 3, 12)
    h = split_heads(x, 4)
    assert h.shape == (2, 4, 3, 3)
    for i in range(4):                                  # head i owns features [3i, 3i+3)
        np.testing.assert_array_equal(h[:, i], x[:, :, 3 * i:3 * i + 3])
    np.testing.assert_array_equal(merge_heads(h), x)
    t = split_heads(ta.Tensor(x, requires_grad=True), 4)
    assert isinstance(t, ta.Tensor) and t.shape == (2, 4, 3, 3)
    with pytest.raises(ValueError, match=r"n_heads=5.*\(2, 3, 12\)"):
        split_heads(x, 5)
    with pytest.raises(ValueError, match=r"\(B, H, L, d\).*\(2, 3, 12\)"):
        merge_heads(x)


def test_kv_head_mapping_and_repeat_kv():
    assert [kv_head_for_query_head(i, 8, 2) for i in range(8)] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert [kv_head_for_query_head(i, 6, 3) for i in range(6)] == [0, 0, 1, 1, 2, 2]
    assert [kv_head_for_query_head(i, 4, 1) for i in range(4)] == [0, 0, 0, 0]   # MQA
    assert [kv_head_for_query_head(i, 4, 4) for i in range(4)] == [0, 1, 2, 3]   # MHA
    with pytest.raises(ValueError, match="multiple"):
        kv_head_for_query_head(0, 6, 4)
    rng = np.random.default_rng(0)
    kv = rng.standard_normal((2, 3, 4, 5))
    r = repeat_kv(kv, 2)
    for i in range(6):
        np.testing.assert_array_equal(r[:, i], kv[:, kv_head_for_query_head(i, 6, 3)])
    t = ta.Tensor(kv, requires_grad=True)
    rt = repeat_kv(t, 2)
    np.testing.assert_array_equal(rt.data, r)
    (rt * rt).sum().backward()                          # each KV head feeds 2 query heads
    np.testing.assert_allclose(t.grad, 2 * 2 * kv)


@settings(deadline=None, max_examples=25)
@given(n_kv=st.integers(1, 3), rep=st.integers(1, 3), dh=st.integers(1, 4), L=st.integers(1, 5),
       causal=st.booleans(), bias=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_forward_matches_per_head_reference(n_kv, rep, dh, L, causal, bias, seed):
    n_heads = n_kv * rep
    d_model = n_heads * dh
    rng = np.random.default_rng(seed)
    m = MultiHeadAttention(d_model, n_heads, n_kv, bias=bias, rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, L, d_model))
    out, w = m(x, is_causal=causal, need_weights=True)
    biases = [p.bias.data for p in (m.q_proj, m.k_proj, m.v_proj, m.o_proj)] if bias else None
    expected = ref_mha(x, *weights_of(m), n_heads, n_kv, biases, causal)
    assert out.shape == (2, L, d_model) and w.shape == (2, n_heads, L, L)
    np.testing.assert_allclose(out.data, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(w.sum(-1), 1.0)
    assert m.k_proj.weight.shape == (d_model, n_kv * dh)  # GQA/MQA shrink K and V only


def test_cross_attention_float32_and_errors():
    rng = np.random.default_rng(1)
    m = MultiHeadAttention(8, 4, 2, rng=rng)
    x, ctx = rng.standard_normal((2, 3, 8)), rng.standard_normal((2, 5, 8))
    out, w = m(x.astype(np.float32), kv_input=ctx.astype(np.float32), need_weights=True)
    assert out.dtype == np.float32 and w.shape == (2, 4, 3, 5)
    np.testing.assert_allclose(out.data, ref_mha(x, *weights_of(m), 4, 2, kv=ctx), atol=1e-5)
    with pytest.raises(ValueError, match=r"d_model=8.*\(2, 3, 7\)"):
        m(np.zeros((2, 3, 7)))
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 4)
    with pytest.raises(ValueError, match="multiple of n_kv_heads=3"):
        MultiHeadAttention(8, 4, 3)


def test_mask_bias_scale_and_qk_transform_reach_sdpa():
    rng = np.random.default_rng(2)
    m = MultiHeadAttention(8, 2, rng=rng, dtype=np.float64)
    x = rng.standard_normal((1, 4, 8))
    seen = []

    def swap_and_record(q, k):
        seen.append((q.shape, k.shape))
        return k, q                                     # any transform: here q <-> k

    out = m(x, qk_transform=swap_and_record)
    assert seen == [((1, 2, 4, 4), (1, 2, 4, 4))]
    wq, wk, wv, wo = weights_of(m)
    np.testing.assert_allclose(out.data, ref_mha(x, wk, wq, wv, wo, 2, 2), atol=1e-12)
    # key-padding mask == dropping those keys; a -inf bias column == masking it
    pad = np.array([True, True, True, False])[None, None, None, :]
    a = m(x, mask=pad).data
    b = m(x, attn_bias=np.where(pad, 0.0, -np.inf)).data
    np.testing.assert_allclose(a, b, atol=1e-12)
    short = m(x, kv_input=x[:, :3]).data                # attention over the first 3 keys only
    np.testing.assert_allclose(a, short, atol=1e-12)
    # scale=1.0 == default scale with q multiplied by sqrt(d_head)
    s1 = m(x, scale=1.0).data
    s2 = m(x, qk_transform=lambda q, k: (q * np.sqrt(m.head_dim), k)).data
    np.testing.assert_allclose(s1, s2, atol=1e-12)


def test_gradients_of_all_parameters():
    rng = np.random.default_rng(3)
    m = MultiHeadAttention(6, 3, 1, bias=True, rng=rng, dtype=np.float64)   # MQA with biases
    x = ta.Tensor(rng.standard_normal((2, 3, 6)), requires_grad=True)
    params = m.parameters()
    assert len(params) == 8
    assert ta.gradcheck(lambda xx: m(xx, is_causal=True), x)       # d out / d x
    w = rng.standard_normal((2, 3, 6))
    m.zero_grad()
    (m(x, is_causal=True) * w).sum().backward()
    for p in params:                                    # central differences per parameter entry
        saved, num = p.data.copy(), np.zeros(p.shape)
        for idx in np.ndindex(p.shape):
            for sign in (1, -1):
                p.data = saved.copy()
                p.data[idx] += sign * 1e-6
                num[idx] += sign * float((m(x.data, is_causal=True).data * w).sum()) / 2e-6
        p.data = saved
        np.testing.assert_allclose(p.grad, num, rtol=1e-5, atol=1e-7)


def test_permutation_equivariance_and_causal_breaks_it():
    rng = np.random.default_rng(4)
    m = MultiHeadAttention(8, 4, 2, rng=rng, dtype=np.float64)
    x = rng.standard_normal((1, 6, 8))
    perm = rng.permutation(6)
    np.testing.assert_allclose(m(x[:, perm]).data, m(x).data[:, perm], atol=1e-12)
    diff = np.abs(m(x[:, perm], is_causal=True).data - m(x, is_causal=True).data[:, perm]).max()
    assert diff > 1e-3


def test_viz_helpers_draw_and_check_shapes():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from tinyattn.viz.attention import plot_attention, plot_heads

    w = np.random.default_rng(5).dirichlet(np.ones(4), size=(3, 2))    # (H=3, Lq=2, Lk=4)
    ax = plot_attention(w[0], xlabels=list("abcd"), ylabels=["x", "y"], annotate=True)
    assert [t.get_text() for t in ax.get_xticklabels()] == list("abcd")
    np.testing.assert_allclose(ax.images[0].get_array(), w[0])
    fig = plot_heads(w, ncols=2)
    drawn = [a for a in fig.axes if a.images]
    assert len(drawn) == 3 and len(fig.axes) == 4                     # 2x2 grid, one left blank
    for a, wh in zip(drawn, w):
        np.testing.assert_allclose(a.images[0].get_array(), wh)
    with pytest.raises(ValueError, match=r"\(H, Lq, Lk\).*\(2, 4\)"):
        plot_heads(w[0])
    with pytest.raises(ValueError, match="xlabels has 3 entries for 4 keys"):
        plot_attention(w[0], xlabels=list("abc"))
    plt.close("all")
