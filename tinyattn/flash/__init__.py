"""FlashAttention on the CPU (chapter 06): exact attention in tiles, O(N) extra memory.

- :func:`flash_attention` / :func:`flash_attention_backward`: NumPy, both loop orders
  (``"q_outer"`` = FlashAttention-2, ``"kv_outer"`` = FlashAttention-1), any block sizes,
  bottom-right causal with fully-masked tiles skipped.
- :class:`HBMCounter`, :func:`standard_attention_io`, :func:`fa1_io`, :func:`fa2_io`: the IO simulator.
- :func:`flash_attention_numba`: the Numba CPU kernel (imports numba on first call only).
- :func:`flash_sdpa`: one autograd node; registered as ``F.scaled_dot_product_attention(...,
  backend="flash")``.
- :func:`source_text_flash_forward`: the source text's (wrong) pseudocode, for chapter 06.
"""
from __future__ import annotations

from .backward import flash_attention_backward
from .forward import FULL, PARTIAL, SKIP, classify_tiles, flash_attention, source_text_flash_forward
from .memory import peak_extra_bytes
from .io_sim import (HBMCounter, SRAMOverflow, fa1_block_sizes, fa1_io, fa2_io, standard_attention,
                     standard_attention_io)
from .online_softmax import (block_update, merge_partials, merge_stats, online_softmax_stats,
                             source_text_block_update)

__all__ = [
    "peak_extra_bytes",
    "flash_attention", "flash_attention_backward", "flash_attention_numba", "flash_sdpa",
    "source_text_flash_forward", "classify_tiles", "SKIP", "PARTIAL", "FULL",
    "HBMCounter", "SRAMOverflow", "fa1_block_sizes", "fa1_io", "fa2_io", "standard_attention",
    "standard_attention_io", "online_softmax_stats", "merge_stats", "merge_partials",
    "block_update", "source_text_block_update",
]


def flash_attention_numba(q, k, v, *, is_causal: bool = False, scale: float | None = None,
                          block_q: int = 64, block_k: int = 64):
    """Numba CPU FlashAttention-2 forward -> ``(out, lse)`` float32; see :mod:`.numba_cpu`."""
    from .numba_cpu import flash_attention_numba as kernel   # numba is imported only here

    return kernel(q, k, v, is_causal=is_causal, scale=scale, block_q=block_q, block_k=block_k)


def flash_sdpa(q, k, v, mask=None, **kwargs):
    """Differentiable flash SDPA (one autograd node); see :func:`.autograd.flash_sdpa`."""
    from .autograd import flash_sdpa as impl   # needs the tensor core (layer 1)

    return impl(q, k, v, mask, **kwargs)


def _register() -> None:
    """Make ``F.scaled_dot_product_attention(..., backend="flash")`` dispatch to :func:`flash_sdpa`."""
    try:
        from .. import functional
    except ImportError:          # tensor core / functional not available yet
        return
    if hasattr(functional, "register_sdpa_backend"):
        functional.register_sdpa_backend("flash", flash_sdpa)


_register()
