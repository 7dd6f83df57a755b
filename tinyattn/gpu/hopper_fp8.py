"""Step D of issue 14: FP8 (e4m3) FlashAttention forward on Hopper (d = 128), kernels in
flash_wgmma_fp8.cuh (built with flash_wgmma.cu by :mod:`tinyattn.gpu.hopper`).

Scaling (per block): Q gets one scale per 128-row block (= one thread block of the attention kernel),
K and V one per head; x ~ scale * e4m3(x / scale) with scale = amax / 448 (e4m3's largest value).
V is stored transposed (V^T, keys along the row, key slots permuted) because 8-bit wgmma reads both
operands K-major. P in [0, 1] travels as e4m3(256 P). fp32 accumulation throughout.
Quantisers: ``fp8_quant.cu`` (fused: one amax pass over K and V, 16-byte loads/stores, V^T through shared
memory; the default) or the first version in flash_wgmma_fp8.cuh; both write the same bytes (checked on the
H200, benchmarks/NOTES.md session 20). Outliers: see :mod:`tinyattn.gpu.fp8_rotation` (incoherent processing).
"""
from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Any

from .hopper import LOG2E, CU_TENSOR_MAP, _module, encode_tensor_map

E4M3_MAX = 448.0
SMEM = 5 * 128 * 128 + 2048        # Q + 2 K + 2 V^T tiles (16 KB each) + alignment slack and mbarriers


@lru_cache(maxsize=None)
def _fused_module():
    import cupy as cp

    return cp.RawModule(code=(Path(__file__).resolve().parent / "fp8_quant.cu").read_text(), options=("-std=c++17",))


def quantize(q, k, v, fused: bool = True):
    """fp16 CuPy q (BH, Nq, 128), k, v (BH, Nk, 128) -> dict of fp8 (uint8) tensors and fp32 scales:
    q8 (BH, Nq, 128), q_scale (BH, ceil(Nq/128)); k8 (BH, Nk, 128), k_scale (BH,);
    vt8 (BH, 128, Npad) (V^T, key slots permuted, Npad = Nk rounded up to 16), v_scale (BH,).
    fused=True: fp8_quant.cu (one amax pass over K and V, vectorised, V^T through shared memory);
    fused=False: the first version (CuPy amax reductions, byte-wise V^T store). Same bytes either way."""
    import cupy as cp
    import numpy as np

    if fused:
        return _quantize_fused(q, k, v)
    quant = _module().get_function("fp8_quant_f16")
    BH, nq, d = q.shape
    nk = k.shape[1]
    npad = -(-nk // 16) * 16
    nbq = -(-nq // 128)

    def head_scale(x):
        amax = cp.abs(x).reshape(BH, -1).max(axis=1).astype(cp.float32)
        return cp.where(amax > 0, amax / E4M3_MAX, 1.0).astype(cp.float32)

    out = {"q8": cp.empty((BH, nq, 128), cp.uint8), "q_scale": cp.empty((BH, nbq), cp.float32),
           "k8": cp.empty((BH, nk, 128), cp.uint8), "k_scale": head_scale(k),
           "vt8": cp.zeros((BH, 128, npad), cp.uint8), "v_scale": head_scale(v)}
    dummy = cp.empty(1, cp.float32)
    quant((nbq, BH, 1), (256, 1, 1), (q, out["q8"], out["q_scale"], dummy, np.int32(nq), np.int32(0), np.int32(0)))
    quant((-(-nk // 128), BH, 1), (256, 1, 1), (k, out["k8"], dummy, out["k_scale"], np.int32(nk), np.int32(0), np.int32(2)))
    quant((-(-nk // 128), BH, 1), (256, 1, 1), (v, out["vt8"], dummy, out["v_scale"], np.int32(nk), np.int32(npad), np.int32(1)))
    return out


def _quantize_fused(q, k, v):
    import cupy as cp
    import numpy as np

    mod = _fused_module()
    BH, nq, _ = q.shape
    nk = k.shape[1]
    npad, nbq, nbk = -(-nk // 16) * 16, -(-nq // 128), -(-nk // 128)
    out = {"q8": cp.empty((BH, nq, 128), cp.uint8), "q_scale": cp.empty((BH, nbq), cp.float32),
           "k8": cp.empty((BH, nk, 128), cp.uint8), "k_scale": cp.empty(BH, cp.float32),
           "vt8": cp.empty((BH, 128, npad), cp.uint8), "v_scale": cp.empty(BH, cp.float32)}
    amax = cp.zeros((2, BH), cp.uint32)                              # float bits of amax(K), amax(V) per head
    mod.get_function("fp8_amax_kv")((nbk, BH, 2), (256, 1, 1), (k, v, amax, np.int32(nk)))
    mod.get_function("fp8_quant_q")((nbq, BH, 1), (256, 1, 1), (q, out["q8"], out["q_scale"], np.int32(nq)))
    mod.get_function("fp8_quant_k")((nbk, BH, 1), (256, 1, 1), (k, out["k8"], amax[0], out["k_scale"], np.int32(nk)))
    mod.get_function("fp8_quant_vt")((nbk, BH, 1), (256, 1, 1),
                                     (v, out["vt8"], amax[1], out["v_scale"], np.int32(nk), np.int32(npad)))
    return out


def launch(qz: dict, out, lse, *, is_causal: bool = False, scale: float | None = None):
    """Attention kernel on quantize()'s output; out (BH, Nq, 128) fp16, lse (BH, Nq) float32."""
    import cupy as cp
    import numpy as np

    BH, nq, _ = qz["q8"].shape
    nk, npad = qz["k8"].shape[1], qz["vt8"].shape[2]
    key = "_tmaps"
    if key not in qz:
        u8 = CU_TENSOR_MAP["u8"]
        blob = (encode_tensor_map(qz["q8"].data.ptr, (128, nq, BH), (128, 128, 1), u8, 1)
                + encode_tensor_map(qz["k8"].data.ptr, (128, nk, BH), (128, 128, 1), u8, 1)
                + encode_tensor_map(qz["vt8"].data.ptr, (npad, 128, BH), (128, 128, 1), u8, 1))
        qz[key] = cp.asarray(np.frombuffer(blob, np.uint8))
    kern = _module().get_function("flash_wg_fp8_d128")
    kern.max_dynamic_shared_size_bytes = SMEM
    sc = (1.0 / math.sqrt(128)) if scale is None else float(scale)
    kern((-(-nq // 128), BH, 1), (384, 1, 1),
         (qz[key], qz["q_scale"], qz["k_scale"], qz["v_scale"], out, lse, np.int32(nq), np.int32(nk),
          np.float32(sc * LOG2E), np.int32(bool(is_causal))), shared_mem=SMEM)
    return lse


def flash_forward_fp8(q: Any, k: Any, v: Any, causal: bool = False, return_lse: bool = False, *,
                      scale: float | None = None):
    """FP8 attention: q (..., Nq, 128), k, v (..., Nk, 128) float16 CuPy arrays, quantised to e4m3 here;
    returns float16 out like q (and lse (..., Nq) float32 with return_lse). Causal is bottom-right
    aligned. Requires an sm_90 GPU, CuPy and nvcc."""
    import cupy as cp
    import numpy as np

    q, k, v = (cp.ascontiguousarray(cp.asarray(x)) for x in (q, k, v))
    if q.dtype != np.float16 or k.dtype != np.float16 or v.dtype != np.float16:
        raise TypeError(f"q, k, v must be float16 (quantised to e4m3 inside), got {q.dtype}, {k.dtype}, {v.dtype}")
    if q.ndim < 2 or k.shape != v.shape or q.shape[:-2] != k.shape[:-2] or q.shape[-1] != k.shape[-1]:
        raise ValueError(f"expected q (..., Nq, d), k and v (..., Nk, d) with shared leading axes and d, "
                         f"got q {q.shape}, k {k.shape}, v {v.shape}")
    if q.shape[-1] != 128:
        raise ValueError(f"the FP8 kernel supports head dim d = 128 only, got shape {q.shape}")
    nq, nk = q.shape[-2], k.shape[-2]
    BH = int(math.prod(q.shape[:-2]))
    out = cp.empty_like(q)
    lse = cp.full(q.shape[:-1], -cp.inf, cp.float32)
    if BH == 0 or nq == 0 or nk == 0:
        out.fill(0)
    else:
        qz = quantize(q.reshape(BH, nq, 128), k.reshape(BH, nk, 128), v.reshape(BH, nk, 128))
        launch(qz, out.reshape(BH, nq, 128), lse.reshape(BH, nq), is_causal=causal, scale=scale)
    return (out, lse) if return_lse else out
