"""Graded tests for chapter 01 (softmax, causal masks, scaled dot-product attention): compare with
tinyattn, plus closed forms and edge cases (huge logits, empty rows).

Inputs are deterministic (``np.random.default_rng(SEED)``, the seed is printed on failure). Sizes never
hide an axis: B != H, Lq != Lk, d != dv, and ``scale`` and ``mask`` are varied from their defaults.
"""
import warnings

import numpy as np
import pytest

from tinyattn import functional as F
from tinyattn.functional.attention import causal_mask as lib_causal_mask
from tinyattn.grading.check import assert_close, assert_equal, assert_shape, check

MOD = "ch01_attention"


@pytest.mark.points(2)
def test_softmax_matches_library_on_any_axis(impl):
    ex = impl(MOD)
    SEED = 1101
    x = np.random.default_rng(SEED).standard_normal((2, 3, 4)) * 3
    for axis in (-1, 0, 1, -2):
        name = f"softmax(x (2, 3, 4), axis={axis})"
        got = assert_shape(name, ex.softmax(x, axis=axis), x.shape, seed=SEED)
        assert_close(name, got, F.softmax(x, axis=axis).data, seed=SEED, atol=1e-12)
    assert_close("softmax(x (2, 3, 4)) with the default axis", ex.softmax(x), F.softmax(x, axis=-1).data,
                 seed=SEED, atol=1e-12)


@pytest.mark.points(1)
def test_softmax_huge_logits_closed_form(impl):
    ex = impl(MOD)
    x = np.array([[1e4, 1e4 - np.log(3.0), -1e4], [-1e4, -1e4, -1e4]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")                # overflow would warn
        got = ex.softmax(x)
    assert_close("softmax of rows [1e4, 1e4 - ln 3, -1e4] and [-1e4, -1e4, -1e4]", got,
                 [[0.75, 0.25, 0.0], [1 / 3, 1 / 3, 1 / 3]], atol=1e-12)


@pytest.mark.points(2)
def test_causal_mask_bottom_right(impl):
    ex = impl(MOD)
    for lq, lk in [(5, 5), (3, 7), (1, 6), (7, 3), (6, 1)]:   # square, decoding (Lq < Lk), Lq > Lk: empty rows
        name = f"causal_mask({lq}, {lk})"
        got = assert_shape(name, ex.causal_mask(lq, lk), (lq, lk))
        check(got.dtype == bool, name, f"dtype {got.dtype}, expected bool")
        assert_equal(name, got, lib_causal_mask(lq, lk))
        check(got[-1].all(), name, "the last query must see every key")


@pytest.mark.points(3)
def test_attention_matches_library(impl):
    ex = impl(MOD)
    SEED = 1103
    rng = np.random.default_rng(SEED)
    B, H, lq, lk, d, dv = 2, 3, 4, 6, 5, 3
    dims = f"[B={B}, H={H}, Lq={lq}, Lk={lk}, d={d}, dv={dv}]"
    q = rng.standard_normal((B, H, lq, d))
    k = rng.standard_normal((B, H, lk, d))
    v = rng.standard_normal((B, H, lk, dv))
    got = assert_shape(f"attention(q, k, v) {dims}", ex.attention(q, k, v), (B, H, lq, dv), seed=SEED)
    assert_close(f"attention(q, k, v) {dims}", got, F.scaled_dot_product_attention(q, k, v).data,
                 seed=SEED, atol=1e-10)
    mask = rng.random((lq, lk)) < 0.7
    mask[:, 0] = True
    scale = 0.37
    assert_close(f"attention(q, k, v, mask (Lq, Lk), scale={scale}) {dims}",
                 ex.attention(q, k, v, mask=mask, scale=scale),
                 F.scaled_dot_product_attention(q, k, v, mask, scale=scale).data, seed=SEED, atol=1e-10)
    mask4 = rng.random((B, H, lq, lk)) < 0.6
    mask4[..., -1] = True
    assert_close(f"attention(q, k, v, mask (B, H, Lq, Lk)) {dims}", ex.attention(q, k, v, mask=mask4),
                 F.scaled_dot_product_attention(q, k, v, mask4).data, seed=SEED, atol=1e-10)


@pytest.mark.points(2)
def test_attention_fully_masked_rows_are_zero(impl):
    ex = impl(MOD)
    SEED = 1104
    rng = np.random.default_rng(SEED)
    q, k, v = rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 5, 2))
    mask = rng.random((2, 4, 5)) < 0.6
    mask[:, 1] = False                                  # query 1 may attend nothing
    mask[:, 2] = True
    name = "attention(q (2, 4, 3), k (2, 5, 3), v (2, 5, 2), mask with row 1 all False)"
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # no 0/0 or inf - inf warnings
        got = ex.attention(q, k, v, mask=mask)
    want = F.scaled_dot_product_attention(q, k, v, mask).data     # row 1 is exactly 0
    assert_close(name, got, want, seed=SEED, atol=1e-10)
