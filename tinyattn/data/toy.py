"""Toy sequence tasks for decoder-only language models.

Every generator returns ``(inputs, targets)``, two int64 arrays of shape ``(n, T)``: the model
reads ``inputs`` and is trained to predict ``targets`` position by position (next-token
prediction: ``targets[:, t] == sequence[:, t + 1]``). Positions whose next token is not part of
the task (the prompt) carry ``IGNORE_INDEX = -100`` so that ``F.cross_entropy`` skips them.

Token layout shared by all tasks: ``SEP = 0`` separates the prompt from the answer; content
symbols are ``1 .. vocab - 1``. Randomness only through the ``rng`` argument.

Task      sequence (before the input/target shift)              scored positions
copy      x_1 .. x_n  SEP  x_1 .. x_n                            the n answer tokens
reverse   x_1 .. x_n  SEP  x_n .. x_1                            the n answer tokens
sort      x_1 .. x_n  SEP  sorted(x)                             the n answer tokens
recall    k_1 v_1 .. k_n v_n  SEP  k_q v_q                       the final value v_q
"""
from __future__ import annotations

import numpy as np

IGNORE_INDEX = -100
SEP = 0

__all__ = ["IGNORE_INDEX", "SEP", "copy_task", "reverse_task", "sort_task", "associative_recall",
           "task_batch_fn", "sequence_accuracy"]


def _check(n: int, length: int, vocab: int, rng: np.random.Generator, min_vocab: int = 2) -> None:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    for name, value, lo in (("n", n, 1), ("length", length, 1), ("vocab", vocab, min_vocab)):
        if not isinstance(value, (int, np.integer)) or value < lo:
            raise ValueError(f"{name} must be an int >= {lo}, got {value!r}")


def _prompt_answer(prompt: np.ndarray, answer: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """prompt: (n, P), answer: (n, A) -> inputs, targets: (n, P + A) with the prompt ignored.

    The sequence is ``prompt SEP answer``; ``inputs = seq[:, :-1]``, ``targets = seq[:, 1:]``.
    ``targets[:, t]`` is scored iff ``seq[:, t + 1]`` belongs to the answer, i.e. ``t >= P``.
    """
    n, p = prompt.shape
    sep = np.full((n, 1), SEP, dtype=np.int64)
    seq = np.concatenate([prompt, sep, answer], axis=1).astype(np.int64)
    inputs, targets = seq[:, :-1].copy(), seq[:, 1:].copy()
    targets[:, :p] = IGNORE_INDEX          # predicting the prompt (or SEP) is not the task
    return inputs, targets


def copy_task(n: int, length: int, vocab: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Copy: ``x SEP x``. Returns inputs, targets: int64 (n, 2 * length); x_i uniform in 1..vocab-1."""
    _check(n, length, vocab, rng)
    x = rng.integers(1, vocab, size=(n, length))
    return _prompt_answer(x, x)


def reverse_task(n: int, length: int, vocab: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Reverse: ``x SEP x[::-1]``. Returns inputs, targets: int64 (n, 2 * length)."""
    _check(n, length, vocab, rng)
    x = rng.integers(1, vocab, size=(n, length))
    return _prompt_answer(x, x[:, ::-1])


def sort_task(n: int, length: int, vocab: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Sort: ``x SEP sorted(x)`` (ascending, repeats kept). Returns int64 (n, 2 * length)."""
    _check(n, length, vocab, rng)
    x = rng.integers(1, vocab, size=(n, length))
    return _prompt_answer(x, np.sort(x, axis=1))


def associative_recall(n: int, n_pairs: int, vocab: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Associative recall: ``k_1 v_1 .. k_m v_m SEP k_q v_q`` with distinct keys, q uniform.

    Keys come from ``1 .. K`` and values from ``K+1 .. vocab-1`` with ``K = (vocab - 1) // 2``, so a
    key is never mistaken for a value. Requires ``K >= n_pairs`` (distinct keys) and at least one
    value symbol. Returns inputs, targets: int64 (n, 2 * n_pairs + 2); only the last target (v_q)
    is scored.
    """
    _check(n, n_pairs, vocab, rng, min_vocab=3)
    n_keys = (vocab - 1) // 2
    n_values = vocab - 1 - n_keys
    if n_keys < n_pairs:
        raise ValueError(f"associative_recall needs (vocab - 1) // 2 >= n_pairs distinct keys; "
                         f"got vocab={vocab} (keys 1..{n_keys}) for n_pairs={n_pairs}")
    # distinct keys per row: the first n_pairs entries of a random permutation of 1..K
    keys = np.argsort(rng.random((n, n_keys)), axis=1)[:, :n_pairs] + 1
    values = rng.integers(n_keys + 1, n_keys + 1 + n_values, size=(n, n_pairs))
    pairs = np.stack([keys, values], axis=2).reshape(n, 2 * n_pairs)   # k1 v1 k2 v2 ...
    q = rng.integers(0, n_pairs, size=n)
    rows = np.arange(n)
    prompt = np.concatenate([pairs, np.full((n, 1), SEP), keys[rows, q][:, None]], axis=1)
    seq = np.concatenate([prompt, values[rows, q][:, None]], axis=1).astype(np.int64)
    inputs, targets = seq[:, :-1].copy(), seq[:, 1:].copy()
    targets[:, :-1] = IGNORE_INDEX
    return inputs, targets


_TASKS = {"copy": copy_task, "reverse": reverse_task, "sort": sort_task, "recall": associative_recall}


def task_batch_fn(task: str, batch: int, length: int, vocab: int):
    """A ``batch_fn(rng) -> (inputs, targets)`` for ``tinyattn.train.train``, drawing fresh examples.

    task: one of "copy", "reverse", "sort", "recall" (for "recall", length = number of pairs).
    """
    if task not in _TASKS:
        raise ValueError(f"task must be one of {sorted(_TASKS)}, got {task!r}")
    fn = _TASKS[task]

    def batch_fn(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return fn(batch, length, vocab, rng)

    return batch_fn


def sequence_accuracy(predictions: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    """(token accuracy, whole-answer accuracy) over scored positions.

    predictions, targets: int (n, T); positions with ``targets == IGNORE_INDEX`` are skipped.
    A row counts as solved when every scored position is right.
    """
    predictions, targets = np.asarray(predictions), np.asarray(targets)
    if predictions.shape != targets.shape:
        raise ValueError(f"predictions shape {predictions.shape} != targets shape {targets.shape}")
    scored = targets != IGNORE_INDEX
    if not scored.any():
        raise ValueError("targets has no scored position (all == IGNORE_INDEX)")
    right = (predictions == targets) | ~scored
    token_acc = float(((predictions == targets) & scored).sum() / scored.sum())
    return token_acc, float(right.all(axis=1).mean())
