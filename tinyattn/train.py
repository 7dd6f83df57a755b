"""The training loop of chapter 04: seeded, with a tqdm progress bar, periodic evaluation and
exact ``.npz`` checkpoints (model and its config, optimizer class and state, step and the data
RNG's state; see :mod:`tinyattn.checkpoint`, re-exported here).

Usage::

    hist = train(model, opt, task_batch_fn("copy", 32, 8, 12), steps=300, seed=0,
                 eval_fn=lambda m: {"val_loss": ...}, eval_every=50,
                 lr_schedule=lambda s: ta.optim.warmup_cosine(s, 20, 300, 3e-3, 3e-4))

``batch_fn(rng) -> (inputs, targets)``: int arrays (B, L); targets use ``-100`` for positions that
are not scored. Everything random in the loop draws from one ``np.random.Generator`` seeded by
``seed`` (or passed as ``rng``), so two runs with the same seed give identical histories.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any, Callable

import numpy as np

from . import functional as F
from . import optim as _optim
from .autograd import no_grad
from .checkpoint import CheckpointError, load_checkpoint, prepare_checkpoint_path, save_checkpoint
from .tensor import Tensor

__all__ = ["lm_loss", "train", "save_checkpoint", "load_checkpoint", "evaluate_lm", "CheckpointError"]

BatchFn = Callable[[np.random.Generator], "tuple[np.ndarray, np.ndarray]"]


def lm_loss(model, inputs: np.ndarray, targets: np.ndarray, ignore_index: int = -100) -> Tensor:
    """Mean next-token cross-entropy over scored positions.

    inputs: int (B, L); targets: int (B, L) with ``ignore_index`` on unscored positions.
    ``model(inputs)`` must return logits (B, L, V). Returns a scalar Tensor:
    ``-(1/|S|) * sum_{(b,t) in S} log softmax(logits[b, t])[targets[b, t]]``.
    """
    inputs, targets = np.asarray(inputs), np.asarray(targets)
    if inputs.shape != targets.shape or inputs.ndim != 2:
        raise ValueError(f"inputs and targets must both be (B, L); got {inputs.shape} and {targets.shape}")
    logits = model(inputs)
    if logits.ndim != 3 or logits.shape[:2] != inputs.shape:
        raise ValueError(f"model(inputs {inputs.shape}) must return logits (B, L, V) = "
                         f"({inputs.shape[0]}, {inputs.shape[1]}, V), got {logits.shape}")
    b, l, v = logits.shape
    return F.cross_entropy(logits.reshape(b * l, v), targets.reshape(b * l), ignore_index=ignore_index)


def evaluate_lm(model, batch_fn: BatchFn, n_batches: int = 4, seed: int = 12345) -> float:
    """Mean ``lm_loss`` over ``n_batches`` batches drawn with a fixed seed (no grad, eval mode).
    Always the same batches for the same seed, so successive evaluations are comparable."""
    if not isinstance(n_batches, (int, np.integer)) or n_batches < 1:
        raise ValueError(f"n_batches must be an int >= 1 (the mean of no losses is NaN), got {n_batches!r}")
    rng = np.random.default_rng(seed)
    was_training = getattr(model, "training", True)
    model.eval()
    try:
        with no_grad():
            losses = [float(lm_loss(model, *batch_fn(rng)).data) for _ in range(n_batches)]
    finally:
        model.train(was_training)
    return float(np.mean(losses))


def _set_lr(opt, lr: float) -> None:
    if hasattr(opt, "param_groups"):
        for group in opt.param_groups:
            group["lr"] = lr
    else:
        opt.lr = lr


def _get_lr(opt) -> float:
    if hasattr(opt, "param_groups"):
        return float(opt.param_groups[0]["lr"])
    return float(opt.lr)


def train(model, opt, batch_fn: BatchFn, steps: int, *, loss_fn: Callable | None = None,
          eval_fn: Callable[[Any], Any] | None = None, eval_every: int = 100,
          lr_schedule: Callable[[int], float] | None = None, clip: float | None = 1.0,
          checkpoint_path: str | os.PathLike | None = None, checkpoint_every: int | None = None,
          seed: int = 0, rng: np.random.Generator | None = None, start_step: int = 0,
          progress: bool = True, desc: str = "train") -> dict[str, list]:
    """Train ``model`` with ``opt`` for steps ``start_step .. steps - 1``.

    batch_fn(rng) -> (inputs (B, L), targets (B, L)); loss_fn(model, inputs, targets) -> scalar
    Tensor (default ``lm_loss``); eval_fn(model) -> float or dict, run under ``no_grad`` in eval
    mode every ``eval_every`` steps and after the last one; lr_schedule(step) -> lr set before
    each step; clip: max global grad norm (None: no clipping). checkpoint_path: written every
    ``checkpoint_every`` steps (if given) and at the end; its folder is created (and checked
    writable) before the first step, so a bad path fails at once, not after the whole run.
    rng (or ``seed``) drives batch_fn. A non-finite loss or (with clip) gradient norm raises
    FloatingPointError before the optimizer step, so the weights stay finite.

    Returns a history dict: step, loss, lr, grad_norm (lists, one entry per step), eval_step and
    eval (one entry per evaluation), seconds (wall time of the loop).
    """
    if not isinstance(steps, (int, np.integer)) or steps < 0 or start_step < 0 or start_step > steps:
        raise ValueError(f"need 0 <= start_step <= steps; got start_step={start_step}, steps={steps}")
    if eval_every < 1:
        raise ValueError(f"eval_every must be >= 1, got {eval_every}")
    if checkpoint_every is not None and (not isinstance(checkpoint_every, (int, np.integer))
                                         or checkpoint_every < 1):
        raise ValueError(f"checkpoint_every must be an int >= 1 or None, got {checkpoint_every!r}")
    if clip is not None and not clip > 0:
        raise ValueError(f"clip must be > 0 (max gradient norm) or None for no clipping, got {clip!r}")
    if checkpoint_path is not None:
        checkpoint_path = prepare_checkpoint_path(checkpoint_path)
    if rng is None:
        rng = np.random.default_rng(seed)
    elif not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    loss_fn = lm_loss if loss_fn is None else loss_fn
    params = [p for p in model.parameters() if p.requires_grad]
    hist: dict[str, list] = {"step": [], "loss": [], "lr": [], "grad_norm": [], "eval_step": [], "eval": []}
    bar = _progress_bar(range(start_step, steps), progress, desc)
    t0 = time.perf_counter()
    model.train()
    for step in bar:
        if lr_schedule is not None:
            _set_lr(opt, float(lr_schedule(step)))
        inputs, targets = batch_fn(rng)
        opt.zero_grad()
        loss = loss_fn(model, inputs, targets)
        loss_value = float(loss.data)
        if not np.isfinite(loss_value):
            raise FloatingPointError(f"loss became {loss_value} at step {step}; lower the learning rate")
        loss.backward()
        grad_norm = float(_optim.clip_grad_norm(params, clip)) if clip else float("nan")
        if clip and not np.isfinite(grad_norm):
            raise FloatingPointError(f"gradient norm became {grad_norm} at step {step} (loss "
                                     f"{loss_value:.4g}); lower the learning rate")
        opt.step()
        for key, value in (("step", step), ("loss", loss_value), ("lr", _get_lr(opt)), ("grad_norm", grad_norm)):
            hist[key].append(value)
        done = step + 1
        if eval_fn is not None and (done % eval_every == 0 or done == steps):
            model.eval()
            with no_grad():
                hist["eval"].append(eval_fn(model))
            model.train()
            hist["eval_step"].append(done)
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{loss_value:.4f}", refresh=False)
        if checkpoint_path is not None and checkpoint_every and done % checkpoint_every == 0:
            save_checkpoint(checkpoint_path, model, opt, done, rng=rng)
    if checkpoint_path is not None:
        save_checkpoint(checkpoint_path, model, opt, steps, rng=rng)
    hist["seconds"] = [time.perf_counter() - t0]
    return hist


def _progress_bar(it, progress: bool, desc: str):
    if not progress:
        return it
    from tqdm import tqdm   # plain text bar: renders in terminals and in stored notebooks alike
    # at most ~20 redraws per run: a stored notebook keeps every redraw of its stderr stream
    return tqdm(it, desc=desc, file=sys.stderr, mininterval=1.0, miniters=max(1, len(it) // 20),
                ncols=80, leave=True)
