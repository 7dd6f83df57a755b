"""Graded tests for chapter 00's engine (exercises 00.7 topological_order and 00.8 backward).

Every test draws its graphs from a fixed seed (printed on failure). The graphs share
subexpressions (a node used twice must accumulate), form diamonds, and include chains deeper than
Python's recursion limit. Gradients are compared with tinyattn's autograd on the same graph and
with float64 finite differences. The backward tests use a reference order, so a wrong
topological_order costs points only in its own tests.
"""
import numpy as np
import pytest

import tinyattn as ta
from tinyattn.grading.proxy import scenario

MOD = "ch00_tensor_core"
UNARY = ("tanh", "exp")


def _build(lib, leaves, recipe):
    """Apply ``recipe`` (a list of (op, i, j)) to ``leaves`` with lib's node type (ex.Node or
    ta.Tensor); node k of the list reads earlier nodes i and j. Returns every node; the last is
    the scalar root sum(w * node_last)."""
    nodes = list(leaves)
    for op, i, j in recipe:
        a, b = nodes[i], nodes[j]
        if op == "+":
            nodes.append(a + b)
        elif op == "*":
            nodes.append(a * b)
        elif op == "scale":
            nodes.append(a * 0.5)
        elif op == "tanh":
            nodes.append(a.tanh())
        else:                                   # "exp" of a tanh keeps values small
            nodes.append(a.tanh().exp())
    return nodes


def _recipe(rng, n_leaves, n_ops):
    """A random DAG: each op reads one of the last few nodes and one random earlier node (a long
    path with skip connections, like a residual stack), so many nodes are reused."""
    ops = []
    for k in range(n_ops):
        n = n_leaves + k
        op = str(rng.choice(["+", "*", "scale", "tanh", "exp"]))
        ops.append((op, max(0, n - 1 - int(rng.integers(0, 3))), int(rng.integers(0, n))))
    return ops


def _node_graph(ex, arrays, recipe, w):
    leaves = [ex.Node(a.copy()) for a in arrays]
    nodes = _build(ex, leaves, recipe)
    return leaves, nodes, (nodes[-1] * ex.Node(w)).sum()


def _tensor_grads(arrays, recipe, w):
    leaves = [ta.Tensor(a.copy(), requires_grad=True) for a in arrays]
    nodes = _build(ta, leaves, recipe)
    (nodes[-1] * w).sum().backward()
    return [np.zeros_like(a) if t.grad is None else t.grad for a, t in zip(arrays, leaves)]


def _value(arrays, recipe, w):
    """The root's value in plain NumPy (for finite differences)."""
    vals = list(arrays)
    for op, i, j in recipe:
        a, b = vals[i], vals[j]
        vals.append({"+": lambda: a + b, "*": lambda: a * b, "scale": lambda: a * 0.5,
                     "tanh": lambda: np.tanh(a), "exp": lambda: np.exp(np.tanh(a))}[op]())
    return float((vals[-1] * w).sum())


def _reference_order(root):
    """Parents before children, iteratively (the tests' own, used to isolate backward)."""
    order, seen, stack = [], set(), [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
        elif id(node) not in seen:
            seen.add(id(node))
            stack.append((node, True))
            stack.extend((p, False) for p in node.parents if id(p) not in seen)
    return order


def _graph_of(root, order):
    """Runs in the grading worker: number the nodes reachable from ``root`` (root = 0) and describe the
    graph and ``order`` as plain data -- {"parents": [[i, ...], ...], "order": [i, ...]} (a node of
    ``order`` outside the graph gets a negative number) -- for the test to check here."""
    index, nodes, stack = {id(root): 0}, [root], [root]
    while stack:
        for p in stack.pop().parents:
            if id(p) not in index:
                index[id(p)] = len(nodes)
                nodes.append(p)
                stack.append(p)
    outside: dict[int, int] = {}

    def number(n):
        return index[id(n)] if id(n) in index else outside.setdefault(id(n), -1 - len(outside))

    return {"parents": [[index[id(p)] for p in n.parents] for n in nodes],
            "order": [number(n) for n in order], "index": number}


def _topo_run(ex, arrays, recipe, w):
    """Worker side: build the random DAG with the student's Node, order it, describe it."""
    _, _, root = _node_graph(ex, arrays, recipe, w)
    g = _graph_of(root, ex.topological_order(root))
    del g["index"]
    return g


def _diamond_run(ex):
    a = ex.Node(np.array([0.3, -0.7]))
    t = a.tanh()
    d = (a * t + t.exp()) + a
    root = d.sum()
    g = _graph_of(root, ex.topological_order(root))
    del g["index"]
    return g


def _chain_run(ex, n_ops):
    x = ex.Node(np.ones(2))
    chain = [x]
    for _ in range(n_ops):
        chain.append(chain[-1] * 1.0001)
    g = _graph_of(chain[-1], ex.topological_order(chain[-1]))
    number = g.pop("index")
    g["chain"] = [number(n) for n in chain]
    g["x"] = number(x)
    return g


def _check_order(g, where):
    """``g`` from _graph_of: every reachable node exactly once, parents first, root (0) last."""
    order, parents = g["order"], g["parents"]
    assert len(order) == len(set(order)), f"{where}: a node appears more than once ({len(order)} entries)"
    want = set(range(len(parents)))
    assert set(order) == want, (f"{where}: {len(want - set(order))} reachable nodes missing, "
                                f"{len(set(order) - want)} nodes that are not in the graph")
    pos = {i: k for k, i in enumerate(order)}
    for n in order:
        for p in parents[n]:
            assert pos[p] < pos[n], (f"{where}: node {n} at index {pos[n]} comes before "
                                     f"its parent {p} at index {pos[p]}")
    assert order[-1] == 0, f"{where}: the root must come last, got node {order[-1]}"


@pytest.mark.points(2)
@pytest.mark.parametrize("seed", [11, 12, 13])
def test_topological_order_random_dags(impl, seed):
    ex = impl(MOD)
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal((2, 3)) for _ in range(3)]
    recipe = _recipe(rng, 3, 25)
    _check_order(scenario(_topo_run, ex, arrays, recipe, rng.standard_normal((2, 3))),
                 f"random DAG, seed {seed}")


@pytest.mark.points(1)
def test_topological_order_parent_also_feeds_root(impl):
    """r = a + tanh(a): a is both a parent of r and of tanh(a), so breadth-first order is wrong."""
    ex = impl(MOD)
    _check_order(scenario(_diamond_run, ex), "r = a + tanh(a) and a diamond")


@pytest.mark.points(1)
def test_topological_order_deep_chain(impl):
    ex = impl(MOD)
    g = scenario(_chain_run, ex, 5000)         # far past Python's default recursion limit (1000)
    order = g["order"]
    assert len(order) == 2 * 5000 + 1, f"a 5000-op chain has 10001 nodes (with constants), got {len(order)}"
    chain_ids = [n for n in order if n >= 0 and (g["parents"][n] or n == g["x"])]
    assert chain_ids == g["chain"], "the chain's nodes must come in chain order"


def _run_backward(ex, monkeypatch, root):
    monkeypatch.setattr(ex, "topological_order", _reference_order)
    ex.backward(root)


@pytest.mark.points(1)
def test_backward_node_used_twice(impl, monkeypatch):
    ex = impl(MOD)
    x = ex.Node(np.array([1.5, -2.0, 0.25]))
    y = x * x + x                              # x used three times: dy/dx = 2x + 1
    _run_backward(ex, monkeypatch, y.sum())
    np.testing.assert_allclose(x.grad, 2 * x.value + 1, rtol=1e-12,
                               err_msg="y = x*x + x: x is used three times, its gradients must add up")


@pytest.mark.points(1)
def test_backward_diamond(impl, monkeypatch):
    ex = impl(MOD)
    a = ex.Node(np.array([0.4, -1.1]))
    b, c = a.tanh(), a.exp()                   # a -> b, a -> c, (b, c) -> d
    d = b * c
    _run_backward(ex, monkeypatch, d.sum())
    t, e = np.tanh(a.value), np.exp(a.value)
    np.testing.assert_allclose(a.grad, (1 - t * t) * e + t * e, rtol=1e-12,
                               err_msg="diamond d = tanh(a) * exp(a): both paths must reach a")
    np.testing.assert_allclose(b.grad, e, rtol=1e-12, err_msg="interior node b = tanh(a): dL/db")


@pytest.mark.points(1)
@pytest.mark.parametrize("flip", [False, True])
def test_backward_shared_gradient_arrays(impl, monkeypatch, flip):
    """`+` hands the SAME array to both parents; accumulating in place corrupts the other one."""
    ex = impl(MOD)
    x = ex.Node(np.array([0.3, -0.8, 1.2]))
    a, b = x.tanh(), x.exp()
    s, c = a + b, a * a
    root = ((c * s) if flip else (s * c)).sum()
    _run_backward(ex, monkeypatch, root)
    ta_, tb = np.tanh(x.value), np.exp(x.value)
    sv, cv = ta_ + tb, ta_ * ta_
    np.testing.assert_allclose(b.grad, cv, rtol=1e-12, err_msg=f"b = exp(x) in s = a + b (flip={flip})")
    np.testing.assert_allclose(a.grad, cv + 2 * ta_ * sv, rtol=1e-12, err_msg=f"a = tanh(x) (flip={flip})")
    np.testing.assert_allclose(x.grad, (cv + 2 * ta_ * sv) * (1 - ta_ ** 2) + cv * tb, rtol=1e-12,
                               err_msg=f"leaf x (flip={flip})")


@pytest.mark.points(3)
@pytest.mark.parametrize("seed", [21, 22, 23])
def test_backward_random_dags_match_tinyattn_and_fd(impl, monkeypatch, seed):
    ex = impl(MOD)
    rng = np.random.default_rng(seed)
    shape = (3, 2)
    arrays = [rng.standard_normal(shape) * 0.7 for _ in range(4)]
    recipe = _recipe(rng, 4, 30)
    w = rng.standard_normal(shape)
    leaves, nodes, root = _node_graph(ex, arrays, recipe, w)
    _run_backward(ex, monkeypatch, root)
    want = _tensor_grads(arrays, recipe, w)
    for k, (leaf, ref) in enumerate(zip(leaves, want)):
        got = np.zeros(shape) if leaf.grad is None else np.asarray(leaf.grad)
        assert got.shape == shape, f"seed {seed}: leaf {k} grad shape {got.shape}, expected {shape}"
        np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12,
                                   err_msg=f"seed {seed}: gradient of leaf {k} vs tinyattn's autograd")
    k = int(np.argmax([np.abs(g).sum() for g in want]))
    fd = np.zeros(shape)
    for idx in np.ndindex(shape):
        plus, minus = [a.copy() for a in arrays], [a.copy() for a in arrays]
        plus[k][idx] += 1e-6
        minus[k][idx] -= 1e-6
        fd[idx] = (_value(plus, recipe, w) - _value(minus, recipe, w)) / 2e-6
    np.testing.assert_allclose(leaves[k].grad, fd, rtol=1e-5, atol=1e-7,
                               err_msg=f"seed {seed}: leaf {k} vs finite differences")


@pytest.mark.points(1)
def test_backward_deep_chain_and_matmul(impl, monkeypatch):
    ex = impl(MOD)
    rng = np.random.default_rng(31)
    A = ex.Node(rng.standard_normal((3, 4)))
    B = ex.Node(rng.standard_normal((4, 2)))
    h = A @ B
    for _ in range(3000):
        h = h * 1.0001
    _run_backward(ex, monkeypatch, h.sum())
    g = np.full((3, 2), 1.0001 ** 3000)
    np.testing.assert_allclose(A.grad, g @ B.value.T, rtol=1e-9, err_msg="A in (A @ B) * 1.0001^3000")
    np.testing.assert_allclose(B.grad, A.value.T @ g, rtol=1e-9, err_msg="B in (A @ B) * 1.0001^3000")
