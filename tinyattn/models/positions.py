"""Where each position encoding of chapter 03 enters a decoder-only LM.

=============  ==========================================  ==========================================
positional     where it acts                               generation beyond max_len
=============  ==========================================  ==========================================
"sinusoidal"   added to the token embeddings               possible, but unseen positions: cropped
"learned"      added to the token embeddings (trained)     impossible (no table row): cropped
"cape"         sinusoidal at augmented positions (train)   like sinusoidal
"rope"         rotates q and k inside every layer          possible (relative), cropped by default
"alibi"        bias -m_h (i - j) on the scaled logits      possible (relative), cropped by default
"t5"           learned bucket bias on unscaled logits      possible (relative), cropped by default
"nope"         nothing: the causal mask alone              possible, cropped by default
=============  ==========================================  ==========================================

The forward pass accepts any length for every encoding except "learned" (chapter 05 measures what
happens beyond the training length); ``generate`` crops the context to ``max_len`` by default so
the model only ever sees the position range it was trained on.
"""
from __future__ import annotations

import numpy as np

from ..nn import Module
from ..positional import (LearnedPositionalEmbedding, T5RelativeBias, alibi_bias, apply_rope,
                          cape_positions, rope_inv_freq, scaled_rope, sinusoidal, sinusoidal_at)
from ..tensor import Tensor

__all__ = ["POSITIONAL", "PositionalScheme"]

POSITIONAL = ("rope", "sinusoidal", "learned", "alibi", "t5", "nope", "cape")


class PositionalScheme(Module):
    """Holds the encoding's state (a learned table, a T5 bias table, RoPE frequencies).

    ``embed(x)``: x (B, L, d_model) token embeddings -> x plus absolute encodings (if any).
    ``attention_kwargs(L)``: keyword arguments for every block's attention (attn_bias, scale,
    qk_transform) for a sequence of length L.
    ``inv_freq`` and ``attention_factor`` (RoPE) may be replaced after training, e.g. by
    ``ta.positional.scaled_rope`` in chapter 05; ``set_rope_scaling(config)`` does it from a config
    and re-evaluates length-dependent methods (dynamic NTK) at every forward length.
    """

    def __init__(self, kind: str, d_model: int, n_heads: int, max_len: int,
                 rng: np.random.Generator, rope_base: float = 10000.0):
        super().__init__()
        if kind not in POSITIONAL:
            raise ValueError(f"positional must be one of {POSITIONAL}, got {kind!r}")
        self.kind, self.d_model, self.n_heads, self.max_len = kind, d_model, n_heads, max_len
        head_dim = d_model // n_heads
        self.inv_freq = rope_inv_freq(head_dim, rope_base) if kind == "rope" else None
        self.attention_factor = 1.0
        self.rope_base, self.rope_scaling = float(rope_base), None      # chapter 05: set_rope_scaling
        self.learned = LearnedPositionalEmbedding(max_len, d_model, rng=rng) if kind == "learned" else None
        self.t5 = T5RelativeBias(n_heads, rng=rng) if kind == "t5" else None
        # CAPE draws fresh augmented positions every training forward pass from its own stream
        self._cape_rng = np.random.default_rng(rng.integers(2**63)) if kind == "cape" else None

    def check_length(self, L: int, start: int = 0) -> None:
        """Raise if positions start..start+L-1 do not exist (only a learned table has an end)."""
        if self.kind == "learned" and start + L > self.max_len:
            raise ValueError(f"sequence length {start + L} exceeds max_len={self.max_len}: a learned position "
                             "table has no rows beyond it (crop the context or use a relative encoding)")

    def embed(self, x: Tensor, start: int = 0) -> Tensor:
        """x: (B, L, d_model) at positions start..start+L-1 -> x + PE (absolute encodings) or x
        unchanged (relative/none). start > 0 when decoding after a KV cache of that length."""
        b, L, d = x.shape
        if self.kind == "sinusoidal" or (self.kind == "cape" and not self.training):
            return x + sinusoidal(start + L, d)[start:].astype(x.dtype)  # PE[p] fixed, (L, d)
        if self.kind == "learned":
            return x + self.learned(np.arange(start, start + L))        # trainable row per position
        if self.kind == "cape":
            if self.training:                                           # one augmentation per sequence
                pe = np.stack([sinusoidal_at(cape_positions(L, self._cape_rng), d) for _ in range(b)])
            else:
                pe = sinusoidal(L, d)
            return x + pe.astype(x.dtype)
        return x

    def attention_kwargs(self, L: int, start: int = 0) -> dict:
        """attn_bias / scale / qk_transform for L causal queries at positions start..start+L-1
        attending to keys 0..start+L-1 (start = tokens already in the KV cache)."""
        Lk = start + L
        if self.kind == "rope":
            # frequencies for the total length: dynamic NTK depends on it (cached keys keep the rotation
            # they were written with, as in other implementations of dynamic scaling)
            pos, (inv, factor) = np.arange(start, Lk), self.rope_frequencies(Lk)

            def rope(q: Tensor, k: Tensor):                             # q (B,H,L,d), k (B,Hkv,L,d)
                return (apply_rope(q, pos, inv, attention_factor=factor),
                        apply_rope(k, pos, inv, attention_factor=factor))
            return {"qk_transform": rope}
        if self.kind == "alibi":
            return {"attn_bias": alibi_bias(self.n_heads, L, Lk)}       # added after 1/sqrt(d)
        if self.kind == "t5":
            return {"attn_bias": self.t5(L, Lk), "scale": 1.0}          # T5: unscaled logits
        return {}

    # ---------------------------------------------------------------- chapter 05: RoPE scaling
    def set_rope_scaling(self, config: dict | None) -> None:
        """Rescale RoPE without retraining: ``config = {"method": ..., "factor": s, **kw}`` or None.

        method/factor/keywords as in ``ta.positional.scaled_rope``; ``original_max_position``
        defaults to ``max_len`` (the training length). None restores plain RoPE (factor 1).
        """
        if self.kind != "rope":
            raise ValueError(f"rope scaling needs positional='rope', this model uses {self.kind!r}")
        if config is None:
            self.rope_scaling = None
            self.inv_freq = rope_inv_freq(self.d_model // self.n_heads, self.rope_base)
            self.attention_factor = 1.0
            return
        if not isinstance(config, dict) or "method" not in config or "factor" not in config:
            raise ValueError(f"rope_scaling must be a dict with 'method' and 'factor', got {config!r}")
        cfg = {"original_max_position": self.max_len, **config}
        old, self.rope_scaling = self.rope_scaling, cfg
        try:                                        # bad methods/keywords raise here, state kept
            self.inv_freq, self.attention_factor = self.rope_frequencies(cfg["original_max_position"])
        except (TypeError, ValueError):
            self.rope_scaling = old
            raise

    def rope_frequencies(self, L: int) -> tuple[np.ndarray, float]:
        """(inv_freq (head_dim // 2,), attention_factor) used for a sequence of length L."""
        if self.rope_scaling is None:
            return self.inv_freq, self.attention_factor
        cfg = dict(self.rope_scaling)
        return scaled_rope(self.d_model // self.n_heads, cfg.pop("method"), cfg.pop("factor"),
                           cfg.pop("original_max_position"), base=self.rope_base, seq_len=L, **cfg)
