"""FlashAttention forward for Hopper GPUs (sm_90a: H100, H200) through CuPy (issue 14, chapter 07 §9).

The CUDA C is ``flash_wgmma.cu`` (helpers ``ptx_utils.cuh``, ``hopper_ptx.cuh``). wgmma and setmaxnreg
exist only for the ``sm_90a`` target, so the source is built with ``nvcc -gencode=arch=compute_90a,
code=sm_90a -cubin`` (nvcc must be on PATH or in $CUDA_HOME/bin) and the cubin loaded by
``cupy.RawModule(path=...)``; cubins are cached under $TINYATTN_CUBIN_DIR (default: a temp dir) by hash.

Variants (``VARIANTS``, name -> (step, warpgroups, keys per tile, stages)), one per optimisation step
that benchmarks/NOTES.md ("Issue 14: Hopper") measured:
- step "a": every thread loads K/V with cp.async; each consumer warpgroup runs wgmma for S = Q K^T and
  O += P V; synchronous within the warpgroup.
- step "b": TMA + mbarrier pipeline, one producer warpgroup (setmaxnreg), two consumer warpgroups.
"""
from __future__ import annotations

import hashlib
import math
import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
HEAD_DIMS = (64, 128)
LOG2E = 1.4426950408889634
NVCC_FLAGS = ("-std=c++17", "-gencode=arch=compute_90a,code=sm_90a", "-cubin")

# name -> (step, consumer warpgroups NWG, keys per tile BK, K/V stages, head dims compiled);
# 64 * NWG query rows per block. Steps: a = cp.async + wgmma; b = TMA producer warpgroup + mbarriers +
# setmaxnreg; bo = b + softmax overlapped with the next Q K^T inside a warpgroup; bop = bo + ping-pong
# of the two consumer warpgroups (named barriers). flash_wgmma.cu instantiates exactly these.
VARIANTS = {
    "a_w1k128": ("a", 1, 128, 2, (64, 128)), "a_w2k128": ("a", 2, 128, 2, (64, 128)),
    "b_w2k128": ("b", 2, 128, 2, (64, 128)), "bo_w2k128": ("bo", 2, 128, 2, (64, 128)),
    "bop_w2k128": ("bop", 2, 128, 2, (64, 128)), "bop_w2k64": ("bop", 2, 64, 2, (128,)),
    "bop_w2k128s3": ("bop", 2, 128, 3, (64,)),
    "b_w3k128": ("b", 3, 128, 2, (64,)),
}
DEFAULT_VARIANT = {64: "b_w3k128", 128: "bo_w2k128"}   # fastest measured (NOTES.md, call 3)


def cuda_source() -> str:
    """flash_wgmma.cu with its headers inlined (one self-contained translation unit)."""
    from .cupy_flash import cuda_source as inline_headers   # pure Python: no CuPy import

    return inline_headers("flash_wgmma.cu")


def find_nvcc() -> str | None:
    """Path of nvcc (PATH, then $CUDA_HOME/bin, then /usr/local/cuda/bin), or None."""
    cands = [shutil.which("nvcc"), os.path.join(os.environ.get("CUDA_HOME", "/usr/local/cuda"), "bin", "nvcc"),
             "/usr/local/cuda/bin/nvcc"]
    return next((c for c in cands if c and os.path.exists(c)), None)


@lru_cache(maxsize=None)
def build_cubin() -> Path:
    """Compile flash_wgmma.cu for sm_90a once (cached by source hash); returns the cubin path."""
    nvcc = find_nvcc()
    if nvcc is None:
        raise RuntimeError("the Hopper kernels need nvcc (CUDA 12.3+) on PATH or in $CUDA_HOME/bin to build for sm_90a")
    src = cuda_source()
    key = hashlib.sha256((src + " ".join(NVCC_FLAGS)).encode()).hexdigest()[:16]
    out_dir = Path(os.environ.get("TINYATTN_CUBIN_DIR", Path(tempfile.gettempdir()) / "tinyattn_cubin"))
    out_dir.mkdir(parents=True, exist_ok=True)
    cubin = out_dir / f"flash_wgmma_{key}.cubin"
    if not cubin.exists():
        cu = out_dir / f"flash_wgmma_{key}.cu"
        cu.write_text(src)
        proc = subprocess.run([nvcc, *NVCC_FLAGS, "-o", str(cubin), str(cu)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"nvcc failed on flash_wgmma.cu:\n{proc.stderr[-3000:]}")
    return cubin


@lru_cache(maxsize=None)
def _module():
    import cupy as cp

    return cp.RawModule(path=str(build_cubin()))


@lru_cache(maxsize=None)
def get_kernel(kind: str, d: int, variant: str | None = None):
    """(kernel, block, query rows per block, dynamic shared bytes) for kind 'f16'/'bf16', d in (64, 128)."""
    if d not in HEAD_DIMS:
        raise ValueError(f"head dim d must be one of {HEAD_DIMS}, got {d}")
    if kind not in ("f16", "bf16"):
        raise ValueError(f"kind must be 'f16' or 'bf16', got {kind!r}")
    variant = variant or DEFAULT_VARIANT[d]
    if variant not in VARIANTS or d not in VARIANTS[variant][4]:
        raise ValueError(f"variant must be one of {sorted(v for v, t in VARIANTS.items() if d in t[4])} "
                         f"for d={d}, got {variant!r}")
    step, nwg, bk, stages, _dims = VARIANTS[variant]
    rows = 64 * nwg
    smem = 2 * (rows + 2 * stages * bk) * d + 1024          # Q tile + K/V stages + 1024-byte alignment slack
    threads = 128 * nwg
    name = f"flash_wg_{step}_{kind}_d{d}_w{nwg}k{bk}s{stages}"
    if step != "a":
        smem += 1024                                       # mbarriers
        threads += 128                                     # the producer warpgroup
    kern = _module().get_function(name)
    kern.max_dynamic_shared_size_bytes = smem
    return kern, (threads, 1, 1), rows, smem


def launch(q, k, v, out, kind: str, lse=None, *, is_causal: bool = False, scale: float | None = None,
           variant: str | None = None):
    """Launch on CuPy arrays in place: q, out (BH, Nq, d); k, v (BH, Nk, d) contiguous, 16-bit
    ('f16': float16, 'bf16': uint16 holding bf16 bits); lse (BH, Nq) float32 (allocated when None).
    Asynchronous (stream order). Returns lse."""
    import cupy as cp
    import numpy as np

    BH, nq, d = q.shape
    nk = k.shape[1]
    kern, block, rows, smem = get_kernel(kind, d, variant)
    sc = (1.0 / math.sqrt(d)) if scale is None else float(scale)
    if lse is None:
        lse = cp.empty((BH, nq), cp.float32)
    grid = ((nq + rows - 1) // rows, BH, 1)
    tail = (out, lse, np.int32(nq), np.int32(nk), np.float32(sc * LOG2E), np.int32(bool(is_causal)))
    if VARIANTS[variant or DEFAULT_VARIANT[d]][0] == "a":
        kern(grid, block, (q, k, v) + tail, shared_mem=smem)
    else:
        bk = VARIANTS[variant or DEFAULT_VARIANT[d]][2]
        kern(grid, block, (tensor_maps(q, k, v, kind, rows, bk),) + tail, shared_mem=smem)
    return lse


# ---------------------------------------------------------------- TMA tensor maps (host side)
_TMAPS: dict = {}
CU_TENSOR_MAP = {"f16": 6, "bf16": 9, "u8": 0}   # CUtensorMapDataType FLOAT16, BFLOAT16, UINT8
SWIZZLE_128B, L2_PROMOTION_128B = 3, 2


def encode_tensor_map(ptr: int, dims: tuple, box: tuple, dtype_code: int, esize: int) -> bytes:
    """The 128-byte CUtensorMap (cuTensorMapEncodeTiled, driver API through ctypes) of a contiguous
    3-D tensor at device address ptr: dims and box innermost first (the box's inner extent must be
    128 bytes), 128-byte swizzle (the layout the wgmma descriptors expect), zeros outside the tensor."""
    import ctypes

    lib = ctypes.CDLL("libcuda.so.1")
    f = lib.cuTensorMapEncodeTiled
    f.restype = ctypes.c_int
    u32p, u64p = ctypes.POINTER(ctypes.c_uint32), ctypes.POINTER(ctypes.c_uint64)
    f.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32, ctypes.c_void_p, u64p, u64p, u32p, u32p,
                  ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int]
    raw = (ctypes.c_uint8 * 256)()
    addr = (ctypes.addressof(raw) + 63) & ~63     # CUtensorMap is 64-byte aligned
    gdims = (ctypes.c_uint64 * 3)(*dims)
    strides = (ctypes.c_uint64 * 2)(dims[0] * esize, dims[0] * dims[1] * esize)   # bytes, dims 1 and 2
    gbox = (ctypes.c_uint32 * 3)(*box)
    elem = (ctypes.c_uint32 * 3)(1, 1, 1)
    rc = f(addr, dtype_code, 3, ptr, gdims, strides, gbox, elem, 0, SWIZZLE_128B, L2_PROMOTION_128B, 0)
    if rc != 0:
        raise RuntimeError(f"cuTensorMapEncodeTiled failed with CUresult {rc} for dims {dims}, box {box}")
    return ctypes.string_at(addr, 128)


def _map16(x, box_rows: int, kind: str) -> bytes:
    """Tensor map of a (BH, N, D) 16-bit array: box = one 64-column panel x box_rows rows."""
    BH, n, d = x.shape
    return encode_tensor_map(x.data.ptr, (d, n, BH), (64, box_rows, 1), CU_TENSOR_MAP[kind], 2)


def tensor_maps(q, k, v, kind: str, rows: int, bk: int):
    """Device array of the Q, K, V tensor maps (3 x 128 bytes), cached by pointers and shapes."""
    import cupy as cp
    import numpy as np

    key = (q.data.ptr, k.data.ptr, v.data.ptr, q.shape, k.shape, kind, rows, bk)
    hit = _TMAPS.get(key)
    if hit is None:
        blob = _map16(q, rows, kind) + _map16(k, bk, kind) + _map16(v, bk, kind)
        hit = cp.asarray(np.frombuffer(blob, np.uint8))
        if len(_TMAPS) > 64:
            _TMAPS.clear()
        _TMAPS[key] = hit
    return hit


def flash_forward_wgmma(q: Any, k: Any, v: Any, causal: bool = False, return_lse: bool = False, *,
                        scale: float | None = None, dtype: str | None = None, variant: str | None = None):
    """softmax(q k^T * scale [+ causal]) v on a Hopper GPU with wgmma; CuPy array shaped/typed like q.

    q: (..., Nq, d), k, v: (..., Nk, d) float16 (or uint16 bf16 bit patterns with dtype="bfloat16"),
    d in (64, 128), same leading axes. fp32 accumulation. Causal is bottom-right aligned (query i sees
    key j <= i + Nk - Nq); a row that sees no key gives 0. ``return_lse=True`` returns (out, lse) with
    lse (..., Nq) float32 natural log-sum-exp (-inf for a row with no key).
    Requires an sm_90 GPU (H100/H200), CuPy and nvcc.
    """
    import cupy as cp
    import numpy as np

    q, k, v = (cp.ascontiguousarray(cp.asarray(x)) for x in (q, k, v))
    if dtype == "bfloat16":
        if q.dtype != np.uint16:
            raise TypeError(f"dtype='bfloat16' expects uint16 arrays of bf16 bit patterns, got q {q.dtype}")
        kind = "bf16"
    elif dtype is None and q.dtype == np.float16:
        kind = "f16"
    else:
        raise TypeError(f"q must be float16 (or uint16 with dtype='bfloat16'), got {q.dtype} (dtype={dtype!r})")
    if k.dtype != q.dtype or v.dtype != q.dtype:
        raise TypeError(f"q, k, v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if q.ndim < 2 or k.shape != v.shape or q.shape[:-2] != k.shape[:-2] or q.shape[-1] != k.shape[-1]:
        raise ValueError(f"expected q (..., Nq, d), k and v (..., Nk, d) with shared leading axes and d, "
                         f"got q {q.shape}, k {k.shape}, v {v.shape}")
    d = q.shape[-1]
    if d not in HEAD_DIMS:
        raise ValueError(f"q's head dim d must be one of {HEAD_DIMS}, got shape {q.shape}")
    nq, nk = q.shape[-2], k.shape[-2]
    BH = int(math.prod(q.shape[:-2]))
    out = cp.empty_like(q)
    lse = cp.full(q.shape[:-1], -cp.inf, cp.float32)
    if BH == 0 or nq == 0 or nk == 0:
        out.fill(0)
    else:
        launch(q.reshape(BH, nq, d), k.reshape(BH, nk, d), v.reshape(BH, nk, d), out.reshape(BH, nq, d),
               kind, lse.reshape(BH, nq), is_causal=causal, scale=scale, variant=variant)
    return (out, lse) if return_lse else out
