"""Attention modules (layer 3): multi-head attention in all its KV-sharing variants.

- :mod:`.mha`: ``MultiHeadAttention`` (MHA / GQA / MQA) and the head helpers ``split_heads``,
  ``merge_heads``, ``kv_head_for_query_head``, ``repeat_kv`` (chapter 02).
- :mod:`.mla`: ``MultiHeadLatentAttention`` (DeepSeek-V2 MLA: naive and absorbed forms) (chapter 08).
"""
from __future__ import annotations

from .mha import (MultiHeadAttention, kv_head_for_query_head, merge_heads, repeat_kv,
                  split_heads)
from .mla import MultiHeadLatentAttention, rope_on_content_absorption_error

__all__ = ["MultiHeadAttention", "split_heads", "merge_heads", "kv_head_for_query_head",
           "repeat_kv", "MultiHeadLatentAttention", "rope_on_content_absorption_error"]
