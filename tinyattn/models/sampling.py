"""Turning next-token logits into tokens: greedy, temperature and top-k sampling."""
from __future__ import annotations

import numpy as np

__all__ = ["sample_next", "top_k_filter"]


def top_k_filter(logits: np.ndarray, k: int) -> np.ndarray:
    """logits (B, V) -> copy with every entry below the k-th largest of its row set to -inf.
    Ties at the threshold are all kept."""
    if not isinstance(k, (int, np.integer)) or not 1 <= k <= logits.shape[-1]:
        raise ValueError(f"top_k must be an int in [1, {logits.shape[-1]}], got {k!r}")
    kth = np.partition(logits, -k, axis=-1)[:, -k][:, None]            # k-th largest per row
    return np.where(logits >= kth, logits, -np.inf)


def sample_next(logits: np.ndarray, temperature: float = 1.0, top_k: int | None = None,
                rng: np.random.Generator | None = None) -> np.ndarray:
    """logits (B, V) -> next tokens int64 (B,).

    temperature == 0: argmax (greedy). Otherwise p = softmax(logits / temperature) restricted to the
    top_k entries, and one draw per row by inverting the CDF with u ~ U[0, 1) from ``rng``.
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2:
        raise ValueError(f"logits must be (B, V), got shape {logits.shape}")
    if not np.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature}")
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if temperature == 0:
        return np.argmax(logits, axis=-1).astype(np.int64)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator when temperature > 0, got {type(rng).__name__}")
    z = logits / temperature
    z = z - z.max(axis=-1, keepdims=True)                               # stable: max logit -> 0
    p = np.exp(z)
    p /= p.sum(axis=-1, keepdims=True)                                  # softmax(logits / T)
    cdf = np.cumsum(p, axis=-1)
    u = rng.random((logits.shape[0], 1)) * cdf[:, -1:]                  # u ~ U[0, total)
    idx = (cdf <= u).sum(axis=-1)                                       # first index with cdf > u
    return np.minimum(idx, logits.shape[-1] - 1).astype(np.int64)
