"""tinyattn.sparse masks: each pattern checked element by element against its definition."""
import numpy as np
import pytest

from tinyattn import sparse as S


def _brute(L, rule):
    return np.array([[rule(i, j) for j in range(L)] for i in range(L)], dtype=bool)


@pytest.mark.parametrize("L,r,causal", [(1, 0, False), (7, 0, True), (9, 2, False), (9, 2, True), (5, 10, False)])
def test_sliding_window(L, r, causal):
    want = _brute(L, lambda i, j: abs(i - j) <= r and (not causal or j <= i))
    got = S.sliding_window_mask(L, r, causal=causal)
    assert got.dtype == bool and got.shape == (L, L)
    np.testing.assert_array_equal(got, want)


def test_sliding_window_size_zero():
    assert S.sliding_window_mask(0, 3).shape == (0, 0)


@pytest.mark.parametrize("causal", [False, True])
def test_dilated_and_strided(causal):
    L, r, dil = 17, 2, 3
    want = _brute(L, lambda i, j: abs(i - j) <= r * dil and (i - j) % dil == 0 and (not causal or j <= i))
    np.testing.assert_array_equal(S.dilated_window_mask(L, r, dil, causal=causal), want)
    st = 4
    want = _brute(L, lambda i, j: (abs(i - j) < st or (i - j) % st == 0) and (not causal or j <= i))
    np.testing.assert_array_equal(S.strided_mask(L, st, causal=causal), want)
    np.testing.assert_array_equal(S.dilated_window_mask(L, r, 1, causal), S.sliding_window_mask(L, r, causal))


def test_global_tokens():
    L = 10
    base = S.sliding_window_mask(L, 1)
    g = S.global_tokens_mask(L, [0, 7], base=base)
    want = _brute(L, lambda i, j: abs(i - j) <= 1 or i in (0, 7) or j in (0, 7))
    np.testing.assert_array_equal(g, want)
    assert not base[0, 5]                        # the base is not modified in place


def test_bigbird_blocks_and_seed():
    L, b = 70, 8                                  # 9 blocks, the last one ragged (6 keys)
    m1, bl1 = S.bigbird_mask(L, b, n_window_blocks=3, n_global_blocks=1, n_random_blocks=2,
                             rng=np.random.default_rng(5), return_blocks=True)
    m2 = S.bigbird_mask(L, b, 3, 1, 2, rng=np.random.default_rng(5))
    m3 = S.bigbird_mask(L, b, 3, 1, 2, rng=np.random.default_rng(6))
    np.testing.assert_array_equal(m1, m2)        # same seed, same mask
    assert not np.array_equal(m1, m3)            # another seed moves the random blocks
    nb = 9
    assert bl1.shape == (nb, nb)
    # every element of the element mask equals its block's entry
    for i in range(L):
        for j in range(L):
            assert m1[i, j] == bl1[i // b, j // b]
    a = np.arange(nb)
    window = np.abs(a[:, None] - a[None, :]) <= 1
    glob = (a[:, None] == 0) | (a[None, :] == 0)
    assert np.all(bl1[window | glob])             # window and global always present
    extra = bl1 & ~(window | glob)
    np.testing.assert_array_equal(extra.sum(axis=1)[1:], np.full(nb - 1, 2))   # exactly r random per row
    assert extra[0].sum() == 0


def test_bigbird_random_capped_when_few_blocks_left():
    _, bl = S.bigbird_mask(16, 4, 3, 1, 5, rng=np.random.default_rng(0), return_blocks=True)
    assert bl.all()                               # 4 blocks: all get covered, no error


def test_block_mask_from_mask_ragged():
    m = np.zeros((10, 7), bool)
    m[9, 6] = True
    m[0, 0] = True
    bm = S.block_mask_from_mask(m, 4, 3)
    want = np.zeros((3, 3), bool)
    want[2, 2] = want[0, 0] = True
    np.testing.assert_array_equal(bm, want)
    np.testing.assert_array_equal(S.expand_block_mask(want, 4, 3, 10, 7)[9, 6], True)


@pytest.mark.parametrize("call,match", [
    (lambda: S.sliding_window_mask(5, -1), "radius"),
    (lambda: S.sliding_window_mask(2.5, 1), "L"),
    (lambda: S.dilated_window_mask(5, 1, 0), "dilation"),
    (lambda: S.strided_mask(5, 0), "stride"),
    (lambda: S.global_tokens_mask(5, [5]), "global_idx"),
    (lambda: S.global_tokens_mask(5, [1], base=np.ones((4, 4), bool)), "base"),
    (lambda: S.bigbird_mask(10, 2, n_random_blocks=1, rng=None), "rng"),
    (lambda: S.block_mask_from_mask(np.ones((3, 3)), 2, 2), "bool"),
    (lambda: S.expand_block_mask(np.ones((2, 2), bool), 2, 2, 5, 5), "shape"),
])
def test_bad_input_raises(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
