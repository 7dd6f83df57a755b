"""A character-level corpus that needs no download and ships nothing copied into the repository.

The text is the Python standard library's own source code, read at run time from the local
installation (``sysconfig.get_paths()["stdlib"]``). The files and their order are fixed
(``DEFAULT_FILES``, then sorted order), so the corpus is deterministic for a given Python
version; it differs slightly between Python versions, which is why notebooks never check
outputs that depend on it.
"""
from __future__ import annotations

import os
import sysconfig
from typing import Sequence

import numpy as np

__all__ = ["CharCorpus", "DEFAULT_FILES", "stdlib_text"]

# Mostly prose-rich, long-lived modules; missing ones (removed in a future Python) are skipped.
DEFAULT_FILES: tuple[str, ...] = (
    "textwrap.py", "heapq.py", "bisect.py", "fnmatch.py", "colorsys.py", "shlex.py", "string.py",
    "queue.py", "graphlib.py", "fractions.py", "statistics.py", "difflib.py", "functools.py",
    "calendar.py", "copy.py", "random.py", "argparse.py", "typing.py",
)


def stdlib_text(max_chars: int = 400_000, files: Sequence[str] | None = None) -> str:
    """Concatenate stdlib source files (ASCII only; other characters become '?') up to max_chars.

    files: names relative to the stdlib directory, read in the given order; default
    ``DEFAULT_FILES`` followed by every other top-level ``*.py`` in sorted order (used only when the
    defaults give fewer than max_chars characters).
    """
    if not isinstance(max_chars, (int, np.integer)) or max_chars < 1:
        raise ValueError(f"max_chars must be a positive int, got {max_chars!r}")
    root = sysconfig.get_paths()["stdlib"]
    if files is None:
        rest = sorted(f for f in os.listdir(root) if f.endswith(".py") and f not in DEFAULT_FILES)
        files = [*DEFAULT_FILES, *rest]
    parts, total = [], 0
    for name in files:
        path = os.path.join(root, name)
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
        text = "".join(c if c.isascii() else "?" for c in text)
        parts.append(text)
        total += len(text)
        if total >= max_chars:
            break
    if total == 0:
        raise FileNotFoundError(f"no readable source files found under {root!r}")
    return "".join(parts)[:max_chars]


class CharCorpus:
    """Character-level language-modelling corpus with a train/validation split.

    text: the corpus (default: ``stdlib_text(max_chars)``). The vocabulary is the sorted set of
    characters in ``text``; ``vocab_size = len(chars)``. The last ``val_fraction`` of the text is
    the validation split (contiguous, so no window straddles both).
    """

    def __init__(self, text: str | None = None, *, max_chars: int = 400_000, val_fraction: float = 0.1):
        if text is None:
            text = stdlib_text(max_chars)
        if not isinstance(text, str) or len(text) < 2:
            raise ValueError(f"text must be a string of >= 2 characters, got {type(text).__name__}")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        self.text = text
        self.chars: list[str] = sorted(set(text))
        self.stoi = {c: i for i, c in enumerate(self.chars)}
        self.data = self.encode(text)                               # (N,) int64
        n_val = max(2, int(len(self.data) * val_fraction))
        self.train_data, self.val_data = self.data[:-n_val], self.data[-n_val:]

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, s: str) -> np.ndarray:
        """str -> int64 (len(s),). Raises ValueError on a character outside the vocabulary."""
        try:
            return np.fromiter((self.stoi[c] for c in s), dtype=np.int64, count=len(s))
        except KeyError as exc:
            raise ValueError(f"character {exc.args[0]!r} is not in the corpus vocabulary") from None

    def decode(self, ids) -> str:
        """int (n,) -> str. Raises ValueError on an id outside [0, vocab_size)."""
        ids = np.asarray(ids).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"ids must lie in [0, {self.vocab_size}), got range [{ids.min()}, {ids.max()}]")
        return "".join(self.chars[i] for i in ids.tolist())

    def batches(self, rng: np.random.Generator, batch: int, length: int,
                split: str = "train") -> tuple[np.ndarray, np.ndarray]:
        """Random windows: inputs, targets int64 (batch, length) with ``targets[:, t] = inputs[:, t+1]``
        (the next character). Every position is scored."""
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        data = self.train_data if split == "train" else self.val_data
        if batch < 1 or length < 1 or length + 1 > len(data):
            raise ValueError(f"need batch >= 1 and 1 <= length < {len(data)} for split {split!r}; "
                             f"got batch={batch}, length={length}")
        starts = rng.integers(0, len(data) - length, size=batch)
        idx = starts[:, None] + np.arange(length + 1)[None, :]       # (batch, length + 1)
        window = data[idx]
        return window[:, :-1], window[:, 1:]

    def batch_fn(self, batch: int, length: int, split: str = "train"):
        """``batch_fn(rng) -> (inputs, targets)`` for ``tinyattn.train.train``."""
        return lambda rng: self.batches(rng, batch, length, split)
