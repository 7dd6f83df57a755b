"""Float64 finite-difference checks of every differentiable Tensor op over random shapes.

Each case draws its shapes from a seeded rng: broadcasting pairs for the binary ops, every axis
(and negative / tuple axes, keepdims both) for the reductions. ``ta.gradcheck`` compares the
autograd gradient with central differences; test_autograd.py checks gradcheck itself.
"""
import numpy as np
import pytest

import tinyattn as ta
from tinyattn.tensor import concatenate, split, stack, where

SEEDS = range(6)


def rand_shape(rng, min_nd=1, max_nd=3):
    return tuple(int(s) for s in rng.integers(1, 5, size=rng.integers(min_nd, max_nd + 1)))


def broadcast_pair(rng):
    """(full shape, shape broadcastable to it): leading dims dropped and some dims set to 1."""
    full = rand_shape(rng, 1, 4)
    small = list(full[rng.integers(0, len(full)):])
    for i in range(len(small)):
        if rng.random() < 0.4:
            small[i] = 1
    pair = [full, tuple(small)]
    rng.shuffle(pair)
    return pair


def leaf(rng, shape, low=None):
    data = rng.standard_normal(shape) if low is None else rng.uniform(low, 2.0, shape)
    return ta.Tensor(data, requires_grad=True)


BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a ** b,
}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("op", BINARY)
def test_binary_broadcasting(op, seed):
    rng = np.random.default_rng(seed)
    sa, sb = broadcast_pair(rng)
    positive = op in ("div", "pow")
    a, b = leaf(rng, sa, 0.5 if positive else None), leaf(rng, sb, 0.5 if positive else None)
    assert ta.gradcheck(BINARY[op], a, b)


SCALAR = {
    "radd": lambda a: 2.5 + a, "rsub": lambda a: 2.5 - a, "rmul": lambda a: -1.5 * a,
    "rdiv": lambda a: 3.0 / a, "rpow": lambda a: 2.0 ** a, "pow_scalar": lambda a: a ** 3,
    "pow_frac": lambda a: a ** 0.5, "sub_scalar": lambda a: a - 1.0, "div_scalar": lambda a: a / 4,
    "neg": lambda a: -a, "ndarray_const": lambda a: a * np.arange(a.shape[-1]),
    "rndarray_const": lambda a: np.arange(a.shape[-1]) - a,
}


@pytest.mark.parametrize("seed", SEEDS[:3])
@pytest.mark.parametrize("op", SCALAR)
def test_scalar_and_reflected(op, seed):
    rng = np.random.default_rng(seed)
    assert ta.gradcheck(SCALAR[op], leaf(rng, rand_shape(rng), 0.5))


UNARY = {
    "exp": (lambda a: a.exp(), None), "log": (lambda a: a.log(), 0.3),
    "tanh": (lambda a: a.tanh(), None), "sqrt": (lambda a: a.sqrt(), 0.3),
    "sigmoid": (lambda a: a.sigmoid(), None), "relu": (lambda a: a.relu(), None),
    "abs": (lambda a: a.abs(), None),
}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("op", UNARY)
def test_unary(op, seed):
    rng = np.random.default_rng(seed)
    fn, low = UNARY[op]
    x = leaf(rng, rand_shape(rng), low)
    if op in ("relu", "abs"):                          # stay away from the kink at 0
        x.data[np.abs(x.data) < 1e-3] = 0.5
    assert ta.gradcheck(fn, x)


MATMUL_SHAPES = [
    ((3, 4), (4, 2)), ((2, 3, 4), (4, 5)), ((2, 2, 3, 4), (2, 2, 4, 3)),
    ((2, 1, 3, 4), (3, 4, 2)), ((4,), (4, 3)), ((3, 4), (4,)), ((4,), (4,)),
    ((2, 3, 4), (4,)), ((5,), (2, 5, 3)), ((3, 4), (2, 4, 2)), ((1, 3, 4), (2, 4, 2)),
]


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES)
def test_matmul_batched_and_broadcast(sa, sb):
    rng = np.random.default_rng(len(sa) * 10 + len(sb))
    a, b = leaf(rng, sa), leaf(rng, sb)
    out = a @ b
    np.testing.assert_allclose(out.data, np.matmul(a.data, b.data))
    assert ta.gradcheck(lambda a, b: a @ b, a, b)


def _axis_cases(ndim):
    cases = [None] + list(range(ndim)) + [-1]
    if ndim >= 2:
        cases += [(0, ndim - 1), tuple(range(ndim))]
    return cases


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("red", ["sum", "mean", "max", "min"])
@pytest.mark.parametrize("seed", SEEDS[:3])
def test_reductions_every_axis(red, keepdims, seed):
    rng = np.random.default_rng(seed)
    shape = rand_shape(rng, 1, 4)
    x = leaf(rng, shape)
    for axis in _axis_cases(len(shape)):
        out = getattr(x, red)(axis=axis, keepdims=keepdims)
        ref = getattr(np, {"sum": "sum", "mean": "mean", "max": "max", "min": "min"}[red])(
            x.data, axis=axis, keepdims=keepdims)
        np.testing.assert_allclose(out.data, ref)
        assert ta.gradcheck(lambda t: getattr(t, red)(axis=axis, keepdims=keepdims), x)


def test_max_splits_gradient_between_ties():
    x = ta.Tensor(np.array([[1.0, 3.0, 3.0], [2.0, 0.0, -1.0]]), requires_grad=True)
    x.max(axis=1).sum().backward()
    np.testing.assert_array_equal(x.grad, [[0, 0.5, 0.5], [1, 0, 0]])


SHAPE_OPS = {
    "reshape": lambda t: t.reshape(-1) * np.arange(t.size),
    "reshape_tuple": lambda t: t.reshape((t.shape[-1], -1)),
    "T": lambda t: t.T * np.arange(t.shape[0]),
    "transpose_perm": lambda t: t.transpose(*reversed(range(t.ndim))).reshape(-1) * np.arange(t.size),
    "swapaxes": lambda t: t.swapaxes(0, -1) * np.arange(t.shape[0]),
    "slice": lambda t: t[..., ::-2] * 3.0,
    "int_and_none": lambda t: t[0, None] ** 2,
    "gather_repeats": lambda t: t[np.array([0, 0, -1, 1])] ** 2,
    "gather_2d": lambda t: t[np.array([[0, 1], [1, 1]]), 0] ** 2,
    "bool_mask": lambda t: t[t.data > 0] ** 2,
    "mixed": lambda t: t[np.array([1, 0, 1]), 1:] ** 2,
}


@pytest.mark.parametrize("seed", SEEDS[:3])
@pytest.mark.parametrize("op", SHAPE_OPS)
def test_shape_and_indexing_ops(op, seed):
    rng = np.random.default_rng(seed)
    shape = (2,) + tuple(int(s) for s in rng.integers(2, 4, size=rng.integers(1, 3)))
    assert ta.gradcheck(SHAPE_OPS[op], leaf(rng, shape))


def test_gather_matches_numpy_and_scatter_adds():
    E = ta.Tensor(np.arange(12.0).reshape(4, 3), requires_grad=True)
    tokens = np.array([[1, 1, 3], [0, 1, 2]])
    out = E[tokens]
    np.testing.assert_array_equal(out.data, E.data[tokens])
    out.sum().backward()
    np.testing.assert_array_equal(E.grad, np.array([1, 3, 1, 1])[:, None] * np.ones((4, 3)))


@pytest.mark.parametrize("seed", SEEDS[:4])
def test_concatenate_stack_split_every_axis(seed):
    rng = np.random.default_rng(seed)
    shape = rand_shape(rng, 1, 3)
    for axis in range(-len(shape), len(shape)):
        other = list(shape)
        other[axis] = int(rng.integers(1, 4))
        a, b = leaf(rng, shape), leaf(rng, tuple(other))
        assert ta.gradcheck(lambda a, b: concatenate([a, b * 2.0], axis=axis) ** 2, a, b)
        c = leaf(rng, shape)
        assert ta.gradcheck(lambda a, c: stack([a, c, a * c], axis=axis) ** 2, a, c)
    x = leaf(rng, (4, 6))
    assert ta.gradcheck(lambda x: concatenate([p * (i + 1.0) for i, p in enumerate(split(x, 3, axis=1))], 0), x)
    assert ta.gradcheck(lambda x: split(x, [1, 3], axis=0)[1] ** 2, x)
    parts = split(x, [1, 3], axis=0)
    assert [p.shape for p in parts] == [(1, 6), (2, 6), (1, 6)]


@pytest.mark.parametrize("seed", SEEDS[:4])
def test_where_broadcasting(seed):
    rng = np.random.default_rng(seed)
    sa, sb = broadcast_pair(rng)
    a, b = leaf(rng, sa), leaf(rng, sb)
    cond = rng.random(np.broadcast_shapes(sa, sb)) < 0.5
    out = where(cond, a, b)
    np.testing.assert_array_equal(out.data, np.where(cond, a.data, b.data))
    assert ta.gradcheck(lambda a, b: where(cond, a, b), a, b)
    assert ta.gradcheck(lambda a: where(cond, a, 0.0), a)


def test_astype_gradient_returns_to_source_dtype():
    x = ta.Tensor(np.linspace(-1, 1, 6, dtype=np.float32), requires_grad=True)
    y = (x.astype(np.float64) ** 2).sum()
    y.backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad, 2 * x.data, rtol=1e-6)


@pytest.mark.parametrize("seed", SEEDS)
def test_matmul_random_sizes_and_ndarray_operands(seed):
    rng = np.random.default_rng(50 + seed)
    m, k, n = (int(v) for v in rng.integers(1, 6, size=3))
    batch = tuple(int(s) for s in rng.integers(1, 4, size=rng.integers(0, 3)))
    a, b = leaf(rng, batch + (m, k)), leaf(rng, (k, n))
    assert ta.gradcheck(lambda a, b: a @ b, a, b)
    const = rng.standard_normal((n, k))
    assert ta.gradcheck(lambda b: const @ b, b)           # ndarray @ Tensor (reflected)
    assert ta.gradcheck(lambda a: a @ const.T, a)          # Tensor @ ndarray


def test_sum_over_empty_axis_tuple_is_identity():
    x = leaf(np.random.default_rng(0), (2, 3))
    np.testing.assert_array_equal(x.sum(axis=()).data, x.data)
    assert ta.gradcheck(lambda t: t.sum(axis=()) * 2.0, x)
