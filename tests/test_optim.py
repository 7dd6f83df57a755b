"""Optimizers vs hand computations of the published updates; schedule and clipping formulas."""
import math

import numpy as np
import pytest

import tinyattn as ta
from tinyattn import optim


def param(values, grad):
    p = ta.Tensor(np.array(values, dtype=np.float64), requires_grad=True)
    p.grad = np.array(grad, dtype=np.float64)
    return p


def test_adamw_one_step_matches_hand_computation():
    """Step 1: m = (1-b1) g, v = (1-b2) g^2, mhat = g, vhat = g^2, so with decoupled decay
    p1 = p0 (1 - lr wd) - lr g / (|g| + eps)  (Loshchilov & Hutter, torch convention lr*wd)."""
    p0, g = np.array([0.5, -1.0, 2.0]), np.array([0.1, -3.0, 0.0])
    lr, wd, eps = 0.01, 0.1, 1e-8
    p = param(p0, g)
    optim.AdamW([p], lr=lr, betas=(0.9, 0.999), eps=eps, weight_decay=wd).step()
    expected = p0 * (1 - lr * wd) - lr * g / (np.abs(g) + eps)
    np.testing.assert_allclose(p.data, expected, rtol=1e-14)


def test_adamw_three_steps_match_scalar_loop():
    rng = np.random.default_rng(0)
    grads = rng.standard_normal((3, 4))
    p0 = rng.standard_normal(4)
    p = param(p0, grads[0])
    opt = optim.AdamW([p], lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.02)
    ref, m, v = p0.copy(), np.zeros(4), np.zeros(4)
    for t in range(1, 4):
        p.grad = grads[t - 1].copy()
        opt.step()
        g = grads[t - 1]
        ref = ref - 0.05 * 0.02 * ref
        m = 0.8 * m + 0.2 * g
        v = 0.99 * v + 0.01 * g * g
        ref = ref - 0.05 * (m / (1 - 0.8 ** t)) / (np.sqrt(v / (1 - 0.99 ** t)) + 1e-6)
    np.testing.assert_allclose(p.data, ref, rtol=1e-12)


def test_param_groups_and_lr_setter():
    a, b = param([1.0], [1.0]), param([1.0], [1.0])
    opt = optim.AdamW([{"params": [a]}, {"params": [b], "weight_decay": 0.0}], lr=0.1,
                      weight_decay=0.5)
    opt.lr = 0.2
    opt.step()
    np.testing.assert_allclose(a.data, [1.0 * (1 - 0.2 * 0.5) - 0.2 / (1 + 1e-8)])
    np.testing.assert_allclose(b.data, [1.0 - 0.2 / (1 + 1e-8)])


def test_sgd_momentum_matches_hand_computation():
    p = param([1.0, 2.0], [0.5, -1.0])
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    opt.step()                                  # v1 = g1
    p.grad = np.array([1.0, 1.0])
    opt.step()                                  # v2 = 0.9 v1 + g2
    v1 = np.array([0.5, -1.0])
    v2 = 0.9 * v1 + np.array([1.0, 1.0])
    np.testing.assert_allclose(p.data, np.array([1.0, 2.0]) - 0.1 * v1 - 0.1 * v2, rtol=1e-14)
    opt.zero_grad()
    assert p.grad is None
    q = param([1.0], [2.0])
    optim.SGD([q], lr=0.5).step()
    np.testing.assert_allclose(q.data, [0.0])


def test_float32_parameters_stay_float32():
    p = ta.Tensor(np.ones(3, np.float32), requires_grad=True)
    p.grad = np.full(3, 0.5, np.float32)
    optim.AdamW([p], lr=1e-3, weight_decay=0.1).step()
    optim.SGD([p], lr=1e-3, momentum=0.9).step()
    assert p.dtype == np.float32


def test_warmup_cosine_closed_form():
    f = lambda s: optim.warmup_cosine(s, warmup=10, total=110, lr_max=1.0, lr_min=0.1)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert f(110) == pytest.approx(0.1) and f(500) == pytest.approx(0.1)
    lrs = [f(s) for s in range(10, 110)]
    assert all(x >= y for x, y in zip(lrs, lrs[1:]))            # monotone decay after warmup
    with pytest.raises(ValueError, match="warmup=20, total=10"):
        optim.warmup_cosine(0, 20, 10, 1.0)


def test_clip_grad_norm_global():
    a, b = param([0.0, 0.0], [3.0, 0.0]), param([0.0], [4.0])
    norm = optim.clip_grad_norm([a, b], max_norm=1.0)
    assert norm == pytest.approx(5.0)
    np.testing.assert_allclose(np.concatenate([a.grad, b.grad]), [0.6, 0.0, 0.8], rtol=1e-6)
    c = param([0.0], [0.5])
    assert optim.clip_grad_norm([c], max_norm=1.0) == pytest.approx(0.5)
    np.testing.assert_array_equal(c.grad, [0.5])                 # below the threshold: untouched


def test_empty_or_bad_params_rejected():
    with pytest.raises(ValueError, match="empty"):
        optim.AdamW([])
    with pytest.raises(TypeError, match="Tensors"):
        optim.SGD([np.ones(3)], lr=0.1)
