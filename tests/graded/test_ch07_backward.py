"""Graded tests for exercise 07.3 (the backward pass's dK/dV tile loop in Numba-CUDA), run in the
CUDA simulator (tests/conftest.py sets NUMBA_ENABLE_CUDASIM=1). Each test fixes its seed; the
reference is the dense float64 closed form, computed here independently of the student's code:
P = softmax(S), dV = P^T dO, dS = P * (dO V^T - rowsum(dO * O)), dK = scale dS^T Q."""
import math

import numpy as np
import pytest

MOD = "ch07_flash_gpu"


def _forward_and_grads(q, k, v, dout, causal):
    """float64 (out, lse, dk, dv); bottom-right causal; a row that sees no key: out 0, lse -inf."""
    q, k, v, dout = (np.asarray(x, np.float64) for x in (q, k, v, dout))
    nq, nk, d = q.shape[-2], k.shape[-2], q.shape[-1]
    sc = 1 / math.sqrt(d)
    ok = np.arange(nk)[None, :] <= np.arange(nq)[:, None] + nk - nq if causal else np.ones((nq, nk), bool)
    s = np.where(ok, q @ np.swapaxes(k, -1, -2) * sc, -np.inf)
    m = s.max(-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    e = np.where(ok, np.exp(s - m), 0.0)
    den = e.sum(-1, keepdims=True)
    p = e / np.where(den > 0, den, 1)
    with np.errstate(divide="ignore"):
        lse = np.where(den[..., 0] > 0, m[..., 0] + np.log(np.where(den[..., 0] > 0, den[..., 0], 1)), -np.inf)
    out = p @ v
    dv = np.swapaxes(p, -1, -2) @ dout
    ds = p * (dout @ np.swapaxes(v, -1, -2) - (dout * out).sum(-1, keepdims=True))
    dk = np.swapaxes(ds, -1, -2) @ q * sc
    return out, lse, dk, dv


def _case(seed, lead, nq, nk, d, causal, logit_scale=1.0):
    rng = np.random.default_rng(seed)
    q = (rng.standard_normal((*lead, nq, d)) * logit_scale).astype(np.float32)
    k = (rng.standard_normal((*lead, nk, d)) * logit_scale).astype(np.float32)
    v, = (rng.standard_normal((*lead, nk, d)).astype(np.float32),)
    dout = rng.standard_normal((*lead, nq, d)).astype(np.float32)
    out, lse, dk, dv = _forward_and_grads(q, k, v, dout, causal)
    return q, k, v, dout, out.astype(np.float32), lse.astype(np.float32), dk, dv


def _check(ex, seed, lead, nq, nk, d, causal, logit_scale=1.0, tol=2e-5):
    q, k, v, dout, out, lse, dk_ref, dv_ref = _case(seed, lead, nq, nk, d, causal, logit_scale)
    dk, dv = ex.flash_backward_dkdv(q, k, v, out, lse, dout, is_causal=causal)
    what = f"(seed {seed}, q {q.shape}, k {k.shape}, causal={causal})"
    assert dk.shape == k.shape and dv.shape == v.shape, f"dk {dk.shape}, dv {dv.shape}, expected {k.shape} {what}"
    assert np.all(np.isfinite(dk)) and np.all(np.isfinite(dv)), f"NaN or inf in dk/dv {what}"
    np.testing.assert_allclose(dv, dv_ref, atol=tol, rtol=1e-4, err_msg=f"dV differs from dense float64 {what}")
    np.testing.assert_allclose(dk, dk_ref, atol=tol, rtol=1e-4, err_msg=f"dK differs from dense float64 {what}")


@pytest.mark.points(3)
def test_dkdv_non_causal(impl):
    """Several (batch, head) slices, Nq != Nk both ways, ragged tiles, d not a power of two."""
    ex = impl(MOD)
    _check(ex, 701, (2, 3), 13, 21, 12, False)
    _check(ex, 702, (3,), 21, 13, 8, False)


@pytest.mark.points(3)
def test_dkdv_causal(impl):
    """Bottom-right causal mask, Nq < Nk and Nq > Nk (then the first rows see no key: lse = -inf)."""
    ex = impl(MOD)
    _check(ex, 703, (2, 2), 11, 19, 8, True)
    _check(ex, 704, (1, 3), 19, 9, 12, True)


@pytest.mark.points(1)
def test_dkdv_large_logits(impl):
    """Logits of size ~100: P must come from lse (a raw exp(s) overflows float32)."""
    ex = impl(MOD)
    _check(ex, 705, (2,), 17, 17, 8, True, logit_scale=6.0, tol=5e-4)
