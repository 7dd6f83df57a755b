"""Sinusoidal, learned and CAPE encodings against closed forms written plainly here."""
import math

import numpy as np
import pytest

import tinyattn as ta
from tinyattn import positional as P


def test_sinusoidal_matches_closed_form_elementwise():
    n, d, base = 50, 16, 10000.0
    pe = P.sinusoidal(n, d)
    assert pe.shape == (n, d) and pe.dtype == np.float32
    for p in range(n):
        for i in range(d // 2):
            angle = p / base ** (2 * i / d)
            assert pe[p, 2 * i] == pytest.approx(math.sin(angle), abs=1e-6)
            assert pe[p, 2 * i + 1] == pytest.approx(math.cos(angle), abs=1e-6)


def test_sinusoidal_other_base_and_float64():
    pe = P.sinusoidal(7, 4, base=100.0, dtype=np.float64)
    assert pe.dtype == np.float64
    assert pe[3, 2] == pytest.approx(math.sin(3 / 100.0 ** 0.5), abs=1e-15)
    assert pe[5, 3] == pytest.approx(math.cos(5 / 100.0 ** 0.5), abs=1e-15)


def test_sinusoidal_at_integer_positions_equals_table_and_handles_fractions():
    assert np.array_equal(P.sinusoidal_at(np.arange(20), 8), P.sinusoidal(20, 8))
    pe = P.sinusoidal_at([2.5], 8, dtype=np.float64)
    assert pe[0, 4] == pytest.approx(math.sin(2.5 / 10000 ** (4 / 8)), abs=1e-15)


def test_large_positions_keep_float64_angles():
    # angles are formed in float64: positions 8192 and 8193 stay distinct (fp16 would merge them)
    pe = P.sinusoidal_at([8192, 8193], 64)
    assert np.abs(pe[0] - pe[1]).max() > 0.1
    assert pe[1, 0] == pytest.approx(math.sin(8193.0), abs=1e-6)


@pytest.mark.parametrize("k", [1, 5, 37, -4, 2.5])
def test_shift_is_a_fixed_rotation(k):
    d = 12
    T = P.shift_matrix(k, d)
    rng = np.random.default_rng(0)
    for p in rng.uniform(0, 500, size=5):
        pe_p = P.sinusoidal_at([p], d, dtype=np.float64)[0]
        pe_pk = P.sinusoidal_at([p + k], d, dtype=np.float64)[0]
        np.testing.assert_allclose(T @ pe_p, pe_pk, atol=1e-12)
    np.testing.assert_allclose(T @ T.T, np.eye(d), atol=1e-12)          # orthogonal
    # closed form of block 1: [[cos(k w), sin(k w)], [-sin(k w), cos(k w)]], w = base^(-2/d)
    w = 10000.0 ** (-2 / d)
    np.testing.assert_allclose(T[2:4, 2:4], [[math.cos(k * w), math.sin(k * w)],
                                             [-math.sin(k * w), math.cos(k * w)]], atol=1e-15)


def test_shift_matrices_compose():
    d = 8
    np.testing.assert_allclose(P.shift_matrix(3, d) @ P.shift_matrix(4, d), P.shift_matrix(7, d),
                               atol=1e-12)


def test_wavelengths_range():
    d = 64
    lam = P.wavelengths(d)
    assert lam[0] == pytest.approx(2 * math.pi)                              # i = 0: fastest
    assert lam[-1] == pytest.approx(2 * math.pi * 10000 ** ((d - 2) / d))   # slowest
    assert np.all(np.diff(lam) > 0)


def test_positions_are_unique():
    pe = P.sinusoidal(2048, 32, dtype=np.float64)
    sq = (pe ** 2).sum(1)
    dist2 = sq[:, None] + sq[None, :] - 2 * pe @ pe.T
    np.fill_diagonal(dist2, np.inf)
    assert dist2.min() > 1e-3


@pytest.mark.parametrize("bad", [7, 0, 1])
def test_odd_or_tiny_d_raises(bad):
    with pytest.raises(ValueError, match="d_model"):
        P.sinusoidal(4, bad)


def test_bad_positions_raise():
    with pytest.raises(ValueError, match="positions"):
        P.sinusoidal_at(np.zeros((2, 3)), 4)
    with pytest.raises(ValueError, match="finite"):
        P.sinusoidal_at([np.nan], 4)
    with pytest.raises(TypeError, match="n_positions"):
        P.sinusoidal(3.0, 4)


# ---------------------------------------------------------------- learned table
def test_learned_lookup_and_out_of_range():
    emb = P.LearnedPositionalEmbedding(10, 4, rng=np.random.default_rng(1))
    out = emb(np.array([[0, 9, 3]]))
    assert out.shape == (1, 3, 4)
    np.testing.assert_array_equal(out.data[0, 1], emb.weight.data[9])
    with pytest.raises(ValueError, match=r"max_len=10.*|position 10"):
        emb(np.arange(11))
    try:
        emb(np.array([3, 12]))
    except ValueError as exc:
        assert "12" in str(exc) and "max_len=10" in str(exc)
    else:
        pytest.fail("position 12 >= max_len 10 must raise")
    with pytest.raises(ValueError, match=">= 0"):
        emb(np.array([-1]))
    with pytest.raises(TypeError, match="integers"):
        emb(np.array([0.5]))


def test_learned_gradient_scatter_adds_repeated_positions():
    emb = P.LearnedPositionalEmbedding(6, 3, rng=np.random.default_rng(2))
    pos = np.array([1, 4, 1, 1])
    g = np.random.default_rng(3).standard_normal((4, 3))
    (emb(pos) * ta.Tensor(g)).sum().backward()
    expected = np.zeros((6, 3))
    for r, p in enumerate(pos):
        expected[p] += g[r]
    np.testing.assert_allclose(emb.weight.grad, expected, rtol=1e-6)
    assert [n for n, _ in emb.named_parameters()] == ["weight"]


# ---------------------------------------------------------------- CAPE
def test_cape_eval_is_plain_positions():
    np.testing.assert_array_equal(P.cape_positions(9, None, training=False), np.arange(9.0))
    np.testing.assert_array_equal(P.cape_encoding(9, 8, training=False), P.sinusoidal(9, 8))


def test_cape_components_separately():
    rng = np.random.default_rng(0)
    x = np.arange(20.0)
    shifts = []
    for _ in range(30):
        pos = P.cape_positions(20, rng, max_global_shift=5, max_local_shift=0, max_global_scaling=1)
        delta = pos - x
        assert np.ptp(delta) < 1e-12 and abs(delta[0]) <= 5        # one shift for the sequence
        shifts.append(delta[0])
        pos = P.cape_positions(20, rng, max_global_shift=0, max_local_shift=1, max_global_scaling=1)
        assert np.all(np.abs(pos - x) <= 0.5) and np.all(np.diff(pos) > 0)  # local, order kept
        pos = P.cape_positions(20, rng, max_global_shift=0, max_local_shift=0, max_global_scaling=1.1)
        lam = pos[1:] / x[1:]
        assert np.ptp(lam) < 1e-12 and 1 / 1.1 - 1e-12 <= lam[0] <= 1.1 + 1e-12
    assert np.std(shifts) > 1.0                                      # it really is random


def test_cape_is_reproducible_and_validates():
    a = P.cape_positions(8, np.random.default_rng(5))
    b = P.cape_positions(8, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="max_global_scaling"):
        P.cape_positions(8, np.random.default_rng(0), max_global_scaling=0.5)
    with pytest.raises(TypeError, match="rng"):
        P.cape_positions(8, None)
    assert P.NOPE == "nope"
