"""Sampling (tinyattn.models.sampling): top-p against a brute-force nucleus, the filter order, the
distribution of draws, and bad logits (NaN, +inf, all -inf rows) raising ValueError."""
import numpy as np
import pytest

from tinyattn.models.sampling import sample_next, sampling_probs, top_k_filter, top_p_filter


def _nucleus_bruteforce(row, p):
    """Smallest prefix of the probability-sorted tokens whose mass reaches p (float64, by loops)."""
    probs = np.exp(row - row.max())
    probs /= probs.sum()
    keep, mass = set(), 0.0
    for i in sorted(range(len(row)), key=lambda j: (-probs[j], j)):
        if mass >= p:
            break
        keep.add(i)
        mass += probs[i]
    return keep


@pytest.mark.parametrize("seed", range(5))
def test_top_p_matches_bruteforce(seed):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((4, 11)) * 2
    for p in (0.05, 0.3, 0.5, 0.9, 0.999, 1.0):
        got = top_p_filter(logits, p)
        for b in range(4):
            kept = set(np.flatnonzero(np.isfinite(got[b])))
            assert kept == _nucleus_bruteforce(logits[b], p), (seed, p, b)
            np.testing.assert_array_equal(got[b, list(kept)], logits[b, list(kept)])


def test_sampling_probs_order_temperature_topk_topp():
    logits = np.array([[2.0, 1.0, 0.5, 0.0, -1.0]])
    # temperature 2 -> z = [1, .5, .25, 0, -.5]; top-3 -> softmax over the first three
    e = np.exp(np.array([1.0, 0.5, 0.25]))
    p3 = e / e.sum()                                   # [0.419, 0.254, 0.198...] -> top-p 0.6 keeps 2
    got = sampling_probs(logits, temperature=2.0, top_k=3, top_p=0.6)
    want = np.zeros(5)
    want[:2] = p3[:2] / p3[:2].sum()
    np.testing.assert_allclose(got[0], want, rtol=1e-12)
    np.testing.assert_array_equal(sampling_probs(logits, temperature=0.0)[0], [1, 0, 0, 0, 0])


def test_sample_next_draws_follow_nucleus():
    rng = np.random.default_rng(0)
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]]))
    draws = np.array([sample_next(logits, 1.0, None, rng, top_p=0.75)[0] for _ in range(20000)])
    freq = np.bincount(draws, minlength=4) / draws.size
    np.testing.assert_allclose(freq, [0.625, 0.375, 0.0, 0.0], atol=0.015)   # 0.5/0.8, 0.3/0.8


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_sample_next_rejects_nan_and_posinf(bad):
    logits = np.zeros((2, 5))
    logits[1, 3] = bad
    for temperature in (0.0, 1.0):
        with pytest.raises(ValueError, match=r"logits\[1, 3\]"):
            sample_next(logits, temperature, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="NaN or \\+inf"):
        sampling_probs(logits)


def test_sample_next_rejects_all_neginf_row_but_allows_banned_tokens():
    logits = np.array([[0.0, -np.inf, 1.0], [-np.inf, -np.inf, -np.inf]])
    with pytest.raises(ValueError, match="row 1 is all -inf"):
        sample_next(logits, 1.0, rng=np.random.default_rng(0))
    ok = np.array([[0.0, -np.inf, 50.0]])                 # a banned token is fine and never drawn
    draws = [int(sample_next(ok, 1.0, rng=np.random.default_rng(s))[0]) for s in range(50)]
    assert set(draws) == {2}


@pytest.mark.parametrize("p", [0.0, -0.1, 1.5, True, "0.5"])
def test_top_p_rejects_bad_p(p):
    with pytest.raises(ValueError, match="top_p"):
        sample_next(np.zeros((1, 4)), 1.0, rng=np.random.default_rng(0), top_p=p)


def test_top_k_filter_keeps_ties():
    np.testing.assert_array_equal(np.isfinite(top_k_filter(np.array([[1.0, 5.0, 3.0, 5.0]]), 1)),
                                  [[False, True, False, True]])
