"""Size-0 axes (Lq, Lk, batch, d, dv = 0) in the NumPy flash forward/backward and the Numba kernel.

Expected values come from closed forms, not from the code under test: with no key every row is
0 with lse = -inf; with d = 0 every score is the empty sum 0, so a row is the plain mean of the values
it may see and lse = log(number of keys it sees); empty axes give empty arrays of the right shape.
"""
import math

import numpy as np
import pytest

from tinyattn.flash import flash_attention, flash_attention_backward, flash_attention_numba


def _numba(q, k, v, **kw):
    pytest.importorskip("numba")
    return flash_attention_numba(q, k, v, **kw)


FORWARDS = {"numpy_q_outer": lambda q, k, v, **kw: flash_attention(q, k, v, **kw),
            "numpy_kv_outer": lambda q, k, v, **kw: flash_attention(q, k, v, loop_order="kv_outer", **kw),
            "numba": _numba}
# (q, k, v) shapes: one size-0 axis each
EMPTY = {"Lq=0": ((2, 0, 4), (2, 5, 4), (2, 5, 3)), "batch=0": ((0, 5, 4), (0, 6, 4), (0, 6, 3)),
         "all=0": ((0, 0, 0), (0, 0, 0), (0, 0, 0)), "dv=0, Lq=0": ((3, 0, 2), (3, 4, 2), (3, 4, 0))}


def _inputs(shapes, seed):
    rng = np.random.default_rng(seed)
    return tuple(rng.standard_normal(s).astype(np.float32) for s in shapes)


def _visible(lq, lk, is_causal):
    """(lq, lk) bool: query i sees key j (bottom-right causal: j <= i + lk - lq)."""
    ok = np.ones((lq, lk), bool)
    return ok & (np.arange(lk)[None, :] <= np.arange(lq)[:, None] + lk - lq) if is_causal else ok


@pytest.mark.parametrize("impl", list(FORWARDS))
@pytest.mark.parametrize("case", list(EMPTY))
@pytest.mark.parametrize("is_causal", [False, True])
def test_empty_axes_give_empty_results(impl, case, is_causal):
    q, k, v = _inputs(EMPTY[case], 1)
    out, lse = FORWARDS[impl](q, k, v, is_causal=is_causal, block_q=2, block_k=3)
    assert out.shape == q.shape[:-1] + v.shape[-1:], (case, out.shape)
    assert lse.shape == q.shape[:-1], (case, lse.shape)
    assert out.dtype == np.float32 and out.size == 0


@pytest.mark.parametrize("impl", list(FORWARDS))
@pytest.mark.parametrize("is_causal", [False, True])
def test_no_keys_gives_zero_and_minus_inf(impl, is_causal):
    q, k, v = _inputs(((2, 5, 4), (2, 0, 4), (2, 0, 3)), 2)
    out, lse = FORWARDS[impl](q, k, v, is_causal=is_causal, block_q=2, block_k=3)
    assert out.shape == (2, 5, 3) and lse.shape == (2, 5)
    assert np.all(out == 0) and np.all(np.isneginf(lse))


@pytest.mark.parametrize("impl", list(FORWARDS))
@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("scale", [None, 0.3])
def test_d0_is_the_mean_of_visible_values(impl, is_causal, scale):
    lq, lk = 5, 7
    q, k, v = _inputs(((2, lq, 0), (2, lk, 0), (2, lk, 3)), 3)
    out, lse = FORWARDS[impl](q, k, v, is_causal=is_causal, scale=scale, block_q=2, block_k=3)
    vis = _visible(lq, lk, is_causal)
    count = vis.sum(1)                                   # keys each query sees
    want = (vis[None, :, :, None] * v.astype(np.float64)[:, None]).sum(2) / count[None, :, None]
    np.testing.assert_allclose(out, want, atol=1e-6)
    np.testing.assert_allclose(lse, np.broadcast_to(np.log(count), (2, lq)), atol=1e-6)


@pytest.mark.parametrize("impl", list(FORWARDS))
def test_dv0_keeps_lse(impl):
    lq, lk, d = 4, 6, 3
    q, k, v = _inputs(((2, lq, d), (2, lk, d), (2, lk, 0)), 4)
    out, lse = FORWARDS[impl](q, k, v, is_causal=True, block_q=2, block_k=4)
    assert out.shape == (2, lq, 0)
    s = np.einsum("bid,bjd->bij", q.astype(np.float64), k.astype(np.float64)) / math.sqrt(d)
    s = np.where(_visible(lq, lk, True), s, -np.inf)
    want = np.log(np.exp(s).sum(-1))                     # small logits: the direct formula is safe
    np.testing.assert_allclose(lse, want, atol=2e-6)


@pytest.mark.parametrize("shapes,what", [
    (((2, 0, 4), (2, 5, 4), (2, 5, 3)), "Lq=0"), (((2, 5, 4), (2, 0, 4), (2, 0, 3)), "Lk=0"),
    (((0, 5, 4), (0, 6, 4), (0, 6, 3)), "batch=0"), (((2, 5, 4), (2, 6, 4), (2, 6, 0)), "dv=0")])
@pytest.mark.parametrize("is_causal", [False, True])
def test_backward_with_empty_axes_gives_zero_gradients(shapes, what, is_causal):
    """Each case's output is empty or constant (no key: 0; dv = 0: nothing), so every gradient is 0."""
    q, k, v = _inputs(shapes, 5)
    out, lse = flash_attention(q, k, v, is_causal=is_causal, block_q=2, block_k=3)
    grads = flash_attention_backward(q, k, v, out, lse, np.ones_like(out), is_causal=is_causal,
                                     block_q=2, block_k=3)
    for name, g, x in zip("qkv", grads, (q, k, v)):
        assert g.shape == x.shape and g.dtype == x.dtype, (what, name, g.shape)
        assert np.all(g == 0), (what, name)


def test_backward_d0_gives_dv_from_the_mean():
    """d = 0: out = mean of visible v, so dL/dv_j = sum over queries seeing j of dout_i / count_i."""
    lq, lk = 4, 6
    q, k, v = _inputs(((lq, 0), (lk, 0), (lk, 2)), 6)
    dout = np.random.default_rng(7).standard_normal((lq, 2))
    out, lse = flash_attention(q.astype(np.float64), k, v, is_causal=True, block_q=3, block_k=4)
    dq, dk, dv = flash_attention_backward(q.astype(np.float64), k, v, out, lse, dout, is_causal=True,
                                          block_q=3, block_k=4)
    vis = _visible(lq, lk, True)
    want = (vis / vis.sum(1, keepdims=True)).T @ dout
    assert dq.shape == (lq, 0) and dk.shape == (lk, 0)
    np.testing.assert_allclose(dv, want, atol=1e-6)
