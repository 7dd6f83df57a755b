"""Graded tests for chapter 11 (linear attention): causal prefix sums against the masked quadratic
form, causality and memory; FAVOR+ features against tinyattn.linear and a Monte-Carlo mean."""
import math

import numpy as np
import pytest

from tinyattn import linear as LA
from tinyattn.grading.proxy import peak_memory

MOD = "ch11_linear"


def masked_quadratic(q, k, v):
    a = np.tril(LA.elu1(q) @ LA.elu1(k).T)
    return a @ v / a.sum(1, keepdims=True)


@pytest.mark.points(3)
@pytest.mark.parametrize("seed,L,d,dv", [(31, 23, 5, 3), (32, 40, 8, 6)])
def test_causal_linear_matches_quadratic(impl, seed, L, d, dv):
    ex = impl(MOD)
    rng = np.random.default_rng(seed)
    q, k, v = rng.standard_normal((L, d)), rng.standard_normal((L, d)), rng.standard_normal((L, dv))
    got = np.asarray(ex.causal_linear_attention(q, k, v))
    want = masked_quadratic(q, k, v)
    assert got.shape == want.shape, f"seed {seed}: shape {got.shape}, expected {want.shape}"
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, err_msg=f"seed {seed}: differs from "
                               "sum_{j<=i} phi(q_i).phi(k_j) v_j / sum_{j<=i} phi(q_i).phi(k_j)")
    np.testing.assert_allclose(got, LA.linear_attention(q, k, v, causal=True), rtol=1e-9,
                               err_msg=f"seed {seed}: differs from tinyattn.linear.linear_attention(causal=True)")


@pytest.mark.points(2)
def test_causal_linear_ignores_the_future(impl):
    ex = impl(MOD)
    seed = 33
    rng = np.random.default_rng(seed)
    q, k, v = rng.standard_normal((30, 4)), rng.standard_normal((30, 4)), rng.standard_normal((30, 2))
    a = np.asarray(ex.causal_linear_attention(q, k, v))
    k2, v2 = k.copy(), v.copy()
    k2[20:] += 5.0
    v2[20:] = -v2[20:]
    b = np.asarray(ex.causal_linear_attention(q, k2, v2))
    np.testing.assert_allclose(a[:20], b[:20], rtol=1e-12, err_msg=f"seed {seed}: changing keys/values at "
                               "positions >= 20 changed outputs before 20 (future leak)")
    assert not np.allclose(a[20:], b[20:]), f"seed {seed}: outputs from 20 on ignore their own keys/values"


@pytest.mark.points(2)
def test_causal_linear_memory_is_linear(impl):
    ex = impl(MOD)
    seed = 34
    rng = np.random.default_rng(seed)
    L = 3000
    q, k, v = rng.standard_normal((L, 4)), rng.standard_normal((L, 4)), rng.standard_normal((L, 3))
    # peak resident memory of the grading worker during the call, as the kernel counts it
    out, peak = peak_memory(ex.causal_linear_attention, q, k, v)
    assert peak < 20e6, (f"seed {seed}: peak extra memory {peak / 1e6:.0f} MB at L={L}; an (L, L) float64 "
                         f"array alone is {L * L * 8 / 1e6:.0f} MB: use running sums")
    np.testing.assert_allclose(np.asarray(out)[-5:], LA.linear_attention(q, k, v, causal=True)[-5:], rtol=1e-9)


@pytest.mark.points(2)
@pytest.mark.parametrize("seed,L,m,d", [(41, 7, 24, 6), (42, 5, 9, 16)])
def test_favor_features_exact(impl, seed, L, m, d):
    ex = impl(MOD)
    rng = np.random.default_rng(seed)
    x, W = rng.standard_normal((L, d)), rng.standard_normal((m, d))
    got = np.asarray(ex.favor_features(x, W))
    want = LA.favor_features(x, W)
    assert got.shape == (L, m), f"seed {seed}: shape {got.shape}, expected ({L}, {m})"
    assert np.all(got > 0), f"seed {seed}: features must be positive"
    np.testing.assert_allclose(got, want, rtol=1e-10, err_msg=f"seed {seed}: features differ from FAVOR+ "
                               "(check the scale x / d**0.25, the factor depending on |x_bar|, and the constant)")


@pytest.mark.points(2)
def test_favor_features_unbiased(impl):
    ex = impl(MOD)
    seed = 43
    rng = np.random.default_rng(seed)
    d, m, reps = 8, 32, 1500
    x = 0.6 * rng.standard_normal((3, d))
    exact = np.exp(x @ x.T / math.sqrt(d))
    ests = np.empty((reps, 3, 3))
    for r in range(reps):
        f = np.asarray(ex.favor_features(x, rng.standard_normal((m, d))))
        ests[r] = f @ f.T
    mean, se = ests.mean(0), ests.std(0, ddof=1) / math.sqrt(reps)
    z = np.abs(mean - exact) / se
    assert np.all(z < 5), (f"seed {seed}: Monte-Carlo mean of phi(q).phi(k) {np.round(mean, 3).tolist()} vs "
                           f"exp(q.k/sqrt d) {np.round(exact, 3).tolist()}: off by {z.max():.1f} standard errors (biased)")
