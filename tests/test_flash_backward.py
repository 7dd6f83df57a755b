"""FlashAttention backward (recompute P from lse) against dense float64 gradients and finite differences."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinyattn.flash import flash_attention, flash_attention_backward


def dense_grads(q, k, v, dout, is_causal=False, scale=None):
    """Plain float64 gradients of out = softmax(S) V through the full N x N matrices."""
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = np.einsum("...id,...jd->...ij", q, k) * scale
    lq, lk = s.shape[-2:]
    allowed = np.ones((lq, lk), bool)
    if is_causal:
        allowed = np.arange(lk)[None, :] <= np.arange(lq)[:, None] + (lk - lq)
    s = np.where(allowed, s, -np.inf)
    m = s.max(-1, keepdims=True)
    e = np.where(allowed, np.exp(s - np.where(np.isfinite(m), m, 0)), 0.0)
    tot = e.sum(-1, keepdims=True)
    p = e / np.where(tot == 0, 1, tot)
    dv = np.einsum("...ij,...id->...jd", p, dout)                     # dV = P^T dO
    dp = np.einsum("...id,...jd->...ij", dout, v)                     # dP = dO V^T
    ds = p * (dp - (p * dp).sum(-1, keepdims=True))                   # softmax Jacobian
    dq = np.einsum("...ij,...jd->...id", ds, k) * scale
    dk = np.einsum("...ij,...id->...jd", ds, q) * scale
    return dq, dk, dv


@st.composite
def case(draw):
    batch = draw(st.sampled_from([(), (2,), (2, 2)]))
    lq, lk = draw(st.integers(1, 30)), draw(st.integers(1, 30))
    d, dv = draw(st.integers(1, 8)), draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    return tuple(rng.standard_normal(batch + shp) for shp in ((lq, d), (lk, d), (lk, dv), (lq, dv)))


@settings(deadline=None, max_examples=40)
@given(c=case(), bq=st.integers(1, 40), bk=st.integers(1, 40), is_causal=st.booleans(),
       loop_order=st.sampled_from(["q_outer", "kv_outer"]))
def test_backward_matches_dense_float64(c, bq, bk, is_causal, loop_order):
    q, k, v, dout = c
    out, lse = flash_attention(q, k, v, is_causal=is_causal, block_q=bq, block_k=bk,
                               loop_order=loop_order)
    got = flash_attention_backward(q, k, v, out, lse, dout, is_causal=is_causal, block_q=bk,
                                   block_k=bq)               # backward blocks need not match forward
    for g, r, x in zip(got, dense_grads(q, k, v, dout, is_causal), (q, k, v)):
        assert g.shape == x.shape and not np.isnan(g).any()
        np.testing.assert_allclose(g, r, atol=1e-11, rtol=1e-9)


@pytest.mark.parametrize("is_causal,shape", [(False, (7, 5)), (True, (6, 9)), (True, (9, 4))])
def test_backward_matches_finite_differences(is_causal, shape):
    lq, lk = shape
    rng = np.random.default_rng(7)
    q, k, v = rng.standard_normal((lq, 3)), rng.standard_normal((lk, 3)), rng.standard_normal((lk, 2))
    w = rng.standard_normal((lq, 2))                                  # loss = sum(out * w)

    def loss(q_, k_, v_):
        return float((flash_attention(q_, k_, v_, is_causal=is_causal, block_q=2, block_k=3)[0] * w).sum())

    out, lse = flash_attention(q, k, v, is_causal=is_causal, block_q=2, block_k=3)
    grads = flash_attention_backward(q, k, v, out, lse, w, is_causal=is_causal, block_q=4, block_k=2)
    eps = 1e-6
    for which, g in enumerate(grads):
        args = [q, k, v]
        num = np.zeros_like(args[which])
        for idx in np.ndindex(*num.shape):
            plus = [a.copy() for a in args]; plus[which][idx] += eps
            minus = [a.copy() for a in args]; minus[which][idx] -= eps
            num[idx] = (loss(*plus) - loss(*minus)) / (2 * eps)      # central difference
        np.testing.assert_allclose(g, num, atol=1e-7, rtol=1e-5)


def test_backward_rows_without_keys_have_zero_grads():
    rng = np.random.default_rng(8)
    q, k, v = rng.standard_normal((8, 4)), rng.standard_normal((3, 4)), rng.standard_normal((3, 2))
    out, lse = flash_attention(q, k, v, is_causal=True, block_q=3, block_k=2)
    dq, dk, dv = flash_attention_backward(q, k, v, out, lse, np.ones((8, 2)), is_causal=True,
                                          block_q=3, block_k=2)
    assert np.all(dq[:5] == 0)                                        # rows 0..4 see no key
    for g, r in zip((dq, dk, dv), dense_grads(q, k, v, np.ones((8, 2)), True)):
        assert np.isfinite(g).all()
        np.testing.assert_allclose(g, r, atol=1e-12)


def test_backward_float16_and_float32():
    rng = np.random.default_rng(9)
    for dt, tol in ((np.float32, 1e-5), (np.float16, 5e-3)):
        q, k, v, do = (rng.standard_normal((2, 20, 8)).astype(dt) for _ in range(4))
        out, lse = flash_attention(q, k, v, is_causal=True, block_q=8, block_k=8)
        grads = flash_attention_backward(q, k, v, out, lse, do, is_causal=True, block_q=8, block_k=8)
        ref = dense_grads(*(x.astype(np.float64) for x in (q, k, v, do)), is_causal=True)
        for g, r in zip(grads, ref):
            assert g.dtype == dt and np.isfinite(g).all()
            np.testing.assert_allclose(g.astype(np.float64), r, atol=tol * 4, rtol=tol * 4)


def test_backward_huge_logits_finite():
    rng = np.random.default_rng(10)
    q, k, v, do = (rng.standard_normal((16, 4)) for _ in range(4))
    q[:, 0] *= 1e4
    out, lse = flash_attention(q, k, v, block_q=5, block_k=3)
    grads = flash_attention_backward(q, k, v, out, lse, do, block_q=5, block_k=3)
    for g, r in zip(grads, dense_grads(q, k, v, do)):
        assert np.isfinite(g).all()
        np.testing.assert_allclose(g, r, atol=1e-8, rtol=1e-6)


def test_backward_bad_shapes():
    q = np.zeros((5, 4))
    out, lse = flash_attention(q, q, q)
    with pytest.raises(ValueError, match="dout"):
        flash_attention_backward(q, q, q, out, lse, np.zeros((6, 4)))
    with pytest.raises(ValueError, match="lse"):
        flash_attention_backward(q, q, q, out, np.zeros(4), out)
