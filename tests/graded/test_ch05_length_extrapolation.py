"""Graded tests for chapter 05 (RoPE scaling): compare with tinyattn.positional.scaled_rope on
seeded inputs (head dims, bases, factors and lengths all away from the defaults), plus the limits
that define each method. Failure messages name the seed and the pair that differed."""
import math

import numpy as np
import pytest

from tinyattn import positional as P

MOD = "ch05_length_extrapolation"


def _cases(seed: int, n: int = 4):
    """n seeded (head_dim, base, factor, L_train) tuples."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        d = 2 * int(rng.integers(5, 65))                       # 10..128, even
        base = float(rng.choice([500.0, 10000.0, 500000.0]) * rng.uniform(0.8, 1.25))
        s = float(rng.uniform(1.5, 16.0))
        L = int(rng.integers(200, 8192))
        out.append((d, base, s, L))
    return out


def _close(got, want, what, rtol=1e-9):
    got = np.asarray(got, dtype=np.float64)
    assert got.shape == np.shape(want), f"{what}: shape {got.shape}, expected {np.shape(want)}"
    bad = ~np.isclose(got, want, rtol=rtol, atol=0)
    if bad.any():
        i = int(np.argmax(bad))
        raise AssertionError(f"{what}: pair i={i} got {got[i]!r}, expected {want[i]!r} "
                             f"({int(bad.sum())} of {bad.size} pairs differ)")


@pytest.mark.points(1)
def test_pi_inv_freq(impl):
    ex = impl(MOD)
    for k, (d, base, s, L) in enumerate(_cases(501)):
        want = P.scaled_rope(d, "linear", s, L, base=base)[0]
        what = f"seed 501 case {k}: pi_inv_freq(d={d}, s={s:.3f}, base={base:.1f})"
        got = np.asarray(ex.pi_inv_freq(d, s, base), dtype=np.float64)
        _close(got, want, what)
        assert np.all(got < P.rope_inv_freq(d, base)), f"{what}: PI must slow every pair down (s > 1)"
    # the defining property: PI's angle at s*m is plain RoPE's angle at m
    theta = P.rope_inv_freq(24, 10000.0)
    _close(ex.pi_inv_freq(24, 3.0) * (3.0 * 1000), theta * 1000, "angle of position 3*1000 under PI s=3")


@pytest.mark.points(2)
def test_ntk_inv_freq(impl):
    ex = impl(MOD)
    for k, (d, base, s, L) in enumerate(_cases(502)):
        got = np.asarray(ex.ntk_inv_freq(d, s, base), dtype=np.float64)
        what = f"seed 502 case {k}: ntk_inv_freq(d={d}, s={s:.3f}, base={base:.1f})"
        _close(got, P.scaled_rope(d, "ntk", s, L, base=base)[0], what)
        assert got[0] == pytest.approx(1.0), f"{what}: the fastest pair must keep theta_0 = 1, got {got[0]}"
        slow = base ** (-(d - 2) / d) / s
        assert got[-1] == pytest.approx(slow, rel=1e-9), f"{what}: slowest pair {got[-1]} != theta/s = {slow}"


@pytest.mark.points(2)
def test_yarn_ramp(impl):
    ex = impl(MOD)
    for k, (d, base, s, L) in enumerate(_cases(503)):
        for alpha, beta in ((1.0, 32.0), (2.0, 16.0)):
            what = f"seed 503 case {k}: yarn_ramp(d={d}, L={L}, base={base:.1f}, alpha={alpha}, beta={beta})"
            gamma = np.asarray(ex.yarn_ramp(d, L, base, alpha, beta), dtype=np.float64)
            theta = base ** (-np.arange(0, d, 2) / d)
            r = L * theta / (2 * math.pi)                       # full turns within L_train
            want = np.clip((r - alpha) / (beta - alpha), 0, 1)
            _close(gamma, want, what, rtol=1e-9)
    # direction: the FAST pair (many turns) has gamma 1 (kept), the slowest gamma 0 (interpolated)
    g = np.asarray(ex.yarn_ramp(64, 4096, 10000.0, 1.0, 32.0))
    assert g[0] == 1.0 and g[-1] == 0.0, f"d=64, L=4096: gamma[0]={g[0]} (want 1), gamma[-1]={g[-1]} (want 0)"


@pytest.mark.points(3)
def test_yarn_inv_freq(impl):
    ex = impl(MOD)
    for k, (d, base, s, L) in enumerate(_cases(504)):
        what = f"seed 504 case {k}: yarn_inv_freq(d={d}, s={s:.3f}, L={L}, base={base:.1f})"
        inv, att = ex.yarn_inv_freq(d, s, L, base, 1.0, 32.0)
        want_inv, want_att = P.scaled_rope(d, "yarn", s, L, base=base, ramp="ratio")
        _close(inv, want_inv, what)
        assert float(att) == pytest.approx(want_att, rel=1e-12), \
            f"{what}: attention factor {att}, expected 0.1 ln s + 1 = {want_att}"
    inv, _ = ex.yarn_inv_freq(128, 8.0, 4096, 10000.0, 2.0, 16.0)
    want, _ = P.scaled_rope(128, "yarn", 8.0, 4096, base=10000.0, ramp="ratio", beta_slow=2.0, beta_fast=16.0)
    _close(inv, want, "yarn_inv_freq(128, 8, 4096, alpha=2, beta=16)")
    theta = P.rope_inv_freq(128)
    assert np.all(np.asarray(inv) <= theta * (1 + 1e-12)), "YaRN never speeds a pair up (theta' <= theta)"


@pytest.mark.points(2)
def test_dynamic_ntk_inv_freq(impl):
    ex = impl(MOD)
    for k, (d, base, s, L) in enumerate(_cases(505)):
        for seq_len in (L // 3, L, int(1.7 * L), 5 * L):
            what = (f"seed 505 case {k}: dynamic_ntk_inv_freq(d={d}, s={s:.3f}, L_train={L}, "
                    f"seq_len={seq_len}, base={base:.1f})")
            got = ex.dynamic_ntk_inv_freq(d, s, L, seq_len, base)
            _close(got, P.scaled_rope(d, "dynamic", s, L, base=base, seq_len=seq_len)[0], what)
            if seq_len <= L:
                _close(got, P.rope_inv_freq(d, base), what + " (up to L_train: plain RoPE)")
            else:
                assert np.asarray(got)[-1] < P.rope_inv_freq(d, base)[-1], \
                    f"{what}: beyond L_train the slowest pair must be slowed down"
