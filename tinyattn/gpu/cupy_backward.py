"""FlashAttention-2 backward on tensor cores through CuPy (chapter 07, section 8).

The CUDA C is ``flash_mma_bwd.cu`` (mma.sync m16n8k16, fp16/bf16 inputs, fp32 accumulation). Three
launches: the delta = rowsum(dO * O) pre-pass, the K/V-outer dK/dV kernel, and dQ either

- ``dq_mode="atomic"``: inside the dK/dV kernel, fp32 ``red.global.add`` into a (BH, Nq, d) fp32
  accumulator, then a convert kernel (scale, round to fp16/bf16); or
- ``dq_mode="separate"``: a Q-outer kernel that recomputes S and dP per key tile (no atomics).

Two dK/dV layouts (``bwd_dkdv_reg.cuh``, ``bwd_dkdv_smem.cuh``): "reg" keeps P^T and dS^T in the registers
of the warp that accumulates dK/dV (16 or 32 keys x d per warp); "smem" is FlashAttention-2's layout, P^T
and dS^T through shared memory, so a warp accumulates 32 keys x d/2 (8 warps, 128 keys per block). "fast" /
"fastf" (``bwd_dkdv_fast.cuh``, the defaults at d = 64 / 128): the "reg" math with precomputed 32-bit
shared-memory addresses, "fastf" also with the fp32 dQ accumulator in mma-fragment order (red.v4 atomics).
"fastfg" (sweep only, Session 21): "fastf" whose GQA group can be split over blocks like "smem" (``gqa_split``).

GQA/MQA: k, v have Hkv heads, q has H = group * Hkv; query head h reads kv head h // group, and the
dK/dV kernel of a kv head loops over the group's query heads (dK, dV summed in registers).
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

from .cupy_flash import LOG2E, _kind_of, cuda_source

HEAD_DIMS = (32, 64, 96, 128)
PAD = 128            # rows of lse2 / delta / the dQ accumulator are padded to a multiple of this
# dK/dV kernel variants: name -> (warps, 16-key m-tiles per warp, queries per tile BQ, K/V fragments in
# registers, layout); keys per block = 16 * warps * m-tiles ("smem" layout: 8 warps, 128 keys, written
# as m-tiles = 1). benchmarks/NOTES.md records each one's speed.
DKDV_VARIANTS = {
    32: {"w4m1q64r": (4, 1, 64, True, "reg")},
    64: {"w4m1q64r": (4, 1, 64, True, "reg"), "w8m1q64r": (8, 1, 64, True, "reg"), "w4m2q32": (4, 2, 32, False, "reg"),
         "w8m2q32": (8, 2, 32, False, "reg"), "w8q64p": (8, 1, 64, False, "smem"),
         "w8q128p": (8, 1, 128, False, "smem")},
    96: {"w4m1q32": (4, 1, 32, False, "reg")},
    128: {"w4m1q32": (4, 1, 32, False, "reg"), "w8m1q32": (8, 1, 32, False, "reg"),
          "w8m1q64": (8, 1, 64, False, "reg"), "w4m1q64": (4, 1, 64, False, "reg"),
          "w8q64p": (8, 1, 64, False, "smem")},
}
# Session 20 (bwd2): the register layout with precomputed 32-bit shared addresses ("fast", bwd_dkdv_fast.cuh,
# names ...x) and, "fastf" (...xf), with the fp32 dQ accumulator in mma-fragment order (red.v4 atomics)
DKDV_VARIANTS[64].update({"w4m2q32x": (4, 2, 32, False, "fast"), "w4m2q32xf": (4, 2, 32, False, "fastf")})
DKDV_VARIANTS[128].update({"w8m1q64x": (8, 1, 64, False, "fast"), "w8m1q64xf": (8, 1, 64, False, "fastf")})
# Session 21 (gqa, sweep only): w8m1q64xf with the GQA group split over gridDim.z blocks; its fp32 dK/dV
# accumulators are in fragment order too (both rounded by the fragment-order convert kernel)
DKDV_VARIANTS[128]["w8m1q64xfg"] = (8, 1, 64, False, "fastfg")
SPLIT_LAYOUTS = ("smem", "fastfg")   # layouts whose group can be split over blocks (d = 128 only)
# separate dQ kernel variants: name -> (warps (16 queries each), keys per tile BK)
DQ_VARIANTS = {32: {"w4k64": (4, 64)}, 64: {"w4k64": (4, 64), "w8k64": (8, 64)}, 96: {"w4k32": (4, 32)},
               128: {"w4k32": (4, 32), "w4k64": (4, 64)}}
# fastest measured on the H200 (benchmarks/NOTES.md, run B2 and Session 20, final run S20-3); d = 32 / 96 not timed.
# d = 64 / 128 (run S20-3, fp16, N = 8192, full / causal): w4m2q32xf 330 / 314 TFLOP/s (w4m2q32: 213 / 203),
# w8m1q64xf 286 / 265 (w8m1q64: 210 / 197)
DEFAULT_DKDV = {32: "w4m1q64r", 64: "w4m2q32xf", 96: "w4m1q32", 128: "w8m1q64xf"}
# causal GQA at d = 128: the FA2-layout tiles, whose group can be split over blocks (auto_gqa_split):
# 187 TFLOP/s on GQA 8:1 against 141 for w8m1q64 (run S20-2)
DEFAULT_DKDV_GQA_CAUSAL = {128: "w8q64p"}
DEFAULT_DQ = {32: "w4k64", 64: "w4k64", 96: "w4k32", 128: "w4k64"}


@lru_cache(maxsize=None)
def _module(all_variants: bool):
    import cupy as cp

    opts = ("-std=c++17",) + (("-DTA_FLASH_ALL_VARIANTS",) if all_variants else ())
    return cp.RawModule(code=cuda_source("flash_mma_bwd.cu"), options=opts)


def _get(name: str, smem: int = 0, all_variants: bool = False):
    kern = _module(all_variants).get_function(name)
    if smem > 48 * 1024:
        kern.max_dynamic_shared_size_bytes = smem
    return kern


def dkdv_smem(d: int, bkv: int, bq: int, atomic: bool, layout: str = "reg") -> int:
    """Bytes: K, V tiles (bkv rows) + 2 stages of Q, dO (bq rows), fp16; dS^T (bkv x bq) if atomic, and
    P^T too in the "smem" layout (dS^T always); 2 stages of lse2, delta (fp32)."""
    ps = 2 if layout == "smem" else int(atomic)
    return 2 * (2 * bkv * d + 4 * bq * d + ps * bkv * bq) + 4 * 4 * bq


def default_variant(d: int, group: int, is_causal: bool) -> str:
    """The dK/dV tiles launched when ``variant`` is None (head dim d, group = H / Hkv query heads per kv head)."""
    if is_causal and group > 1 and d in DEFAULT_DKDV_GQA_CAUSAL:
        return DEFAULT_DKDV_GQA_CAUSAL[d]
    return DEFAULT_DKDV[d]


def auto_gqa_split(group: int, is_causal: bool, d: int, variant: str) -> int:
    """Blocks per GQA group: 4 (or 2) for causal GQA with an "smem" or "fastfg" variant at d = 128, else 1.
    Causal GQA 8:1, N = 8192, w8q64p: 140 -> 171 (2) -> 188 (4) TFLOP/s; non-causal unchanged (NOTES.md,
    Session 20); "fastfg" follows the same rule, not yet measured (NOTES.md, Session 21: gqa)."""
    if not is_causal or group == 1 or d != 128 or DKDV_VARIANTS[d][variant][4] not in SPLIT_LAYOUTS:
        return 1
    return 4 if group % 4 == 0 else 2 if group % 2 == 0 else 1


def launch_backward(q, k, v, o, do, lse, dq, dk, dv, kind: str, *, group: int = 1, is_causal: bool = False,
                    scale: float | None = None, dq_mode: str = "atomic", variant: str | None = None,
                    dq_variant: str | None = None, gqa_split: int | None = None):
    """Launch on contiguous CuPy arrays in place: q, o, do, dq (BH, Nq, d); k, v, dk, dv (BHkv, Nk, d)
    with BH = group * BHkv (query head b*H + h reads kv head (b*H + h) // group); lse (BH, Nq) float32.
    kind 'f16' or 'bf16' (uint16 bits). gqa_split > 1 (a divisor of group; "smem" / "fastfg" layouts at
    d = 128 only) splits each group's query heads over that many blocks, dK/dV summed by fp32 atomics; None:
    ``auto_gqa_split``. Asynchronous (stream order)."""
    import cupy as cp
    import numpy as np

    BH, nq, d = q.shape
    BHkv, nk = k.shape[0], k.shape[1]
    sc = (1.0 / math.sqrt(d)) if scale is None else float(scale)
    nq_pad = (nq + PAD - 1) // PAD * PAD
    lse2 = cp.empty((BH, nq_pad), cp.float32)
    delta = cp.empty((BH, nq_pad), cp.float32)
    threads = BH * nq_pad * 4                  # 4 threads per (padded) row
    _get(f"fa_bwd_pre_{kind}_d{d}")(((threads + 255) // 256,), (256,),
                                    (o, do, lse, delta, lse2, np.int32(nq), np.int32(nq_pad), np.int32(BH)))
    variant = variant or default_variant(d, group, is_causal)
    if variant not in DKDV_VARIANTS[d]:
        raise ValueError(f"variant must be one of {sorted(DKDV_VARIANTS[d])} for d={d}, got {variant!r}")
    nw, mt, bq, _, layout = DKDV_VARIANTS[d][variant]
    if gqa_split is None:
        gqa_split = auto_gqa_split(group, is_causal, d, variant)
    if gqa_split < 1 or group % gqa_split or (gqa_split > 1 and (layout not in SPLIT_LAYOUTS or d != 128)):
        raise ValueError(f"gqa_split must divide group={group} (and > 1 needs an 'smem' or 'fastfg' variant at d = 128), "
                         f"got {gqa_split} with {variant!r}, d={d}")
    bkv = 16 * nw * mt
    atomic = dq_mode == "atomic"
    if dq_mode not in ("atomic", "separate"):
        raise ValueError(f"dq_mode must be 'atomic' or 'separate', got {dq_mode!r}")
    dqacc = cp.zeros((BH, nq_pad, d), cp.float32) if atomic else cp.empty((1,), cp.float32)
    smem = dkdv_smem(d, bkv, bq, atomic, layout)
    split = "g" if gqa_split > 1 and layout == "smem" else ""     # "fastfg": one kernel (its name ends in g)
    kv_split = bool(split) or layout == "fastfg"                    # dK/dV summed in fp32 accumulators
    frag = layout in ("fastf", "fastfg")                            # fragment-order accumulators
    all_v = variant not in (DEFAULT_DKDV[d], DEFAULT_DKDV_GQA_CAUSAL.get(d))     # built only with the sweep
    kern = _get(f"fa_bwd_dkdv_{kind}_d{d}_{variant}{split}{'a' if atomic else 's'}", smem, all_v)
    args = (np.int32(nq), np.int32(nk), np.float32(sc * LOG2E), np.float32(sc), np.int32(bool(is_causal)),
            np.int32(group))
    nk_pad = (nk + PAD - 1) // PAD * PAD
    kv_acc = [cp.zeros((BHkv, nk_pad, d), cp.float32) for _ in range(2)] if kv_split else []
    extra = tuple(kv_acc) if kv_split else ((dqacc, dqacc) if layout == "smem" else ())   # unused when not split
    kern(((nk + bkv - 1) // bkv, BHkv, gqa_split), (32 * nw,), (q, k, v, do, lse2, delta, dk, dv, dqacc) + args + extra,
         shared_mem=smem)
    for acc, out in zip(kv_acc, (dk, dv)):     # dK (already scaled) and dV: fp32 sums -> fp16/bf16
        if frag:
            quads = BHkv * nk_pad * d // 4
            _get(f"fa_bwd_dq_convert_frag_{kind}_d{d}", 0, all_v)(((quads + 255) // 256,), (256,),
                                                                 (acc, out, np.int32(nk), np.int32(BHkv), np.float32(1.0)))
            continue
        pairs = BHkv * nk * d // 2
        _get(f"fa_bwd_dq_convert_{kind}_d{d}")(((pairs + 255) // 256,), (256,),
                                               (acc, out, np.int32(nk), np.int32(BHkv), np.float32(1.0)))
    if atomic and frag:                       # fragment-order accumulator: one thread per 4 floats
        quads = BH * nq_pad * d // 4
        _get(f"fa_bwd_dq_convert_frag_{kind}_d{d}", 0, all_v)(((quads + 255) // 256,), (256,),
                                                             (dqacc, dq, np.int32(nq), np.int32(BH), np.float32(sc)))
    elif atomic:
        pairs = BH * nq * d // 2
        _get(f"fa_bwd_dq_convert_{kind}_d{d}")(((pairs + 255) // 256,), (256,),
                                               (dqacc, dq, np.int32(nq), np.int32(BH), np.float32(sc)))
    else:
        dq_variant = dq_variant or DEFAULT_DQ[d]
        if dq_variant not in DQ_VARIANTS[d]:
            raise ValueError(f"dq_variant must be one of {sorted(DQ_VARIANTS[d])} for d={d}, got {dq_variant!r}")
        nwq, bk = DQ_VARIANTS[d][dq_variant]
        smem_q = 2 * (2 * 16 * nwq * d + 4 * bk * d)
        kq = _get(f"fa_bwd_dq_{kind}_d{d}_{dq_variant}", smem_q, dq_variant != DEFAULT_DQ[d])
        kq(((nq + 16 * nwq - 1) // (16 * nwq), BH), (32 * nwq,), (q, k, v, do, lse2, delta, dq) + args,
           shared_mem=smem_q)


def flash_backward_mma(q: Any, k: Any, v: Any, o: Any, do: Any, lse: Any, *, is_causal: bool = False,
                       scale: float | None = None, dtype: str | None = None, dq_mode: str = "atomic",
                       variant: str | None = None, dq_variant: str | None = None, gqa_split: int | None = None):
    """Gradients (dq, dk, dv) of out = softmax(q k^T * scale [+ causal]) v, as CuPy arrays.

    q, o, do: (..., H, Nq, d); k, v: (..., Hkv, Nk, d) with H a multiple of Hkv (GQA/MQA: query head h
    uses kv head h // (H // Hkv)); lse: (..., H, Nq) float32 from the forward (``return_lse=True``).
    float16, or uint16 bf16 bits with dtype="bfloat16"; d in (32, 64, 96, 128). Causal is bottom-right
    aligned. gqa_split: see ``launch_backward``. Requires a CUDA GPU and CuPy.
    """
    import cupy as cp

    q, k, v, o, do = (cp.ascontiguousarray(cp.asarray(x)) for x in (q, k, v, o, do))
    lse = cp.ascontiguousarray(cp.asarray(lse, dtype=cp.float32))
    kind = _kind_of(q, dtype)
    if kind == "f32":
        raise TypeError("flash_backward_mma needs float16 (or bf16 bits with dtype='bfloat16'), got float32")
    for name, x in (("k", k), ("v", v), ("o", o), ("do", do)):
        if x.dtype != q.dtype:
            raise TypeError(f"{name} must have q's dtype {q.dtype}, got {x.dtype}")
    if q.ndim < 3 or k.ndim != q.ndim or k.shape != v.shape or q.shape[:-3] != k.shape[:-3] \
            or q.shape[-1] != k.shape[-1] or o.shape != q.shape or do.shape != q.shape:
        raise ValueError(f"expected q, o, do (..., H, Nq, d) and k, v (..., Hkv, Nk, d), got q {q.shape}, "
                         f"k {k.shape}, v {v.shape}, o {o.shape}, do {do.shape}")
    if lse.shape != q.shape[:-1]:
        raise ValueError(f"lse must have shape {q.shape[:-1]} (q without d), got {lse.shape}")
    H, Hkv, d = q.shape[-3], k.shape[-3], q.shape[-1]
    if Hkv == 0 or H % Hkv:
        raise ValueError(f"q's heads H={H} must be a multiple of k's heads Hkv={Hkv}")
    if d not in HEAD_DIMS:
        raise ValueError(f"head dim d must be one of {HEAD_DIMS}, got shape {q.shape}")
    nq, nk = q.shape[-2], k.shape[-2]
    dq, dk, dv = cp.empty_like(q), cp.empty_like(k), cp.empty_like(v)
    BH, BHkv = math.prod(q.shape[:-2]), math.prod(k.shape[:-2])
    if BH == 0 or nq == 0 or nk == 0:        # nothing attends: every gradient is 0
        for x in (dq, dk, dv):
            x.fill(0)
        return dq, dk, dv
    launch_backward(q.reshape(BH, nq, d), k.reshape(BHkv, nk, d), v.reshape(BHkv, nk, d), o.reshape(BH, nq, d),
                    do.reshape(BH, nq, d), lse.reshape(BH, nq), dq.reshape(BH, nq, d), dk.reshape(BHkv, nk, d),
                    dv.reshape(BHkv, nk, d), kind, group=H // Hkv, is_causal=is_causal, scale=scale,
                    dq_mode=dq_mode, variant=variant, dq_variant=dq_variant, gqa_split=gqa_split)
    return dq, dk, dv
