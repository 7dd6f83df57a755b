"""One place that decides how GPU code is compiled (layer 5).

The Numba CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``, used by the tests and by learners without a
GPU) accepts only a subset of ``numba.cuda.jit``'s options: ``lineinfo`` and ``max_registers``
raise there. Every kernel in :mod:`tinyattn.gpu` therefore asks :func:`jit_options` for its
keyword arguments instead of writing them out.
"""
from __future__ import annotations

import os
from typing import Any

# Options only a real compiler understands; the simulator rejects them.
_REAL_ONLY = ("lineinfo", "max_registers", "opt", "cache")


def simulator_enabled() -> bool:
    """True when Numba runs CUDA kernels in its Python simulator (no GPU, no compiler).

    Decided by the environment variable alone, so calling this never imports numba.
    """
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def jit_options(**opts: Any) -> dict[str, Any]:
    """Keyword arguments for ``numba.cuda.jit``: ``fastmath=True`` by default, real-only options dropped
    in the simulator. ``fastmath`` lets exp use the hardware ``ex2.approx`` unit (error ~2 ulp)."""
    out: dict[str, Any] = {"fastmath": True}
    out.update(opts)
    if simulator_enabled():
        for key in _REAL_ONLY:
            out.pop(key, None)
    return out


def require_float32_array(name: str, x: Any, ndim_min: int = 2):
    """Return ``x`` as a C-contiguous float32 ndarray, or raise TypeError/ValueError naming ``name``."""
    import numpy as np

    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise TypeError(f"{name} must be an array, got {type(x).__name__}")
    arr = np.asarray(x)
    if arr.dtype != np.float32:
        raise TypeError(f"{name} must be float32 of shape (..., N, d), got dtype {arr.dtype}")
    if arr.ndim < ndim_min:
        raise ValueError(f"{name} must have shape (..., N, d), got {arr.shape}")
    return np.ascontiguousarray(arr)
