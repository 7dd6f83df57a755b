"""The naive three-kernel GPU baseline of chapter 07: S = Q K^T, P = softmax(S), O = P V.

Two cuBLAS GEMMs through CuPy and one row-softmax kernel (``softmax_rows.cu``). It materialises the
(N, N) score matrix in device memory: O(N^2) memory and traffic, which FlashAttention removes.
"""
from __future__ import annotations

import math
from typing import Any

from .cupy_flash import LOG2E, _module


def naive_attention_gpu(q: Any, k: Any, v: Any, *, is_causal: bool = False, scale: float | None = None):
    """softmax(q k^T * scale [+ causal]) v with S and P stored in full; CuPy arrays in and out.

    q: (..., Nq, d), k, v: (..., Nk, d), float16 or float32 (GEMMs accumulate in fp32 in cuBLAS; the
    softmax computes in fp32 and stores P in the input dtype). Causal is bottom-right aligned.
    """
    import cupy as cp
    import numpy as np

    q, k, v = (cp.ascontiguousarray(cp.asarray(x)) for x in (q, k, v))
    if q.dtype not in (np.float16, np.float32) or k.dtype != q.dtype or v.dtype != q.dtype:
        raise TypeError(f"q, k, v must all be float16 or all float32, got {q.dtype}, {k.dtype}, {v.dtype}")
    if q.ndim < 2 or k.shape != v.shape or q.shape[:-2] != k.shape[:-2] or q.shape[-1] != k.shape[-1]:
        raise ValueError(f"expected q (..., Nq, d), k and v (..., Nk, d), got q {q.shape}, k {k.shape}, v {v.shape}")
    nq, d = q.shape[-2:]
    nk = k.shape[-2]
    sc = (1.0 / math.sqrt(d)) if scale is None else float(scale)
    s = cp.matmul(q, cp.swapaxes(k, -1, -2))                   # (..., Nq, Nk): kernel 1 (GEMM)
    name = "softmax_rows_f16" if q.dtype == np.float16 else "softmax_rows_f32"
    rows = int(np.prod(s.shape[:-1]))
    if rows and nk:
        kern = _module("softmax_rows.cu").get_function(name)   # kernel 2, in place
        kern((rows,), (256,), (s, np.int32(nq), np.int32(nk), np.float32(sc * LOG2E), np.int32(bool(is_causal))))
    elif rows:
        return cp.zeros(q.shape[:-1] + (v.shape[-1],), q.dtype)
    return cp.matmul(s, v)                                      # kernel 3 (GEMM)
