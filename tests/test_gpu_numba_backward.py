"""The Numba-CUDA FlashAttention backward in the CUDA simulator (tests/conftest.py sets
NUMBA_ENABLE_CUDASIM=1): against chapter 06's NumPy flash_attention_backward in float64 and a dense
float64 closed form (P = softmax(S); dV = P^T dO; dS = P * (dO V^T - rowsum(dO * O)); dQ = scale dS K;
dK = scale dS^T Q); tiny sizes, causal and not, ragged N, Nq != Nk, rows with no key."""
import os

import numpy as np
import pytest

pytest.importorskip("numba")
if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") in ("", "0"):
    pytest.skip("these tests run the kernels in the CUDA simulator", allow_module_level=True)

from tinyattn.gpu import numba_flash_attention  # noqa: E402
from tinyattn.gpu import numba_flash_backward  # noqa: E402
from tinyattn.gpu.numba_backward import BwdConfig  # noqa: E402


def rand(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def dense_grads(q, k, v, dout, causal):
    """float64 closed-form gradients of softmax(q k^T / sqrt(d)) v (bottom-right causal)."""
    q, k, v, dout = (x.astype(np.float64) for x in (q, k, v, dout))
    nq, nk, d = q.shape[-2], k.shape[-2], q.shape[-1]
    sc = 1 / np.sqrt(d)
    s = q @ np.swapaxes(k, -1, -2) * sc
    allowed = np.ones((nq, nk), bool)
    if causal:
        allowed = np.arange(nk)[None, :] <= np.arange(nq)[:, None] + nk - nq
    s = np.where(allowed, s, -np.inf)
    m = s.max(-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    e = np.exp(s - m)
    den = e.sum(-1, keepdims=True)
    p = np.where(den > 0, e / np.where(den > 0, den, 1), 0)
    o = p @ v
    dv = np.swapaxes(p, -1, -2) @ dout
    ds = p * (dout @ np.swapaxes(v, -1, -2) - (dout * o).sum(-1, keepdims=True))
    return ds @ k * sc, np.swapaxes(ds, -1, -2) @ q * sc, dv


def run(q, k, v, dout, causal, config=None):
    out, lse = numba_flash_attention(q, k, v, is_causal=causal, return_lse=True)
    return numba_flash_backward(q, k, v, out, lse, dout, is_causal=causal, config=config)


@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("lead,nq,nk,d", [((2,), 19, 19, 8), ((1, 2), 11, 21, 8), ((1,), 21, 11, 16),
                                          ((1,), 1, 7, 4)])
def test_matches_chapter06_and_dense(is_causal, lead, nq, nk, d):
    from tinyattn.flash import flash_attention, flash_attention_backward

    rng = np.random.default_rng(10 + nq)
    q, k, v = rand(rng, *lead, nq, d), rand(rng, *lead, nk, d), rand(rng, *lead, nk, d)
    dout = rand(rng, *lead, nq, d)
    got = run(q, k, v, dout, is_causal)
    q64, k64, v64, do64 = (x.astype(np.float64) for x in (q, k, v, dout))
    o64, l64 = flash_attention(q64, k64, v64, is_causal=is_causal)
    ref06 = flash_attention_backward(q64, k64, v64, o64, l64, do64, is_causal=is_causal)
    dense = dense_grads(q, k, v, dout, is_causal)
    for name, g, r6, rd, x in zip(("dq", "dk", "dv"), got, ref06, dense, (q, k, v)):
        assert g.shape == x.shape and g.dtype == np.float32, name
        np.testing.assert_allclose(g, r6, atol=1e-5, rtol=1e-4, err_msg=f"{name} vs chapter 06")
        np.testing.assert_allclose(g, rd, atol=1e-5, rtol=1e-4, err_msg=f"{name} vs dense float64")


@pytest.mark.parametrize("cfg", [BwdConfig(4, 4, 1, 3), BwdConfig(2, 8, 2, 1)])
def test_other_tile_shapes(cfg):
    """Tiles of unequal sides (owner rows != tile rows) with ragged ends, causal."""
    rng = np.random.default_rng(20)
    q, k, v, dout = rand(rng, 2, 17, 8), rand(rng, 2, 23, 8), rand(rng, 2, 23, 8), rand(rng, 2, 17, 8)
    got = run(q, k, v, dout, True, config=cfg)
    for name, g, r in zip(("dq", "dk", "dv"), got, dense_grads(q, k, v, dout, True)):
        np.testing.assert_allclose(g, r, atol=1e-5, rtol=1e-4, err_msg=name)


def test_rows_without_keys_and_huge_logits():
    """Causal Nq > Nk: the first rows see no key (lse = -inf) and must give dq = 0, no NaN;
    logits of size ~1e3 stay finite."""
    rng = np.random.default_rng(21)
    q, k, v = rand(rng, 1, 12, 8, scale=30.0), rand(rng, 1, 5, 8, scale=30.0), rand(rng, 1, 5, 8)
    dout = rand(rng, 1, 12, 8)
    dq, dk, dv = run(q, k, v, dout, True)
    assert all(np.all(np.isfinite(g)) for g in (dq, dk, dv))
    assert np.all(dq[0, :7] == 0)
    for name, g, r in zip(("dq", "dk", "dv"), (dq, dk, dv), dense_grads(q, k, v, dout, True)):
        np.testing.assert_allclose(g, r, atol=2e-3, rtol=2e-4, err_msg=name)


def test_finite_differences():
    """One directional derivative of L = sum(out * W) against central differences in float64."""
    from tinyattn.flash import flash_attention

    rng = np.random.default_rng(22)
    q, k, v, w = rand(rng, 1, 9, 8), rand(rng, 1, 13, 8), rand(rng, 1, 13, 8), rand(rng, 1, 9, 8)
    dq, dk, dv = run(q, k, v, w, True)
    dirs = [rng.standard_normal(x.shape) for x in (q, k, v)]
    eps = 1e-5

    def loss(t):
        xs = [x.astype(np.float64) + t * e for x, e in zip((q, k, v), dirs)]
        return float((flash_attention(*xs, is_causal=True)[0] * w).sum())
    fd = (loss(eps) - loss(-eps)) / (2 * eps)
    an = sum(float((g.astype(np.float64) * e).sum()) for g, e in zip((dq, dk, dv), dirs))
    assert abs(fd - an) < 1e-4 * max(1.0, abs(fd)), (fd, an)


def test_bad_inputs_raise():
    x = np.zeros((1, 4, 8), np.float32)
    lse = np.zeros((1, 4), np.float32)
    with pytest.raises(ValueError, match=r"lse: expected shape \(1, 4\)"):
        numba_flash_backward(x, x, x, x, np.zeros((1, 5), np.float32), x)
    with pytest.raises(TypeError, match="dout must be float32"):
        numba_flash_backward(x, x, x, x, lse, x.astype(np.float64))
    with pytest.raises(ValueError, match=r"out: expected shape"):
        numba_flash_backward(x, x, x, np.zeros((1, 3, 8), np.float32), lse, x)
    g = numba_flash_backward(x[:, :0], x, x, x[:, :0], lse[:, :0], x[:, :0])
    assert [a.shape for a in g] == [(1, 0, 8), (1, 4, 8), (1, 4, 8)] and not g[1].any()
