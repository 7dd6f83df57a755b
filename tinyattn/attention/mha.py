"""Multi-head attention covering MHA (Hkv = H), GQA (1 < Hkv < H) and MQA (Hkv = 1).

    head_i = Attention(X W_i^Q, X W_g(i)^K, X W_g(i)^V),   g(i) = i // (H / Hkv)
    MultiHead(X) = Concat(head_1, ..., head_H) W^O

The per-head matrices W_i^Q (d_model, d_head) are stored side by side in one Linear of width
H·d_head, so "split heads" is just a reshape: columns [i·d_head, (i+1)·d_head) belong to head i.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..functional.attention import attention_weights, scaled_dot_product_attention
from ..nn import Linear, Module
from ..tensor import Tensor, as_tensor

Array = np.ndarray | Tensor
QKTransform = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


def split_heads(x: Array, n_heads: int) -> Array:
    """(B, L, H·d) -> (B, H, L, d): head h takes features [h·d, (h+1)·d). Keeps ndarray/Tensor."""
    if x.ndim != 3 or x.shape[-1] % n_heads != 0:
        raise ValueError(f"split_heads: x must be (B, L, H*d) with last axis divisible by "
                         f"n_heads={n_heads}, got shape {x.shape}")
    b, l, hd = x.shape
    return x.reshape(b, l, n_heads, hd // n_heads).transpose(0, 2, 1, 3)


def merge_heads(x: Array) -> Array:
    """(B, H, L, d) -> (B, L, H·d), the inverse of :func:`split_heads`. Keeps ndarray/Tensor."""
    if x.ndim != 4:
        raise ValueError(f"merge_heads: x must be (B, H, L, d), got shape {x.shape}")
    b, h, l, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(b, l, h * d)


def kv_head_for_query_head(i: int, n_heads: int, n_kv_heads: int) -> int:
    """The KV head read by query head i: contiguous groups of n_heads // n_kv_heads query heads."""
    if n_kv_heads <= 0 or n_heads % n_kv_heads != 0:
        raise ValueError(f"n_heads={n_heads} must be a positive multiple of n_kv_heads={n_kv_heads}")
    if not 0 <= i < n_heads:
        raise ValueError(f"query head index i={i} out of range [0, {n_heads})")
    return i // (n_heads // n_kv_heads)


def repeat_kv(x: Array, n_rep: int) -> Array:
    """(B, Hkv, L, d) -> (B, Hkv·n_rep, L, d), each KV head repeated n_rep times in place
    (like torch.repeat_interleave on the head axis). SDPA does not need this; it is for teaching
    and for code that wants explicit per-query-head keys. Differentiable for Tensors."""
    if x.ndim != 4 or n_rep < 1:
        raise ValueError(f"repeat_kv: x must be (B, Hkv, L, d) and n_rep >= 1, got {x.shape}, {n_rep}")
    b, h, l, d = x.shape
    if n_rep == 1:
        return x
    if isinstance(x, Tensor):  # broadcast against ones (B, Hkv, n_rep, L, d), then fold the axes
        ones = Tensor(np.ones((1, 1, n_rep, 1, 1), dtype=x.data.dtype))
        return (x.reshape(b, h, 1, l, d) * ones).reshape(b, h * n_rep, l, d)
    return np.repeat(x, n_rep, axis=1)


class MultiHeadAttention(Module):
    """Self- (or cross-) attention with n_heads query heads and n_kv_heads key/value heads.

    d_model must be divisible by n_heads; n_heads by n_kv_heads (default n_kv_heads = n_heads).
    Parameters: q_proj (d_model -> H·d_head), k_proj and v_proj (d_model -> Hkv·d_head),
    o_proj (H·d_head -> d_model), with d_head = d_model // n_heads. Weights are (d_in, d_out):
    y = x @ weight (+ bias). dtype: parameter dtype (float64 for gradient checks).
    """

    def __init__(self, d_model: int, n_heads: int, n_kv_heads: int | None = None,
                 bias: bool = False, rng: np.random.Generator | None = None,
                 dtype=np.float32):
        super().__init__()
        n_kv_heads = n_heads if n_kv_heads is None else n_kv_heads
        if n_heads <= 0 or d_model % n_heads != 0:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        if n_kv_heads <= 0 or n_heads % n_kv_heads != 0:
            raise ValueError(f"n_heads={n_heads} must be a multiple of n_kv_heads={n_kv_heads}")
        rng = np.random.default_rng(0) if rng is None else rng
        self.d_model, self.n_heads, self.n_kv_heads = d_model, n_heads, n_kv_heads
        self.head_dim = d_model // n_heads
        self.q_proj = Linear(d_model, n_heads * self.head_dim, bias=bias, rng=rng, dtype=dtype)
        self.k_proj = Linear(d_model, n_kv_heads * self.head_dim, bias=bias, rng=rng, dtype=dtype)
        self.v_proj = Linear(d_model, n_kv_heads * self.head_dim, bias=bias, rng=rng, dtype=dtype)
        self.o_proj = Linear(n_heads * self.head_dim, d_model, bias=bias, rng=rng, dtype=dtype)

    def qkv(self, x: Tensor, kv_input: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """x: (B, Lq, d_model), kv_input: (B, Lk, d_model) or None (self-attention) ->
        q (B, H, Lq, d_head), k and v (B, Hkv, Lk, d_head)."""
        src = x if kv_input is None else kv_input
        q = split_heads(self.q_proj(x), self.n_heads)               # Q_i = X W_i^Q
        k = split_heads(self.k_proj(src), self.n_kv_heads)          # K_g = X W_g^K
        v = split_heads(self.v_proj(src), self.n_kv_heads)          # V_g = X W_g^V
        return q, k, v

    def forward(self, x, *, kv_input=None, mask=None, attn_bias=None, is_causal: bool = False,
                scale: float | None = None, qk_transform: QKTransform | None = None,
                need_weights: bool = False, backend: str = "dense", cache=None):
        """x: (B, L, d_model) -> out (B, L, d_model), or (out, weights (B, H, L, Lk) ndarray)
        when need_weights. mask (bool, True = attend) and attn_bias broadcast to (B, H, L, Lk);
        qk_transform(q, k) -> (q, k) runs after the head split (RoPE goes here).
        cache: a layer handle of :class:`tinyattn.cache.KVCache` (``cache.layer(l)``) with fields
        k, v of shape (Hkv, d_head): the new (already rotated) keys and values are appended and
        attention runs over every cached token, Lk = cached + L (inference only, no gradient to
        the cached part)."""
        x = as_tensor(x)
        if x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"x must be (B, L, d_model={self.d_model}), got shape {x.shape}")
        if kv_input is not None:
            kv_input = as_tensor(kv_input)
            if kv_input.ndim != 3 or kv_input.shape[::2] != x.shape[::2]:
                raise ValueError(f"kv_input must be (B={x.shape[0]}, Lk, d_model={self.d_model}), "
                                 f"got shape {kv_input.shape}")
        q, k, v = self.qkv(x, kv_input)
        if qk_transform is not None:
            q, k = qk_transform(q, k)
        if cache is not None:                                          # K, V of all tokens so far
            kv = cache(k=k.data.transpose(0, 2, 1, 3), v=v.data.transpose(0, 2, 1, 3))
            k, v = (Tensor(kv[n].transpose(0, 2, 1, 3)) for n in ("k", "v"))   # (B, Hkv, Lk, d)
        o = scaled_dot_product_attention(q, k, v, mask, bias=attn_bias, is_causal=is_causal,
                                         scale=scale, backend=backend)  # (B, H, L, d_head)
        out = self.o_proj(merge_heads(o))                              # Concat(heads) W^O
        if not need_weights:
            return out
        return out, attention_weights(q, k, mask, bias=attn_bias, is_causal=is_causal, scale=scale)

    def __repr__(self) -> str:
        return (f"MultiHeadAttention(d_model={self.d_model}, n_heads={self.n_heads}, "
                f"n_kv_heads={self.n_kv_heads}, head_dim={self.head_dim})")
