"""Graded tests for exercises 04.4 (sampling_distribution) and 04.5 (sample_token): compared with
tinyattn.models.sampling and with closed forms on seeded logits (B = 3 rows, V = 11 tokens, every
argument moved away from its default); draws are made deterministic by passing the uniforms u."""
import numpy as np
import pytest

from tinyattn.models.sampling import sampling_probs

MOD = "ch04_transformer"


def _logits(seed, B=3, V=11, spread=2.0):
    return np.random.default_rng(seed).standard_normal((B, V)) * spread


def _check(got, want, what):
    got = np.asarray(got)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    bad = np.argwhere(~np.isclose(got, want, rtol=1e-9, atol=1e-12))
    assert bad.size == 0, (f"{what}: {len(bad)} entries differ, first at {tuple(bad[0])}: "
                           f"got {got[tuple(bad[0])]:.6g}, expected {want[tuple(bad[0])]:.6g}")


@pytest.mark.points(1)
@pytest.mark.parametrize("temperature", [0.7, 1.6])
def test_temperature(impl, temperature):
    ex = impl(MOD)
    seed = 401
    x = _logits(seed)
    _check(ex.sampling_distribution(x, temperature=temperature),
           sampling_probs(x, temperature=temperature), f"seed {seed}, temperature {temperature}")


@pytest.mark.points(1)
def test_temperature_zero_is_one_hot_argmax(impl):
    ex = impl(MOD)
    seed = 402
    x = _logits(seed)
    want = np.zeros_like(x)
    want[np.arange(3), x.argmax(-1)] = 1.0
    _check(ex.sampling_distribution(x, temperature=0.0), want, f"seed {seed}, temperature 0")


@pytest.mark.points(1)
@pytest.mark.parametrize("top_k", [1, 4])
def test_top_k(impl, top_k):
    ex = impl(MOD)
    seed = 411
    x = _logits(seed)
    _check(ex.sampling_distribution(x, temperature=1.3, top_k=top_k),
           sampling_probs(x, temperature=1.3, top_k=top_k), f"seed {seed}, T 1.3, top_k {top_k}")


@pytest.mark.points(2)
@pytest.mark.parametrize("top_p", [0.05, 0.6, 0.93, 1.0])
def test_top_p(impl, top_p):
    ex = impl(MOD)
    seed = 421
    x = _logits(seed)
    _check(ex.sampling_distribution(x, temperature=0.9, top_p=top_p),
           sampling_probs(x, temperature=0.9, top_p=top_p), f"seed {seed}, T 0.9, top_p {top_p}")


@pytest.mark.points(1)
def test_top_p_closed_form(impl):
    """probabilities 0.5, 0.3, 0.15, 0.05: p = 0.6 keeps the first two (0.5 < 0.6 <= 0.8)."""
    ex = impl(MOD)
    x = np.log(np.array([[0.05, 0.5, 0.15, 0.3]]))
    _check(ex.sampling_distribution(x, top_p=0.6), np.array([[0.0, 0.625, 0.0, 0.375]]), "top_p 0.6")
    _check(ex.sampling_distribution(x, top_p=0.5), np.array([[0.0, 1.0, 0.0, 0.0]]), "top_p 0.5")


@pytest.mark.points(2)
@pytest.mark.parametrize("seed", [431, 432])
def test_top_k_then_top_p_with_banned_tokens(impl, seed):
    ex = impl(MOD)
    x = _logits(seed, spread=1.0)
    x[:, 2] = -np.inf                                  # banned token
    want = sampling_probs(x, temperature=1.4, top_k=6, top_p=0.7)
    _check(ex.sampling_distribution(x, temperature=1.4, top_k=6, top_p=0.7), want,
           f"seed {seed}, T 1.4, top_k 6 then top_p 0.7 (top-p on the renormalised top-k distribution)")


def _inverse_cdf(probs, u):
    out = []
    for row, ub in zip(probs, u):
        cdf = 0.0
        for i, pi in enumerate(row):
            cdf += pi
            if pi > 0 and cdf > ub:
                out.append(i)
                break
        else:
            out.append(int(np.flatnonzero(row > 0)[-1]))
    return np.array(out)


@pytest.mark.points(2)
@pytest.mark.parametrize("seed", [441, 442])
def test_sample_token_inverse_cdf(impl, seed):
    ex = impl(MOD)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((8, 11)) * 2.0
    u = rng.random(8)
    kw = dict(temperature=0.8, top_k=7, top_p=0.9)
    got = np.asarray(ex.sample_token(x, u, **kw))
    want = _inverse_cdf(sampling_probs(x, **kw), u)
    assert got.shape == (8,), f"seed {seed}: shape {got.shape}, expected (8,)"
    np.testing.assert_array_equal(got, want, err_msg=f"seed {seed}: tokens for u = {np.round(u, 3)}")


@pytest.mark.points(1)
def test_sample_token_edges(impl):
    ex = impl(MOD)
    x = np.array([[-np.inf, 1.0, 0.0, -np.inf, 2.0, -np.inf]] * 3)
    got = np.asarray(ex.sample_token(x, np.array([0.0, 0.5, 1.0 - 1e-12]), temperature=1.2))
    p = sampling_probs(x, temperature=1.2)[0]
    mid = 1 if p[1] > 0.5 else (2 if p[1] + p[2] > 0.5 else 4)
    np.testing.assert_array_equal(got, [1, mid, 4], err_msg="u = 0 must skip the banned token 0; "
                                  "u -> 1 must give the last allowed token (4), never the banned 5")
    greedy = np.asarray(ex.sample_token(x, np.array([0.3, 0.6, 0.9]), temperature=0.0))
    np.testing.assert_array_equal(greedy, [4, 4, 4], err_msg="temperature 0 is the argmax")
