"""Optimizer hyper-parameters and train() arguments: bad values raise before they can corrupt
weights (AdamW with beta1 = 1 divided by zero; lr < 0 climbed the loss)."""
import numpy as np
import pytest

import tinyattn as ta
from tinyattn import optim
from tinyattn.autograd import custom_op
from tinyattn.data import task_batch_fn
from tinyattn.models import TransformerLM
from tinyattn.train import lm_loss, train


def _p():
    return ta.Tensor(np.ones(3, np.float32), requires_grad=True)


@pytest.mark.parametrize("kw,match", [
    ({"lr": -1e-3}, "lr must be >= 0"),
    ({"lr": float("nan")}, "lr must be finite"),
    ({"lr": "1e-3"}, "lr must be a real number"),
    ({"betas": (1.0, 0.999)}, r"betas\[0\] must be in \[0, 1\)"),
    ({"betas": (0.9, 1.0)}, r"betas\[1\] must be in \[0, 1\)"),
    ({"betas": (-0.1, 0.999)}, r"betas\[0\] must be in \[0, 1\)"),
    ({"betas": (0.9,)}, "betas must be a pair"),
    ({"eps": 0.0}, "eps must be > 0"),
    ({"eps": -1e-8}, "eps must be > 0"),
    ({"weight_decay": -0.1}, "weight_decay must be >= 0"),
])
def test_adamw_rejects_bad_hyper_parameters(kw, match):
    with pytest.raises((ValueError, TypeError), match=match):
        optim.AdamW([_p()], **kw)


@pytest.mark.parametrize("kw,match", [
    ({"lr": -0.1}, "lr must be >= 0"),
    ({"lr": float("inf")}, "lr must be finite"),
    ({"lr": 0.1, "momentum": 1.0}, r"momentum must be in \[0, 1\)"),
    ({"lr": 0.1, "momentum": -0.5}, r"momentum must be in \[0, 1\)"),
    ({"lr": 0.1, "weight_decay": -1.0}, "weight_decay must be >= 0"),
])
def test_sgd_rejects_bad_hyper_parameters(kw, match):
    with pytest.raises(ValueError, match=match):
        optim.SGD([_p()], **kw)


def test_group_overrides_setter_and_schedule_writes_are_checked():
    a, b = _p(), _p()
    with pytest.raises(ValueError, match="lr must be >= 0"):
        optim.AdamW([{"params": [a]}, {"params": [b], "lr": -1.0}])
    with pytest.raises(ValueError, match=r"unknown hyper-parameter\(s\) \['weight_decy'\]"):
        optim.AdamW([{"params": [a], "weight_decy": 0.1}])           # a typo was ignored before
    with pytest.raises(ValueError, match="appears twice"):
        optim.SGD([a, a], lr=0.1)
    opt = optim.AdamW([a], lr=0.1)
    with pytest.raises(ValueError, match="lr must be >= 0"):
        opt.lr = -0.1
    opt.param_groups[0]["lr"] = -0.1                                  # what train's schedule writes
    a.grad = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="lr must be >= 0"):
        opt.step()
    np.testing.assert_array_equal(a.data, np.ones(3))                 # nothing was updated


def test_lr_zero_is_valid_and_moves_nothing():
    a = _p()
    for opt in (optim.AdamW([a], lr=0.0), optim.SGD([a], lr=0.0, momentum=0.9)):
        a.grad = np.full(3, 5.0, np.float32)
        opt.step()
        np.testing.assert_array_equal(a.data, np.ones(3))


@pytest.mark.parametrize("max_norm", [0.0, -1.0, float("nan")])
def test_clip_grad_norm_rejects_non_positive_max_norm(max_norm):
    a = _p()
    a.grad = np.array([3.0, 4.0, 0.0], np.float32)
    with pytest.raises(ValueError, match="max_norm"):
        optim.clip_grad_norm([a], max_norm)                           # -1 flipped the gradient before
    np.testing.assert_array_equal(a.grad, [3.0, 4.0, 0.0])


def _model():
    return TransformerLM(9, 16, 1, 2, 12, rng=np.random.default_rng(0))


@pytest.mark.parametrize("kw,match", [({"clip": 0.0}, "clip must be > 0"), ({"clip": -1.0}, "clip must be > 0"),
                                      ({"checkpoint_every": 0}, "checkpoint_every")])
def test_train_rejects_bad_arguments_before_any_step(kw, match):
    m = _model()

    def never(rng):
        raise AssertionError("batch_fn must not be called")
    with pytest.raises(ValueError, match=match):
        train(m, optim.SGD(m.parameters(), lr=0.1), never, 3, progress=False, **kw)


def test_train_creates_the_checkpoint_folder_before_the_first_step(tmp_path):
    folder = tmp_path / "runs" / "a"
    seen = []

    def batch_fn(rng):
        seen.append(folder.is_dir())
        return task_batch_fn("copy", 2, 3, 9)(rng)
    m = _model()
    train(m, optim.SGD(m.parameters(), lr=0.1), batch_fn, 2, progress=False,
          checkpoint_path=folder / "ckpt.npz")
    assert seen == [True, True] and (folder / "ckpt.npz").is_file()


def test_train_refuses_a_folder_as_checkpoint_path_before_any_step(tmp_path):
    m = _model()

    def never(rng):
        raise AssertionError("batch_fn must not be called")
    with pytest.raises(IsADirectoryError, match="is a folder"):
        train(m, optim.SGD(m.parameters(), lr=0.1), never, 3, progress=False, checkpoint_path=tmp_path)


def test_train_stops_on_a_non_finite_gradient_before_the_update():
    m = _model()
    first = m.parameters()[0]
    before = {n: p.data.copy() for n, p in m.named_parameters()}

    def inf_grad_loss(model, x, y):               # finite loss, infinite gradient on one weight
        spike = custom_op(np.zeros((), np.float32), (first,), lambda g: (np.full(first.shape, np.inf, np.float32),))
        return lm_loss(model, x, y) + spike
    with pytest.raises(FloatingPointError, match="gradient norm became inf at step 0"):
        train(m, optim.AdamW(m.parameters(), lr=1e-3), task_batch_fn("copy", 2, 3, 9), 3,
              loss_fn=inf_grad_loss, progress=False)
    for n, p in m.named_parameters():
        np.testing.assert_array_equal(p.data, before[n], err_msg=n)   # weights untouched


def test_adamw_on_float16_parameters_matches_the_float64_formula():
    g16 = np.array([1e-4, -3e-5, 300.0, -2.0, 0.0], np.float16)
    p = ta.Tensor(np.ones(5, np.float16), requires_grad=True)
    opt = optim.AdamW([p], lr=1e-2)
    ref, m, v = np.ones(5), np.zeros(5), np.zeros(5)
    for t in (1, 2, 3):
        p.grad = g16.copy()
        opt.step()
        g = g16.astype(np.float64)                                    # Adam in float64, by hand
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
        ref = ref - 1e-2 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    assert np.isfinite(p.data).all()                                  # was -inf for g = 1e-4
    np.testing.assert_allclose(p.data.astype(np.float64), ref, atol=1e-3)   # g = 300 moved too


def test_evaluate_lm_needs_at_least_one_batch():
    from tinyattn.train import evaluate_lm
    with pytest.raises(ValueError, match="n_batches must be an int >= 1"):
        evaluate_lm(_model(), task_batch_fn("copy", 2, 3, 9), n_batches=0)   # was NaN


def test_lm_loss_names_the_expected_logits_shape():
    class Flat:                                                       # returns (B*L, V): a common slip
        def __call__(self, x):
            return ta.Tensor(np.zeros((x.size, 9), np.float32))
    x = np.zeros((2, 3), np.int64)
    with pytest.raises(ValueError, match=r"must return logits \(B, L, V\) = \(2, 3, V\), got \(6, 9\)"):
        lm_loss(Flat(), x, x)
