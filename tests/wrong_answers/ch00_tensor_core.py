"""Plausible wrong answers to chapter 00's exercises; each must lose points (tests/test_grader_regression.py).

Each value is the full source of a replacement for one function of solutions/ch00_tensor_core.py.
"""

WRONG = {
    # sums the extra leading axes but forgets the size-1 axes (then reshape fails or mixes values)
    "unbroadcast_leading_axes_only": '''def unbroadcast(grad, shape):
    lead = grad.ndim - len(shape)
    g = grad.sum(axis=tuple(range(lead))) if lead > 0 else grad
    return g.reshape(shape) if g.size == int(np.prod(shape)) else g
''',
    # compares shapes from the left instead of right-aligning them as broadcasting does
    "unbroadcast_left_aligned": '''def unbroadcast(grad, shape):
    axes = tuple(i for i in range(grad.ndim) if i >= len(shape) or (shape[i] == 1 and grad.shape[i] != 1))
    return grad.sum(axis=axes).reshape(shape)
''',
    # the two gradients swapped (d(a*b)/da taken as a)
    "mul_backward_swapped": '''def mul_backward(a, b, grad_out):
    return unbroadcast(grad_out * a, a.shape), unbroadcast(grad_out * b, b.shape)
''',
    # .T reverses every axis of a batch, not just the last two
    "matmul_backward_dot_T": '''def matmul_backward(a, b, grad_out):
    ga = grad_out @ b.T
    gb = a.T @ grad_out
    return unbroadcast(ga, a.shape), unbroadcast(gb, b.shape)
''',
    # forgets that a broadcast batch axis must be summed
    "matmul_backward_no_unbroadcast": '''def matmul_backward(a, b, grad_out):
    return grad_out @ np.swapaxes(b, -1, -2), np.swapaxes(a, -1, -2) @ grad_out
''',
    # ignores the axis argument
    "softmax_backward_last_axis_only": '''def softmax_backward(p, grad_out, axis=-1):
    return p * (grad_out - (grad_out * p).sum(axis=-1, keepdims=True))
''',
    # the Jacobian transposed the wrong way: g_j p_j - p_j sum_i p_i ... with the sum over every element
    "softmax_backward_global_sum": '''def softmax_backward(p, grad_out, axis=-1):
    return p * (grad_out - (grad_out * p).sum())
''',
    # hole from issue 9: eps hard-coded
    "numerical_gradient_ignores_eps": '''def numerical_gradient(f, x, eps=1e-6):
    h = 1e-6
    grad = np.zeros_like(x, dtype=np.float64)
    for idx in np.ndindex(x.shape):
        orig = x[idx]
        x[idx] = orig + h
        plus = f(x)
        x[idx] = orig - h
        minus = f(x)
        x[idx] = orig
        grad[idx] = (plus - minus) / (2 * h)
    return grad
''',
    # one-sided (forward) differences: O(eps) error
    "numerical_gradient_forward_difference": '''def numerical_gradient(f, x, eps=1e-6):
    grad = np.zeros_like(x, dtype=np.float64)
    base = f(x)
    for idx in np.ndindex(x.shape):
        orig = x[idx]
        x[idx] = orig + eps
        grad[idx] = (f(x) - base) / eps
        x[idx] = orig
    return grad
''',
    # never restores x[idx] after the probes
    "numerical_gradient_mutates_x": '''def numerical_gradient(f, x, eps=1e-6):
    grad = np.zeros_like(x, dtype=np.float64)
    for idx in np.ndindex(x.shape):
        orig = x[idx]
        x[idx] = orig + eps
        plus = f(x)
        x[idx] = orig - eps
        minus = f(x)
        grad[idx] = (plus - minus) / (2 * eps)
    return grad
''',
    # no max subtraction: exp(1e4) overflows
    "logsumexp_op_unstable": '''def logsumexp_op(x, axis=-1):
    x = as_tensor(x)
    e = np.exp(x.data)
    s = e.sum(axis=axis, keepdims=True)
    out = np.squeeze(np.log(s), axis=axis)
    p = e / s

    def backward(g):
        return (p * np.expand_dims(g, axis),)
    return custom_op(out, [x], backward, "logsumexp")
''',
    # re-expands the incoming gradient on the last axis whatever the reduced axis was
    "logsumexp_op_backward_last_axis": '''def logsumexp_op(x, axis=-1):
    x = as_tensor(x)
    X = x.data
    m = X.max(axis=axis, keepdims=True)
    e = np.exp(X - m)
    s = e.sum(axis=axis, keepdims=True)
    out = np.squeeze(m + np.log(s), axis=axis)
    p = e / s

    def backward(g):
        return (p * np.broadcast_to(g[..., None], p.shape) if g.ndim else p * g,)
    return custom_op(out, [x], backward, "logsumexp")
''',
}
