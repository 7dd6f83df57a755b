"""Turning next-token logits into tokens: greedy, temperature, top-k and top-p (nucleus) sampling.

The order of the filters follows the common practice (e.g. Hugging Face's logits warpers):

    z = logits / T                           temperature (T > 0; T = 0 means greedy argmax)
    z = top_k_filter(z, k)                   keep the k largest entries of each row
    z = top_p_filter(z, p)                   keep the smallest most-likely set with mass >= p
    token ~ softmax(z)                       one draw per row by inverting the CDF

Logits may contain -inf (a banned token); NaN or +inf anywhere, or a row with no finite entry,
raises ValueError instead of silently returning token 0.
"""
from __future__ import annotations

import numpy as np

__all__ = ["sample_next", "top_k_filter", "top_p_filter", "sampling_probs"]


def _check_logits(logits) -> np.ndarray:
    """logits (B, V) -> float64 copy; raises ValueError on NaN, +inf or an all -inf row."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[-1] == 0:
        raise ValueError(f"logits must be (B, V) with V >= 1, got shape {logits.shape}")
    bad = np.isnan(logits) | (logits == np.inf)
    if bad.any():
        b, v = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"logits must not contain NaN or +inf: logits[{b}, {v}] = {logits[b, v]} "
                         f"({int(bad.sum())} such entries in shape {logits.shape})")
    empty = ~np.isfinite(logits).any(axis=-1)
    if empty.any():
        raise ValueError(f"every row of logits needs a finite entry; row {int(np.argmax(empty))} "
                         f"is all -inf (shape {logits.shape})")
    return logits


def top_k_filter(logits: np.ndarray, k: int) -> np.ndarray:
    """logits (B, V) -> copy with every entry below the k-th largest of its row set to -inf.
    Ties at the threshold are all kept."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= logits.shape[-1]:
        raise ValueError(f"top_k must be an int in [1, {logits.shape[-1]}], got {k!r}")
    kth = np.partition(logits, -k, axis=-1)[:, -k][:, None]            # k-th largest per row
    return np.where(logits >= kth, logits, -np.inf)


def top_p_filter(logits: np.ndarray, p: float) -> np.ndarray:
    """logits (B, V) -> copy keeping, per row, the most likely tokens whose softmax mass first
    reaches ``p`` (the "nucleus", Holtzman et al. 2020); the rest become -inf.

    Token i is kept iff the mass of the tokens ranked strictly before it (sorted by probability,
    descending, ties by index) is < p, so the most likely token is always kept. p in (0, 1].
    """
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating)) or not 0.0 < p <= 1.0:
        raise ValueError(f"top_p must be a number in (0, 1], got {p!r}")
    z = logits - logits.max(axis=-1, keepdims=True)
    probs = np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)
    order = np.argsort(-probs, axis=-1, kind="stable")                  # descending, ties by index
    sorted_p = np.take_along_axis(probs, order, axis=-1)
    before = np.cumsum(sorted_p, axis=-1) - sorted_p                    # mass ranked before each token
    keep_sorted = before < p
    keep = np.zeros_like(keep_sorted)
    np.put_along_axis(keep, order, keep_sorted, axis=-1)
    return np.where(keep, logits, -np.inf)


def sampling_probs(logits, temperature: float = 1.0, top_k: int | None = None,
                   top_p: float | None = None) -> np.ndarray:
    """logits (B, V) -> the distribution (B, V) that ``sample_next`` draws from (rows sum to 1).

    temperature > 0 divides the logits; then top-k, then top-p (on the renormalised top-k
    distribution); then softmax. temperature == 0 gives the one-hot of the argmax.
    """
    logits = _check_logits(logits)
    if not np.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature}")
    if temperature == 0:
        return np.eye(logits.shape[-1])[np.argmax(logits, axis=-1)]
    z = logits / temperature
    if top_k is not None:
        z = top_k_filter(z, top_k)
    if top_p is not None:
        z = top_p_filter(z, top_p)
    z = z - z.max(axis=-1, keepdims=True)                               # stable: max logit -> 0
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)                            # softmax(filtered z)


def sample_next(logits: np.ndarray, temperature: float = 1.0, top_k: int | None = None,
                rng: np.random.Generator | None = None, top_p: float | None = None) -> np.ndarray:
    """logits (B, V) -> next tokens int64 (B,).

    temperature == 0: argmax (greedy, rng not needed). Otherwise one draw per row from
    ``sampling_probs(logits, temperature, top_k, top_p)``: the first index whose CDF exceeds
    u ~ U[0, 1) drawn from ``rng``. NaN or +inf logits raise ValueError.
    """
    logits = _check_logits(logits)
    if not np.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature}")
    if temperature == 0:
        if top_k is not None:
            top_k_filter(logits, top_k)                                 # validate the argument
        if top_p is not None:
            top_p_filter(logits, top_p)
        return np.argmax(logits, axis=-1).astype(np.int64)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator when temperature > 0, got {type(rng).__name__}")
    p = sampling_probs(logits, temperature, top_k, top_p)
    cdf = np.cumsum(p, axis=-1)
    u = rng.random((logits.shape[0], 1)) * cdf[:, -1:]                  # u ~ U[0, total)
    idx = (cdf <= u).sum(axis=-1)                                       # first index with cdf > u
    return np.minimum(idx, logits.shape[-1] - 1).astype(np.int64)
