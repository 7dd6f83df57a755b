"""Graded tests for chapter 03 (position encodings): compare with tinyattn.positional, plus the properties
that define each encoding.

Inputs are deterministic (``np.random.default_rng(SEED)``, the seed is printed on failure); ``base`` is
always tried away from its default 10000, and L != d so a transposed angle table cannot pass.
"""
import math

import numpy as np
import pytest

from tinyattn import positional as P
from tinyattn.grading.check import assert_close, assert_shape, check

MOD = "ch03_positional"


@pytest.mark.points(1)
def test_sinusoidal_small_closed_form(impl):
    ex = impl(MOD)
    want = [[math.sin(p), math.cos(p), math.sin(p / 100), math.cos(p / 100)] for p in range(3)]
    assert_close("sinusoidal_table(3, 4)", ex.sinusoidal_table(3, 4), want, atol=1e-12)


@pytest.mark.points(2)
def test_sinusoidal_matches_library(impl):
    ex = impl(MOD)
    for n, d, base in [(37, 24, 500.0), (9, 6, 20000.0), (50, 64, 10000.0)]:
        name = f"sinusoidal_table({n}, {d}, base={base})"
        assert_close(name, ex.sinusoidal_table(n, d, base), P.sinusoidal(n, d, base, dtype=np.float64), atol=1e-9)


def _complex_rope(x, pos, base):
    """Independent reference: pair (2i, 2i+1) as a complex number times exp(1j m theta_i)."""
    d = x.shape[-1]
    theta = base ** (-np.arange(0, d, 2) / d)
    z = (x[..., 0::2] + 1j * x[..., 1::2]) * np.exp(1j * pos[:, None] * theta)
    out = np.empty(x.shape)
    out[..., 0::2], out[..., 1::2] = z.real, z.imag
    return out


@pytest.mark.points(2)
def test_rope_interleaved_matches_library_and_complex(impl):
    ex = impl(MOD)
    SEED = 1301
    rng = np.random.default_rng(SEED)
    L, d = 5, 12
    x = rng.standard_normal((2, 3, L, d))
    pos = rng.integers(0, 4096, size=L)
    name = f"rope_interleaved(x (2, 3, {L}, {d}), positions {pos.tolist()})"
    out = assert_shape(name, ex.rope_interleaved(x, pos), x.shape, seed=SEED)
    assert_close(name, out, P.apply_rope(x, pos, P.rope_inv_freq(d), layout="interleaved"), seed=SEED, atol=1e-9)
    assert_close(name + " vs the complex form", out, _complex_rope(x, pos, 10000.0), seed=SEED, atol=1e-9)


@pytest.mark.points(2)
def test_rope_interleaved_uses_base(impl):
    ex = impl(MOD)
    SEED = 1302
    rng = np.random.default_rng(SEED)
    L, d = 6, 10
    x = rng.standard_normal((3, L, d))
    pos = rng.integers(0, 2048, size=L)
    for base in (500.0, 1e6):
        name = f"rope_interleaved(x (3, {L}, {d}), positions, base={base:g})"
        out = ex.rope_interleaved(x, pos, base)
        assert_close(name, out, P.apply_rope(x, pos, P.rope_inv_freq(d, base), layout="interleaved"),
                     seed=SEED, atol=1e-9)
        assert_close(name + " vs the complex form", out, _complex_rope(x, pos, base), seed=SEED, atol=1e-9)


@pytest.mark.points(2)
def test_rope_half_matches_library(impl):
    ex = impl(MOD)
    SEED = 1303
    rng = np.random.default_rng(SEED)
    L, d = 7, 16
    x = rng.standard_normal((4, L, d))
    pos = rng.integers(0, 4096, size=L)
    for base in (None, 500.0, 1e6):
        name = f"rope_half(x (4, {L}, {d}), positions" + (")" if base is None else f", base={base:g})")
        out = ex.rope_half(x, pos) if base is None else ex.rope_half(x, pos, base)
        want = P.apply_rope(x, pos, P.rope_inv_freq(d, 10000.0 if base is None else base), layout="half")
        assert_close(name, out, want, seed=SEED, atol=1e-9)


@pytest.mark.points(2)
def test_rope_layouts_and_relative_property(impl):
    ex = impl(MOD)
    SEED = 1304
    rng = np.random.default_rng(SEED)
    d = 14
    x = rng.standard_normal((7, d))
    pos = rng.integers(0, 1000, size=7)
    perm = np.concatenate([np.arange(0, d, 2), np.arange(1, d, 2)])
    for base in (10000.0, 300.0):
        assert_close(f"rope_interleaved(x, pos, base={base:g})[:, perm] vs rope_half(x[:, perm], pos, base)",
                     np.asarray(ex.rope_interleaved(x, pos, base))[:, perm], ex.rope_half(x[:, perm], pos, base),
                     seed=SEED, atol=1e-9)
    q, k = rng.standard_normal((2, 1, d))
    m, n, t = (int(v) for v in rng.integers(0, 5000, size=3))
    for fn in (ex.rope_interleaved, ex.rope_half):
        name = f"{fn.__name__}: score of q at {m}, k at {n}"
        s1 = np.asarray(fn(q, np.array([m])))[0] @ np.asarray(fn(k, np.array([n])))[0]
        s2 = np.asarray(fn(q, np.array([m + t])))[0] @ np.asarray(fn(k, np.array([n + t])))[0]
        assert_close(name + f" vs both shifted by {t} (RoPE scores depend on m - n only)", s2, s1, seed=SEED,
                     atol=1e-8)
        check(abs(np.linalg.norm(fn(q, np.array([m]))) - np.linalg.norm(q)) < 1e-9 * np.linalg.norm(q), name,
              "a rotation must keep the vector's norm", seed=SEED)


@pytest.mark.points(1)
def test_alibi_slopes_examples(impl):
    ex = impl(MOD)
    assert_close("alibi_slopes(8)", ex.alibi_slopes(8), [2.0 ** -k for k in range(1, 9)], rtol=1e-12)
    want12 = [2.0 ** -k for k in range(1, 9)] + [2 ** -0.5, 2 ** -1.5, 2 ** -2.5, 2 ** -3.5]
    assert_close("alibi_slopes(12)", ex.alibi_slopes(12), want12, rtol=1e-12)


@pytest.mark.points(2)
def test_alibi_slopes_all_head_counts(impl):
    ex = impl(MOD)
    for n in range(1, 33):
        assert_close(f"alibi_slopes({n})", ex.alibi_slopes(n), P.alibi_slopes(n), rtol=1e-12)
