# GENERATED from solutions/ch00_tensor_core.py by `python3 course.py exercises`.
# Fill in each `raise NotImplementedError(...)`; edit solutions/, never this file, as an author.
"""Chapter 00 exercises: the backward passes behind reverse-mode autograd, in plain NumPy.

Exercise 00.1  unbroadcast          sum a gradient back to the shape of a broadcast operand
Exercise 00.2  mul_backward         gradients of a * b with broadcasting
Exercise 00.3  matmul_backward      gradients of a @ b, batched, with broadcast batch axes
Exercise 00.4  softmax_backward     vector-Jacobian product of softmax, without forming J
Exercise 00.5  numerical_gradient   central finite differences of a scalar function
Exercise 00.6  logsumexp_op         a tinyattn graph node (custom_op) with your backward

Exercises 00.1-00.5 use NumPy only. The graded tests compare your functions with tinyattn's
autograd and with float64 finite differences on fresh random shapes.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from tinyattn.autograd import custom_op
from tinyattn.tensor import Tensor, as_tensor


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` (the gradient of a broadcast result) back to ``shape``.

    grad: (*extra, *stretched) -> (shape). An operand of ``shape`` broadcast to ``grad.shape``
    was repeated along (a) leading axes it did not have and (b) axes where it had size 1; each
    repeat used the same element, so its gradient is the sum over those axes. Example:
    shape (3, 1), grad (2, 3, 4) -> sum over axis 0 and axis 2 -> (3, 1).
    """
    # HINT: first sum away the leading axes grad has in excess of len(shape)
    # HINT: then sum (keepdims=True) over axes where shape has 1 but g does not
    raise NotImplementedError("Exercise 00.1: unbroadcast")


def mul_backward(a: np.ndarray, b: np.ndarray, grad_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of ``out = a * b`` (NumPy broadcasting). grad_out has out's shape.

    Returns (grad_a shaped like a, grad_b shaped like b): dL/da = unbroadcast(g * b),
    dL/db = unbroadcast(g * a).
    """
    # HINT: d(a*b)/da = b elementwise; then undo the broadcasting with unbroadcast
    raise NotImplementedError("Exercise 00.2: mul_backward")


def matmul_backward(a: np.ndarray, b: np.ndarray,
                    grad_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of ``out = a @ b`` for a: (..., m, k), b: (..., k, n), both at least 2-D; the
    batch axes ``...`` broadcast as in np.matmul. grad_out: (..., m, n).

    Returns (grad_a (..., m, k) like a, grad_b (..., k, n) like b):
    dA = dO @ B^T, dB = A^T @ dO (transpose = swap the last two axes), then unbroadcast.
    """
    # HINT: np.swapaxes(x, -1, -2) transposes the last two axes of a batch of matrices
    # HINT: a batch axis that was broadcast must be summed, exactly like in exercise 00.1
    raise NotImplementedError("Exercise 00.3: matmul_backward")


def softmax_backward(p: np.ndarray, grad_out: np.ndarray, axis: int = -1) -> np.ndarray:
    """Gradient w.r.t. the scores s of ``p = softmax(s, axis)``, given p and grad_out = dL/dp.

    p, grad_out: same shape (...). With dp_i/ds_j = p_i (delta_ij - p_j):
    dL/ds_j = p_j (g_j - sum_i g_i p_i), the sum over ``axis``. O(N) per row, no Jacobian.
    """
    # HINT: the inner sum is one number per row: keepdims=True lets it broadcast back
    raise NotImplementedError("Exercise 00.4: softmax_backward")


def numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray,
                       eps: float = 1e-6) -> np.ndarray:
    """Central differences: grad[i] = (f(x + eps e_i) - f(x - eps e_i)) / (2 eps).

    f: maps an array shaped like x to a float. x: float64 array (any shape); it must be left
    unchanged when the function returns. Returns an array shaped like x.
    """
    # HINT: np.ndindex(x.shape) walks every index; restore x[idx] after each probe
    raise NotImplementedError("Exercise 00.5: numerical_gradient")


def logsumexp_op(x: Tensor, axis: int = -1) -> Tensor:
    """A tinyattn graph node: lse(x) = log sum exp(x) over ``axis`` (axis removed).

    x: Tensor (...). Forward must be stable (x = +-1e4 gives finite results): subtract the
    row max m first, lse = m + log sum exp(x - m). Backward: d lse / dx_j = softmax(x)_j, so
    grad_x = softmax(x) * grad_out (grad_out re-expanded along ``axis``).
    Build the node with ``custom_op(out_data, [x], backward, "logsumexp")``.
    """
    x = as_tensor(x)
    # HINT: np.expand_dims(g, axis) puts the reduced axis back so g broadcasts over it
    raise NotImplementedError("Exercise 00.6: logsumexp_op")
