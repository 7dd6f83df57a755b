"""RoPE scaling (chapter 05's scaled_rope) against REFERENCE.md section 3, written out plainly here."""
import math

import numpy as np
import pytest

from tinyattn import positional as P


def theta(d, base=10000.0):
    return np.array([base ** (-2 * i / d) for i in range(d // 2)])


def test_linear_interpolation():
    inv, att = P.scaled_rope(64, "linear", 4.0, 2048)
    np.testing.assert_allclose(inv, theta(64) / 4.0, rtol=1e-14)
    assert att == 1.0


@pytest.mark.parametrize("d,s", [(64, 4.0), (128, 8.0), (32, 2.5)])
def test_ntk_slowest_divided_by_s_fastest_kept(d, s):
    inv, att = P.scaled_rope(d, "ntk", s, 4096)
    np.testing.assert_allclose(inv, theta(d, 10000.0 * s ** (d / (d - 2))), rtol=1e-13)
    assert inv[0] == pytest.approx(1.0) and inv[-1] == pytest.approx(theta(d)[-1] / s, rel=1e-12)
    assert att == 1.0


def test_dynamic_ntk():
    d, s, Lt = 64, 4.0, 1024
    for L in (None, 10, 1024):                                      # up to L_train: unchanged
        np.testing.assert_allclose(P.scaled_rope(d, "dynamic", s, Lt, seq_len=L)[0], theta(d), rtol=1e-13)
    L = 3000
    want_base = 10000.0 * ((s * L / Lt) - (s - 1)) ** (d / (d - 2))
    np.testing.assert_allclose(P.scaled_rope(d, "dynamic", s, Lt, seq_len=L)[0], theta(d, want_base),
                               rtol=1e-13)


def test_yarn_reference_numbers():
    d, s, Lt = 128, 8.0, 4096
    inv, att = P.scaled_rope(d, "yarn", s, Lt)
    assert att == pytest.approx(0.1 * math.log(8) + 1) and round(att, 4) == 1.2079
    # ramp ends: d ln(L / (2 pi n)) / (2 ln base), n = 32 floored, n = 1 ceiled -> 20 .. 46
    low = math.floor(d * math.log(Lt / (2 * math.pi * 32)) / (2 * math.log(1e4)))
    high = math.ceil(d * math.log(Lt / (2 * math.pi * 1)) / (2 * math.log(1e4)))
    assert (low, high) == (20, 46)
    th = theta(d)
    for i in range(d // 2):
        g = 1.0 - min(max((i - low) / (high - low), 0.0), 1.0)     # 1 = keep, 0 = interpolate
        assert inv[i] == pytest.approx((1 - g) * th[i] / s + g * th[i], rel=1e-12)
    np.testing.assert_allclose(inv[:21], th[:21], rtol=1e-14)       # fast pairs kept
    np.testing.assert_allclose(inv[46:], th[46:] / s, rtol=1e-14)   # slow pairs interpolated


def test_yarn_direction_is_not_the_source_texts():
    # the source multiplies HIGH frequencies by s; YaRN leaves them alone and slows the LOW ones
    inv, _ = P.scaled_rope(64, "yarn", 4.0, 2048)
    assert np.all(inv <= theta(64) * (1 + 1e-12)) and inv[0] == pytest.approx(1.0)


def test_yarn_paper_ramp_and_overrides():
    d, s, Lt = 64, 4.0, 2048
    inv, att = P.scaled_rope(d, "yarn", s, Lt, ramp="ratio", attention_factor=1.0)
    th = theta(d)
    r = Lt * th / (2 * math.pi)
    g = np.clip((r - 1) / (32 - 1), 0, 1)
    np.testing.assert_allclose(inv, (1 - g) * th / s + g * th, rtol=1e-13)
    assert att == 1.0
    assert P.scaled_rope(d, "yarn", 1.0, Lt)[1] == 1.0               # no scaling, no temperature


def test_llama3_bands():
    d, s, Lt, base = 128, 8.0, 8192, 500000.0
    inv, att = P.scaled_rope(d, "llama3", s, Lt, base=base)
    th = theta(d, base)
    lam = 2 * math.pi / th
    for i in range(d // 2):
        if lam[i] < Lt / 4:
            want = th[i]
        elif lam[i] > Lt / 1:
            want = th[i] / s
        else:
            w = (Lt / lam[i] - 1) / (4 - 1)
            want = (1 - w) * th[i] / s + w * th[i]
        assert inv[i] == pytest.approx(want, rel=1e-12)
    assert att == 1.0
    assert np.sum(lam < Lt / 4) > 0 and np.sum(lam > Lt) > 0 and np.sum((lam >= Lt / 4) & (lam <= Lt)) > 0


def test_scaled_frequencies_feed_apply_rope():
    inv, att = P.scaled_rope(16, "yarn", 4.0, 256)
    x = np.random.default_rng(0).standard_normal((3, 16))
    out = P.apply_rope(x, np.arange(3), inv, attention_factor=att)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), att * np.linalg.norm(x, axis=1), rtol=1e-12)


def test_errors():
    with pytest.raises(ValueError, match="method"):
        P.scaled_rope(64, "rope2", 2.0, 1024)
    with pytest.raises(ValueError, match="factor"):
        P.scaled_rope(64, "linear", 0.5, 1024)
    with pytest.raises(ValueError, match="original_max_position"):
        P.scaled_rope(64, "ntk", 2.0, 0)
    with pytest.raises(TypeError, match="beta_fast"):
        P.scaled_rope(64, "linear", 2.0, 1024, beta_fast=16)
    with pytest.raises(ValueError, match="ramp"):
        P.scaled_rope(64, "yarn", 2.0, 1024, ramp="cosine")
