"""KV caches (layer 3, chapters 08-09).

- :class:`KVCache`: contiguous preallocated per-layer buffers (``model.new_cache(batch, max_len)``).
- :func:`kv_cache_bytes`, :func:`mla_cache_bytes`, ``PUBLISHED``, :func:`cache_table`: cache sizes
  of real models.
- :mod:`.paged`: PagedAttention (vLLM): ``BlockAllocator``, ``paged_attention``, ``PagedKVCache``.
- :mod:`.serving`: a synthetic serving simulation, contiguous reservation vs paging.
"""
from __future__ import annotations

from . import paged, serving
from .kv import KVCache
from .sizes import PUBLISHED, ModelConfig, cache_table, kv_cache_bytes, mla_cache_bytes

__all__ = ["KVCache", "kv_cache_bytes", "mla_cache_bytes", "ModelConfig", "PUBLISHED", "cache_table",
           "paged", "serving"]
