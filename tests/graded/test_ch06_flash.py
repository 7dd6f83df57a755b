"""Graded tests for chapter 06 (FlashAttention): compare with tinyattn.flash and with dense float64
attention on fresh random inputs, plus the properties that define each piece."""
import math

import numpy as np
import pytest

from tinyattn import flash as FL

MOD = "ch06_flash"


def _rng():
    return np.random.default_rng()                  # fresh inputs each run


def _state(s, v):
    """Dense float64 state (m, l, o) of score rows s (N, n) over values v (n, dv)."""
    m = s.max(axis=1)
    e = np.exp(s - m[:, None])
    return m, e.sum(axis=1), e @ v


@pytest.mark.points(2)
def test_online_merge_equals_dense_softmax(impl):
    ex = impl(MOD)
    rng = _rng()
    N, n1, n2, dv = (int(x) for x in rng.integers(1, 20, size=4))
    s = rng.standard_normal((N, n1 + n2)) * rng.uniform(0.5, 20)
    v = rng.standard_normal((n1 + n2, dv))
    m, l, o = ex.online_merge(*_state(s[:, :n1], v[:n1]), *_state(s[:, n1:], v[n1:]))
    mf, lf, of = _state(s, v)
    np.testing.assert_allclose(m, mf, atol=1e-12)
    np.testing.assert_allclose(l, lf, rtol=1e-10)
    np.testing.assert_allclose(o / l[:, None], of / lf[:, None], atol=1e-10)   # = softmax(s) v
    lib = FL.merge_partials(*_state(s[:, :n1], v[:n1]), *_state(s[:, n1:], v[n1:]))
    for a, b in zip((m, l, o), lib):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.points(1)
def test_online_merge_empty_states(impl):
    ex = impl(MOD)
    rng = _rng()
    N, dv = 4, 3
    empty = (np.full(N, -np.inf), np.zeros(N), np.zeros((N, dv)))
    full = _state(rng.standard_normal((N, 5)), rng.standard_normal((5, dv)))
    for a, b in ((empty, full), (full, empty)):
        m, l, o = ex.online_merge(*a, *b)
        np.testing.assert_allclose(o, full[2], atol=1e-12)
        np.testing.assert_allclose(l, full[1], atol=1e-12)
    m, l, o = ex.online_merge(*empty, *empty)
    assert np.all(np.isneginf(m)) and np.all(l == 0) and np.all(o == 0)


@pytest.mark.points(3)
def test_tile_update_streams_to_attention(impl):
    ex = impl(MOD)
    rng = _rng()
    Bq, n, d, dv, bk = int(rng.integers(1, 12)), int(rng.integers(2, 40)), 8, 5, int(rng.integers(1, 9))
    q, k, v = rng.standard_normal((Bq, d)), rng.standard_normal((n, d)), rng.standard_normal((n, dv))
    s = q @ k.T / math.sqrt(d) * 4
    s[0, : n // 2] = -np.inf                        # row 0: first keys masked (first tiles empty)
    m, l, o = np.full(Bq, -np.inf), np.zeros(Bq), np.zeros((Bq, dv))
    for j in range(0, n, bk):
        args = (m, l, o, s[:, j:j + bk], v[j:j + bk])
        m, l, o = ex.tile_update(*args)
        lib = FL.block_update(*args)
        for a, b in zip((m, l, o), lib):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    assert not np.isnan(o).any()
    e = np.exp(s - s.max(1, keepdims=True))
    np.testing.assert_allclose(o / l[:, None], e / e.sum(1, keepdims=True) @ v, atol=1e-10)


@pytest.mark.points(2)
def test_classify_tiles(impl):
    ex = impl(MOD)
    rng = _rng()
    for _ in range(10):
        lq, lk, bq, bk = (int(x) for x in rng.integers(1, 40, size=4))
        got = np.asarray(ex.classify_tiles(lq, lk, bq, bk))
        np.testing.assert_array_equal(got, FL.classify_tiles(lq, lk, bq, bk, is_causal=True))
        allowed = np.arange(lk)[None, :] <= np.arange(lq)[:, None] + (lk - lq)
        i, j = int(rng.integers(got.shape[0])), int(rng.integers(got.shape[1]))
        tile = allowed[i * bq:(i + 1) * bq, j * bk:(j + 1) * bk]
        assert got[i, j] == (0 if not tile.any() else 2 if tile.all() else 1)
    T = int(rng.integers(2, 9))
    got = np.asarray(ex.classify_tiles(16 * T, 16 * T, 16, 16))
    assert (got != 0).sum() == T * (T + 1) // 2           # the T(T+1)/2 computed tiles


@pytest.mark.points(3)
def test_backward_tile_sums_to_flash_backward(impl):
    ex = impl(MOD)
    rng = _rng()
    Lq, Lk, d, dv = (int(x) for x in rng.integers(2, 30, size=4))
    bq, bk = int(rng.integers(1, 10)), int(rng.integers(1, 10))
    q, k, v = rng.standard_normal((Lq, d)), rng.standard_normal((Lk, d)), rng.standard_normal((Lk, dv))
    do = rng.standard_normal((Lq, dv))
    scale = 1 / math.sqrt(d)
    out, lse = FL.flash_attention(q, k, v)
    D = (do * out).sum(1)
    dq, dk, dvv = np.zeros_like(q), np.zeros_like(k), np.zeros_like(v)
    for i in range(0, Lq, bq):
        for j in range(0, Lk, bk):
            a, b, c = ex.backward_tile(q[i:i + bq], k[j:j + bk], v[j:j + bk], do[i:i + bq],
                                       lse[i:i + bq], D[i:i + bq], scale)
            dq[i:i + bq] += a; dk[j:j + bk] += b; dvv[j:j + bk] += c
    # dense float64 gradients through the full softmax
    s = q @ k.T * scale
    p = np.exp(s - s.max(1, keepdims=True)); p /= p.sum(1, keepdims=True)
    dp = do @ v.T
    ds = p * (dp - (p * dp).sum(1, keepdims=True))
    np.testing.assert_allclose(dq, ds @ k * scale, atol=1e-10)
    np.testing.assert_allclose(dk, ds.T @ q * scale, atol=1e-10)
    np.testing.assert_allclose(dvv, p.T @ do, atol=1e-10)
