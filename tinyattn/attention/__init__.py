"""Attention modules (layer 3): multi-head attention in all its KV-sharing variants.

- :mod:`.mha`: ``MultiHeadAttention`` (MHA / GQA / MQA) and the head helpers ``split_heads``,
  ``merge_heads``, ``kv_head_for_query_head``, ``repeat_kv`` (chapter 02).
- chapter 08 adds multi-head latent attention (MLA) in its own module.
"""
from __future__ import annotations

from .mha import (MultiHeadAttention, kv_head_for_query_head, merge_heads, repeat_kv,
                  split_heads)

__all__ = ["MultiHeadAttention", "split_heads", "merge_heads", "kv_head_for_query_head",
           "repeat_kv"]
