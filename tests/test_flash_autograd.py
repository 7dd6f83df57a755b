"""flash_sdpa: one autograd node, the "flash" backend of F.scaled_dot_product_attention."""
import numpy as np
import pytest

import tinyattn as ta
from tinyattn import functional as F
from tinyattn.flash import flash_sdpa


def _grads(fn, q, k, v, w, **kw):
    qt, kt, vt = (ta.Tensor(x.copy(), requires_grad=True) for x in (q, k, v))
    out = fn(qt, kt, vt, **kw)
    (out * ta.Tensor(w)).sum().backward()
    return out.data, qt.grad, kt.grad, vt.grad


@pytest.mark.parametrize("hq,hkv,lq,lk,causal", [(4, 4, 9, 9, True), (4, 2, 7, 12, True),
                                                 (6, 1, 11, 5, True), (2, 2, 6, 10, False)])
def test_flash_sdpa_matches_dense_backend(hq, hkv, lq, lk, causal):
    rng = np.random.default_rng(hq * 7 + lk)
    q = rng.standard_normal((2, hq, lq, 8))
    k = rng.standard_normal((2, hkv, lk, 8))
    v = rng.standard_normal((2, hkv, lk, 5))
    w = rng.standard_normal((2, hq, lq, 5))
    dense = _grads(F.scaled_dot_product_attention, q, k, v, w, is_causal=causal)
    flash = _grads(flash_sdpa, q, k, v, w, is_causal=causal, block_q=4, block_k=3)
    via_f = _grads(F.scaled_dot_product_attention, q, k, v, w, is_causal=causal, backend="flash")
    for a, b, c in zip(dense, flash, via_f):
        assert a.shape == b.shape == c.shape
        np.testing.assert_allclose(b, a, atol=1e-11)
        np.testing.assert_allclose(c, a, atol=1e-11)


def test_flash_sdpa_gradcheck():
    rng = np.random.default_rng(3)
    q = ta.Tensor(rng.standard_normal((1, 2, 5, 3)), requires_grad=True)
    k = ta.Tensor(rng.standard_normal((1, 1, 7, 3)), requires_grad=True)
    v = ta.Tensor(rng.standard_normal((1, 1, 7, 2)), requires_grad=True)
    assert ta.gradcheck(lambda a, b, c: flash_sdpa(a, b, c, is_causal=True, block_q=2, block_k=3),
                        q, k, v)


def test_flash_sdpa_is_one_node_and_float32():
    rng = np.random.default_rng(4)
    q, k, v = (ta.Tensor(rng.standard_normal((1, 2, 6, 4)).astype(np.float32), requires_grad=True)
               for _ in range(3))
    out = flash_sdpa(q, k, v, is_causal=True)
    assert out.dtype == np.float32 and out.shape == (1, 2, 6, 4)
    assert {id(p) for p in out._parents} == {id(q), id(k), id(v)}   # q, k, v feed ONE node
    out.sum().backward()
    assert q.grad.dtype == np.float32 and np.isfinite(q.grad).all()


def test_unsupported_arguments_raise():
    x = np.zeros((1, 1, 4, 2))
    with pytest.raises(NotImplementedError, match="mask"):
        F.scaled_dot_product_attention(x, x, x, np.ones((4, 4), bool), backend="flash")
    with pytest.raises(NotImplementedError, match="bias"):
        flash_sdpa(x, x, x, bias=np.zeros((4, 4)))
    with pytest.raises(ValueError, match="multiple"):
        flash_sdpa(np.zeros((1, 3, 4, 2)), np.zeros((1, 2, 4, 2)), np.zeros((1, 2, 4, 2)))


def test_tiny_lm_trains_with_flash_and_matches_dense():
    """Same weights: the flash-backed LM gives the dense LM's loss and gradients; it trains."""
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 11, size=(2, 12))
    grads = {}
    for backend in ("dense", "flash"):
        model = ta.models.TransformerLM(11, 16, 1, 2, 16, positional="rope", backend=backend,
                                        rng=np.random.default_rng(1))
        loss = F.cross_entropy(model(tokens[:, :-1]), tokens[:, 1:])
        loss.backward()
        grads[backend] = (float(loss.data), [p.grad.copy() for p in model.parameters()])
    assert grads["flash"][0] == pytest.approx(grads["dense"][0], rel=1e-5)
    for gd, gf in zip(grads["dense"][1], grads["flash"][1]):
        np.testing.assert_allclose(gf, gd, atol=1e-5, rtol=1e-3)
    model = ta.models.TransformerLM(11, 16, 1, 2, 16, positional="rope", backend="flash",
                                    rng=np.random.default_rng(1))
    opt = ta.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = F.cross_entropy(model(tokens[:, :-1]), tokens[:, 1:])
        loss.backward()
        opt.step()
        losses.append(float(loss.data))
    assert losses[-1] < 0.7 * losses[0], losses
