"""A decoder-only Transformer language model (GPT-style) and autoregressive sampling.

    x_0 = Embed(tokens) (+ absolute position encoding)            (B, L, d_model)
    x_l = Block_l(x_{l-1})   for l = 1..n_layers                   pre-norm, causal attention
    logits = LayerNorm_f(x_n) W_out                                (B, L, vocab)
    W_out = W_emb^T when tie_weights (the input and output embeddings share one matrix)
"""
from __future__ import annotations

import numpy as np

from ..autograd import no_grad
from ..nn import Embedding, LayerNorm, Linear, Module, ModuleList
from ..tensor import Tensor
from .block import TransformerBlock
from .positions import POSITIONAL, PositionalScheme
from .sampling import sample_next

__all__ = ["TransformerLM"]


def _pos_int(name: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    return int(v)


class TransformerLM(Module):
    """Decoder-only LM: tokens int (B, L) -> logits Tensor (B, L, vocab_size).

    vocab_size, d_model, n_layers, n_heads, max_len: ints >= 1, d_model % n_heads == 0.
    positional: one of ``POSITIONAL`` (see :mod:`tinyattn.models.positions`).
    n_kv_heads: KV heads per layer (None = n_heads; fewer gives GQA/MQA).
    tie_weights: output projection = token embedding transposed (saves vocab·d parameters).
    backend: SDPA backend passed to every attention call ("dense"; chapter 06 registers "flash").
    norm: "pre" (default) or "post" (the 2017 layout, for comparison; see ``TransformerBlock``).
    rng: initialisation (and CAPE augmentation) stream; default seed 0.
    rope_scaling: None or ``{"method": "linear"|"ntk"|"dynamic"|"yarn"|"llama3", "factor": s, ...}``
    (chapter 05, ``ta.positional.scaled_rope``); ``set_rope_scaling`` changes it after training.
    """

    def __init__(self, vocab_size: int, d_model: int, n_layers: int, n_heads: int, max_len: int,
                 positional: str = "rope", n_kv_heads: int | None = None, *, d_ff: int | None = None,
                 tie_weights: bool = False, backend: str = "dense", rope_base: float = 10000.0,
                 norm: str = "pre", rng: np.random.Generator | None = None,
                 rope_scaling: dict | None = None):
        super().__init__()
        self.vocab_size = _pos_int("vocab_size", vocab_size)
        self.d_model = _pos_int("d_model", d_model)
        self.n_layers = _pos_int("n_layers", n_layers)
        self.n_heads = _pos_int("n_heads", n_heads)
        self.max_len = _pos_int("max_len", max_len)
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        if positional not in POSITIONAL:
            raise ValueError(f"positional must be one of {POSITIONAL}, got {positional!r}")
        rng = np.random.default_rng(0) if rng is None else rng
        self.positional, self.tie_weights, self.backend = positional, bool(tie_weights), backend
        self.tok_emb = Embedding(vocab_size, d_model, rng=rng)
        self.pos = PositionalScheme(positional, d_model, n_heads, max_len, rng, rope_base=rope_base)
        self.blocks = ModuleList([TransformerBlock(d_model, n_heads, n_kv_heads, d_ff, rng=rng, norm=norm)
                                  for _ in range(n_layers)])
        self.ln_f = LayerNorm(d_model)
        self.lm_head = None if tie_weights else Linear(d_model, vocab_size, bias=False, rng=rng)
        if tie_weights:
            # the table doubles as the output head: N(0, 1/d) rows give logits of unit scale at init
            self.tok_emb.weight.data *= np.float32(d_model ** -0.5)
        if rope_scaling is not None:
            self.set_rope_scaling(rope_scaling)
        if positional == "t5":
            # T5 drops the 1/sqrt(d_head) on the logits and folds it into W_q's initialisation
            for block in self.blocks:
                block.attn.q_proj.weight.data *= (d_model // n_heads) ** -0.5

    def set_rope_scaling(self, config: dict | None) -> None:
        """Re-evaluate a trained RoPE model with a scaling method (None = plain RoPE), no retraining.
        See ``PositionalScheme.set_rope_scaling``; the weights are untouched."""
        self.pos.set_rope_scaling(config)

    def _check_tokens(self, tokens) -> np.ndarray:
        tokens = np.asarray(tokens.data if isinstance(tokens, Tensor) else tokens)
        if tokens.ndim != 2 or not np.issubdtype(tokens.dtype, np.integer):
            raise ValueError(f"tokens must be an int array (B, L), got dtype {tokens.dtype} shape {tokens.shape}")
        if tokens.size and (tokens.min() < 0 or tokens.max() >= self.vocab_size):
            raise ValueError(f"token ids must lie in [0, {self.vocab_size}), got range "
                             f"[{tokens.min()}, {tokens.max()}]")
        if tokens.shape[1] == 0:
            raise ValueError("tokens must contain at least one position (L >= 1)")
        self.pos.check_length(tokens.shape[1])
        return tokens

    def forward(self, tokens, *, need_weights: bool = False, backend: str | None = None):
        """tokens: int (B, L) -> logits (B, L, vocab); with need_weights -> (logits, [weights_l])
        where weights_l is the ndarray (B, n_heads, L, L) of layer l's attention probabilities."""
        tokens = self._check_tokens(tokens)
        L = tokens.shape[1]
        x = self.pos.embed(self.tok_emb(tokens))                      # (B, L, d_model)
        kwargs = self.pos.attention_kwargs(L)
        backend = self.backend if backend is None else backend
        maps = []
        for block in self.blocks:
            out = block(x, is_causal=True, need_weights=need_weights, backend=backend, **kwargs)
            if need_weights:
                out, w = out
                maps.append(np.asarray(w.data if isinstance(w, Tensor) else w))
            x = out
        x = self.ln_f(x)
        if self.tie_weights:
            logits = x @ self.tok_emb.weight.T                        # (B, L, d) @ (d, V)
        else:
            logits = self.lm_head(x)
        return (logits, maps) if need_weights else logits

    def attention_maps(self, tokens) -> list[np.ndarray]:
        """Attention probabilities of every layer, each (B, n_heads, L, L), in eval mode, no grad."""
        was_training = self.training
        self.eval()
        try:
            with no_grad():
                _, maps = self.forward(tokens, need_weights=True)
        finally:
            if was_training:
                self.train()
        return maps

    def generate(self, tokens, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 rng: np.random.Generator | None = None, crop: bool = True) -> np.ndarray:
        """Sample ``max_new_tokens`` continuations autoregressively (no KV cache: chapter 08 adds one).

        tokens: int (B, L0) or (L0,); returns int64 (B, L0 + max_new_tokens) or (L0 + max_new_tokens,).
        temperature: > 0 divides the logits; 0 means greedy (argmax, rng not needed).
        top_k: keep only the k most likely tokens before sampling. rng: np.random.Generator.
        crop: feed only the last ``max_len`` tokens (always required for "learned"; for the other
        encodings it keeps every position inside the range seen in training).
        """
        seq = np.asarray(tokens)
        squeeze = seq.ndim == 1
        seq = seq[None, :] if squeeze else seq
        self._check_tokens(seq[:, -self.max_len:] if crop else seq)
        if not isinstance(max_new_tokens, (int, np.integer)) or max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
        if not crop and self.positional == "learned" and seq.shape[1] + max_new_tokens > self.max_len:
            raise ValueError("crop=False with a learned position table cannot go beyond max_len")
        seq = seq.astype(np.int64)
        was_training = self.training
        self.eval()
        try:
            with no_grad():
                for _ in range(max_new_tokens):
                    ctx = seq[:, -self.max_len:] if crop else seq
                    last = self.forward(ctx).data[:, -1, :]               # (B, V) next-token logits
                    nxt = sample_next(last, temperature, top_k, rng)
                    seq = np.concatenate([seq, nxt[:, None]], axis=1)
        finally:
            if was_training:
                self.train()
        return seq[0] if squeeze else seq
