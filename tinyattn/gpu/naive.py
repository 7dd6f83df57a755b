"""The naive three-kernel GPU baseline of chapter 07: S = Q K^T, P = softmax(S), O = P V.

Kernel 1 and 3 are cuBLAS batched GEMMs on the tensor cores (``cublasGemmStridedBatchedEx``: fp16
inputs, fp32 accumulation; fp32 inputs run plain fp32 SGEMM), kernel 2 is our row-softmax kernel
(``softmax_rows.cu``). It materialises the (N, N) score matrix in device memory: O(N^2) memory and
traffic, which FlashAttention removes.

Why not ``cupy.matmul``: for batched (>2-D) float16 arrays CuPy 14 converts to float32 and runs an
fp32 GEMM (measured on an H200: 15-26 TFLOP/s instead of 200-480), which made the baseline's GEMMs,
not its memory traffic, the cost. A baseline has to be as good as three kernels can be, so that the
speed-up of FlashAttention over it is the algorithm's.
"""
from __future__ import annotations

import math
from typing import Any

from .cupy_flash import LOG2E, _module

# cuBLAS enums (cublas_api.h, library_types.h)
_OP_N, _OP_T = 0, 1
_CUDA_R_32F, _CUDA_R_16F = 0, 2
_COMPUTE_32F = 68               # CUBLAS_COMPUTE_32F: fp32 accumulation (no TF32 for fp32 inputs)
_GEMM_DEFAULT = -1


def _gemm(transa: int, m: int, n: int, k: int, a, lda: int, stride_a: int, b, ldb: int, stride_b: int,
          c, ldc: int, stride_c: int, batch: int) -> None:
    """C_i = op(A_i) B_i for i < batch, column-major (cuBLAS) view, alpha = 1, beta = 0."""
    import numpy as np
    from cupy.cuda import cublas, device

    dt = _CUDA_R_16F if a.dtype == np.float16 else _CUDA_R_32F
    one, zero = np.ones(1, np.float32), np.zeros(1, np.float32)     # host scalars, fp32 = compute type
    cublas.gemmStridedBatchedEx(device.get_cublas_handle(), transa, _OP_N, m, n, k,
                                one.ctypes.data, a.data.ptr, dt, lda, stride_a,
                                b.data.ptr, dt, ldb, stride_b,
                                zero.ctypes.data, c.data.ptr, dt, ldc, stride_c,
                                batch, _COMPUTE_32F, _GEMM_DEFAULT)


def scores(q, k, s) -> None:
    """Kernel 1: s[i] = q[i] k[i]^T for every batch*head i. q: (BH, Nq, d), k: (BH, Nk, d),
    s: (BH, Nq, Nk), C-contiguous CuPy arrays of one dtype.

    Row-major S = Q K^T is column-major S^T = K Q^T: m = Nk, n = Nq, k = d, A = K read transposed.
    """
    bh, nq, d = q.shape
    nk = k.shape[1]
    _gemm(_OP_T, nk, nq, d, k, d, nk * d, q, d, nq * d, s, nk, nq * nk, bh)


def softmax_rows(s, nq: int, nk: int, scale: float, is_causal: bool) -> None:
    """Kernel 2, in place: s <- softmax(scale * s) per row (causal bottom-right aligned, fp32
    arithmetic, stored in s's dtype; a row with no visible key becomes 0). s: (BH, Nq, Nk)."""
    import numpy as np

    name = "softmax_rows_f16" if s.dtype == np.float16 else "softmax_rows_f32"
    rows = s.shape[0] * nq
    kern = _module("softmax_rows.cu").get_function(name)
    kern((rows,), (256,), (s, np.int32(nq), np.int32(nk), np.float32(scale * LOG2E), np.int32(bool(is_causal))))


def weighted_sum(p, v, o) -> None:
    """Kernel 3: o[i] = p[i] v[i]. p: (BH, Nq, Nk), v: (BH, Nk, dv), o: (BH, Nq, dv).

    Row-major O = P V is column-major O^T = V^T P^T: m = dv, n = Nq, k = Nk, no transposes.
    """
    bh, nq, nk = p.shape
    dv = v.shape[2]
    _gemm(_OP_N, dv, nq, nk, v, dv, nk * dv, p, nk, nq * nk, o, dv, nq * dv, bh)


def naive_attention_gpu(q: Any, k: Any, v: Any, *, is_causal: bool = False, scale: float | None = None,
                        parts: dict | None = None):
    """softmax(q k^T * scale [+ causal]) v with S and P stored in full; CuPy arrays in and out.

    q: (..., Nq, d), k, v: (..., Nk, d), float16 or float32; returns (..., Nq, d) in the input dtype.
    GEMMs accumulate in fp32 (tensor cores for fp16); the softmax computes in fp32 and stores P in
    the input dtype. Causal is bottom-right aligned. ``parts``: if a dict, the three steps are
    stored in it as zero-argument callables ``{"qk", "softmax", "pv"}`` (re-running one step on
    the same buffers) so a benchmark can time each kernel alone.
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
    bh = int(np.prod(q.shape[:-2], dtype=np.int64))
    out = cp.zeros(q.shape[:-1] + (v.shape[-1],), q.dtype)
    if bh == 0 or nq == 0 or nk == 0:               # no keys: every row is 0
        return out
    sc = (1.0 / math.sqrt(d)) if scale is None else float(scale)
    q3, k3, v3 = q.reshape(bh, nq, d), k.reshape(bh, nk, d), v.reshape(bh, nk, v.shape[-1])
    s = cp.empty((bh, nq, nk), q.dtype)
    o3 = out.reshape(bh, nq, v.shape[-1])
    steps = {"qk": lambda: scores(q3, k3, s),                       # kernel 1 (GEMM)
             "softmax": lambda: softmax_rows(s, nq, nk, sc, is_causal),   # kernel 2, in place
             "pv": lambda: weighted_sum(s, v3, o3)}                 # kernel 3 (GEMM)
    for step in steps.values():
        step()
    if parts is not None:
        parts.update(steps)
    return out
