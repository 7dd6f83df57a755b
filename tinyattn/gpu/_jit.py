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


CUPY_HINT = ("CuPy is not installed. Install the GPU extra matching your CUDA driver (nvidia-smi shows "
             "it): pip install -e '.[gpu]' for CUDA 12, pip install -e '.[gpu-cuda13]' for CUDA 13 "
             "from the repository root. Without a GPU, use "
             "tinyattn.gpu.numba_flash_attention with NUMBA_ENABLE_CUDASIM=1 (the CUDA simulator)")
SIM_HINT = ("set the environment variable NUMBA_ENABLE_CUDASIM=1 BEFORE numba is imported (e.g. "
            "NUMBA_ENABLE_CUDASIM=1 jupyter lab, or os.environ['NUMBA_ENABLE_CUDASIM'] = '1' in the "
            "first cell, then restart the kernel) to run the kernel in Numba's CUDA simulator")


def require_cupy():
    """Import and return cupy, or raise ImportError naming the pip extra that installs it."""
    try:
        import cupy
    except ModuleNotFoundError as exc:
        if exc.name is not None and exc.name.split(".")[0] != "cupy":
            raise                                 # cupy found but one of ITS imports is missing
        raise ImportError(CUPY_HINT) from exc
    return cupy


def require_numba_cuda() -> None:
    """Raise a clear error when numba.cuda can run neither on a GPU nor in the simulator."""
    try:
        from numba import config, cuda
    except ModuleNotFoundError as exc:
        raise ImportError("numba is not installed: pip install -e . (numba and numba-cuda are core "
                          "dependencies of tinyattn)") from exc
    if simulator_enabled() and not config.ENABLE_CUDASIM:
        raise RuntimeError("NUMBA_ENABLE_CUDASIM=1 was set after numba was imported, so numba "
                           "still looks for a real GPU; " + SIM_HINT)
    if not config.ENABLE_CUDASIM and not cuda.is_available():
        raise RuntimeError("no usable CUDA GPU/driver found for numba.cuda; " + SIM_HINT)
