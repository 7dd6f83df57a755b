"""Sparse attention (chapter 10): fixed patterns, block-sparse FlashAttention, learned sparsity.

- :mod:`.masks`: ``sliding_window_mask``, ``dilated_window_mask``, ``strided_mask``,
  ``global_tokens_mask``, ``bigbird_mask`` (seeded random blocks), ``block_mask_from_mask``.
- :func:`block_sparse_attention`: chapter 06's tile loop skipping empty tiles (work counted);
  :func:`sparse_attention` derives the tile map from an element mask.
- :func:`topk_attention`, :func:`routing_attention` (online k-means, Routing Transformer),
  :func:`lsh_attention` (Reformer buckets), :func:`hierarchical_attention` (coarse-to-fine, cost
  measured). Each returns what it attended to, so tests compare with dense masked attention.
- :func:`register_pattern_backend`: use a pattern inside ``tinyattn.models.TransformerLM``.
"""
from __future__ import annotations

from .backend import register_pattern_backend
from .block_sparse import block_sparse_attention, masked_dense_attention, sparse_attention
from .hierarchical import avg_pool_blocks, hierarchical_attention
from .lsh import lsh_attention, lsh_buckets
from .masks import (bigbird_mask, block_mask_from_mask, causal_mask, density, dilated_window_mask,
                    expand_block_mask, global_tokens_mask, sliding_window_mask, strided_mask)
from .routing import OnlineKMeans, routing_attention
from .topk import topk_attention, topk_mask

__all__ = [
    "sliding_window_mask", "dilated_window_mask", "strided_mask", "global_tokens_mask", "bigbird_mask",
    "block_mask_from_mask", "expand_block_mask", "density", "causal_mask",
    "block_sparse_attention", "sparse_attention", "masked_dense_attention",
    "topk_attention", "topk_mask", "OnlineKMeans", "routing_attention", "lsh_buckets", "lsh_attention",
    "avg_pool_blocks", "hierarchical_attention", "register_pattern_backend",
]
