"""A decoder-only Transformer language model (GPT-style) and autoregressive sampling.

    x_0 = Embed(tokens) (+ absolute position encoding)            (B, L, d_model)
    x_l = Block_l(x_{l-1})   for l = 1..n_layers                   pre-norm, causal attention
    logits = LayerNorm_f(x_n) W_out                                (B, L, vocab)
    W_out = W_emb^T when tie_weights (the input and output embeddings share one matrix)

With a KV cache (chapter 08) ``model(tokens, cache=cache)`` runs only the new tokens: every layer
appends their keys/values to the cache and attends over all cached tokens, and positions continue
from ``cache.length``. Prefill (the prompt) + one token at a time gives the logits of one full forward.
"""
from __future__ import annotations

import numpy as np

from ..autograd import no_grad
from ..cache import KVCache
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
    attention: "mha" (MHA/GQA/MQA via n_kv_heads) or "mla" (DeepSeek-V2 latent attention; needs
    positional="rope" and kv_lora_rank; qk_nope_head_dim and v_head_dim default to d_model // n_heads,
    qk_rope_head_dim to half of it; q_lora_rank optional).
    rope_scaling: None or ``{"method": "linear"|"ntk"|"dynamic"|"yarn"|"llama3", "factor": s, ...}``
    (chapter 05, ``ta.positional.scaled_rope``); ``set_rope_scaling`` changes it after training.
    """

    def __init__(self, vocab_size: int, d_model: int, n_layers: int, n_heads: int, max_len: int,
                 positional: str = "rope", n_kv_heads: int | None = None, *, d_ff: int | None = None,
                 tie_weights: bool = False, backend: str = "dense", rope_base: float = 10000.0,
                 norm: str = "pre", rng: np.random.Generator | None = None, attention: str = "mha",
                 kv_lora_rank: int | None = None, qk_nope_head_dim: int | None = None,
                 qk_rope_head_dim: int | None = None, v_head_dim: int | None = None,
                 q_lora_rank: int | None = None, rope_scaling: dict | None = None):
        super().__init__()
        # first statement after super(): locals() holds exactly the constructor's arguments
        self._config = {k: v for k, v in locals().items() if k not in ("self", "rng", "__class__")}
        self.vocab_size = _pos_int("vocab_size", vocab_size)
        self.d_model = _pos_int("d_model", d_model)
        self.n_layers = _pos_int("n_layers", n_layers)
        self.n_heads = _pos_int("n_heads", n_heads)
        self.max_len = _pos_int("max_len", max_len)
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        if positional not in POSITIONAL:
            raise ValueError(f"positional must be one of {POSITIONAL}, got {positional!r}")
        mla = self._mla_kwargs(attention, positional, n_kv_heads, kv_lora_rank, qk_nope_head_dim,
                               qk_rope_head_dim, v_head_dim, q_lora_rank, rope_base)
        rng = np.random.default_rng(0) if rng is None else rng
        self.attention = attention
        self.positional, self.tie_weights, self.backend = positional, bool(tie_weights), backend
        self.tok_emb = Embedding(vocab_size, d_model, rng=rng)
        self.pos = PositionalScheme(positional, d_model, n_heads, max_len, rng, rope_base=rope_base)
        self.blocks = ModuleList([TransformerBlock(d_model, n_heads, n_kv_heads, d_ff, rng=rng, norm=norm, mla=mla)
                                  for _ in range(n_layers)])
        self.ln_f = LayerNorm(d_model)
        self.lm_head = None if tie_weights else Linear(d_model, vocab_size, bias=False, rng=rng)
        if tie_weights:
            # the table doubles as the output head: N(0, 1/d) rows give logits of unit scale at init
            self.tok_emb.weight.data *= np.float32(d_model ** -0.5)
        if rope_scaling is not None:
            self.set_rope_scaling(rope_scaling)
        if positional == "t5" and attention == "mha":
            # T5 drops the 1/sqrt(d_head) on the logits and folds it into W_q's initialisation
            for block in self.blocks:
                block.attn.q_proj.weight.data *= (d_model // n_heads) ** -0.5

    def config(self) -> dict:
        """The constructor's arguments except rng (checkpoints store and compare them)."""
        return dict(self._config)

    def _mla_kwargs(self, attention, positional, n_kv_heads, kv_lora_rank, qk_nope_head_dim,
                    qk_rope_head_dim, v_head_dim, q_lora_rank, rope_base) -> dict | None:
        if attention not in ("mha", "mla"):
            raise ValueError(f"attention must be 'mha' or 'mla', got {attention!r}")
        if attention == "mha":
            if any(v is not None for v in (kv_lora_rank, qk_nope_head_dim, qk_rope_head_dim, v_head_dim,
                                           q_lora_rank)):
                raise ValueError("kv_lora_rank, qk_*_head_dim, v_head_dim, q_lora_rank need attention='mla'")
            return None
        if positional != "rope":
            raise ValueError(f"attention='mla' carries its own decoupled RoPE key: positional must be "
                             f"'rope', got {positional!r}")
        if n_kv_heads is not None:
            raise ValueError("attention='mla' has no n_kv_heads (keys and values come from one latent)")
        if kv_lora_rank is None:
            raise ValueError("attention='mla' needs kv_lora_rank (the latent width d_c)")
        hd = self.d_model // self.n_heads
        return {"kv_lora_rank": kv_lora_rank, "q_lora_rank": q_lora_rank, "rope_base": rope_base,
                "qk_nope_head_dim": hd if qk_nope_head_dim is None else qk_nope_head_dim,
                "qk_rope_head_dim": 2 * max(1, hd // 4) if qk_rope_head_dim is None else qk_rope_head_dim,
                "v_head_dim": hd if v_head_dim is None else v_head_dim}

    def new_cache(self, batch: int, max_len: int) -> KVCache:
        """An empty :class:`tinyattn.cache.KVCache` for ``batch`` sequences of up to ``max_len`` tokens,
        in the parameters' dtype: fields k, v (n_kv_heads, head_dim) per layer, or for MLA the latent
        c_kv (kv_lora_rank,) and the shared RoPE key k_rope (qk_rope_head_dim,)."""
        if self.positional == "learned" and isinstance(max_len, (int, np.integer)) and max_len > self.max_len:
            raise ValueError(f"max_len={max_len} exceeds the learned position table (max_len={self.max_len})")
        attn = self.blocks[0].attn
        if self.attention == "mla":
            fields = attn.cache_fields
        else:
            fields = {"k": (attn.n_kv_heads, attn.head_dim), "v": (attn.n_kv_heads, attn.head_dim)}
        return KVCache(self.n_layers, batch, max_len, fields, dtype=self.tok_emb.weight.data.dtype)

    def set_rope_scaling(self, config: dict | None) -> None:
        """Re-evaluate a trained RoPE model with a scaling method (None = plain RoPE), no retraining.
        See ``PositionalScheme.set_rope_scaling``; the weights are untouched."""
        self.pos.set_rope_scaling(config)

    def _check_tokens(self, tokens, start: int = 0) -> np.ndarray:
        tokens = np.asarray(tokens.data if isinstance(tokens, Tensor) else tokens)
        if tokens.ndim != 2 or not np.issubdtype(tokens.dtype, np.integer):
            raise ValueError(f"tokens must be an int array (B, L), got dtype {tokens.dtype} shape {tokens.shape}")
        if tokens.size and (tokens.min() < 0 or tokens.max() >= self.vocab_size):
            raise ValueError(f"token ids must lie in [0, {self.vocab_size}), got range "
                             f"[{tokens.min()}, {tokens.max()}]")
        if tokens.shape[1] == 0:
            raise ValueError("tokens must contain at least one position (L >= 1)")
        self.pos.check_length(tokens.shape[1], start)
        return tokens

    def forward(self, tokens, *, need_weights: bool = False, backend: str | None = None, cache=None,
                absorbed: bool = False):
        """tokens: int (B, L) -> logits (B, L, vocab); with need_weights -> (logits, [weights_l])
        where weights_l is the ndarray (B, n_heads, L, Lk) of layer l's attention probabilities.

        cache: a :meth:`new_cache` cache. The L tokens sit at positions cache.length..cache.length+L-1;
        their keys/values are appended (ValueError, before anything is written, if they do not fit).
        absorbed: MLA only, attend on the latent with the absorbed weights (same logits)."""
        start = 0
        if cache is not None:
            if not isinstance(cache, KVCache):
                raise TypeError(f"cache must be a tinyattn.cache.KVCache (model.new_cache), got {type(cache).__name__}")
            start = cache.length
        tokens = self._check_tokens(tokens, start)
        B, L = tokens.shape
        if cache is not None:
            if cache.n_layers != self.n_layers or cache.batch != B:
                raise ValueError(f"cache is for {cache.n_layers} layers and batch {cache.batch}, but the "
                                 f"model has {self.n_layers} layers and tokens have batch {B}")
            cache.check_room(L)
        x = self.pos.embed(self.tok_emb(tokens), start)               # (B, L, d_model)
        if self.attention == "mla":
            kwargs = {"positions": np.arange(start, start + L), "absorbed": absorbed}
        else:
            kwargs = self.pos.attention_kwargs(L, start)
        backend = self.backend if backend is None else backend
        maps = []
        for i, block in enumerate(self.blocks):
            layer_cache = None if cache is None else cache.layer(i)
            out = block(x, is_causal=True, need_weights=need_weights, backend=backend, cache=layer_cache,
                        **kwargs)
            if need_weights:
                out, w = out
                maps.append(np.asarray(w.data if isinstance(w, Tensor) else w))
            x = out
        if cache is not None:
            cache.advance(L)
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

    def generate(self, tokens, max_new_tokens: int, *, use_cache: bool = True, temperature: float = 1.0,
                 top_k: int | None = None, rng: np.random.Generator | None = None, crop: bool = True,
                 absorbed: bool = False, top_p: float | None = None) -> np.ndarray:
        """Sample ``max_new_tokens`` continuations autoregressively.

        tokens: int (B, L0) or (L0,); returns int64 (B, L0 + max_new_tokens) or (L0 + max_new_tokens,).
        use_cache: prefill the prompt once, then run one token per step against a KV cache
        (chapter 08); False recomputes the whole context every step. Both give the same tokens.
        temperature: > 0 divides the logits; 0 means greedy (argmax, rng not needed).
        top_k: keep only the k most likely tokens before sampling. rng: np.random.Generator.
        top_p: keep the smallest set of tokens whose probability reaches p (nucleus sampling, chapter 04).
        crop: feed only the last ``max_len`` tokens (always required for "learned"; for the other
        encodings it keeps every position inside the range seen in training). Once the context
        would exceed ``max_len`` a cropped window slides, every position changes, and nothing cached
        stays valid: from that step on generation recomputes the window (as use_cache=False does).
        absorbed: MLA models decode with the absorbed weights.
        """
        seq = np.asarray(tokens)
        squeeze = seq.ndim == 1
        seq = seq[None, :] if squeeze else seq
        self._check_tokens(seq[:, -self.max_len:] if crop else seq)
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, (int, np.integer)) \
                or max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
        if not crop and self.positional == "learned" and seq.shape[1] + max_new_tokens > self.max_len:
            raise ValueError("crop=False with a learned position table cannot go beyond max_len")
        seq = seq.astype(np.int64)
        total = seq.shape[1] + max_new_tokens
        cache = None
        if use_cache and max_new_tokens > 0 and (not crop or seq.shape[1] <= self.max_len):
            cache = self.new_cache(seq.shape[0], min(total, self.max_len) if crop else total)
        was_training = self.training
        self.eval()
        try:
            with no_grad():
                for _ in range(max_new_tokens):
                    if cache is not None and cache.length == 0:
                        logits = self.forward(seq, cache=cache, absorbed=absorbed)          # prefill
                    elif cache is not None and cache.length < cache.max_len:
                        logits = self.forward(seq[:, -1:], cache=cache, absorbed=absorbed)  # one token
                    else:
                        cache = None                                                        # window slides
                        logits = self.forward(seq[:, -self.max_len:] if crop else seq, absorbed=absorbed)
                    nxt = sample_next(logits.data[:, -1, :], temperature, top_k, rng, top_p=top_p)  # (B,)
                    seq = np.concatenate([seq, nxt[:, None]], axis=1)
        finally:
            if was_training:
                self.train()
        return seq[0] if squeeze else seq
