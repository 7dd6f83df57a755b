"""Graded tests for exercise 01.4 (attention_backward): compared with tinyattn's autograd through
F.scaled_dot_product_attention and with float64 finite differences, on seeded non-square sizes
(Lq != Lk, d != dv, several heads) with masks, a non-default scale and fully masked rows."""
import warnings

import numpy as np
import pytest

import tinyattn as ta
from tinyattn import functional as F
from tinyattn.functional.attention import causal_mask as lib_causal_mask

MOD = "ch01_attention"


def _inputs(seed, B=2, H=3, lq=5, lk=7, d=4, dv=6):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((B, H, lq, d))
    k = rng.standard_normal((B, H, lk, d))
    v = rng.standard_normal((B, H, lk, dv))
    dout = rng.standard_normal((B, H, lq, dv))
    return rng, q, k, v, dout


def _library_grads(q, k, v, dout, mask=None, scale=None):
    tq, tk, tv = (ta.Tensor(a.copy(), requires_grad=True) for a in (q, k, v))
    F.scaled_dot_product_attention(tq, tk, tv, mask, scale=scale).backward(dout)
    return tq.grad, tk.grad, tv.grad


def _assert_grads_match(got, want, seed, what):
    assert isinstance(got, tuple) and len(got) == 3, f"return (dq, dk, dv), got {type(got).__name__}"
    for name, g, w in zip(("dq", "dk", "dv"), got, want):
        g = np.asarray(g)
        assert g.shape == w.shape, f"seed {seed}, {what}: {name} has shape {g.shape}, expected {w.shape}"
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-11,
                                   err_msg=f"seed {seed}, {what}: {name} differs from tinyattn's gradient")


@pytest.mark.points(2)
@pytest.mark.parametrize("seed", [101, 102])
def test_backward_no_mask_default_scale(impl, seed):
    ex = impl(MOD)
    _, q, k, v, dout = _inputs(seed)
    _assert_grads_match(ex.attention_backward(q, k, v, dout), _library_grads(q, k, v, dout), seed,
             "no mask, scale 1/sqrt(d)")


@pytest.mark.points(2)
@pytest.mark.parametrize("seed", [111, 112])
def test_backward_random_mask_and_scale(impl, seed):
    ex = impl(MOD)
    rng, q, k, v, dout = _inputs(seed, lq=6, lk=4, d=5, dv=3)
    mask = rng.random((2, 3, 6, 4)) < 0.6
    mask[..., 0, :] = True                       # one full row, and at least one key elsewhere
    mask[..., 1:, 1] = True
    scale = 0.37
    _assert_grads_match(ex.attention_backward(q, k, v, dout, mask=mask, scale=scale),
             _library_grads(q, k, v, dout, mask, scale), seed, "random (B, H, Lq, Lk) mask, scale 0.37")


@pytest.mark.points(1)
def test_backward_bottom_right_causal(impl):
    ex = impl(MOD)
    seed = 121
    _, q, k, v, dout = _inputs(seed, lq=3, lk=8, d=6, dv=5)
    mask = lib_causal_mask(3, 8)                 # (Lq, Lk), broadcast over B and H
    _assert_grads_match(ex.attention_backward(q, k, v, dout, mask=mask),
             _library_grads(q, k, v, dout, mask), seed, "causal mask (3, 8) broadcast over B, H")


@pytest.mark.points(2)
def test_backward_fully_masked_rows_are_zero_and_finite(impl):
    ex = impl(MOD)
    seed = 131
    rng, q, k, v, dout = _inputs(seed, lq=5, lk=6, d=3, dv=4)
    mask = rng.random((5, 6)) < 0.5
    mask[:, 2] = True
    mask[3] = False                              # query 3 may attend nothing
    with warnings.catch_warnings():
        warnings.simplefilter("error")           # no 0/0 or inf - inf warnings
        got = ex.attention_backward(q, k, v, dout, mask=mask, scale=0.8)
    assert all(np.isfinite(np.asarray(g)).all() for g in got), f"seed {seed}: NaN or inf in the gradients"
    np.testing.assert_array_equal(np.asarray(got[0])[..., 3, :], 0.0,
                                  err_msg=f"seed {seed}: dq of the fully masked query 3 must be 0")
    _assert_grads_match(got, _library_grads(q, k, v, dout, mask, 0.8), seed, "a fully masked query row")


@pytest.mark.points(1)
def test_backward_matches_finite_differences(impl):
    ex = impl(MOD)
    seed = 141
    rng, q, k, v, dout = _inputs(seed, B=1, H=2, lq=3, lk=4, d=2, dv=3)
    mask = rng.random((3, 4)) < 0.7
    mask[:, 0] = True
    scale = 1.3

    def loss(q_, k_, v_):
        s = q_ @ np.swapaxes(k_, -1, -2) * scale
        s = np.where(mask, s, -np.inf)
        p = np.exp(s - s.max(-1, keepdims=True))
        return float(((p / p.sum(-1, keepdims=True) @ v_) * dout).sum())

    got = ex.attention_backward(q, k, v, dout, mask=mask, scale=scale)
    args = [q, k, v]
    for which, name in enumerate(("dq", "dk", "dv")):
        fd = np.zeros_like(args[which])
        for idx in np.ndindex(fd.shape):
            plus, minus = [a.copy() for a in args], [a.copy() for a in args]
            plus[which][idx] += 1e-6
            minus[which][idx] -= 1e-6
            fd[idx] = (loss(*plus) - loss(*minus)) / 2e-6
        np.testing.assert_allclose(np.asarray(got[which]), fd, rtol=1e-5, atol=1e-7,
                                   err_msg=f"seed {seed}: {name} vs central finite differences")
