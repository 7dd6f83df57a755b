"""Graded tests for chapter 00 (the tensor core): each exercise is compared with tinyattn's autograd
and with float64 finite differences on fresh random shapes, plus the properties that define it."""
import numpy as np
import pytest

import tinyattn as ta
from tinyattn import functional as F

MOD = "ch00_tensor_core"


def _rng():
    return np.random.default_rng()                     # fresh inputs each run


def _broadcast_pair(rng, max_nd=4):
    """(full, small): small broadcasts to full (leading axes dropped, some sizes set to 1)."""
    full = tuple(int(s) for s in rng.integers(2, 5, size=rng.integers(1, max_nd + 1)))
    small = [s if rng.random() < 0.6 else 1 for s in full[rng.integers(0, len(full)):]]
    return full, tuple(small)


def _autograd_grads(fn, arrays, grad_out):
    """Gradients of fn(*tensors) contracted with grad_out, by tinyattn's autograd."""
    ts = [ta.Tensor(np.array(a, dtype=np.float64), requires_grad=True) for a in arrays]
    fn(*ts).backward(grad_out)
    return [t.grad for t in ts]


def _fd(f, x, eps=1e-6):
    """Reference central differences (independent of the student's numerical_gradient)."""
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += eps
        xm[idx] -= eps
        g[idx] = (f(xp) - f(xm)) / (2 * eps)
    return g


@pytest.mark.points(2)
def test_unbroadcast_matches_autograd(impl):
    ex = impl(MOD)
    rng = _rng()
    for _ in range(5):
        full, small = _broadcast_pair(rng)
        g = rng.standard_normal(full)
        got = ex.unbroadcast(g, small)
        (ref,) = _autograd_grads(lambda t: t * np.ones(full), [np.zeros(small)], g)
        assert got.shape == small
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got.sum(), g.sum(), rtol=1e-10)      # mass is preserved


@pytest.mark.points(1)
def test_unbroadcast_edge_shapes(impl):
    ex = impl(MOD)
    rng = _rng()
    g = rng.standard_normal((3, 4))
    np.testing.assert_array_equal(ex.unbroadcast(g, (3, 4)), g)          # nothing broadcast
    np.testing.assert_allclose(ex.unbroadcast(g, ()), g.sum())            # a scalar operand
    np.testing.assert_allclose(ex.unbroadcast(g, (1, 1)), g.sum(keepdims=True))
    np.testing.assert_allclose(ex.unbroadcast(g, (4,)), g.sum(axis=0))


@pytest.mark.points(2)
def test_mul_backward(impl):
    ex = impl(MOD)
    rng = _rng()
    for _ in range(4):
        full, small = _broadcast_pair(rng)
        a, b = rng.standard_normal(full), rng.standard_normal(small)
        if rng.random() < 0.5:
            a, b = b, a
        g = rng.standard_normal(np.broadcast_shapes(a.shape, b.shape))
        ga, gb = ex.mul_backward(a, b, g)
        ra, rb = _autograd_grads(lambda x, y: x * y, [a, b], g)
        assert ga.shape == a.shape and gb.shape == b.shape
        np.testing.assert_allclose(ga, ra, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(gb, rb, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ga, _fd(lambda x: float(((x * b) * g).sum()), a), atol=1e-6)


MATMUL_CASES = [lambda r, m, k, n: ((m, k), (k, n)),
                lambda r, m, k, n: ((2, m, k), (k, n)),
                lambda r, m, k, n: ((2, 3, m, k), (2, 3, k, n)),
                lambda r, m, k, n: ((2, 1, m, k), (3, k, n)),
                lambda r, m, k, n: ((m, k), (2, k, n)),
                lambda r, m, k, n: ((1, m, k), (2, k, n))]


@pytest.mark.points(1)
@pytest.mark.parametrize("case", range(len(MATMUL_CASES)))
def test_matmul_backward_batched_broadcast(impl, case):
    ex = impl(MOD)
    rng = _rng()
    m, k, n = (int(v) for v in rng.integers(1, 6, size=3))
    sa, sb = MATMUL_CASES[case](rng, m, k, n)
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    g = rng.standard_normal(np.matmul(a, b).shape)
    ga, gb = ex.matmul_backward(a, b, g)
    ra, rb = _autograd_grads(lambda x, y: x @ y, [a, b], g)
    assert ga.shape == a.shape and gb.shape == b.shape
    np.testing.assert_allclose(ga, ra, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gb, rb, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gb, _fd(lambda y: float((np.matmul(a, y) * g).sum()), b), atol=1e-6)


def _jacobian_vjp(p_row, g_row):
    """Explicit Jacobian J_ij = p_i (delta_ij - p_j), then J^T g (float64, one row)."""
    J = np.diag(p_row) - np.outer(p_row, p_row)
    return J.T @ g_row


@pytest.mark.points(2)
def test_softmax_backward_matches_jacobian_and_autograd(impl):
    ex = impl(MOD)
    rng = _rng()
    shape = tuple(int(s) for s in rng.integers(2, 6, size=3))
    axis = int(rng.integers(-3, 3))
    s = rng.standard_normal(shape) * rng.uniform(0.5, 5)
    p = F.softmax(s, axis=axis).data
    g = rng.standard_normal(shape)
    got = ex.softmax_backward(p, g, axis=axis)
    assert got.shape == shape
    pm, gm, om = (np.moveaxis(a, axis, -1).reshape(-1, shape[axis]) for a in (p, g, got))
    for pr, gr, orow in zip(pm, gm, om):
        np.testing.assert_allclose(orow, _jacobian_vjp(pr, gr), rtol=1e-9, atol=1e-12)
    (ref,) = _autograd_grads(lambda t: F.softmax(t, axis=axis), [s], g)
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)


@pytest.mark.points(1)
def test_softmax_backward_saturated_is_finite(impl):
    ex = impl(MOD)
    p = F.softmax(np.array([[1e4, 0.0, -1e4], [5.0, 5.0, 5.0]])).data
    got = ex.softmax_backward(p, np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]))
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got[0], 0.0, atol=1e-12)                  # one-hot: no gradient
    np.testing.assert_allclose(got[1], (np.array([1.0, 2.0, 3.0]) - 2.0) / 3, rtol=1e-12)


@pytest.mark.points(2)
def test_numerical_gradient(impl):
    ex = impl(MOD)
    rng = _rng()
    shape = tuple(int(s) for s in rng.integers(1, 5, size=rng.integers(1, 4)))
    x = rng.standard_normal(shape)
    w = rng.standard_normal(shape)
    x_before = x.copy()
    f = lambda v: float((np.sin(v) * w).sum() + 0.5 * (v ** 2).sum())
    got = ex.numerical_gradient(f, x)
    assert got.shape == shape
    np.testing.assert_allclose(got, np.cos(x_before) * w + x_before, atol=1e-7)   # closed form
    np.testing.assert_array_equal(x, x_before)                                  # x left unchanged
    assert np.abs(ex.numerical_gradient(f, x, eps=1e-3) - got).max() < 1e-5     # O(eps^2) error


@pytest.mark.points(3)
def test_logsumexp_op_forward_backward(impl):
    ex = impl(MOD)
    rng = _rng()
    shape = tuple(int(s) for s in rng.integers(2, 5, size=3))
    axis = int(rng.integers(-3, 3))
    x = ta.Tensor(rng.standard_normal(shape) * 3, requires_grad=True)
    out = ex.logsumexp_op(x, axis=axis)
    assert isinstance(out, ta.Tensor) and out.requires_grad
    ref = np.log(np.exp(x.data).sum(axis=axis))
    np.testing.assert_allclose(out.data, ref, rtol=1e-12)
    assert ta.gradcheck(lambda t: ex.logsumexp_op(t, axis=axis), x)
    g = rng.standard_normal(out.shape)
    out.backward(g)
    np.testing.assert_allclose(x.grad, F.softmax(x.data, axis=axis).data * np.expand_dims(g, axis),
                               rtol=1e-10, atol=1e-14)


@pytest.mark.points(1)
def test_logsumexp_op_is_stable(impl):
    ex = impl(MOD)
    big = ex.logsumexp_op(ta.Tensor(np.array([[1e4, 1e4, -1e4], [-1e4, -1e4, -1e4]])))
    np.testing.assert_allclose(big.data, [1e4 + np.log(2), -1e4 + np.log(3)], rtol=1e-12)
