"""Graded tests for chapter 06 (FlashAttention): compare with tinyattn.flash and with dense float64
attention, plus the properties that define each piece.

Inputs are deterministic (``np.random.default_rng(SEED)``, the seed is printed on failure). Sizes always
give several tiles with a short last one, Lq != Lk, d != dv, and ``scale`` is varied from 1/sqrt(d), so a
tile-local shortcut or a hard-coded constant cannot pass.
"""
import numpy as np
import pytest

from tinyattn import flash as FL
from tinyattn.grading.check import assert_close, assert_equal, check

MOD = "ch06_flash"


def _state(s, v):
    """Dense float64 state (m, l, o) of score rows s (N, n) over values v (n, dv)."""
    m = s.max(axis=1)
    e = np.exp(s - m[:, None])
    return m, e.sum(axis=1), e @ v


def _three(name, out, seed):
    check(isinstance(out, tuple) and len(out) == 3, name, "must return a tuple of three arrays", seed=seed)
    return out


@pytest.mark.points(2)
def test_online_merge_equals_dense_softmax(impl):
    ex = impl(MOD)
    SEED = 1601
    rng = np.random.default_rng(SEED)
    N, n1, n2, dv = 5, 4, 7, 3
    s = rng.standard_normal((N, n1 + n2)) * 8
    v = rng.standard_normal((n1 + n2, dv))
    name = f"online_merge(state of keys 0..{n1 - 1}, state of keys {n1}..{n1 + n2 - 1}) [N={N}, dv={dv}]"
    m, l, o = _three(name, ex.online_merge(*_state(s[:, :n1], v[:n1]), *_state(s[:, n1:], v[n1:])), SEED)
    mf, lf, of = _state(s, v)
    assert_close(name + " m", m, mf, seed=SEED, atol=1e-12)
    assert_close(name + " l", l, lf, seed=SEED, rtol=1e-10)
    assert_close(name + " o", o, of, seed=SEED, rtol=1e-10, atol=1e-12)
    assert_close(name + " o / l (= softmax(s) v)", np.asarray(o) / np.asarray(l)[:, None], of / lf[:, None],
                 seed=SEED, atol=1e-10)


@pytest.mark.points(1)
def test_online_merge_empty_states(impl):
    ex = impl(MOD)
    SEED = 1602
    rng = np.random.default_rng(SEED)
    N, dv = 4, 3
    empty = (np.full(N, -np.inf), np.zeros(N), np.zeros((N, dv)))
    full = _state(rng.standard_normal((N, 5)), rng.standard_normal((5, dv)))
    for a, b, which in ((empty, full, "(empty, full)"), (full, empty, "(full, empty)")):
        m, l, o = _three("online_merge" + which, ex.online_merge(*a, *b), SEED)
        assert_close(f"online_merge{which} m", m, full[0], seed=SEED, atol=1e-12)
        assert_close(f"online_merge{which} l", l, full[1], seed=SEED, atol=1e-12)
        assert_close(f"online_merge{which} o", o, full[2], seed=SEED, atol=1e-12)
    m, l, o = _three("online_merge(empty, empty)", ex.online_merge(*empty, *empty), SEED)
    assert_close("online_merge(empty, empty) m", m, empty[0], seed=SEED)
    assert_close("online_merge(empty, empty) l", l, empty[1], seed=SEED)
    assert_close("online_merge(empty, empty) o", o, empty[2], seed=SEED)


@pytest.mark.points(3)
def test_tile_update_streams_to_attention(impl):
    ex = impl(MOD)
    SEED = 1603
    rng = np.random.default_rng(SEED)
    Bq, n, d, dv, bk = 6, 23, 8, 5, 4                  # 6 tiles, the last one 3 keys
    q, k, v = rng.standard_normal((Bq, d)), rng.standard_normal((n, d)), rng.standard_normal((n, dv))
    s = q @ k.T / np.sqrt(d) * 4
    s[0, : n // 2] = -np.inf                        # row 0: first keys masked (first two tiles empty)
    m, l, o = np.full(Bq, -np.inf), np.zeros(Bq), np.zeros((Bq, dv))
    for j in range(0, n, bk):
        args = (m, l, o, s[:, j:j + bk], v[j:j + bk])
        name = f"tile_update(state, s[:, {j}:{min(j + bk, n)}], v) [Bq={Bq}, dv={dv}, row 0 masked up to key {n // 2 - 1}]"
        m, l, o = _three(name, ex.tile_update(*args), SEED)
        for what, a, b in zip("mlo", (m, l, o), FL.block_update(*args)):
            assert_close(f"{name} {what}", a, b, seed=SEED, rtol=1e-10, atol=1e-12)
    e = np.exp(s - s.max(1, keepdims=True))
    assert_close("o / l after the last tile (= softmax(s) v)", np.asarray(o) / np.asarray(l)[:, None],
                 e / e.sum(1, keepdims=True) @ v, seed=SEED, atol=1e-10)


def _brute_classes(lq, lk, bq, bk):
    """Tile classes from every (query, key) pair: 0 none allowed, 2 all allowed, 1 mixed."""
    allowed = np.arange(lk)[None, :] <= np.arange(lq)[:, None] + (lk - lq)
    out = np.empty((-(-lq // bq), -(-lk // bk)), dtype=int)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            tile = allowed[i * bq:(i + 1) * bq, j * bk:(j + 1) * bk]
            out[i, j] = 0 if not tile.any() else 2 if tile.all() else 1
    return out


# (Lq, Lk, block_q, block_k): Lq < Lk, Lq > Lk, square, ragged last blocks in both directions
TILE_CASES = [(37, 50, 8, 6), (50, 37, 6, 8), (33, 33, 8, 8), (17, 40, 5, 7), (40, 17, 7, 5), (1, 9, 4, 3),
              (9, 1, 3, 4), (20, 20, 7, 3), (13, 29, 4, 4), (29, 13, 4, 4)]


@pytest.mark.points(2)
def test_classify_tiles(impl):
    ex = impl(MOD)
    for lq, lk, bq, bk in TILE_CASES:
        name = f"classify_tiles({lq}, {lk}, {bq}, {bk})"
        got = ex.classify_tiles(lq, lk, bq, bk)
        assert_equal(name, got, _brute_classes(lq, lk, bq, bk))
        assert_equal(name + " vs tinyattn.flash", got, FL.classify_tiles(lq, lk, bq, bk, is_causal=True))
    T = 5
    got = np.asarray(ex.classify_tiles(16 * T, 16 * T, 16, 16))
    check((got != 0).sum() == T * (T + 1) // 2, f"classify_tiles({16 * T}, {16 * T}, 16, 16)",
          f"{(got != 0).sum()} computed tiles, expected T(T+1)/2 = {T * (T + 1) // 2}")


# (Lq, Lk, d, dv, block_q, block_k, scale): several key tiles per row, short last tiles, scale != 1/sqrt(d)
BACKWARD_CASES = [(13, 17, 6, 4, 5, 4, 0.3), (7, 10, 5, 8, 7, 3, 1 / np.sqrt(5)), (9, 22, 3, 2, 2, 5, 1.7)]


@pytest.mark.points(3)
def test_backward_tile_sums_to_flash_backward(impl):
    ex = impl(MOD)
    SEED = 1605
    rng = np.random.default_rng(SEED)
    for Lq, Lk, d, dv, bq, bk, scale in BACKWARD_CASES:
        q, k, v = rng.standard_normal((Lq, d)), rng.standard_normal((Lk, d)), rng.standard_normal((Lk, dv))
        do = rng.standard_normal((Lq, dv))
        # dense float64 forward: lse and D = rowsum(dO * O) over ALL keys of the row
        s = q @ k.T * scale
        mx = s.max(1, keepdims=True)
        lse = (mx + np.log(np.exp(s - mx).sum(1, keepdims=True)))[:, 0]
        p = np.exp(s - lse[:, None])
        D = (do * (p @ v)).sum(1)
        dq, dk, dvv = np.zeros_like(q), np.zeros_like(k), np.zeros_like(v)
        for i in range(0, Lq, bq):
            for j in range(0, Lk, bk):
                a, b, c = _three("backward_tile", ex.backward_tile(q[i:i + bq], k[j:j + bk], v[j:j + bk],
                                                                   do[i:i + bq], lse[i:i + bq], D[i:i + bq], scale),
                                 SEED)
                dq[i:i + bq] += a
                dk[j:j + bk] += b
                dvv[j:j + bk] += c
        # dense float64 gradients through the full softmax
        dp = do @ v.T
        ds = p * (dp - (p * dp).sum(1, keepdims=True))
        name = f"sum of backward_tile over tiles [Lq={Lq}, Lk={Lk}, d={d}, dv={dv}, bq={bq}, bk={bk}, scale={scale:.4g}]"
        assert_close(name + " dq", dq, ds @ k * scale, seed=SEED, atol=1e-10)
        assert_close(name + " dk", dk, ds.T @ q * scale, seed=SEED, atol=1e-10)
        assert_close(name + " dv", dvv, p.T @ do, seed=SEED, atol=1e-10)
