"""The backward engine and gradcheck: accumulation, aliasing, deep graphs, grad mode, dtypes,
custom ops, and a hypothesis property test of random op compositions checked by gradcheck."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyattn as ta
from tinyattn import functional as F
from tinyattn.autograd import GradcheckError, custom_op, enable_grad


def test_gradcheck_agrees_with_closed_form_and_returns_true():
    # f(x) = sum(sin-free polynomial): d/dx sum(x^3 + 2x) = 3x^2 + 2 (closed form, independent)
    x = ta.Tensor(np.linspace(-1, 1, 5), requires_grad=True)
    (x ** 3 + 2 * x).sum().backward()
    np.testing.assert_allclose(x.grad, 3 * x.data ** 2 + 2, rtol=1e-12)
    assert ta.gradcheck(lambda t: t ** 3 + 2 * t, ta.Tensor(x.data, requires_grad=True)) is True


def test_gradcheck_catches_wrong_backward_and_names_worst_element():
    def wrong_square(t):   # d(x^2)/dx = 2x, but this backward says 2x + 1 at index 3 only
        def backward(g):
            grad = 2 * t.data * g
            grad.reshape(-1)[3] += 1.0
            return (grad,)
        return custom_op(t.data ** 2, [t], backward, "wrong_square")
    x = ta.Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    with pytest.raises(GradcheckError, match=r"argument 0 \(shape \(2, 3\)\): worst element \(1, 0\)"):
        ta.gradcheck(wrong_square, x)


def test_gradcheck_checks_only_requires_grad_args_and_promotes_to_float64():
    a = ta.Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    b = ta.Tensor(np.full(3, 2.0))
    assert ta.gradcheck(lambda a, b: a * b, a, b)
    with pytest.raises(ValueError, match="no floating-point Tensor"):
        ta.gradcheck(lambda i: i, ta.Tensor(np.arange(3)))


def test_shared_use_accumulates_chain_rule():
    x = ta.Tensor(np.array([1.0, 2.0, -3.0]), requires_grad=True)
    y = x * x + x          # dy/dx = 2x + 1
    z = (y * y).sum()      # dz/dx = 2y (2x + 1)
    z.backward()
    np.testing.assert_allclose(x.grad, 2 * (x.data ** 2 + x.data) * (2 * x.data + 1))


def test_shared_gradient_arrays_are_not_aliased():
    a = ta.Tensor(np.zeros(3), requires_grad=True)
    b = ta.Tensor(np.zeros(3), requires_grad=True)
    (a + b).sum().backward()       # add hands the same array to both parents
    a.grad += 10.0                 # user mutates one .grad in place
    np.testing.assert_array_equal(b.grad, np.ones(3))
    (a * 2 + b).sum().backward()   # a second backward accumulates
    np.testing.assert_array_equal(a.grad, np.full(3, 13.0))
    np.testing.assert_array_equal(b.grad, np.full(3, 2.0))


def test_diamond_with_slices_sums_into_one_buffer():
    x = ta.Tensor(np.arange(6.0), requires_grad=True)
    y = x[:3] * 2 + x[3:] * 3 + x[1:4]
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [2, 3, 3, 4, 3, 3])


def test_deep_graph_has_no_recursion_limit():
    x = ta.Tensor(np.ones(2), requires_grad=True)
    y = x
    for _ in range(20000):
        y = y * 1.0 + 0.0
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, np.ones(2))


def test_no_grad_records_nothing_and_enable_grad_restores():
    x = ta.Tensor(np.ones(3), requires_grad=True)
    with ta.no_grad():
        y = x * 2
        with enable_grad():
            z = x * 3
    assert not y.requires_grad and y._parents == ()
    assert z.requires_grad
    w = x * 4
    assert w.requires_grad


def test_float32_stays_float32_through_forward_and_backward():
    rng = np.random.default_rng(0)
    x = ta.Tensor(rng.standard_normal((4, 5)).astype(np.float32), requires_grad=True)
    W = ta.Tensor(rng.standard_normal((5, 3)).astype(np.float32), requires_grad=True)
    out = ((x @ W).tanh() * 0.5 + 1.0) / 3.0 - 2 ** x.mean(axis=1, keepdims=True)
    loss = F.cross_entropy(out, np.array([0, 1, 2, 0])) + (out ** 2).sum() * 1e-3
    assert out.dtype == np.float32 and loss.dtype == np.float32
    loss.backward()
    assert x.grad.dtype == np.float32 and W.grad.dtype == np.float32


def test_retain_grad_and_leaf_only_default():
    x = ta.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = (x * 3).retain_grad()
    k = h * 2
    (k * k).sum().backward()
    np.testing.assert_allclose(h.grad, 2 * k.data * 2)
    assert k.grad is None and x.grad is not None


def test_detach_and_non_grad_inputs_block_gradient():
    x = ta.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (x.detach() * x).sum()
    y.backward()
    np.testing.assert_array_equal(x.grad, [1.0, 2.0])


def test_custom_op_wrong_gradient_shape_is_reported():
    x = ta.Tensor(np.ones((2, 3)), requires_grad=True)
    y = custom_op(x.data.sum(0), [x], lambda g: (g,), "bad_sum")
    with pytest.raises(RuntimeError, match=r"bad_sum.*\(3,\).*\(2, 3\)"):
        y.sum().backward()


def test_custom_op_requires_grad_follows_inputs_and_mode():
    x = ta.Tensor(np.ones(2))
    assert not custom_op(x.data * 2, [x], lambda g: (2 * g,)).requires_grad
    y = ta.Tensor(np.ones(2), requires_grad=True)
    assert custom_op(y.data * 2, [x, y], lambda g: (None, 2 * g)).requires_grad
    with ta.no_grad():
        assert not custom_op(y.data * 2, [y], lambda g: (2 * g,)).requires_grad


def test_backward_with_explicit_gradient():
    x = ta.Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    (x * x).backward(np.array([1.0, 0.0, 2.0]))
    np.testing.assert_array_equal(x.grad, [2.0, 0.0, 12.0])


# --------------------------------------------------------------------------- property test
UNARY = [lambda t: t.tanh(), lambda t: t.sigmoid(), lambda t: t.tanh().exp(),
         lambda t: F.softmax(t, axis=-1), lambda t: F.log_softmax(t, axis=0),
         lambda t: F.gelu(t), lambda t: F.silu(t), lambda t: F.layer_norm(t) * 0.3,
         lambda t: F.rms_norm(t), lambda t: (t * t + 1.0).sqrt(), lambda t: t.T.T,
         lambda t: t.reshape(-1).reshape(3, 4), lambda t: t - t.mean(axis=1, keepdims=True),
         lambda t: t / (t.abs() + 1.0), lambda t: t.max(axis=0, keepdims=True) + t]
BINARY = [lambda a, b: a + b, lambda a, b: a * b, lambda a, b: a - b * 0.5,
          lambda a, b: a @ b.T * 0.3 @ b, lambda a, b: a / (b * b + 1.0),
          lambda a, b: ta.tensor.concatenate([a[:, :2], b[:, 2:]], axis=1),
          lambda a, b: ta.tensor.where(a.data > b.data, a, b * 2.0),
          lambda a, b: ta.tensor.stack([a, b], axis=0).sum(axis=0),
          lambda a, b: a * b.sum(axis=0, keepdims=True) * 0.2]


@settings(deadline=None, max_examples=40)
@given(program=st.lists(st.tuples(st.booleans(), st.integers(0, 100), st.integers(0, 2)),
                        min_size=1, max_size=6),
       seed=st.integers(0, 2**31 - 1))
def test_random_compositions_pass_gradcheck(program, seed):
    """Random programs over three (3, 4) inputs; each step applies a unary op to a slot or a
    binary op to two slots; the result is the weighted sum of all slots."""
    rng = np.random.default_rng(seed)
    inputs = [ta.Tensor(rng.standard_normal((3, 4)), requires_grad=True) for _ in range(3)]

    def fn(*xs):
        slots = list(xs)
        for is_binary, op, j in program:
            if is_binary:
                slots[j] = BINARY[op % len(BINARY)](slots[j], slots[(j + 1) % 3])
            else:
                slots[j] = UNARY[op % len(UNARY)](slots[j])
        return slots[0] + slots[1] * 2.0 - slots[2]
    assert ta.gradcheck(fn, *inputs, atol=1e-5, rtol=1e-3)


def test_graph_nodes_and_drawing():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from tinyattn.viz.graph import draw_broadcast, draw_graph, graph_nodes

    x = ta.Tensor(2.0, requires_grad=True, name="x")
    c = ta.Tensor(3.0, name="c")
    e = x * c
    L = e * e                                     # e is used twice: two edges e -> L
    nodes, edges = graph_nodes(L)
    assert len(nodes) == 4 and nodes[-1] is L
    index = {id(n): i for i, n in enumerate(nodes)}
    assert sorted(edges) == sorted([(index[id(x)], index[id(e)]), (index[id(c)], index[id(e)]),
                                    (index[id(e)], index[id(L)]), (index[id(e)], index[id(L)])])
    L.backward()
    ax = draw_graph(L)
    labels = [t.get_text() for t in ax.texts if t.get_text()]     # arrows are empty annotations
    assert len(labels) == 4 and any("x" in s and "grad 36" in s for s in labels)  # dL/dx = 2 e c
    ax2 = draw_broadcast((3, 1), (1, 4))
    assert len(ax2.patches) == 3 * 12
    plt.close("all")


def test_gradcheck_constant_function_and_detached_input():
    x = ta.Tensor(np.ones(3), requires_grad=True)
    assert ta.gradcheck(lambda t: ta.Tensor(np.arange(3.0)), x)       # f does not use x: 0 == 0
    with pytest.raises(GradcheckError, match="argument 0"):
        ta.gradcheck(lambda t: t.detach() * t.data, x)                # numerical 2x, analytic 0


def test_gradcheck_rejects_non_finite_gradients():
    x = ta.Tensor(np.array([0.0, 1.0]), requires_grad=True)
    with pytest.raises(GradcheckError, match=r"worst element \(0,\)"), np.errstate(divide="ignore", invalid="ignore"):
        ta.gradcheck(lambda t: t.sqrt(), x)            # d sqrt(x)/dx is infinite at 0 (on purpose)
