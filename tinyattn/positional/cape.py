"""CAPE, Continuous Augmented Positional Embeddings (Likhomanenko et al. 2021), and NoPE.

CAPE keeps the sinusoidal encoding but, *during training only*, feeds it randomly transformed
positions, so the model cannot memorise absolute positions and must rely on relative ones:
    global shift   x + delta,     delta   ~ U(-max_global_shift, max_global_shift)   (one per sequence)
    local shift    x + eps_i,     eps_i   ~ U(-max_local_shift/2, max_local_shift/2)  (per token)
    global scaling lambda * x,    log lambda ~ U(-log max_global_scaling, log max_global_scaling)
    x' = lambda * (x + delta + eps)
A local shift of at most 1 keeps neighbouring tokens in order. At evaluation the positions are
the plain 0..L-1. (The source text's section 4.2 calls CAPE a content-dependent MLP: that is wrong.)
Text defaults follow the paper's language-model setting (shift 5, local 1, scaling 1.03).

NoPE ("no position encoding") is a choice, not a function: pass ``positional=NOPE`` and add nothing.
Without a causal mask attention is then permutation-equivariant (order is invisible); with a
causal mask a model can still infer positions (e.g. by counting how many keys it sees).
"""
from __future__ import annotations

import numpy as np

from .sinusoidal import sinusoidal_at

__all__ = ["cape_positions", "cape_encoding", "NOPE"]

NOPE = "nope"


def cape_positions(L: int, rng: np.random.Generator, max_global_shift: float = 5.0,
                   max_local_shift: float = 1.0, max_global_scaling: float = 1.03,
                   training: bool = True) -> np.ndarray:
    """Augmented float positions for one sequence of length L -> (L,) float64.

    rng: an ``np.random.Generator`` (required when training). With training=False returns 0..L-1.
    """
    if isinstance(L, bool) or not isinstance(L, (int, np.integer)) or L < 0:
        raise ValueError(f"L must be an int >= 0, got {L!r}")
    if max_global_shift < 0 or max_local_shift < 0:
        raise ValueError(f"shifts must be >= 0, got max_global_shift={max_global_shift}, "
                         f"max_local_shift={max_local_shift}")
    if max_global_scaling < 1:
        raise ValueError(f"max_global_scaling must be >= 1, got {max_global_scaling}")
    x = np.arange(L, dtype=np.float64)
    if not training:
        return x
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be an np.random.Generator, got {type(rng).__name__}")
    delta = rng.uniform(-max_global_shift, max_global_shift)                     # global shift
    eps = rng.uniform(-max_local_shift / 2, max_local_shift / 2, size=L)          # local shift
    log_lam = rng.uniform(-np.log(max_global_scaling), np.log(max_global_scaling))  # scaling
    return np.exp(log_lam) * (x + delta + eps)                     # x' = lambda (x + delta + eps)


def cape_encoding(L: int, d_model: int, rng: np.random.Generator | None = None,
                  training: bool = True, base: float = 10000.0, **kw) -> np.ndarray:
    """Sinusoidal encodings at CAPE positions -> (L, d_model) float32 (plain sinusoidal if not training)."""
    return sinusoidal_at(cape_positions(L, rng, training=training, **kw), d_model, base)
