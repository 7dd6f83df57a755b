"""Measuring extra memory: the peak bytes NumPy allocates during one call (tracemalloc).

Used by chapter 06's notebook, its memory test and ``benchmarks/cpu_flash.py``, so all three measure
the same way. tracemalloc sees Python/NumPy allocations only (not a Numba kernel's internal buffers).
"""
from __future__ import annotations

import tracemalloc
from typing import Any, Callable

__all__ = ["peak_extra_bytes"]


def peak_extra_bytes(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """Peak bytes allocated while ``fn(*args, **kwargs)`` runs, above what was allocated before it
    (so the inputs do not count; the returned result does)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        fn(*args, **kwargs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak - base
