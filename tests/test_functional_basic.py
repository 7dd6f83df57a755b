"""Fused functional ops vs direct float64 formulas, finite differences and edge cases."""
import math

import numpy as np
import pytest

import tinyattn as ta
from tinyattn import functional as F


def leaf(rng, shape, dtype=np.float64):
    return ta.Tensor(rng.standard_normal(shape).astype(dtype), requires_grad=True)


def ref_softmax(x, axis):
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 4)])
def test_softmax_log_softmax_every_axis(shape):
    rng = np.random.default_rng(len(shape))
    x = leaf(rng, shape)
    for axis in range(-len(shape), len(shape)):
        np.testing.assert_allclose(F.softmax(x, axis=axis).data, ref_softmax(x.data, axis), rtol=1e-12)
        np.testing.assert_allclose(F.log_softmax(x, axis=axis).data,
                                   np.log(ref_softmax(x.data, axis)), rtol=1e-10, atol=1e-12)
        assert ta.gradcheck(lambda t: F.softmax(t, axis=axis), x)
        assert ta.gradcheck(lambda t: F.log_softmax(t, axis=axis), x)


def test_softmax_huge_logits_and_empty_rows():
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4]])
    p = F.softmax(x).data
    np.testing.assert_array_equal(p, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0]])
    lp = F.log_softmax(x).data
    np.testing.assert_allclose(lp[0], [0.0, -2e4, -1e4])
    assert np.isfinite(lp).all()
    masked = np.full((2, 3), -np.inf)
    masked[0, 1] = 2.0
    np.testing.assert_array_equal(F.softmax(masked).data, [[0, 1, 0], [0, 0, 0]])   # no NaN
    half = F.softmax(np.array([[60000.0, 0.0, -60000.0]], dtype=np.float16)).data
    assert half.dtype == np.float16 and np.isfinite(half).all() and half[0, 0] == 1


def test_softmax_backward_at_saturation_is_finite_and_zero():
    x = ta.Tensor(np.array([[1e4, 0.0, -1e4]]), requires_grad=True)
    (F.softmax(x) * np.array([1.0, 2.0, 3.0])).sum().backward()
    np.testing.assert_allclose(x.grad, 0.0, atol=1e-300)


def ref_cross_entropy(logits, targets, ignore_index):
    """Direct float64 formula: mean over kept rows of log(sum_j exp z_j) - z_t."""
    z = np.asarray(logits, np.float64).reshape(-1, logits.shape[-1])
    t = targets.reshape(-1)
    losses = [math.log(sum(math.exp(v) for v in z[i])) - z[i, t[i]]
              for i in range(len(t)) if t[i] != ignore_index]
    return sum(losses) / len(losses)


@pytest.mark.parametrize("ignore_index", [-100, 2])
def test_cross_entropy_with_ignore_index_matches_formula(ignore_index):
    rng = np.random.default_rng(7)
    logits = leaf(rng, (3, 4, 5))
    targets = rng.integers(0, 5, (3, 4))
    targets[0, :2] = ignore_index if ignore_index < 0 else targets[0, :2]
    loss = F.cross_entropy(logits, targets, ignore_index=ignore_index)
    assert loss.shape == ()
    np.testing.assert_allclose(loss.item(), ref_cross_entropy(logits.data, targets, ignore_index),
                               rtol=1e-12)
    assert ta.gradcheck(lambda z: F.cross_entropy(z, targets, ignore_index=ignore_index), logits)
    loss.backward()
    kept = (targets != ignore_index)
    np.testing.assert_array_equal(logits.grad[~kept], 0.0)       # ignored rows get no gradient
    np.testing.assert_allclose(logits.grad.sum(-1), 0.0, atol=1e-15)  # softmax - onehot sums to 0


def test_cross_entropy_reductions_and_all_ignored():
    rng = np.random.default_rng(3)
    z = leaf(rng, (6, 4))
    t = np.array([0, 3, -100, 1, 2, 2])
    none = F.cross_entropy(z, t, reduction="none")
    assert none.shape == (6,) and none.data[2] == 0.0
    np.testing.assert_allclose(F.cross_entropy(z, t, reduction="sum").item(), none.data.sum())
    assert ta.gradcheck(lambda z: F.cross_entropy(z, t, reduction="none"), z)
    assert ta.gradcheck(lambda z: F.cross_entropy(z, t, reduction="sum"), z)
    allign = F.cross_entropy(z, np.full(6, -100))
    assert allign.item() == 0.0                                   # not NaN
    big = F.cross_entropy(np.array([[1e4, -1e4]]), np.array([1]))
    np.testing.assert_allclose(big.item(), 2e4)


def test_layer_norm_matches_closed_form():
    rng = np.random.default_rng(1)
    x, w, b = leaf(rng, (2, 3, 8)), leaf(rng, (8,)), leaf(rng, (8,))
    y = F.layer_norm(x, w, b, eps=1e-5).data
    X = x.data
    ref = (X - X.mean(-1, keepdims=True)) / np.sqrt(X.var(-1, keepdims=True) + 1e-5) * w.data + b.data
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)
    plain = F.layer_norm(x).data
    np.testing.assert_allclose(plain.mean(-1), 0.0, atol=1e-12)
    np.testing.assert_allclose(plain.var(-1), 1.0 / (1.0 + 1e-5 / X.var(-1)), rtol=1e-10)
    assert ta.gradcheck(lambda x, w, b: F.layer_norm(x, w, b), x, w, b)
    assert ta.gradcheck(lambda x: F.layer_norm(x), x)


def test_rms_norm_matches_formula():
    rng = np.random.default_rng(2)
    x, w = leaf(rng, (4, 6)), leaf(rng, (6,))
    ref = x.data / np.sqrt((x.data ** 2).mean(-1, keepdims=True) + 1e-6) * w.data
    np.testing.assert_allclose(F.rms_norm(x, w).data, ref, rtol=1e-12)
    assert ta.gradcheck(lambda x, w: F.rms_norm(x, w), x, w)
    assert ta.gradcheck(lambda x: F.rms_norm(x), x)


def test_gelu_silu_values_and_gradients():
    rng = np.random.default_rng(4)
    x = leaf(rng, (3, 5))
    exact = np.array([v * 0.5 * (1 + math.erf(v / math.sqrt(2))) for v in x.data.ravel()])
    np.testing.assert_allclose(F.gelu(x).data.ravel(), exact, atol=1e-3)   # tanh form vs erf form
    np.testing.assert_allclose(F.silu(x).data, x.data / (1 + np.exp(-x.data)), rtol=1e-12)
    assert ta.gradcheck(F.gelu, x)
    assert ta.gradcheck(F.silu, x)
    assert np.isfinite(F.silu(np.array([-1e4, 1e4], dtype=np.float32)).data).all()


def test_dropout_mask_scale_and_modes():
    rng = np.random.default_rng(5)
    x = ta.Tensor(np.ones((200, 100)), requires_grad=True)
    y = F.dropout(x, 0.25, np.random.default_rng(11))
    kept = y.data != 0
    np.testing.assert_allclose(y.data[kept], 1 / 0.75)
    assert abs(kept.mean() - 0.75) < 0.01                     # 20000 Bernoulli(0.75) draws
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, kept / 0.75)
    assert F.dropout(x, 0.25, None, training=False) is x
    z = leaf(rng, (3, 4))
    assert ta.gradcheck(lambda t: F.dropout(t, 0.5, np.random.default_rng(3)), z)


def test_masked_fill_and_linear_and_embedding():
    rng = np.random.default_rng(6)
    x = leaf(rng, (2, 3, 4))
    mask = rng.random((3, 4)) < 0.3
    out = F.masked_fill(x, mask, -np.inf)
    np.testing.assert_array_equal(out.data, np.where(mask, -np.inf, x.data))
    assert ta.gradcheck(lambda t: F.masked_fill(t, mask, 0.0), x)
    W, b = leaf(rng, (4, 5)), leaf(rng, (5,))
    np.testing.assert_allclose(F.linear(x, W, b).data, x.data @ W.data + b.data, rtol=1e-12)
    assert ta.gradcheck(lambda x, W, b: F.linear(x, W, b), x, W, b)
    assert ta.gradcheck(lambda x, W: F.linear(x, W), x, W)
    E = leaf(rng, (6, 3))
    tokens = np.array([[0, 5, 5], [2, 0, 4]])        # ids in [0, V): -1 raises (test_bad_input)
    np.testing.assert_array_equal(F.embedding(E, tokens).data, E.data[tokens])
    assert ta.gradcheck(lambda E: F.embedding(E, tokens), E)


def test_float32_in_float32_out():
    rng = np.random.default_rng(8)
    x = leaf(rng, (3, 4), np.float32)
    w = ta.Tensor(np.ones(4, np.float32), requires_grad=True)
    for y in (F.softmax(x), F.log_softmax(x), F.gelu(x), F.silu(x), F.layer_norm(x, w, w),
              F.rms_norm(x, w), F.cross_entropy(x, np.array([0, 1, 2])),
              F.dropout(x, 0.1, np.random.default_rng(0)), F.masked_fill(x, x.data > 0, 0.0)):
        assert y.dtype == np.float32
        x.grad = w.grad = None
        (y * 1.0).sum().backward()
        assert x.grad.dtype == np.float32


FUSED = {
    "softmax": lambda t, ax: F.softmax(t, axis=ax),
    "log_softmax": lambda t, ax: F.log_softmax(t, axis=ax),
    "gelu": lambda t, ax: F.gelu(t),
    "silu": lambda t, ax: F.silu(t),
    "layer_norm": lambda t, ax: F.layer_norm(t),
    "rms_norm": lambda t, ax: F.rms_norm(t),
    "dropout": lambda t, ax: F.dropout(t, 0.3, np.random.default_rng(0)),
    "masked_fill": lambda t, ax: F.masked_fill(t, t.data > 0.5, -2.0),
    "cross_entropy": lambda t, ax: F.cross_entropy(
        t, np.random.default_rng(1).integers(0, t.shape[-1], t.shape[:-1])),
}


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("op", FUSED)
def test_fused_ops_random_shapes_every_axis(op, seed):
    """Finite differences over random shapes (1-4 dims); softmax/log_softmax over every axis."""
    rng = np.random.default_rng(100 + seed)
    shape = tuple(int(s) for s in rng.integers(2, 5, size=rng.integers(1, 5)))
    x = leaf(rng, shape)
    axes = range(-len(shape), len(shape)) if "softmax" in op else [-1]
    for ax in axes:
        assert ta.gradcheck(lambda t: FUSED[op](t, ax), x)


@pytest.mark.parametrize("seed", range(4))
def test_linear_embedding_random_shapes(seed):
    rng = np.random.default_rng(200 + seed)
    lead = tuple(int(s) for s in rng.integers(1, 4, size=rng.integers(1, 4)))
    d_in, d_out, V = (int(v) for v in rng.integers(1, 6, size=3))
    x, W, b = leaf(rng, lead + (d_in,)), leaf(rng, (d_in, d_out)), leaf(rng, (d_out,))
    assert ta.gradcheck(lambda x, W, b: F.linear(x, W, b), x, W, b)
    E = leaf(rng, (V, d_in))
    tokens = rng.integers(0, V, lead)
    assert ta.gradcheck(lambda E: F.embedding(E, tokens), E)


def test_cross_entropy_float16_logits_match_float64():
    rng = np.random.default_rng(9)
    z = (rng.standard_normal((8, 1000)) * 4).astype(np.float16)
    t = rng.integers(0, 1000, 8)
    x = ta.Tensor(z, requires_grad=True)
    loss = F.cross_entropy(x, t)
    assert loss.dtype == np.float16
    np.testing.assert_allclose(float(loss.item()), ref_cross_entropy(z.astype(np.float64), t, -100),
                               rtol=2e-3)
    loss.backward()
    assert x.grad.dtype == np.float16 and np.isfinite(x.grad).all()
