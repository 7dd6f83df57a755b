"""tinyattn.train: the loss against a float64 formula, seeding, schedules, evaluation, and exact
checkpoints (save -> load into a fresh model gives identical logits and an identical next step)."""
import numpy as np
import pytest

import tinyattn as ta
from tinyattn.data import copy_task, sequence_accuracy, task_batch_fn
from tinyattn.models import TransformerLM
from tinyattn.train import evaluate_lm, lm_loss, load_checkpoint, save_checkpoint, train


def _model(seed=0, **kw):
    return TransformerLM(9, 16, 2, 2, 12, rng=np.random.default_rng(seed), **kw)


def test_lm_loss_matches_float64_formula():
    model = _model()
    rng = np.random.default_rng(1)
    x = rng.integers(0, 9, (3, 7))
    y = rng.integers(0, 9, (3, 7))
    y[0, :4] = y[2, 6] = -100
    logits = model(x).data.astype(np.float64)
    total, count = 0.0, 0
    for b in range(3):
        for t in range(7):
            if y[b, t] == -100:
                continue
            row = logits[b, t]
            total += np.log(np.exp(row - row.max()).sum()) + row.max() - row[y[b, t]]
            count += 1
    assert float(lm_loss(model, x, y).data) == pytest.approx(total / count, rel=1e-5)
    with pytest.raises(ValueError, match=r"\(B, L\)"):
        lm_loss(model, x, y[:, :3])


def test_same_seed_same_history_other_seed_differs():
    fn = task_batch_fn("copy", 4, 4, 9)
    runs = []
    for seed in (0, 0, 1):
        model = _model()
        opt = ta.optim.AdamW(model.parameters(), lr=1e-3)
        runs.append(train(model, opt, fn, 6, seed=seed, progress=False))
    assert runs[0]["loss"] == runs[1]["loss"]
    assert runs[0]["loss"] != runs[2]["loss"]


def test_schedule_eval_and_history():
    model = _model()
    opt = ta.optim.AdamW(model.parameters(), lr=1.0)
    calls = []
    sched = lambda s: ta.optim.warmup_cosine(s, 2, 7, 1e-3, 1e-4)  # noqa: E731
    hist = train(model, opt, task_batch_fn("reverse", 4, 3, 9), 7, eval_every=3, lr_schedule=sched,
                 eval_fn=lambda m: calls.append(m.training) or {"n": len(calls)}, progress=False)
    assert hist["step"] == list(range(7))
    assert hist["lr"] == [sched(s) for s in range(7)]
    assert hist["eval_step"] == [3, 6, 7] and [e["n"] for e in hist["eval"]] == [1, 2, 3]
    assert calls == [False, False, False] and model.training          # eval mode inside eval_fn only
    assert all(np.isfinite(hist["grad_norm"])) and len(hist["loss"]) == 7


def test_clipping_bounds_the_update():
    model = _model()
    opt = ta.optim.SGD(model.parameters(), lr=1.0)
    before = {n: p.data.copy() for n, p in model.named_parameters()}
    hist = train(model, opt, task_batch_fn("copy", 4, 4, 9), 1, clip=1e-3, progress=False)
    step = np.sqrt(sum(((p.data.astype(np.float64) - before[n]) ** 2).sum() for n, p in model.named_parameters()))
    assert hist["grad_norm"][0] > 1e-3
    assert step == pytest.approx(1e-3, rel=1e-2)                     # SGD step = lr * clipped grad


def test_checkpoint_roundtrip_is_exact(tmp_path):
    fn = task_batch_fn("copy", 4, 4, 9)
    model = _model()
    opt = ta.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.1)
    rng = np.random.default_rng(5)
    train(model, opt, fn, 5, rng=rng, progress=False)
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, model, opt, step=5, rng=rng)

    fresh = _model(seed=123)                                          # different initial weights
    fresh_opt = ta.optim.AdamW(fresh.parameters(), lr=0.5)
    fresh_rng = np.random.default_rng(999)
    assert load_checkpoint(path, fresh, fresh_opt, rng=fresh_rng) == 5
    x, _ = copy_task(3, 4, 9, np.random.default_rng(0))
    np.testing.assert_array_equal(model(x).data, fresh(x).data)      # identical logits, bit for bit
    assert fresh_opt.lr == opt.lr and fresh_opt.param_groups[0]["betas"] == opt.param_groups[0]["betas"]
    # the next optimizer step (same batch from the restored rng) is identical too
    for m, o, r in ((model, opt, rng), (fresh, fresh_opt, fresh_rng)):
        train(m, o, fn, 6, start_step=5, rng=r, progress=False)
    for (n, p), (_, q) in zip(model.named_parameters(), fresh.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=n)


@pytest.mark.parametrize("positional", ["rope", "cape"])      # cape: the model owns a random stream
def test_resume_equals_uninterrupted_run(tmp_path, positional):
    fn = task_batch_fn("sort", 4, 4, 9)
    full = _model(positional=positional)
    train(full, ta.optim.AdamW(full.parameters(), lr=2e-3), fn, 8, seed=3, progress=False)
    part = _model(positional=positional)
    path = tmp_path / "mid.npz"
    train(part, ta.optim.AdamW(part.parameters(), lr=2e-3), fn, 4, seed=3, progress=False, checkpoint_path=path)
    resumed = _model(seed=77, positional=positional)
    opt, rng = ta.optim.AdamW(resumed.parameters(), lr=2e-3), np.random.default_rng(0)
    start = load_checkpoint(path, resumed, opt, rng=rng)
    train(resumed, opt, fn, 8, start_step=start, rng=rng, progress=False)
    for (n, p), (_, q) in zip(full.named_parameters(), resumed.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=n)


def test_checkpoint_mismatch_raises(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(path, _model(), step=1)
    with pytest.raises(ValueError, match="does not match"):
        load_checkpoint(path, TransformerLM(9, 16, 1, 2, 12))
    with pytest.raises(ValueError, match="vocab_size: checkpoint 9, model 10"):
        load_checkpoint(path, TransformerLM(10, 16, 2, 2, 12))


def test_non_finite_loss_raises():
    model = _model()
    opt = ta.optim.SGD(model.parameters(), lr=0.1)
    nan_loss = lambda m, x, y: lm_loss(m, x, y) * float("nan")  # noqa: E731
    with pytest.raises(FloatingPointError, match="step 0"):
        train(model, opt, task_batch_fn("copy", 2, 3, 9), 3, loss_fn=nan_loss, progress=False)


@pytest.mark.slow
def test_two_layer_model_learns_copy():
    V, n = 10, 6
    model = TransformerLM(V, 32, 2, 2, 2 * n, rng=np.random.default_rng(0))
    opt = ta.optim.AdamW(model.parameters(), lr=3e-3)
    fn = task_batch_fn("copy", 32, n, V)
    hist = train(model, opt, fn, 250, seed=0, progress=False,
                 lr_schedule=lambda s: ta.optim.warmup_cosine(s, 25, 250, 3e-3, 3e-4))
    assert np.mean(hist["loss"][:10]) > 1.5                         # ~ln(9) at the start
    assert evaluate_lm(model, fn) < 0.05
    x, y = copy_task(200, n, V, np.random.default_rng(42))
    with ta.no_grad():
        pred = model.eval()(x).data.argmax(-1)
    assert sequence_accuracy(pred, y)[1] > 0.95


def test_viz_smooth_and_history_plot():
    import matplotlib
    matplotlib.use("Agg")
    from tinyattn.viz.training import draw_block, plot_history, smooth
    v = np.random.default_rng(0).standard_normal(37)
    want = [np.mean(v[max(0, t - 4):t + 1]) for t in range(37)]       # trailing window of 5
    np.testing.assert_allclose(smooth(v, 5), want, rtol=1e-12)
    with pytest.raises(ValueError, match="window"):
        smooth(v, 0)
    hist = {"step": list(range(10)), "loss": list(np.linspace(2, 1, 10)), "eval_step": [5, 10],
            "eval": [{"val": 1.5}, {"val": 1.1}]}
    ax = plot_history(hist, eval_key="val", window=3)
    lines = ax.get_lines()
    np.testing.assert_allclose(lines[0].get_ydata(), hist["loss"])
    np.testing.assert_allclose(lines[2].get_ydata(), [1.5, 1.1])
    assert len(draw_block().patches) >= 8                            # 6 boxes + 2 residual sums
