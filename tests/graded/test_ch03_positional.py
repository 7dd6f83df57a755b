"""Graded tests for chapter 03 (position encodings): compare with tinyattn.positional on fresh random
inputs, plus the properties that define each encoding."""
import math

import numpy as np
import pytest

from tinyattn import positional as P

MOD = "ch03_positional"


def _rng():
    return np.random.default_rng()                  # fresh inputs each run


@pytest.mark.points(1)
def test_sinusoidal_small_closed_form(impl):
    ex = impl(MOD)
    pe = np.asarray(ex.sinusoidal_table(3, 4))
    assert pe.shape == (3, 4)
    want = [[math.sin(p), math.cos(p), math.sin(p / 100), math.cos(p / 100)] for p in range(3)]
    np.testing.assert_allclose(pe, want, atol=1e-12)


@pytest.mark.points(2)
def test_sinusoidal_matches_library(impl):
    ex = impl(MOD)
    rng = _rng()
    n, d = int(rng.integers(5, 200)), 2 * int(rng.integers(1, 64))
    base = float(rng.uniform(100, 20000))
    np.testing.assert_allclose(ex.sinusoidal_table(n, d, base),
                               P.sinusoidal(n, d, base, dtype=np.float64), atol=1e-9)


@pytest.mark.points(2)
def test_rope_interleaved_matches_library_and_complex(impl):
    ex = impl(MOD)
    rng = _rng()
    d, L = 2 * int(rng.integers(1, 33)), int(rng.integers(1, 20))
    x = rng.standard_normal((2, 3, L, d))
    pos = rng.integers(0, 4096, size=L)
    out = np.asarray(ex.rope_interleaved(x, pos))
    assert out.shape == x.shape
    np.testing.assert_allclose(out, P.apply_rope(x, pos, P.rope_inv_freq(d), layout="interleaved"),
                               atol=1e-9)
    theta = 10000.0 ** (-np.arange(0, d, 2) / d)
    z = (x[..., 0::2] + 1j * x[..., 1::2]) * np.exp(1j * pos[:, None] * theta)
    np.testing.assert_allclose(out[..., 0::2], z.real, atol=1e-9)
    np.testing.assert_allclose(out[..., 1::2], z.imag, atol=1e-9)


@pytest.mark.points(2)
def test_rope_half_matches_library(impl):
    ex = impl(MOD)
    rng = _rng()
    d, L = 2 * int(rng.integers(1, 33)), int(rng.integers(1, 20))
    x = rng.standard_normal((4, L, d))
    pos = rng.integers(0, 4096, size=L)
    base = float(rng.uniform(500, 1e6))
    out = np.asarray(ex.rope_half(x, pos, base))
    np.testing.assert_allclose(out, P.apply_rope(x, pos, P.rope_inv_freq(d, base), layout="half"),
                               atol=1e-9)


@pytest.mark.points(2)
def test_rope_layouts_and_relative_property(impl):
    ex = impl(MOD)
    rng = _rng()
    d = 2 * int(rng.integers(2, 33))
    x = rng.standard_normal((7, d))
    pos = rng.integers(0, 1000, size=7)
    perm = np.concatenate([np.arange(0, d, 2), np.arange(1, d, 2)])
    np.testing.assert_allclose(np.asarray(ex.rope_interleaved(x, pos))[:, perm],
                               ex.rope_half(x[:, perm], pos), atol=1e-9)
    q, k = rng.standard_normal((2, 1, d))
    m, n, t = (int(v) for v in rng.integers(0, 5000, size=3))
    for fn in (ex.rope_interleaved, ex.rope_half):
        s1 = fn(q, np.array([m]))[0] @ fn(k, np.array([n]))[0]
        s2 = fn(q, np.array([m + t]))[0] @ fn(k, np.array([n + t]))[0]
        assert s1 == pytest.approx(s2, abs=1e-8)
        assert np.linalg.norm(fn(q, np.array([m]))) == pytest.approx(np.linalg.norm(q), rel=1e-9)


@pytest.mark.points(1)
def test_alibi_slopes_examples(impl):
    ex = impl(MOD)
    np.testing.assert_allclose(ex.alibi_slopes(8), [2.0 ** -k for k in range(1, 9)], rtol=1e-12)
    want12 = [2.0 ** -k for k in range(1, 9)] + [2 ** -0.5, 2 ** -1.5, 2 ** -2.5, 2 ** -3.5]
    np.testing.assert_allclose(ex.alibi_slopes(12), want12, rtol=1e-12)


@pytest.mark.points(2)
def test_alibi_slopes_all_head_counts(impl):
    ex = impl(MOD)
    for n in range(1, 33):
        got = np.asarray(ex.alibi_slopes(n))
        assert got.shape == (n,), f"n_heads={n}: shape {got.shape}"
        np.testing.assert_allclose(got, P.alibi_slopes(n), rtol=1e-12, err_msg=f"n_heads={n}")
