"""Every sparse attention in tinyattn.sparse equals dense float64 attention under the equivalent mask."""
import math

import numpy as np
import pytest

from tinyattn import functional as F
from tinyattn import sparse as S
from tinyattn.flash import HBMCounter


def masked_ref(q, k, v, mask, scale=None):
    """float64 softmax(q k^T scale, mask) v; rows with no allowed key -> 0 and lse -inf."""
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = np.where(mask, q @ np.swapaxes(k, -1, -2) * scale, -np.inf)
    m = s.max(-1, keepdims=True)
    e = np.exp(s - np.where(np.isfinite(m), m, 0))
    l = e.sum(-1, keepdims=True)
    out = e / np.where(l == 0, 1, l) @ v
    lse = np.where(l[..., 0] == 0, -np.inf, m[..., 0] + np.log(np.where(l[..., 0] == 0, 1, l[..., 0])))
    return out, lse


def _qkv(rng, lead, Lq, Lk, d, dv, dtype=np.float64):
    return (rng.standard_normal(lead + (Lq, d)).astype(dtype), rng.standard_normal(lead + (Lk, d)).astype(dtype),
            rng.standard_normal(lead + (Lk, dv)).astype(dtype))


@pytest.mark.parametrize("Lq,Lk,bq,bk,seed", [(37, 45, 8, 16, 0), (16, 16, 4, 4, 1), (5, 70, 3, 7, 2)])
def test_block_sparse_equals_dense_with_expanded_mask(Lq, Lk, bq, bk, seed):
    rng = np.random.default_rng(seed)
    q, k, v = _qkv(rng, (2, 3), Lq, Lk, 8, 5)
    bm = rng.random((-(-Lq // bq), -(-Lk // bk))) < 0.4
    bm[0, :] = False                                   # one fully masked query block
    c = HBMCounter()
    out, lse = S.block_sparse_attention(q, k, v, bm, block_q=bq, block_k=bk, counter=c)
    want, want_lse = masked_ref(q, k, v, S.expand_block_mask(bm, bq, bk, Lq, Lk))
    np.testing.assert_allclose(out, want, atol=1e-12)
    np.testing.assert_allclose(lse, want_lse, atol=1e-12)
    assert not np.isnan(out).any()
    assert c.tiles_computed == int(bm.sum())           # work = number of non-empty tiles
    assert c.tiles_skipped == bm.size - int(bm.sum())
    assert c.by_name.get("read K", 0) == sum(min(bk, Lk - j * bk) for _, j in zip(*np.nonzero(bm))) * 2 * 3 * 8


def test_block_sparse_full_mask_is_flash():
    rng = np.random.default_rng(3)
    q, k, v = _qkv(rng, (2,), 33, 33, 16, 16)
    out, lse = S.block_sparse_attention(q, k, v, np.ones((3, 3), bool), block_q=16, block_k=16)
    want, wlse = masked_ref(q, k, v, np.ones((33, 33), bool))
    np.testing.assert_allclose(out, want, atol=1e-12)
    np.testing.assert_allclose(lse, wlse, atol=1e-12)


@pytest.mark.parametrize("maker", [
    lambda L: S.sliding_window_mask(L, 5, causal=True),
    lambda L: S.dilated_window_mask(L, 3, 4),
    lambda L: S.strided_mask(L, 6),
    lambda L: S.global_tokens_mask(L, [0, 20], S.sliding_window_mask(L, 2)),
    lambda L: S.bigbird_mask(L, 8, 3, 1, 2, rng=np.random.default_rng(0)),
])
def test_sparse_attention_patterns(maker):
    rng = np.random.default_rng(4)
    L = 61
    q, k, v = _qkv(rng, (2,), L, L, 8, 4)
    mask = maker(L)
    c = HBMCounter()
    out, lse = S.sparse_attention(q, k, v, mask, block_q=8, block_k=8, counter=c)
    want, wlse = masked_ref(q, k, v, mask)
    np.testing.assert_allclose(out, want, atol=1e-12)
    np.testing.assert_allclose(lse, wlse, atol=1e-12)
    assert c.tiles_computed == int(S.block_mask_from_mask(mask, 8, 8).sum())
    # SDPA with the same mask (an independent implementation) agrees too
    sd = F.scaled_dot_product_attention(q, k, v, mask=mask).data
    np.testing.assert_allclose(out, sd, atol=1e-10)


def test_block_sparse_extreme_logits_and_fp16():
    rng = np.random.default_rng(5)
    q, k, v = _qkv(rng, (), 24, 24, 4, 4)
    q = q * 1e4 / np.abs(q).max()
    mask = S.sliding_window_mask(24, 3)
    out, _ = S.sparse_attention(q, k, v, mask, block_q=8, block_k=8, scale=1.0)
    want, _ = masked_ref(q, k, v, mask, scale=1.0)
    np.testing.assert_allclose(out, want, atol=1e-9)
    q16, k16, v16 = (x.astype(np.float16) for x in _qkv(rng, (), 24, 24, 4, 4))
    o16, _ = S.sparse_attention(q16, k16, v16, mask, block_q=8, block_k=8)
    assert o16.dtype == np.float16 and np.isfinite(o16).all()
    np.testing.assert_allclose(o16.astype(np.float64), masked_ref(q16, k16, v16, mask)[0], atol=3e-3)


def _topk_ref_mask(s, kk):
    """Independent: threshold each row at its kk-th largest value (ties have measure zero)."""
    thr = -np.sort(-s, axis=-1)[..., kk - 1:kk]
    return (s >= thr) & np.isfinite(s)


@pytest.mark.parametrize("causal", [False, True])
def test_topk_equals_dense_with_topk_mask(causal):
    rng = np.random.default_rng(6)
    q, k, v = _qkv(rng, (2, 2), 20, 20, 8, 3)
    out, idx = S.topk_attention(q, k, v, 5, causal=causal)
    s = q @ np.swapaxes(k, -1, -2) / math.sqrt(8)
    if causal:
        s = np.where(np.tril(np.ones((20, 20), bool)), s, -np.inf)
    mask = _topk_ref_mask(s, 5)
    np.testing.assert_allclose(out, masked_ref(q, k, v, mask)[0], atol=1e-12)
    assert idx.shape == (2, 2, 20, 5)
    np.testing.assert_array_equal(S.topk_mask(s, 5), mask)
    full, _ = S.topk_attention(q, k, v, 20)                   # k = Lk is exact attention
    np.testing.assert_allclose(full, masked_ref(q, k, v, np.ones((20, 20), bool))[0], atol=1e-12)


@pytest.mark.parametrize("causal", [False, True])
def test_routing_equals_dense_with_cluster_mask(causal):
    rng = np.random.default_rng(7)
    q, k, v = _qkv(rng, (2,), 30, 30, 6, 4)
    km = S.OnlineKMeans(4, 6, rng=np.random.default_rng(1))
    out, qc, kc, n = S.routing_attention(q, k, v, km, causal=causal)
    # independent cluster ids: nearest centroid by cosine
    def cid(x):
        xn = x / np.linalg.norm(x, axis=-1, keepdims=True)
        return np.argmax(xn @ km.centroids.T, axis=-1)
    np.testing.assert_array_equal(qc, cid(q))
    mask = qc[..., :, None] == kc[..., None, :]
    if causal:
        mask &= np.tril(np.ones((30, 30), bool))
    np.testing.assert_allclose(out, masked_ref(q, k, v, mask)[0], atol=1e-12)
    assert n == sum(int(((qc[b] == g).sum()) * ((kc[b] == g).sum())) for b in range(2) for g in range(4))


def test_online_kmeans_moves_towards_cluster_means():
    rng = np.random.default_rng(8)
    centers = np.eye(3)[:, :3] * 5
    x = np.concatenate([c + 0.1 * rng.standard_normal((50, 3)) for c in centers])
    km = S.OnlineKMeans(3, 3, rng=np.random.default_rng(2), decay=0.5)
    for _ in range(30):
        km.update(x)
    # each true direction has a centroid within a small angle
    cos = (centers / 5) @ km.centroids.T
    assert np.all(cos.max(axis=1) > 0.99), cos
    np.testing.assert_allclose(np.linalg.norm(km.centroids, axis=1), 1.0)


@pytest.mark.parametrize("causal", [False, True])
def test_lsh_equals_dense_with_bucket_mask(causal):
    rng = np.random.default_rng(9)
    q, k, v = _qkv(rng, (3,), 25, 25, 8, 4)
    out, qb, kb, n = S.lsh_attention(q, k, v, 6, np.random.default_rng(3), causal=causal)
    R = np.random.default_rng(3).standard_normal((8, 3))
    ref_qb = np.argmax(np.concatenate([q @ R, -(q @ R)], -1), -1)
    np.testing.assert_array_equal(qb, ref_qb)
    mask = qb[..., :, None] == kb[..., None, :]
    if causal:
        mask &= np.tril(np.ones((25, 25), bool))
    np.testing.assert_allclose(out, masked_ref(q, k, v, mask)[0], atol=1e-12)
    assert qb.min() >= 0 and qb.max() < 6
    assert n < 3 * 25 * 25


def test_lsh_tied_qk_puts_each_query_with_itself():
    rng = np.random.default_rng(10)
    q = rng.standard_normal((40, 8))
    k = q / np.linalg.norm(q, axis=-1, keepdims=True)
    _, qb, kb, _ = S.lsh_attention(q, k, q, 8, np.random.default_rng(0))
    np.testing.assert_array_equal(qb, kb)


@pytest.mark.parametrize("causal,Lq,Lk", [(False, 50, 50), (True, 50, 50), (False, 37, 61)])
def test_hierarchical_equals_dense_with_selected_blocks(causal, Lq, Lk):
    rng = np.random.default_rng(11)
    q, k, v = _qkv(rng, (2,), Lq, Lk, 8, 4)
    out, bm, cost = S.hierarchical_attention(q, k, v, 8, 3, causal=causal)
    mask = S.expand_block_mask(bm, 8, 8, Lq, Lk)
    if causal:
        mask &= np.arange(Lk)[None, :] <= np.arange(Lq)[:, None] + Lk - Lq
    np.testing.assert_allclose(out, masked_ref(q, k, v, mask)[0], atol=1e-12)
    nk = -(-Lk // 8)
    assert cost["coarse_scores"] == 2 * Lq * nk
    assert cost["fine_scores"] == 2 * int(S.expand_block_mask(bm, 8, 8, Lq, Lk).sum())
    assert (bm.sum(axis=1) <= 3 + causal).all()
    if causal:
        assert np.isfinite(out).all() and (mask.sum(axis=1) > 0).all()


def test_hierarchical_selection_picks_the_block_that_matters():
    rng = np.random.default_rng(12)
    L, d = 64, 16
    k = rng.standard_normal((L, d)) * 0.1
    k[40:48] += 3 * np.ones(d)                          # one key block aligned with every query
    q = np.ones((L, d)) + 0.1 * rng.standard_normal((L, d))
    _, bm, _ = S.hierarchical_attention(q, k, rng.standard_normal((L, 2)), 8, 1)
    assert bm[:, 5].all() and bm.sum() == 8


def test_pattern_backend_matches_masked_sdpa():
    rng = np.random.default_rng(13)
    S.register_pattern_backend("test_win2", lambda lq, lk: S.sliding_window_mask(lq, 2))
    q, k, v = _qkv(rng, (2, 2), 9, 9, 4, 4)
    got = F.scaled_dot_product_attention(q, k, v, is_causal=True, backend="test_win2").data
    mask = S.sliding_window_mask(9, 2, causal=True)
    np.testing.assert_allclose(got, masked_ref(q, k, v, mask)[0], atol=1e-10)


@pytest.mark.parametrize("call,err,match", [
    (lambda q, k, v: S.block_sparse_attention(q, k, v, np.ones((2, 2), bool), block_q=8, block_k=8), ValueError, "block_mask"),
    (lambda q, k, v: S.block_sparse_attention(q, k, v, np.ones((2, 2)), block_q=16, block_k=16), TypeError, "bool"),
    (lambda q, k, v: S.block_sparse_attention(q, k, v, np.ones((2, 2), bool), block_q=0, block_k=16), ValueError, "block_q"),
    (lambda q, k, v: S.block_sparse_attention(q, k[..., :3], v, np.ones((2, 2), bool), block_q=16, block_k=16), ValueError, "k"),
    (lambda q, k, v: S.sparse_attention(q, k, v, np.ones((20, 20), bool)), ValueError, "mask"),
    (lambda q, k, v: S.topk_attention(q, k, v, 0), ValueError, "top_k"),
    (lambda q, k, v: S.topk_attention(q.astype(int), k, v, 2), TypeError, "q"),
    (lambda q, k, v: S.lsh_attention(q, k, v, 3, np.random.default_rng(0)), ValueError, "n_buckets"),
    (lambda q, k, v: S.lsh_attention(q, k, v, 4, 0), TypeError, "rng"),
    (lambda q, k, v: S.routing_attention(q, k, v, None), TypeError, "kmeans"),
    (lambda q, k, v: S.hierarchical_attention(q, k, v, 0, 1), ValueError, "block"),
    (lambda q, k, v: S.OnlineKMeans(2, 4, rng=np.random.default_rng(0)).assign(q), ValueError, "shape"),
])
def test_bad_input_raises(call, err, match):
    rng = np.random.default_rng(14)
    q, k, v = _qkv(rng, (), 32, 32, 8, 4)
    with pytest.raises(err, match=match):
        call(q, k, v)


def test_size_zero_and_no_keys():
    z = np.zeros((0, 4))
    out, lse = S.block_sparse_attention(z, z, z, np.zeros((0, 0), bool), block_q=4, block_k=4)
    assert out.shape == (0, 4) and lse.shape == (0,)
    out, idx = S.topk_attention(np.ones((3, 4)), z, z, 2)
    assert out.shape == (3, 4) and np.all(out == 0)


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=30, deadline=None)
@given(Lq=st.integers(1, 30), Lk=st.integers(1, 30), bq=st.integers(1, 9), bk=st.integers(1, 9),
       seed=st.integers(0, 2**16))
def test_block_sparse_property(Lq, Lk, bq, bk, seed):
    rng = np.random.default_rng(seed)
    q, k, v = _qkv(rng, (2,), Lq, Lk, 3, 2)
    bm = rng.random((-(-Lq // bq), -(-Lk // bk))) < 0.5
    c = HBMCounter()
    out, lse = S.block_sparse_attention(q, k, v, bm, block_q=bq, block_k=bk, counter=c)
    want, wlse = masked_ref(q, k, v, S.expand_block_mask(bm, bq, bk, Lq, Lk))
    np.testing.assert_allclose(out, want, atol=1e-12)
    np.testing.assert_allclose(lse, wlse, atol=1e-12)
    assert c.tiles_computed == int(bm.sum())
