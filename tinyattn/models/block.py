"""The pre-norm Transformer block (GPT-2 / Llama ordering).

    h = x + Attention(LayerNorm_1(x))          # residual ("shortcut", 残差连接) around attention
    y = h + MLP(LayerNorm_2(h))                # residual around the position-wise MLP
    MLP(z) = GELU(z W_1 + b_1) W_2 + b_2       # W_1: (d, 4d), W_2: (4d, d)

Pre-norm (normalise the input of each sublayer, never the residual stream itself) keeps an
identity path from the embeddings to the output, so gradients reach early layers undamped;
the original post-norm layout (Vaswani et al. 2017), kept here as ``norm="post"`` for comparison,
normalises after each residual sum, ``h = LN_1(x + Attn(x))``, ``y = LN_2(h + MLP(h))``, and
needs learning-rate warm-up to train (Xiong et al. 2020).

Residual dropout (``dropout > 0``, Vaswani et al. 2017, section 5.4) zeroes entries of each
sublayer's OUTPUT before it is added to the stream, ``h = x + Drop(Attn(LN_1(x)))``, while
training only; the residual path itself is never dropped. (Dropout on the attention
probabilities is the other common site; chapter 04 shows it on one head.)
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .. import functional as F
from ..attention import MultiHeadAttention, MultiHeadLatentAttention
from ..nn import Dropout, LayerNorm, Linear, Module
from ..tensor import Tensor

__all__ = ["MLP", "TransformerBlock"]


class MLP(Module):
    """Position-wise feed-forward network: (B, L, d_model) -> (B, L, d_model), hidden width d_ff."""

    def __init__(self, d_model: int, d_ff: int, rng: np.random.Generator | None = None):
        super().__init__()
        rng = np.random.default_rng(0) if rng is None else rng
        self.fc1 = Linear(d_model, d_ff, rng=rng)        # W_1: (d_model, d_ff)
        self.fc2 = Linear(d_ff, d_model, rng=rng)        # W_2: (d_ff, d_model)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))             # GELU(x W_1 + b_1) W_2 + b_2


class TransformerBlock(Module):
    """One decoder block (pre-norm by default, ``norm="post"`` for the 2017 layout):
    x (B, L, d_model) -> (B, L, d_model).

    d_model % n_heads == 0; n_heads % n_kv_heads == 0 (GQA/MQA when n_kv_heads < n_heads).
    ``forward`` passes ``is_causal``, ``attn_bias``, ``scale``, ``qk_transform`` and ``backend``
    straight to :class:`tinyattn.attention.MultiHeadAttention` (that is where RoPE, ALiBi and T5
    biases enter); with ``need_weights=True`` it returns ``(y, weights (B, H, L, L) ndarray)``.
    dropout: residual dropout probability in [0, 1) (0 = none), active in ``train()`` mode only;
    dropout_rng: the generator its masks come from (default seed 0), owned by the block.
    ``mla``: a dict of :class:`tinyattn.attention.MultiHeadLatentAttention` keyword arguments
    (kv_lora_rank, qk_nope_head_dim, qk_rope_head_dim, v_head_dim, q_lora_rank, rope_base) to use
    MLA instead of MHA; it applies RoPE itself at ``positions``. ``cache``: a KV cache layer handle.
    """

    def __init__(self, d_model: int, n_heads: int, n_kv_heads: int | None = None, d_ff: int | None = None,
                 rng: np.random.Generator | None = None, norm: str = "pre", dropout: float = 0.0,
                 dropout_rng: np.random.Generator | None = None, mla: dict | None = None):
        super().__init__()
        if norm not in ("pre", "post"):
            raise ValueError(f"norm must be 'pre' or 'post', got {norm!r}")
        self.norm = norm
        rng = np.random.default_rng(0) if rng is None else rng
        self.ln1 = LayerNorm(d_model)
        if mla is None:
            self.attn = MultiHeadAttention(d_model, n_heads, n_kv_heads=n_kv_heads, rng=rng)
        else:
            self.attn = MultiHeadLatentAttention(d_model, n_heads, rng=rng, **mla)
        self.ln2 = LayerNorm(d_model)
        self.mlp = MLP(d_model, 4 * d_model if d_ff is None else d_ff, rng=rng)
        # created only when used, so blocks without dropout own no extra generator (checkpoints)
        self.drop = Dropout(dropout, rng=np.random.default_rng(0) if dropout_rng is None else dropout_rng) \
            if dropout > 0 else None

    def _drop(self, t: Tensor) -> Tensor:
        return t if self.drop is None else self.drop(t)

    def forward(self, x: Tensor, *, is_causal: bool = True, attn_bias=None, scale: float | None = None,
                qk_transform: Callable | None = None, need_weights: bool = False, backend: str = "dense",
                cache=None, positions=None, absorbed: bool = False):
        pre = self.norm == "pre"
        z = self.ln1(x) if pre else x
        if isinstance(self.attn, MultiHeadLatentAttention):
            if need_weights or attn_bias is not None or qk_transform is not None:
                raise ValueError("MLA applies its own RoPE: need_weights, attn_bias and qk_transform "
                                 "are not supported")
            a = self.attn(z, positions=positions, is_causal=is_causal, cache=cache, absorbed=absorbed,
                          backend=backend)
        else:
            a = self.attn(z, attn_bias=attn_bias, is_causal=is_causal, scale=scale, qk_transform=qk_transform,
                          need_weights=need_weights, backend=backend, cache=cache)
        weights = None
        if need_weights:
            a, weights = a
        a = self._drop(a)                                # residual dropout on the sublayer output
        if pre:
            h = x + a                                    # h = x + Drop(Attn(LN_1(x)))
            y = h + self._drop(self.mlp(self.ln2(h)))    # y = h + Drop(MLP(LN_2(h)))
        else:
            h = self.ln1(x + a)                          # post-norm: h = LN_1(x + Attn(x))
            y = self.ln2(h + self._drop(self.mlp(h)))    #            y = LN_2(h + MLP(h))
        return (y, weights) if need_weights else y
