"""Limits of every RoPE scaling method (chapter 05), against closed forms written out here:
factor 1 is plain RoPE; YaRN keeps the fastest pairs and divides the slowest by s; NTK divides the
slowest by exactly s; dynamic NTK is plain RoPE up to L_train and NTK at s = L / L_train beyond
(factor 1); PI compresses positions (angle of position s m under PI = angle of m unscaled)."""
import math

import numpy as np
import pytest

from tinyattn import positional as P


def theta(d, base=10000.0):
    return np.array([base ** (-2 * i / d) for i in range(d // 2)])


@pytest.mark.parametrize("method", ["linear", "ntk", "dynamic", "yarn", "llama3"])
@pytest.mark.parametrize("d", [16, 64])
def test_factor_one_is_plain_rope(method, d):
    inv, att = P.scaled_rope(d, method, 1.0, 256, seq_len=100)
    np.testing.assert_allclose(inv, theta(d), rtol=1e-13)
    assert att == 1.0


@pytest.mark.parametrize("d,Lt,base,s", [(128, 4096, 1e4, 8.0), (64, 2048, 1e4, 4.0), (32, 1024, 500.0, 16.0)])
def test_yarn_keeps_fast_divides_slow(d, Lt, base, s):
    inv, att = P.scaled_rope(d, "yarn", s, Lt, base=base)
    th = theta(d, base)
    turns = Lt * th / (2 * math.pi)                           # full turns of pair i within L_train
    fast, slow = turns >= 32, turns <= 1                      # beta_fast = 32, beta_slow = 1
    assert fast.any() and slow.any()
    np.testing.assert_allclose(inv[fast], th[fast], rtol=1e-13)          # kept
    np.testing.assert_allclose(inv[slow], th[slow] / s, rtol=1e-13)      # interpolated like PI
    mid = ~fast & ~slow
    assert np.all(inv[mid] <= th[mid]) and np.all(inv[mid] >= th[mid] / s)
    assert att == pytest.approx(0.1 * math.log(s) + 1.0)


def test_yarn_paper_ramp_limits():
    d, Lt, s = 64, 2048, 4.0
    inv, _ = P.scaled_rope(d, "yarn", s, Lt, ramp="ratio")
    th = theta(d)
    r = Lt * th / (2 * math.pi)                               # r_i = L / lambda_i
    np.testing.assert_allclose(inv[r > 32], th[r > 32], rtol=1e-13)
    np.testing.assert_allclose(inv[r < 1], th[r < 1] / s, rtol=1e-13)


@pytest.mark.parametrize("d,s", [(16, 4.0), (64, 8.0)])
def test_ntk_limits(d, s):
    inv, _ = P.scaled_rope(d, "ntk", s, 512)
    assert inv[0] == pytest.approx(1.0, rel=1e-13)
    assert inv[-1] == pytest.approx(theta(d)[-1] / s, rel=1e-12)
    assert np.all(np.diff(theta(d) / inv) > 0)                # slowdown grows from fast to slow pairs


def test_dynamic_factor_one_is_ntk_at_current_length():
    d, Lt = 32, 64
    for L in (16, 64):
        np.testing.assert_allclose(P.scaled_rope(d, "dynamic", 3.0, Lt, seq_len=L)[0], theta(d), rtol=1e-13)
    for L in (96, 256, 512):
        np.testing.assert_allclose(P.scaled_rope(d, "dynamic", 1.0, Lt, seq_len=L)[0],
                                   P.scaled_rope(d, "ntk", L / Lt, Lt)[0], rtol=1e-12)


def test_linear_compresses_positions():
    d, s = 16, 4.0
    inv, _ = P.scaled_rope(d, "linear", s, 128)
    m = np.arange(0, 512, 7, dtype=np.float64)
    np.testing.assert_allclose(P.rope_angles(s * m, inv), P.rope_angles(m, theta(d)), rtol=1e-12)
