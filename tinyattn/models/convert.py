"""Converting a trained multi-head checkpoint to grouped-query attention (Ainslie et al. 2023, "GQA",
arXiv:2305.13245, section 2.1): each group of query heads gets ONE key head and ONE value head whose
projection is the MEAN of the group's original key (value) projections; then a short uptraining
(the paper uses 5% of the original pre-training steps) recovers most of the quality.

    W^K_g = mean_{i in group g} W^K_i,   W^V_g = mean_{i in group g} W^V_i,   group g = heads [g·r, (g+1)·r)

with r = H_kv_old / H_kv_new, the contiguous grouping of :func:`tinyattn.attention.kv_head_for_query_head`.
"""
from __future__ import annotations

import copy

import numpy as np

from ..attention import MultiHeadAttention
from ..nn import Parameter

__all__ = ["mha_to_gqa", "mean_pool_kv_heads"]


def mean_pool_kv_heads(weight: np.ndarray, n_kv_heads_old: int, n_kv_heads: int) -> np.ndarray:
    """weight (d_in, Hkv_old·d_head) -> (d_in, n_kv_heads·d_head), averaging contiguous groups of heads
    (a 1-D bias (Hkv_old·d_head,) works too)."""
    if n_kv_heads < 1 or n_kv_heads_old % n_kv_heads:
        raise ValueError(f"n_kv_heads={n_kv_heads} must divide the current number of KV heads {n_kv_heads_old}")
    lead, width = weight.shape[:-1], weight.shape[-1]
    hd = width // n_kv_heads_old
    w = weight.reshape(*lead, n_kv_heads, n_kv_heads_old // n_kv_heads, hd)
    return w.mean(axis=-2).reshape(*lead, n_kv_heads * hd)               # mean over the group


def mha_to_gqa(model, n_kv_heads: int):
    """A copy of ``model`` (a TransformerLM with MultiHeadAttention) whose every layer has
    ``n_kv_heads`` KV heads, built by mean-pooling; the original model is not changed."""
    new = copy.deepcopy(model)
    for i, block in enumerate(new.blocks):
        a = block.attn
        if not isinstance(a, MultiHeadAttention):
            raise TypeError(f"layer {i}: mha_to_gqa needs MultiHeadAttention, got {type(a).__name__}")
        if isinstance(n_kv_heads, bool) or not isinstance(n_kv_heads, (int, np.integer)) \
                or n_kv_heads < 1 or a.n_kv_heads % n_kv_heads:
            raise ValueError(f"n_kv_heads must be an int dividing the model's {a.n_kv_heads} KV heads, "
                             f"got {n_kv_heads!r}")
        for proj in (a.k_proj, a.v_proj):
            proj.weight = Parameter(mean_pool_kv_heads(proj.weight.data, a.n_kv_heads, n_kv_heads))
            if proj.bias is not None:
                proj.bias = Parameter(mean_pool_kv_heads(proj.bias.data, a.n_kv_heads, n_kv_heads))
        a.n_kv_heads = int(n_kv_heads)
    return new
