"""ALiBi slopes and bias against the published formula, written out independently here."""
import math

import numpy as np
import pytest

from tinyattn import positional as P


def reference_slopes(n):
    """Press et al. 2022: geometric sequence starting at 2^(-8/n) with ratio 2^(-8/n) for n a power
    of two; otherwise the closest power of two c, then every other slope of the 2c-head sequence."""
    def pow2(k):
        start = 2 ** (-(2 ** -(math.log2(k) - 3)))      # = 2^(-8/k)
        return [start * start ** h for h in range(k)]
    if math.log2(n).is_integer():
        return pow2(n)
    c = 2 ** math.floor(math.log2(n))
    return pow2(c) + pow2(2 * c)[0::2][: n - c]


@pytest.mark.parametrize("n", range(1, 33))
def test_slopes_match_formula(n):
    s = P.alibi_slopes(n)
    assert s.shape == (n,)
    np.testing.assert_allclose(s, reference_slopes(n), rtol=1e-12)
    assert np.all((s > 0) & (s < 1)) and len(set(s.tolist())) == n


def test_slopes_published_examples():
    np.testing.assert_allclose(P.alibi_slopes(8), [1 / 2 ** k for k in range(1, 9)], rtol=1e-12)
    expected_12 = [2.0 ** -k for k in range(1, 9)] + [2 ** -0.5, 2 ** -1.5, 2 ** -2.5, 2 ** -3.5]
    np.testing.assert_allclose(P.alibi_slopes(12), expected_12, rtol=1e-12)
    np.testing.assert_allclose(P.alibi_slopes(16)[:2], [2 ** -0.5, 2 ** -1.0], rtol=1e-12)


@pytest.mark.parametrize("H,Lq,Lk", [(4, 6, 6), (3, 2, 7), (5, 1, 9)])
def test_bias_closed_form_bottom_right(H, Lq, Lk):
    b = P.alibi_bias(H, Lq, Lk)
    assert b.shape == (H, Lq, Lk) and b.dtype == np.float32
    m = reference_slopes(H)
    for h in range(H):
        for i in range(Lq):
            qpos = i + Lk - Lq
            for j in range(Lk):
                want = -m[h] * (qpos - j) if j <= qpos else 0.0
                assert b[h, i, j] == pytest.approx(want, abs=1e-6)


def test_bias_equals_row_constant_form_under_causal_softmax():
    # BLOOM adds m*j instead of -m*(i-j); they differ by the per-row constant m*i, which softmax ignores
    H, L = 4, 7
    rng = np.random.default_rng(0)
    s = rng.standard_normal((H, L, L))
    causal = np.tril(np.ones((L, L), bool))
    m = np.array(reference_slopes(H))[:, None, None]

    def softmax_masked(x):
        x = np.where(causal, x, -np.inf)
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)
    ours = softmax_masked(s + P.alibi_bias(H, L, L).astype(np.float64))
    bloom = softmax_masked(s + m * np.arange(L)[None, None, :])
    np.testing.assert_allclose(ours, bloom, atol=1e-6)


def test_bias_errors():
    with pytest.raises(ValueError, match="n_heads"):
        P.alibi_slopes(0)
    with pytest.raises(TypeError, match="n_heads"):
        P.alibi_slopes(2.0)
    with pytest.raises(ValueError, match="Lq"):
        P.alibi_bias(2, 5, 3)
