"""FlashAttention forward in raw CUDA C through CuPy (chapter 07).

The CUDA C lives in ``.cu`` files beside this module (``flash_fp32.cu``, ``flash_mma.cu``,
``softmax_rows.cu``, helpers in ``ptx_utils.cuh``). They are header-free, so CuPy's NVRTC compiles
them without include paths; the tests compile the same files with ``nvcc -arch=sm_90``.

- float32 inputs  -> ``flash_f32_d{64,128}``: CUDA cores, the Numba kernel's design in C.
- float16 inputs  -> ``flash_mma_f16_d{32,64,96,128}``: tensor cores, mma.sync m16n8k16, fp32 accumulation.
- bfloat16 (raw 16-bit patterns in a uint16 array, ``dtype="bfloat16"``) -> ``flash_mma_bf16_d*``.
"""
from __future__ import annotations

import math
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CU_FILES = ("flash_fp32.cu", "flash_mma.cu", "softmax_rows.cu")
HEAD_DIMS = (64, 128)            # the fp32 CUDA-core kernel (flash_fp32.cu)
MMA_HEAD_DIMS = (32, 64, 96, 128)  # the tensor-core kernels (flash_mma.cu)
LOG2E = 1.4426950408889634

# Tensor-core kernel variants compiled from flash_mma.cu: name suffix -> (warps, m-tiles per warp, BK,
# K/V stages); q: Q in registers, e: EXP16, r: rescale skip, l: split loader (d = 96), s3: 3 stages, _b3: 3 blocks/SM (see flash_mma.cu). Query rows per block = 16 * warps * m-tiles. benchmarks/NOTES.md records each one's speed.
VARIANTS = {
    64: {"w4m1k64q": (4, 1, 64, 2), "w4m2k64q": (4, 2, 64, 2), "w8m1k64q": (8, 1, 64, 2),
         "w4m2k64qe": (4, 2, 64, 2), "w4m2k64qs3": (4, 2, 64, 3), "w8m2k64q": (8, 2, 64, 2),
         "w4m1k128q": (4, 1, 128, 2), "w4m2k64qr": (4, 2, 64, 2)},
    128: {"w4m1k64q": (4, 1, 64, 2), "w8m1k64q": (8, 1, 64, 2), "w4m2k32e": (4, 2, 32, 2),
          "w8m1k64qe": (8, 1, 64, 2), "w8m1k64qs3": (8, 1, 64, 3), "w4m2k32es3": (4, 2, 32, 3),
          "w8m2k32e": (8, 2, 32, 2), "w4m2k64er": (4, 2, 64, 2), "w4m2k32er": (4, 2, 32, 2)},
}
VARIANTS[32] = {"w4m2k64q": (4, 2, 64, 2), "w4m2k64qe": (4, 2, 64, 2)}
VARIANTS[96] = {"w4m2k64er": (4, 2, 64, 2), "w4m2k32er": (4, 2, 32, 2),
               # session 21, sweep only ('l': the split constant-trip loader; _b3: __launch_bounds__(128, 3))
               "w4m2k64erl": (4, 2, 64, 2), "w4m2k64el": (4, 2, 64, 2), "w4m2k32qel": (4, 2, 32, 2),
               "w4m1k64qel_b3": (4, 1, 64, 2)}
# d = 256: built only with -DTA_FLASH_D256 (or all variants); checked by nvcc on CPU, not yet run on a GPU, so
# get_kernel / launch take it with an explicit variant and cupy_flash_attention does not (NOTES.md session 21)
MMA_UNRUN_DIMS = (256,)
VARIANTS[256] = {"w4m1k32er": (4, 1, 32, 2), "w4m1k64er": (4, 1, 64, 2), "w8m1k32er": (8, 1, 32, 2)}
DEFAULT_VARIANT = {64: "w4m2k64q", 128: "w4m2k64er",    # fastest measured on the H200 (NOTES.md)
                   32: "w4m2k64q", 96: "w4m2k64er"}


def cuda_source(name: str, _seen: set | None = None) -> str:
    """Text of ``name`` with every ``#include "<file>.cuh"`` of this folder inlined, recursively and once
    each (``#pragma once`` by hand; NVRTC then needs no include path)."""
    seen = set() if _seen is None else _seen

    def inline(m: re.Match) -> str:
        if m.group(1) in seen:
            return ""
        seen.add(m.group(1))
        return cuda_source(m.group(1), seen).replace("#pragma once", "")
    return re.sub(r'#include "(\w+\.cuh)"', inline, (HERE / name).read_text())


@lru_cache(maxsize=None)
def _module(name: str, all_variants: bool = False, defines: tuple = ()):
    """The compiled .cu file; all_variants also builds the sweep's tile-shape variants (slower); defines:
    extra ``-D`` options (e.g. ``("-DTA_FLASH_D256",)``)."""
    import cupy as cp

    opts = ("-std=c++17",) + (("-DTA_FLASH_ALL_VARIANTS",) if all_variants else ()) + tuple(defines)
    return cp.RawModule(code=cuda_source(name), options=opts)


@lru_cache(maxsize=None)
def shipped_variants(d: int) -> frozenset:
    """Variant names of head dim d compiled without any -D option (the fast-to-build module)."""
    shipped = cuda_source("flash_mma.cu").split("#ifdef TA_FLASH_ALL_VARIANTS")[0]
    shipped = re.sub(r"#if defined\(TA_FLASH_\w+\).*?#endif", "", shipped, flags=re.S)
    return frozenset(re.findall(rf"^TA_FLASH_MMA_BOTH(?:_L)?\({d}, .*, (\w+)\)$", shipped, re.M))


@lru_cache(maxsize=None)
def guard_define(d: int, variant: str) -> str | None:
    """The ``-D`` option of the ``#if defined(TA_FLASH_X) || ...`` block of flash_mma.cu that instantiates
    (d, variant) (e.g. ``"-DTA_FLASH_D96"``: a small module instead of every sweep variant), else None."""
    for blk in re.finditer(r"#if defined\((TA_FLASH_\w+)\).*?#endif", cuda_source("flash_mma.cu"), re.S):
        if re.search(rf"^TA_FLASH_MMA_BOTH(?:_L)?\({d}, .*, {re.escape(variant)}\)$", blk.group(0), re.M):
            return f"-D{blk.group(1)}"
    return None


@lru_cache(maxsize=None)
def get_kernel(kind: str, d: int, variant: str | None = None):
    """(kernel, block, query rows per block, shared bytes) for kind in {'f32', 'f16', 'bf16'};
    d in HEAD_DIMS (f32) or MMA_HEAD_DIMS (f16, bf16)."""
    dims = HEAD_DIMS if kind == "f32" else MMA_HEAD_DIMS + MMA_UNRUN_DIMS
    if d not in dims:
        raise ValueError(f"head dim d must be one of {dims} for kind {kind!r}, got {d}")
    if d in MMA_UNRUN_DIMS and variant is None:
        raise ValueError(f"d={d} has no default tile shape yet (not run on a GPU): pass variant= one of {sorted(VARIANTS[d])}")
    if kind == "f32":
        # sQ (64 x (d+1)) + sK^T (d x 33) + sV (32 x d) + sP (64 x 33), float32
        smem = 4 * (64 * (d + 1) + d * 33 + 32 * d + 64 * 33)
        kern, block, rows = _module("flash_fp32.cu").get_function(f"flash_f32_d{d}"), (8, 16, 1), 64
    elif kind in ("f16", "bf16"):
        variant = variant or DEFAULT_VARIANT[d]
        if variant not in VARIANTS[d]:
            raise ValueError(f"variant must be one of {sorted(VARIANTS[d])} for d={d}, got {variant!r}")
        nw, mt, bk, stages = VARIANTS[d][variant]
        rows = 16 * nw * mt
        smem = 2 * (rows + 2 * stages * bk) * d        # Q tile + `stages` K and V tiles, 2 bytes each
        guard = None if variant in shipped_variants(d) else guard_define(d, variant)
        module = (_module("flash_mma.cu", defines=(guard,)) if guard
                  else _module("flash_mma.cu", all_variants=variant not in shipped_variants(d)))
        kern, block = module.get_function(f"flash_mma_{kind}_d{d}_{variant}"), (32 * nw, 1, 1)
    else:
        raise ValueError(f"kind must be 'f32', 'f16' or 'bf16', got {kind!r}")
    if smem > 48 * 1024:    # above 48 KB a kernel must opt in to more dynamic shared memory
        kern.max_dynamic_shared_size_bytes = smem
    return kern, block, rows, smem


def launch(q, k, v, out, kind: str, lse=None, *, is_causal: bool = False, scale: float | None = None,
           variant: str | None = None, group: int = 1):
    """Launch on CuPy arrays already in place: q, out (BH, Nq, d); k, v (BH // group, Nk, d), contiguous
    (group > 1, tensor-core kinds only: GQA, query head bh reads kv head bh // group);
    lse (BH, Nq) float32 receives each row's log-sum-exp (allocated when None). Returns lse.

    kind 'f32' (float32 arrays), 'f16' (float16) or 'bf16' (uint16 arrays holding bf16 bits).
    Asynchronous (stream order), so the benchmark times it with CUDA events.
    """
    import cupy as cp
    import numpy as np

    BH, nq, d = q.shape
    nk = k.shape[1]
    kern, block, rows, smem = get_kernel(kind, d, variant)
    sc = (1.0 / math.sqrt(d)) if scale is None else float(scale)
    if lse is None:
        lse = cp.empty((BH, nq), cp.float32)
    grid = ((nq + rows - 1) // rows, BH, 1)
    args = (q, k, v, out, lse, np.int32(nq), np.int32(nk), np.float32(sc * LOG2E), np.int32(bool(is_causal)))
    if kind != "f32":
        args += (np.int32(group),)
    elif group != 1:
        raise ValueError(f"GQA (group={group}) needs the tensor-core kernels (float16/bfloat16 inputs)")
    kern(grid, block, args, shared_mem=smem)
    return lse


def _kind_of(x: Any, dtype: str | None) -> str:
    import numpy as np

    if dtype == "bfloat16":
        if x.dtype != np.uint16:
            raise TypeError(f"dtype='bfloat16' expects uint16 arrays of bf16 bit patterns, got {x.dtype}")
        return "bf16"
    if x.dtype == np.float32:
        return "f32"
    if x.dtype == np.float16:
        return "f16"
    raise TypeError(f"q must be float32 or float16 (or uint16 with dtype='bfloat16'), got {x.dtype}")


def cupy_flash_attention(q: Any, k: Any, v: Any, *, is_causal: bool = False, scale: float | None = None,
                         dtype: str | None = None, variant: str | None = None, return_lse: bool = False):
    """softmax(q k^T * scale [+ causal]) v on the GPU; returns a CuPy array shaped and typed like q.

    With ``return_lse=True`` returns ``(out, lse)`` like chapter 06's ``flash_attention``: lse
    (..., Nq) float32 CuPy array = log sum_j exp(scale q_i.k_j), -inf for a row that sees no key.

    q: (..., Nq, d), k, v: (..., Nk, d), d in (32, 64, 96, 128) (float32: 64, 128), same leading axes and dtype; GQA/MQA:
    q (..., H, Nq, d), k, v (..., Hkv, Nk, d), H a multiple of Hkv (fp16/bf16 only; head h reads kv
    head h // (H // Hkv), K/V never repeated). float16 uses
    tensor cores (fp32 accumulation), float32 CUDA cores; pass dtype="bfloat16" for uint16 arrays of
    bf16 bits. Causal is bottom-right aligned; a query row that sees no key gives 0.
    ``variant`` picks a tensor-core tile shape from ``VARIANTS`` (default: the fastest measured).
    Requires a CUDA GPU and CuPy.
    """
    import cupy as cp

    q, k, v = (cp.ascontiguousarray(cp.asarray(x)) for x in (q, k, v))
    kind = _kind_of(q, dtype)
    if k.dtype != q.dtype or v.dtype != q.dtype:
        raise TypeError(f"q, k, v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    gqa = q.ndim >= 3 and k.ndim == q.ndim and q.shape[:-3] == k.shape[:-3] and k.shape[-3] > 0 \
        and q.shape[-3] != k.shape[-3] and q.shape[-3] % k.shape[-3] == 0     # GQA/MQA: fewer kv heads
    if q.ndim < 2 or k.shape != v.shape or (q.shape[:-2] != k.shape[:-2] and not gqa) or q.shape[-1] != k.shape[-1]:
        raise ValueError(f"expected q (..., Nq, d), k and v (..., Nk, d) with shared leading axes and d "
                         f"(or q (..., H, Nq, d), k, v (..., Hkv, Nk, d) with H a multiple of Hkv), "
                         f"got q {q.shape}, k {k.shape}, v {v.shape}")
    d = q.shape[-1]
    dims = HEAD_DIMS if kind == "f32" else MMA_HEAD_DIMS
    if d not in dims:
        raise ValueError(f"q's head dim d must be one of {dims} for {q.dtype} inputs, got shape {q.shape}")
    nq, nk = q.shape[-2], k.shape[-2]
    BH = int(math.prod(q.shape[:-2]))
    group = q.shape[-3] // k.shape[-3] if gqa else 1
    out = cp.empty_like(q)
    lse = cp.full(q.shape[:-1], -cp.inf, cp.float32)
    if BH == 0 or nq == 0 or nk == 0:           # no keys: every row gives 0, lse = -inf
        out.fill(0)
    else:
        launch(q.reshape(BH, nq, d), k.reshape(BH // group, nk, d), v.reshape(BH // group, nk, d),
               out.reshape(BH, nq, d), kind, lse.reshape(BH, nq), is_causal=is_causal, scale=scale,
               variant=variant, group=group)
    return (out, lse) if return_lse else out
