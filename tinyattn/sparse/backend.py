"""Sparse patterns inside the Transformer: register an SDPA backend that applies a fixed mask.

    ta.sparse.register_pattern_backend("win4", lambda Lq, Lk: ta.sparse.sliding_window_mask(Lq, 4))
    model = ta.models.TransformerLM(..., backend="win4")       # every layer uses the pattern

The backend computes dense attention with ``pattern & mask & causal`` (a training-time reference:
the gradient is the dense one restricted to the pattern); the block-sparse kernel is for speed.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["register_pattern_backend"]


def register_pattern_backend(name: str, pattern: Callable[[int, int], np.ndarray]) -> None:
    """Register ``backend=name`` for ``F.scaled_dot_product_attention``: ``pattern(Lq, Lk)`` gives a
    bool (Lq, Lk) mask (True = may attend), combined with the caller's mask and ``is_causal``."""
    from .. import functional as F
    from ..functional.attention import register_sdpa_backend

    if not callable(pattern):
        raise TypeError(f"pattern must be callable (Lq, Lk) -> bool mask, got {type(pattern).__name__}")

    def fn(q, k, v, mask=None, *, bias=None, is_causal=False, scale, dropout_p=0.0, rng=None):
        Lq, Lk = q.shape[-2], k.shape[-2]
        pat = np.asarray(pattern(Lq, Lk))
        if pat.dtype != bool or pat.shape != (Lq, Lk):
            raise ValueError(f"pattern({Lq}, {Lk}) must return bool ({Lq}, {Lk}), got "
                             f"dtype {pat.dtype} shape {pat.shape}")
        m = pat if mask is None else pat & mask
        return F.scaled_dot_product_attention(q, k, v, mask=m, bias=bias, is_causal=is_causal,
                                              scale=scale, dropout_p=dropout_p, rng=rng, backend="dense")

    register_sdpa_backend(name, fn)
