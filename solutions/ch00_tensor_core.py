"""Chapter 00 exercises: the backward passes behind reverse-mode autograd, in plain NumPy.

Exercise 00.1  unbroadcast          sum a gradient back to the shape of a broadcast operand
Exercise 00.2  mul_backward         gradients of a * b with broadcasting
Exercise 00.3  matmul_backward      gradients of a @ b, batched, with broadcast batch axes
Exercise 00.4  softmax_backward     vector-Jacobian product of softmax, without forming J
Exercise 00.5  numerical_gradient   central finite differences of a scalar function
Exercise 00.6  logsumexp_op         a tinyattn graph node (custom_op) with your backward
Exercise 00.7  topological_order    the order in which a reverse-mode engine visits a graph
Exercise 00.8  backward             the engine itself: walk that order, accumulate gradients

Exercises 00.1-00.5 use NumPy only; 00.7-00.8 complete the tiny engine ``Node`` below (its ops
and their local derivatives are given). The graded tests compare your functions with tinyattn's
autograd and with float64 finite differences on seeded random shapes and graphs.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from tinyattn.autograd import custom_op
from tinyattn.tensor import Tensor, as_tensor


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` (the gradient of a broadcast result) back to ``shape``.

    grad: (*extra, *stretched) -> (shape). ``shape`` is the shape of an operand that NumPy
    broadcast to ``grad.shape`` (grad.ndim >= len(shape)). Returns an array of exactly ``shape``
    (e.g. shape (3, 1), grad (2, 3, 4) -> (3, 1)); chapter 00, section 1 explains what it holds.
    """
    # BEGIN SOLUTION
    # HINT: first sum away the leading axes grad has in excess of len(shape)
    lead = grad.ndim - len(shape)
    g = grad.sum(axis=tuple(range(lead))) if lead > 0 else grad
    # HINT: then sum (keepdims=True) over axes where shape has 1 but g does not
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)
    # END SOLUTION


def mul_backward(a: np.ndarray, b: np.ndarray, grad_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of ``out = a * b`` (NumPy broadcasting). grad_out has out's shape.

    Returns (grad_a shaped like a, grad_b shaped like b): dL/da and dL/db when grad_out = dL/dout.
    """
    # BEGIN SOLUTION
    # HINT: d(a*b)/da = b elementwise; then undo the broadcasting with unbroadcast
    return unbroadcast(grad_out * b, a.shape), unbroadcast(grad_out * a, b.shape)
    # END SOLUTION


def matmul_backward(a: np.ndarray, b: np.ndarray,
                    grad_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of ``out = a @ b`` for a: (..., m, k), b: (..., k, n), both at least 2-D; the
    batch axes ``...`` broadcast as in np.matmul. grad_out: (..., m, n).

    Returns (grad_a (..., m, k) like a, grad_b (..., k, n) like b): dL/da and dL/db when
    grad_out = dL/dout. Check your formula by its shapes first.
    """
    # BEGIN SOLUTION
    # HINT: np.swapaxes(x, -1, -2) transposes the last two axes of a batch of matrices
    ga = grad_out @ np.swapaxes(b, -1, -2)
    gb = np.swapaxes(a, -1, -2) @ grad_out
    # HINT: a batch axis that was broadcast must be summed, exactly like in exercise 00.1
    return unbroadcast(ga, a.shape), unbroadcast(gb, b.shape)
    # END SOLUTION


def softmax_backward(p: np.ndarray, grad_out: np.ndarray, axis: int = -1) -> np.ndarray:
    """Gradient w.r.t. the scores s of ``p = softmax(s, axis)``, given p and grad_out = dL/dp.

    p, grad_out: same shape (...). Returns dL/ds, same shape. Must cost O(N) per row of N
    entries: never build the (N, N) Jacobian dp_i/ds_j = p_i (delta_ij - p_j).
    """
    # BEGIN SOLUTION
    # HINT: the inner sum is one number per row: keepdims=True lets it broadcast back
    return p * (grad_out - (grad_out * p).sum(axis=axis, keepdims=True))
    # END SOLUTION


def numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray,
                       eps: float = 1e-6) -> np.ndarray:
    """Central finite differences of ``f`` at ``x`` with step ``eps`` (one pair of calls per element).

    f: maps an array shaped like x to a float. x: float64 array (any shape); it must be left
    unchanged when the function returns. Returns an array shaped like x.
    """
    # BEGIN SOLUTION
    grad = np.zeros_like(x, dtype=np.float64)
    # HINT: np.ndindex(x.shape) walks every index; restore x[idx] after each probe
    for idx in np.ndindex(x.shape):
        orig = x[idx]
        x[idx] = orig + eps
        plus = f(x)
        x[idx] = orig - eps
        minus = f(x)
        x[idx] = orig
        grad[idx] = (plus - minus) / (2 * eps)
    return grad
    # END SOLUTION


def logsumexp_op(x: Tensor, axis: int = -1) -> Tensor:
    """A tinyattn graph node: lse(x) = log sum exp(x) over ``axis`` (axis removed).

    x: Tensor (...) -> Tensor (...) without ``axis``. The forward must stay finite for entries
    of +-1e4; the backward receives grad_out shaped like the output and returns (grad_x,).
    Build the node with ``custom_op(out_data, [x], backward, "logsumexp")``.
    """
    x = as_tensor(x)
    # BEGIN SOLUTION
    X = x.data
    # HINT: log sum exp(x) = m + log sum exp(x - m) for any m; which m keeps exp finite?
    m = X.max(axis=axis, keepdims=True)
    e = np.exp(X - m)
    s = e.sum(axis=axis, keepdims=True)
    out = np.squeeze(m + np.log(s), axis=axis)
    p = e / s

    def backward(g: np.ndarray) -> tuple:
        # HINT: d lse / dx_j is a familiar function of x; np.expand_dims(g, axis) puts the reduced axis back so g broadcasts over it
        return (p * np.expand_dims(g, axis),)
    return custom_op(out, [x], backward, "logsumexp")
    # END SOLUTION


# ---------------------------------------------------------------------------------------------
# The engine (exercises 00.7 and 00.8). ``Node`` is tinyattn.Tensor reduced to its core: a value,
# the parents it was computed from, and the op's local vector-Jacobian product (given). What makes
# it an engine is the order of the walk and the accumulation, which you write.
# ---------------------------------------------------------------------------------------------

class Node:
    """A value in a tiny reverse-mode engine (micrograd, but on float64 arrays).

    value: ndarray (any shape). parents: the Nodes this one was computed from (a Node may appear
    twice, as in ``x * x``). local_grads: ``local_grads(grad_out) -> tuple`` with one gradient per
    parent, each shaped like that parent's value (None for leaves). grad: None until ``backward``
    stores d root / d self there. Ops: ``+``, ``*`` (Node or number, equal shapes, no
    broadcasting), ``@`` (2-D), ``.tanh()``, ``.exp()``, ``.sum()`` (to a 0-d value).
    """

    def __init__(self, value, parents: tuple = (), local_grads: Callable | None = None, op: str = ""):
        self.value = np.asarray(value, dtype=np.float64)
        self.parents = tuple(parents)
        self.local_grads = local_grads
        self.op = op
        self.grad: np.ndarray | None = None

    def __repr__(self) -> str:
        return f"Node({self.op or 'leaf'}, shape={self.value.shape})"

    def _other(self, other) -> "Node":
        other = other if isinstance(other, Node) else Node(np.full(self.value.shape, float(other)))
        if other.value.shape != self.value.shape:
            raise ValueError(f"Node ops need equal shapes, got {self.value.shape} and {other.value.shape}")
        return other

    def __add__(self, other) -> "Node":
        other = self._other(other)
        return Node(self.value + other.value, (self, other), lambda g: (g, g), "+")   # same g twice

    def __mul__(self, other) -> "Node":
        other = self._other(other)
        a, b = self.value, other.value
        return Node(a * b, (self, other), lambda g: (g * b, g * a), "*")

    __radd__, __rmul__ = __add__, __mul__

    def __matmul__(self, other: "Node") -> "Node":
        A, B = self.value, other.value
        return Node(A @ B, (self, other), lambda g: (g @ B.T, A.T @ g), "@")

    def tanh(self) -> "Node":
        t = np.tanh(self.value)
        return Node(t, (self,), lambda g: (g * (1.0 - t * t),), "tanh")

    def exp(self) -> "Node":
        e = np.exp(self.value)
        return Node(e, (self,), lambda g: (g * e,), "exp")

    def sum(self) -> "Node":
        shape = self.value.shape
        return Node(self.value.sum(), (self,), lambda g: (np.full(shape, float(g)),), "sum")


def topological_order(root: Node) -> list[Node]:
    """Every Node reachable from ``root`` through ``.parents``, each exactly once, every node
    AFTER all of its parents (so ``root`` comes last).

    Must work on graphs 10 000 nodes deep: Python's recursion limit (about 1000 calls) rules
    out a recursive walk. Nodes are distinct objects; compare them by identity (``id(node)``).
    """
    # BEGIN SOLUTION
    # HINT: a depth-first walk with an explicit stack; push a node a second time, marked "done",
    # HINT: so that it is emitted only after everything pushed above it (its parents)
    order: list[Node] = []
    visited: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        for parent in node.parents:
            if id(parent) not in visited:
                stack.append((parent, False))
    return order
    # END SOLUTION


def backward(root: Node) -> None:
    """Reverse-mode autograd: store d root / d node in ``node.grad`` for every node of the graph.

    root: a Node with a 0-d value (a scalar loss); every ``.grad`` in the graph is None on entry.
    On return each node reachable from root has ``.grad``, an ndarray shaped like its value
    (``root.grad`` is 1.0). A node used several times (``x * x``, a diamond ``a -> b, c -> d``)
    must receive the total over all its uses. Never modify a gradient array in place: an op may
    hand the same array to several parents (``+`` does). Use ``topological_order``.
    """
    if root.value.shape != ():
        raise ValueError(f"backward needs a scalar root, got shape {root.value.shape}")
    # BEGIN SOLUTION
    root.grad = np.array(1.0)
    # HINT: a node's gradient is complete once all of its children have been visited
    for node in reversed(topological_order(root)):
        if node.local_grads is None or node.grad is None:
            continue
        for parent, g in zip(node.parents, node.local_grads(node.grad)):
            # HINT: the first use sets parent.grad; each later use adds its contribution to it
            parent.grad = g if parent.grad is None else parent.grad + g
    # END SOLUTION
