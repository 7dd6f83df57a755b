"""Graded tests for chapter 01 (softmax, causal masks, scaled dot-product attention): compare with
tinyattn on fresh random inputs, plus closed forms and edge cases (huge logits, empty rows)."""
import warnings

import numpy as np
import pytest

from tinyattn import functional as F
from tinyattn.functional.attention import causal_mask as lib_causal_mask

MOD = "ch01_attention"


def _rng():
    return np.random.default_rng()                  # fresh inputs each run


@pytest.mark.points(2)
def test_softmax_matches_library_on_any_axis(impl):
    ex = impl(MOD)
    rng = _rng()
    shape = tuple(int(n) for n in rng.integers(1, 6, size=3))
    x = rng.standard_normal(shape) * 3
    for axis in (-1, 0, 1):
        got = np.asarray(ex.softmax(x, axis=axis))
        assert got.shape == x.shape
        np.testing.assert_allclose(got, F.softmax(x, axis=axis).data, atol=1e-12)
        np.testing.assert_allclose(got.sum(axis=axis), 1.0, atol=1e-12)


@pytest.mark.points(1)
def test_softmax_huge_logits_closed_form(impl):
    ex = impl(MOD)
    x = np.array([[1e4, 1e4 - np.log(3.0), -1e4], [-1e4, -1e4, -1e4]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")                # overflow would warn
        got = np.asarray(ex.softmax(x))
    np.testing.assert_allclose(got, [[0.75, 0.25, 0.0], [1 / 3, 1 / 3, 1 / 3]], atol=1e-12)


@pytest.mark.points(2)
def test_causal_mask_bottom_right(impl):
    ex = impl(MOD)
    rng = _rng()
    n = int(rng.integers(1, 9))
    np.testing.assert_array_equal(ex.causal_mask(n, n), np.tril(np.ones((n, n), bool)))
    for lq, lk in [(int(rng.integers(1, 5)), int(rng.integers(5, 10))),    # decoding, Lq < Lk
                   (int(rng.integers(5, 10)), int(rng.integers(1, 5)))]:   # Lq > Lk: empty rows
        got = np.asarray(ex.causal_mask(lq, lk))
        assert got.shape == (lq, lk) and got.dtype == bool
        np.testing.assert_array_equal(got, lib_causal_mask(lq, lk))
        assert got[-1].all()                            # the last query sees every key


@pytest.mark.points(3)
def test_attention_matches_library(impl):
    ex = impl(MOD)
    rng = _rng()
    B, H = int(rng.integers(1, 3)), int(rng.integers(1, 4))
    lq, lk, d, dv = (int(n) for n in rng.integers(1, 7, size=4))
    q = rng.standard_normal((B, H, lq, d))
    k = rng.standard_normal((B, H, lk, d))
    v = rng.standard_normal((B, H, lk, dv))
    got = np.asarray(ex.attention(q, k, v))
    assert got.shape == (B, H, lq, dv)
    np.testing.assert_allclose(got, F.scaled_dot_product_attention(q, k, v).data, atol=1e-10)
    mask = rng.random((lq, lk)) < 0.7
    mask[:, 0] = True
    scale = float(rng.uniform(0.1, 2.0))
    np.testing.assert_allclose(np.asarray(ex.attention(q, k, v, mask=mask, scale=scale)),
                               F.scaled_dot_product_attention(q, k, v, mask, scale=scale).data,
                               atol=1e-10)


@pytest.mark.points(2)
def test_attention_fully_masked_rows_are_zero(impl):
    ex = impl(MOD)
    rng = _rng()
    q, k, v = rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 5, 2))
    mask = rng.random((2, 4, 5)) < 0.6
    mask[:, 1] = False                                  # query 1 may attend nothing
    mask[:, 2] = True
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # no 0/0 or inf - inf warnings
        got = np.asarray(ex.attention(q, k, v, mask=mask))
    assert np.isfinite(got).all() and np.all(got[:, 1] == 0)
    np.testing.assert_allclose(got, F.scaled_dot_product_attention(q, k, v, mask).data, atol=1e-10)
