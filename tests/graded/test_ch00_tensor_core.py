"""Graded tests for chapter 00 (the tensor core): each exercise is compared with tinyattn's autograd
and with float64 finite differences, plus the properties that define it.

Inputs are deterministic: each test draws from ``np.random.default_rng(SEED)`` with its own seed (printed
in every failure message), so a score never changes between runs. Sizes are chosen so that no axis hides
another (all different, none 1 unless broadcasting needs it) and every argument is varied from its default.
"""
import functools

import numpy as np
import pytest

import tinyattn as ta
from tinyattn import functional as F
from tinyattn.grading.check import assert_close, assert_equal, assert_shape, check
from tinyattn.grading.proxy import scenario

MOD = "ch00_tensor_core"

# (full shape, operand shape): leading axes dropped, size-1 axes stretched, or both
BROADCAST_CASES = [((2, 3, 4), (3, 1)), ((2, 3, 4), (4,)), ((2, 3, 4), (2, 1, 4)),
                   ((5, 2, 3, 4), (1, 3, 1)), ((3, 4), (1,)), ((4, 1, 3), (2, 1))]


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
    SEED = 1001
    rng = np.random.default_rng(SEED)
    for full, small in BROADCAST_CASES:
        g = rng.standard_normal(np.broadcast_shapes(full, small))
        name = f"unbroadcast(grad {g.shape}, shape={small})"
        got = assert_shape(name, ex.unbroadcast(g, small), small, seed=SEED)
        (ref,) = _autograd_grads(lambda t: t * np.ones(full), [np.zeros(small)], g)
        assert_close(name, got, ref, seed=SEED, atol=1e-12, rtol=1e-12)


@pytest.mark.points(1)
def test_unbroadcast_edge_shapes(impl):
    ex = impl(MOD)
    SEED = 1002
    g = np.random.default_rng(SEED).standard_normal((3, 4))
    assert_equal("unbroadcast(grad (3, 4), shape=(3, 4)) (nothing broadcast)", ex.unbroadcast(g, (3, 4)), g,
                 seed=SEED)
    assert_close("unbroadcast(grad (3, 4), shape=()) (a scalar operand)", ex.unbroadcast(g, ()), g.sum(),
                 seed=SEED, atol=1e-12)
    assert_close("unbroadcast(grad (3, 4), shape=(1, 1))", ex.unbroadcast(g, (1, 1)), g.sum(keepdims=True),
                 seed=SEED, atol=1e-12)
    assert_close("unbroadcast(grad (3, 4), shape=(4,))", ex.unbroadcast(g, (4,)), g.sum(axis=0),
                 seed=SEED, atol=1e-12)


@pytest.mark.points(2)
def test_mul_backward(impl):
    ex = impl(MOD)
    SEED = 1003
    rng = np.random.default_rng(SEED)
    for n, (full, small) in enumerate(BROADCAST_CASES):
        sa, sb = (full, small) if n % 2 == 0 else (small, full)        # the small operand on either side
        a, b = rng.standard_normal(sa), rng.standard_normal(sb)
        g = rng.standard_normal(np.broadcast_shapes(sa, sb))
        out = ex.mul_backward(a, b, g)
        check(isinstance(out, tuple) and len(out) == 2, "mul_backward", "must return (grad_a, grad_b)", seed=SEED)
        ra, rb = _autograd_grads(lambda x, y: x * y, [a, b], g)
        name = f"mul_backward(a {sa}, b {sb})"
        assert_close(name + " grad_a", out[0], ra, seed=SEED, rtol=1e-10, atol=1e-12)
        assert_close(name + " grad_b", out[1], rb, seed=SEED, rtol=1e-10, atol=1e-12)
        assert_close(name + " grad_a vs finite differences", out[0],
                     _fd(lambda x: float(((x * b) * g).sum()), a), seed=SEED, atol=1e-6)


# batch axes: none, a's only, equal, both broadcast (1 vs 3, 2 vs missing), b's only, a's size-1 axis
MATMUL_CASES = [((3, 4), (4, 2)), ((2, 3, 4), (4, 2)), ((2, 5, 3, 4), (2, 5, 4, 2)),
                ((2, 1, 3, 4), (3, 4, 2)), ((3, 4), (2, 4, 2)), ((1, 3, 4), (5, 4, 2))]


@pytest.mark.points(1)
@pytest.mark.parametrize("case", range(len(MATMUL_CASES)))
def test_matmul_backward_batched_broadcast(impl, case):
    ex = impl(MOD)
    SEED = 1010 + case
    rng = np.random.default_rng(SEED)
    sa, sb = MATMUL_CASES[case]                       # m=3, k=4, n=2: a transpose changes the shape
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    g = rng.standard_normal(np.matmul(a, b).shape)
    out = ex.matmul_backward(a, b, g)
    check(isinstance(out, tuple) and len(out) == 2, "matmul_backward", "must return (grad_a, grad_b)", seed=SEED)
    ra, rb = _autograd_grads(lambda x, y: x @ y, [a, b], g)
    name = f"matmul_backward(a {sa}, b {sb})"
    assert_close(name + " grad_a", out[0], ra, seed=SEED, rtol=1e-10, atol=1e-12)
    assert_close(name + " grad_b", out[1], rb, seed=SEED, rtol=1e-10, atol=1e-12)
    assert_close(name + " grad_b vs finite differences", out[1],
                 _fd(lambda y: float((np.matmul(a, y) * g).sum()), b), seed=SEED, atol=1e-6)


def _jacobian_vjp(p_row, g_row):
    """Explicit Jacobian J_ij = p_i (delta_ij - p_j), then J^T g (float64, one row)."""
    J = np.diag(p_row) - np.outer(p_row, p_row)
    return J.T @ g_row


@pytest.mark.points(2)
def test_softmax_backward_matches_jacobian_and_autograd(impl):
    ex = impl(MOD)
    SEED = 1020
    rng = np.random.default_rng(SEED)
    shape = (3, 4, 5)
    for axis in (0, 1, -1, -2):
        s = rng.standard_normal(shape) * 3
        p = F.softmax(s, axis=axis).data
        g = rng.standard_normal(shape)
        name = f"softmax_backward(p {shape}, grad_out, axis={axis})"
        got = assert_shape(name, ex.softmax_backward(p, g, axis=axis), shape, seed=SEED)
        pm, gm = (np.moveaxis(x, axis, -1) for x in (p, g))
        want = np.moveaxis(np.stack([_jacobian_vjp(pr, gr) for pr, gr in
                                     zip(pm.reshape(-1, shape[axis]), gm.reshape(-1, shape[axis]))])
                           .reshape(pm.shape), -1, axis)
        assert_close(name + " vs the explicit Jacobian", got, want, seed=SEED, rtol=1e-9, atol=1e-12)
        (ref,) = _autograd_grads(lambda t: F.softmax(t, axis=axis), [s], g)
        assert_close(name + " vs autograd", got, ref, seed=SEED, rtol=1e-9, atol=1e-12)
    p = F.softmax(rng.standard_normal((2, 6))).data
    g = rng.standard_normal((2, 6))
    assert_close("softmax_backward(p (2, 6), grad_out) with the default axis", ex.softmax_backward(p, g),
                 np.stack([_jacobian_vjp(pr, gr) for pr, gr in zip(p, g)]), seed=SEED, rtol=1e-9, atol=1e-12)


@pytest.mark.points(1)
def test_softmax_backward_saturated_is_finite(impl):
    ex = impl(MOD)
    p = F.softmax(np.array([[1e4, 0.0, -1e4], [5.0, 5.0, 5.0]])).data
    got = ex.softmax_backward(p, np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]))
    want = np.array([[0.0, 0.0, 0.0], (np.array([1.0, 2.0, 3.0]) - 2.0) / 3])   # one-hot row: no gradient
    assert_close("softmax_backward on a one-hot row and a uniform row", got, want, atol=1e-12, rtol=1e-12)


def _sin_objective(w, v):
    return float((np.sin(v) * w).sum() + 0.5 * (v ** 2).sum())


def _cubic_objective(c, v):
    return float((c * v ** 3).sum())


@pytest.mark.points(2)
def test_numerical_gradient(impl):
    ex = impl(MOD)
    SEED = 1030
    rng = np.random.default_rng(SEED)
    x = rng.standard_normal((2, 3))
    w = rng.standard_normal((2, 3))
    x_before = x.copy()
    f = functools.partial(_sin_objective, w)          # module-level: it is sent to the grading worker
    got = ex.numerical_gradient(f, x)
    assert_close("numerical_gradient(f, x (2, 3)) vs the closed form cos(x) w + x", got,
                 np.cos(x_before) * w + x_before, seed=SEED, atol=1e-7, rtol=0)
    assert_equal("x after numerical_gradient(f, x) (x must be left unchanged)", x, x_before, seed=SEED)


@pytest.mark.points(2)
def test_numerical_gradient_uses_eps(impl):
    """For a cubic, central differences are exact up to eps^2: (f(x+e) - f(x-e)) / 2e = 3 c x^2 + c e^2.
    So the result tells exactly which step was used (and that it is central, not one-sided)."""
    ex = impl(MOD)
    SEED = 1031
    rng = np.random.default_rng(SEED)
    x = rng.standard_normal((3, 2))
    c = rng.uniform(0.5, 2.0, size=(3, 2))
    f = functools.partial(_cubic_objective, c)
    for eps in (0.1, 0.03):
        x_before = x.copy()
        got = ex.numerical_gradient(f, x, eps=eps)
        assert_close(f"numerical_gradient(f = sum(c x^3), x (3, 2), eps={eps}) vs 3 c x^2 + c eps^2", got,
                     3 * c * x_before ** 2 + c * eps ** 2, seed=SEED, atol=1e-9, rtol=0)
        assert_equal(f"x after numerical_gradient(..., eps={eps})", x, x_before, seed=SEED)


def _logsumexp_run(ex, data, axis, g):
    """Runs in the grading worker (next to the student's op): forward, then backward(g) if g is given;
    returns plain data for the test to judge."""
    x = ta.Tensor(data.copy(), requires_grad=True)
    out = ex.logsumexp_op(x, axis=axis)
    info = {"type": type(out).__name__, "is_tensor": isinstance(out, ta.Tensor),
            "requires_grad": bool(getattr(out, "requires_grad", False))}
    if not info["is_tensor"]:
        return info
    info["data"] = np.array(out.data, dtype=np.float64)
    if g is not None:
        out.backward(g)
        info["grad"] = None if x.grad is None else np.array(x.grad, dtype=np.float64)
    return info


@pytest.mark.points(3)
def test_logsumexp_op_forward_backward(impl):
    ex = impl(MOD)
    SEED = 1040
    rng = np.random.default_rng(SEED)
    shape = (2, 3, 4)
    for axis in (0, 1, -1):
        x = rng.standard_normal(shape) * 3
        name = f"logsumexp_op(x {shape}, axis={axis})"
        g = rng.standard_normal(np.delete(np.array(shape), axis))
        run = scenario(_logsumexp_run, ex, x, axis, g)
        check(run["is_tensor"] and run["requires_grad"], name,
              f"must return a Tensor that requires grad (a graph node), got {run['type']}", seed=SEED)
        assert_close(name, run["data"], np.log(np.exp(x).sum(axis=axis)), seed=SEED, rtol=1e-12)
        check(run["grad"] is not None, name, "x.grad is None after backward(g)", seed=SEED)
        # gradcheck: your backward vs central differences of your forward (both computed by your op)
        fd = _fd(lambda d: float((scenario(_logsumexp_run, ex, d, axis, None)["data"] * g).sum()), x)
        check(np.allclose(run["grad"], fd, rtol=1e-5, atol=1e-6), name,
              "gradcheck failed (backward disagrees with finite differences of forward)", seed=SEED)
        assert_close(name + " x.grad after backward(g)", run["grad"],
                     F.softmax(x, axis=axis).data * np.expand_dims(g, axis), seed=SEED, rtol=1e-10, atol=1e-14)


@pytest.mark.points(1)
def test_logsumexp_op_is_stable(impl):
    ex = impl(MOD)
    big = ex.logsumexp_op(ta.Tensor(np.array([[1e4, 1e4, -1e4], [-1e4, -1e4, -1e4]])))
    assert_close("logsumexp_op of rows [1e4, 1e4, -1e4] and [-1e4, -1e4, -1e4]", big.data,
                 [1e4 + np.log(2), -1e4 + np.log(3)], rtol=1e-12)
