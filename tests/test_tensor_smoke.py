"""Smoke test of the public tensor-core API others build on (detailed checks live in the other
test_tensor*/test_autograd*/test_functional_basic/test_nn/test_optim files)."""
import numpy as np

import tinyattn as ta
from tinyattn import functional as F
from tinyattn import nn, optim


def test_api_names_exist():
    for name in ("as_tensor", "concatenate", "stack", "split", "where"):
        assert callable(getattr(ta.tensor, name))
    assert callable(ta.autograd.custom_op) and callable(ta.no_grad) and callable(ta.gradcheck)
    for name in ("softmax", "log_softmax", "cross_entropy", "layer_norm", "rms_norm", "gelu",
                 "silu", "dropout", "masked_fill"):
        assert callable(getattr(F, name))
    for name in ("Module", "Parameter", "Linear", "Embedding", "LayerNorm", "RMSNorm", "Dropout",
                 "Sequential", "ModuleList"):
        assert hasattr(nn, name)
    for name in ("SGD", "AdamW", "warmup_cosine", "clip_grad_norm"):
        assert hasattr(optim, name)


def test_custom_op_square_matches_hand_gradient():
    x = ta.Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    y = ta.autograd.custom_op(x.data ** 2, [x], lambda g: (2 * x.data * g,), "square")
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, -4.0, 6.0])


def test_tiny_mlp_loss_decreases_float32():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((128, 2)).astype(np.float32)
    y = (X[:, 0] * X[:, 1] > 0).astype(np.int64)
    model = nn.Sequential(nn.Linear(2, 16, rng=rng), F.gelu, nn.Linear(16, 2, rng=rng))
    opt = optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(100):
        loss = F.cross_entropy(model(X), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert loss.dtype == np.float32 and model[0].weight.grad.dtype == np.float32
    assert losses[-1] < 0.5 * losses[0]
