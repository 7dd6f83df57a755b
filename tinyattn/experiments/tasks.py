"""A task where far tokens matter: associative recall among distractors (chapter 05).

One example of input length ``length`` (before the next-token shift it has ``length + 1`` tokens)::

    f f [k2:v2] f f f f [k5:v5] f ... f [k1:v1] f   SEP   k5 v5  k1 v1  k2 v2
    |<------------ context: C = length - 2 n_pairs tokens ----->|      |<- every key asked once ->|

Each fact "key k has value v" is ONE token ``[k:v]`` (a library card: source text 3.1's lookup
analogy). ``n_pairs`` facts with distinct keys sit at uniformly random places among filler tokens
``f``; after ``SEP`` every key is asked (random order) and the model must produce its value. Only
those ``n_pairs`` answers are scored. One attention layer can solve it (query k attends to the card
whose key is k and copies its value), so tiny models learn it in a few hundred steps; but a card is
anywhere in the context, so at test length 8L most cards lie further back than any distance seen in
training, and a model that ignores far tokens answers at chance, ``1 / n_values``.

Vocabulary: ``0 = SEP``; keys ``1 .. n_keys``; values next; then the ``n_keys * n_values`` cards;
filler last (``vocab = 1 + n_keys + n_values + n_keys n_values + n_filler``). Randomness only
through ``rng``.
"""
from __future__ import annotations

import numpy as np

from ..data.toy import IGNORE_INDEX, SEP

__all__ = ["distractor_recall", "recall_vocab"]


def recall_vocab(n_keys: int = 8, n_values: int = 8, n_filler: int = 8) -> int:
    """Vocabulary size of ``distractor_recall`` with these alphabet sizes."""
    return 1 + n_keys + n_values + n_keys * n_values + n_filler


def distractor_recall(n: int, length: int, rng: np.random.Generator, n_pairs: int = 4,
                      n_keys: int = 8, n_values: int = 8,
                      n_filler: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Draw n examples -> (inputs, targets), int64 (n, length); unscored targets are -100.

    Requires ``n_keys >= n_pairs`` and a context ``C = length - 2 n_pairs >= n_pairs`` tokens.
    ``targets[i, t]`` is scored iff token t + 1 is a queried value.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    for name, v in (("n", n), ("length", length), ("n_pairs", n_pairs), ("n_keys", n_keys),
                    ("n_values", n_values), ("n_filler", n_filler)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    if n_keys < n_pairs:
        raise ValueError(f"need n_keys >= n_pairs distinct keys, got n_keys={n_keys}, n_pairs={n_pairs}")
    C = length - 2 * n_pairs                                   # context tokens before SEP
    if C < n_pairs:
        raise ValueError(f"length={length} leaves a context of {C} < n_pairs = {n_pairs} tokens")
    v0 = 1 + n_keys                                            # first value id
    c0 = v0 + n_values                                         # first card id: [k:v] = c0 + k V + v
    f0 = c0 + n_keys * n_values                                # first filler id
    rows = np.arange(n)[:, None]
    keys = np.argsort(rng.random((n, n_keys)), axis=1)[:, :n_pairs]           # (n, P) distinct, 0-based
    values = rng.integers(0, n_values, size=(n, n_pairs))                     # (n, P), 0-based
    seq = np.empty((n, length + 1), dtype=np.int64)
    seq[:, :C] = rng.integers(f0, f0 + n_filler, size=(n, C))                 # filler
    where = np.argsort(rng.random((n, C)), axis=1)[:, :n_pairs]               # distinct card slots
    seq[rows, where] = c0 + keys * n_values + values                          # the cards [k:v]
    seq[:, C] = SEP
    order = np.argsort(rng.random((n, n_pairs)), axis=1)                      # query order
    seq[:, C + 1::2] = 1 + keys[rows, order]                                  # k_q
    seq[:, C + 2::2] = v0 + values[rows, order]                               # v_q (scored)
    inputs, targets = seq[:, :-1].copy(), seq[:, 1:].copy()
    scored = np.zeros(length, dtype=bool)
    scored[C + 1::2] = True                                   # target t = seq[t + 1] = a value
    targets[:, ~scored] = IGNORE_INDEX
    return inputs, targets
