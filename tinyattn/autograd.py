"""Reverse-mode automatic differentiation: grad mode, the backward engine, custom ops, gradcheck.

A graph node is a :class:`tinyattn.Tensor` that remembers its parents (``_parents``) and a
closure ``_backward(grad_out) -> tuple of grads, one per parent``. ``backward()`` visits the graph
in reverse topological order (computed iteratively, so deep graphs never hit Python's recursion
limit) and sums the gradients arriving at each node (the multivariate chain rule:
``dL/dx = sum over children c of dL/dc * dc/dx``).

Memory rule: a gradient produced by an op's backward may be shared (``a + b`` hands the same
array to both parents), so the engine never writes into it; the second arrival allocates one fresh
buffer (``g1 + g2``) and later arrivals are added into that buffer in place.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Sequence

import numpy as np

__all__ = ["no_grad", "enable_grad", "is_grad_enabled", "custom_op", "gradcheck",
           "GradcheckError", "IndexedGrad", "run_backward", "topological_order"]

_GRAD_ENABLED = True
_TENSOR_CLS: Any = None          # set by tinyattn.tensor at import (avoids a circular import)


def is_grad_enabled() -> bool:
    """True unless inside a ``no_grad()`` block."""
    return _GRAD_ENABLED


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Context manager: ops inside record no graph (inference, optimizer updates, evaluation)."""
    global _GRAD_ENABLED
    previous, _GRAD_ENABLED = _GRAD_ENABLED, False
    try:
        yield
    finally:
        _GRAD_ENABLED = previous


@contextlib.contextmanager
def enable_grad() -> Iterator[None]:
    """Context manager: re-enable graph recording inside a ``no_grad()`` block."""
    global _GRAD_ENABLED
    previous, _GRAD_ENABLED = _GRAD_ENABLED, True
    try:
        yield
    finally:
        _GRAD_ENABLED = previous


class IndexedGrad:
    """A gradient that is zero except at ``index``: ``full = zeros(shape); full[index] += value``.

    Slicing ops (``x[:, :d]``, ``split``) return this instead of a dense zeros array, so the engine
    can add each piece into one buffer instead of allocating a full-size array per piece.
    ``accumulate=True`` (integer-array gathers, which may repeat an index) uses ``np.add.at``.
    """

    __slots__ = ("index", "value", "shape", "accumulate")

    def __init__(self, index: Any, value: np.ndarray, shape: tuple, accumulate: bool = False):
        self.index, self.value, self.shape, self.accumulate = index, value, shape, accumulate

    def add_into(self, buf: np.ndarray) -> None:
        if self.accumulate:
            np.add.at(buf, self.index, self.value)    # repeated indices add up
        else:
            buf[self.index] += self.value

    def dense(self, dtype: np.dtype) -> np.ndarray:
        buf = np.zeros(self.shape, dtype=dtype)
        self.add_into(buf)
        return buf


def _register_tensor_class(cls: Any) -> None:
    global _TENSOR_CLS
    _TENSOR_CLS = cls


def custom_op(out_data: np.ndarray, inputs: Sequence[Any],
              backward: Callable[[np.ndarray], Sequence[np.ndarray | None]],
              name: str = "op") -> Any:
    """Wrap ``out_data`` in a Tensor whose gradient is given by a hand-written ``backward``.

    out_data: the forward result (ndarray, computed by the caller without recording a graph).
    inputs: the Tensors the result depends on (ndarrays are treated as constants).
    backward: ``backward(grad_out)`` with ``grad_out`` shaped like ``out_data`` returns one
      gradient per input, each shaped like that input (``None`` = no gradient). It is called at
      most once per ``backward()`` and only if the output requires grad. It must NOT modify
      ``grad_out`` in place: the same array may also be the gradient of another tensor.
    Returns a Tensor that requires grad iff grad mode is on and any input requires grad.
    """
    parents = tuple(t if isinstance(t, _TENSOR_CLS) else _TENSOR_CLS(t) for t in inputs)
    return _TENSOR_CLS._make(out_data, parents, backward, name)


def topological_order(root: Any, only_requiring_grad: bool = True) -> list:
    """Nodes of the graph below ``root``, parents before children (iterative post-order DFS, so
    deep graphs never hit the recursion limit). By default only nodes that need a gradient."""
    order: list = []
    visited: set[int] = set()
    stack: list = [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        for parent in node._parents:
            if (parent.requires_grad or not only_requiring_grad) and id(parent) not in visited:
                stack.append((parent, False))
    return order


def _add_grad(pending: dict, owned: set, node: Any, g: Any, op: str) -> None:
    """Sum ``g`` into the pending gradient of ``node`` (see the module docstring's memory rule)."""
    key = id(node)
    acc = pending.get(key)
    if isinstance(g, IndexedGrad):
        if acc is None:
            acc = np.zeros(node.data.shape, dtype=node.data.dtype)
        elif key not in owned:
            acc = np.array(acc, dtype=node.data.dtype)      # copy: the shared array stays intact
        g.add_into(acc)
        pending[key] = acc
        owned.add(key)
        return
    if g.shape != node.data.shape:
        raise RuntimeError(f"backward of op {op!r} returned a gradient of shape {g.shape} "
                           f"for an input of shape {node.data.shape}")
    if acc is None:
        pending[key] = g
    elif key in owned:
        acc += g                                        # our own buffer: add in place
    else:
        pending[key] = np.add(acc, g, dtype=node.data.dtype)   # one fresh buffer
        owned.add(key)


def run_backward(root: Any, grad: np.ndarray) -> None:
    """Backpropagate ``grad`` (shaped like ``root``) through the graph that produced ``root``.

    Leaf tensors (no parents) with ``requires_grad`` get ``.grad += dL/dleaf`` (in their dtype);
    non-leaf tensors get ``.grad`` only if ``retain_grad()`` was called on them.
    """
    order = topological_order(root)
    pending: dict[int, Any] = {id(root): grad}
    owned: set[int] = set()
    for node in reversed(order):
        g = pending.pop(id(node), None)
        if g is None:
            continue
        if g.dtype != node.data.dtype:
            g = g.astype(node.data.dtype)
            owned.add(id(node))
        is_leaf = node._backward is None
        if is_leaf or node._retain:
            if node.grad is None:
                node.grad = g if id(node) in owned else np.array(g, copy=True)
            else:
                node.grad = node.grad + g
        if is_leaf:
            continue
        grads = node._backward(g)
        if isinstance(grads, np.ndarray):
            grads = (grads,)
        for parent, pg in zip(node._parents, grads):
            if pg is not None and parent.requires_grad:
                _add_grad(pending, owned, parent, pg, node._op)


class GradcheckError(AssertionError):
    """Raised by :func:`gradcheck` with the worst mismatching element."""


def _as_scalar_objective(out: Any, weights: list, rng: np.random.Generator) -> Any:
    """Reduce fn's output(s) to a scalar ``sum_k <w_k, out_k>`` with fixed random weights."""
    outs = out if isinstance(out, (tuple, list)) else (out,)
    total = None
    for k, o in enumerate(outs):
        if len(weights) <= k:
            weights.append(rng.standard_normal(o.shape))
        term = (o * weights[k]).sum()
        total = term if total is None else total + term
    return total


def gradcheck(fn: Callable[..., Any], *tensors: Any, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, seed: int = 0) -> bool:
    """Compare autograd gradients of ``fn`` with central finite differences in float64.

    fn: takes ``*tensors`` and returns a Tensor (any shape) or a tuple of Tensors.
    tensors: the arguments; those with ``requires_grad=True`` are checked (all floating Tensors
      if none requires grad). Checked tensors are copied to float64 first. Non-Tensors pass through.
    The objective is ``sum(out * w)`` with a fixed random ``w``; numerical derivative
    ``(f(x + eps e_i) - f(x - eps e_i)) / (2 eps)`` for every element ``i``.
    Returns True; raises :class:`GradcheckError` naming the input, the worst element, both values.
    """
    T = _TENSOR_CLS
    flags = [isinstance(t, T) and t.requires_grad for t in tensors]
    if not any(flags):
        flags = [isinstance(t, T) and np.issubdtype(t.dtype, np.floating) for t in tensors]
    if not any(flags):
        raise ValueError("gradcheck: no floating-point Tensor among the arguments to check")
    args = [T(np.array(t.data, dtype=np.float64), requires_grad=True) if f else t
            for t, f in zip(tensors, flags)]
    rng, weights = np.random.default_rng(seed), []
    with enable_grad():
        objective = _as_scalar_objective(fn(*args), weights, rng)
        if objective.requires_grad:          # else fn ignores its inputs: analytic gradient 0
            objective.backward()
    for i, (arg, f) in enumerate(zip(args, flags)):
        if not f:
            continue
        analytic = np.zeros(arg.shape) if arg.grad is None else arg.grad
        numeric = np.zeros(arg.shape)
        flat = arg.data.reshape(-1)          # a view: perturbing it perturbs arg.data
        with no_grad():
            for j in range(flat.size):
                orig = flat[j]
                flat[j] = orig + eps
                plus = float(_as_scalar_objective(fn(*args), weights, rng).data)
                flat[j] = orig - eps
                minus = float(_as_scalar_objective(fn(*args), weights, rng).data)
                flat[j] = orig
                numeric.reshape(-1)[j] = (plus - minus) / (2 * eps)
        err = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
        err[~(np.isfinite(analytic) & np.isfinite(numeric))] = np.inf   # NaN/inf never pass
        if err.size and err.max() > 0:
            worst = tuple(int(k) for k in np.unravel_index(int(np.argmax(err)), arg.shape))
            raise GradcheckError(
                f"gradcheck failed for argument {i} (shape {arg.shape}): worst element {worst}: "
                f"analytic {analytic[worst]:.6g} vs numerical {numeric[worst]:.6g} "
                f"(|diff| {abs(analytic[worst] - numeric[worst]):.3g} > atol {atol} + rtol {rtol}"
                f" * |numerical|); {int((err > 0).sum())} of {err.size} elements mismatch")
    return True
