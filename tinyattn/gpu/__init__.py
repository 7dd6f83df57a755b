"""GPU FlashAttention kernels (layer 5, chapter 07): Numba-CUDA fp32 and CuPy raw CUDA C.

Nothing here imports numba or cupy at module import time: each entry point imports its backend
when called, so ``import tinyattn.gpu`` works on a laptop without either GPU library.

- :func:`numba_flash_attention` - FA2-style fp32 forward in Numba (runs in the CUDA simulator).
- :func:`cupy_flash_attention` - CUDA C through CuPy: fp32 CUDA-core kernel, or fp16/bf16 tensor
  cores (mma.sync m16n8k16, fp32 accumulation) for half-precision inputs.
- :func:`naive_attention_gpu` - the three-kernel baseline (GEMM, softmax kernel, GEMM) through CuPy.
- :func:`numba_flash_backward` - FA2-style fp32 backward in Numba (D pre-pass, dK/dV kernel, dQ kernel).
- :func:`flash_decode` / :func:`paged_flash_decode` - split-KV decoding (GQA packing) through CuPy.
- :func:`flash_backward_mma` - FA2 backward on tensor cores (fp16/bf16, GQA, atomic or separate dQ).
- :func:`flash_forward_wgmma` / :func:`flash_forward_fp8` - Hopper (sm_90a) forward: wgmma, TMA,
  warp specialisation; fp16/bf16, and FP8 e4m3 at d = 128 (chapter 07 section 9).

Every forward takes ``return_lse=True`` to also return the fp32 log-sum-exp per row.
"""
from __future__ import annotations

from typing import Any

from ._jit import require_cupy, require_numba_cuda


def numba_flash_attention(q: Any, k: Any, v: Any, *, is_causal: bool = False, **kw: Any):
    """float32 (..., N, d) -> ndarray; see :func:`tinyattn.gpu.numba_flash.numba_flash_attention`.

    Without a CUDA GPU, run with ``NUMBA_ENABLE_CUDASIM=1`` set before numba is imported (the
    simulator); otherwise this raises RuntimeError saying so."""
    require_numba_cuda()
    from .numba_flash import numba_flash_attention as impl

    return impl(q, k, v, is_causal=is_causal, **kw)


def cupy_flash_attention(q: Any, k: Any, v: Any, *, is_causal: bool = False, **kw: Any):
    """CuPy arrays (..., N, d) -> CuPy array; see :func:`tinyattn.gpu.cupy_flash.cupy_flash_attention`.

    Needs CuPy (``pip install -e .[gpu]`` for CUDA 12, ``.[gpu-cuda13]`` for CUDA 13) and a GPU."""
    require_cupy()
    from .cupy_flash import cupy_flash_attention as impl

    return impl(q, k, v, is_causal=is_causal, **kw)


def naive_attention_gpu(q: Any, k: Any, v: Any, *, is_causal: bool = False, **kw: Any):
    """Three-kernel baseline; see :func:`tinyattn.gpu.naive.naive_attention_gpu` (needs CuPy)."""
    require_cupy()
    from .naive import naive_attention_gpu as impl

    return impl(q, k, v, is_causal=is_causal, **kw)


def numba_flash_backward(q: Any, k: Any, v: Any, out: Any, lse: Any, dout: Any, **kw: Any):
    """(dq, dk, dv) float32; see :func:`tinyattn.gpu.numba_backward.numba_flash_backward` (simulator or GPU)."""
    require_numba_cuda()
    from .numba_backward import numba_flash_backward as impl

    return impl(q, k, v, out, lse, dout, **kw)


def flash_decode(q: Any, k_cache: Any, v_cache: Any, seq_lens: Any, **kw: Any):
    """Split-KV decoding; see :func:`tinyattn.gpu.decode.flash_decode` (needs CuPy and a GPU)."""
    require_cupy()
    from .decode import flash_decode as impl

    return impl(q, k_cache, v_cache, seq_lens, **kw)


def paged_flash_decode(q: Any, k_pool: Any, v_pool: Any, block_tables: Any, seq_lens: Any, **kw: Any):
    """Split-KV decoding through a block table; see :func:`tinyattn.gpu.decode.paged_flash_decode`."""
    require_cupy()
    from .decode import paged_flash_decode as impl

    return impl(q, k_pool, v_pool, block_tables, seq_lens, **kw)


def flash_backward_mma(q: Any, k: Any, v: Any, o: Any, do: Any, lse: Any, **kw: Any):
    """(dq, dk, dv) on tensor cores; see :func:`tinyattn.gpu.cupy_backward.flash_backward_mma` (CuPy + GPU)."""
    require_cupy()
    from .cupy_backward import flash_backward_mma as impl

    return impl(q, k, v, o, do, lse, **kw)


def flash_forward_wgmma(q: Any, k: Any, v: Any, causal: bool = False, return_lse: bool = False, **kw: Any):
    """Hopper forward; see :func:`tinyattn.gpu.hopper.flash_forward_wgmma` (needs CuPy, nvcc, an sm_90 GPU)."""
    require_cupy()
    from .hopper import flash_forward_wgmma as impl

    return impl(q, k, v, causal, return_lse, **kw)


def flash_forward_fp8(q: Any, k: Any, v: Any, causal: bool = False, return_lse: bool = False, **kw: Any):
    """FP8 Hopper forward; see :func:`tinyattn.gpu.hopper_fp8.flash_forward_fp8` (needs CuPy, nvcc, sm_90)."""
    require_cupy()
    from .hopper_fp8 import flash_forward_fp8 as impl

    return impl(q, k, v, causal, return_lse, **kw)


__all__ = ["numba_flash_attention", "cupy_flash_attention", "naive_attention_gpu", "numba_flash_backward",
           "flash_decode", "paged_flash_decode", "flash_backward_mma", "flash_forward_wgmma", "flash_forward_fp8"]
