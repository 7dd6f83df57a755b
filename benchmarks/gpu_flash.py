"""Chapter 07 GPU benchmark: check, then time, every attention forward on one GPU (an H200 here).

    python benchmarks/gpu_flash.py [--quick] [--out DIR]
    python benchmarks/gpu_flash.py --hopper [gpu_hopper.py's options]   (issue 14: wgmma/TMA kernels)

1. Checks every implementation first: relative error ||out - ref|| / ||ref|| against a float64
   reference (torch, upcast inputs) on fresh random inputs (seed recorded), ragged N, Nq != Nk,
   N = 8192, causal and not, outputs poisoned with NaN before each run (an unwritten element fails
   the check); relative and max-abs errors recorded.
2. Measures the two ceilings of the card (dense GEMM fp16/fp32/tf32, device-to-device copy).
3. Times each implementation with CUDA events after warm-up (median of repeated runs) at
   N = 1k..16k, d = 64, 128, causal and not, B*N = 16k tokens, H = 2048 / d heads.
   FLOPs of the forward = 4 B H N^2 d (halved for causal). The output of every timed run is checked
   too (NaN-poisoned first, heads 0-1 of batch 0 against float64: `check_rel_err`, `check_max_abs`).
4. The naive baseline's three kernels (cuBLAS tensor-core QK^T, row softmax, PV) timed one by one
   (`naive_split`), and the roofline with FlashAttention-2's K/V re-reads per query block (`roofline`).
Writes {"results": [{impl, dtype, B, H, N, d, causal, ms, tflops}, ...], "checks": [...], metadata}
to OUT/gpu_flash_h200.json (OUT = $OUT or benchmarks/results) and prints a short table last.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path

import warnings

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _gpu_path import ROOT  # noqa: E402  (repo root on sys.path, tinyattn.gpu importable)

import cupy as cp  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as TF  # noqa: E402
from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402

from tinyattn.gpu import cupy_flash, numba_flash  # noqa: E402
from tinyattn.gpu.naive import naive_attention_gpu  # noqa: E402

DEV = "cuda"
warnings.filterwarnings("ignore", message=".*Grid size.*")   # tiny check launches under-fill the GPU: expected
TORCH_DT = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
SDPA = {"torch_sdpa_flash": SDPBackend.FLASH_ATTENTION, "torch_sdpa_cudnn": SDPBackend.CUDNN_ATTENTION,
        "torch_sdpa_efficient": SDPBackend.EFFICIENT_ATTENTION, "torch_sdpa_math": SDPBackend.MATH}


def log(*a):
    print(*a, flush=True)


# ----------------------------------------------------------------------------- implementations
def as_cupy(t: torch.Tensor):
    if t.dtype == torch.bfloat16:      # bf16 bits travel as uint16
        return cp.from_dlpack(t.view(torch.int16)).view(cp.uint16)
    return cp.from_dlpack(t)


def make_fn(impl: str, dtype: str, q, k, v, causal: bool, variant: str | None = None):
    """Return (run, out) where run() launches once writing into out; q, k, v: (B, H, N, d) torch."""
    B, H, nq, d = q.shape
    nk = k.shape[2]
    q3, k3, v3 = (x.reshape(B * H, x.shape[2], d) for x in (q, k, v))
    if impl == "numba_fp32":
        from numba import cuda
        o = torch.empty_like(q3)
        lse = torch.empty(q3.shape[:2], device=q3.device, dtype=torch.float32)
        nq3, nk3, nv3, no3, nl = (cuda.as_cuda_array(x) for x in (q3, k3, v3, o, lse))
        return (lambda: numba_flash.launch(nq3, nk3, nv3, no3, nl, is_causal=causal)), o
    if impl.startswith("cupy_"):
        kind = {"float32": "f32", "float16": "f16", "bfloat16": "bf16"}[dtype]
        o = torch.empty_like(q3)
        cq, ck_, cv, co = (as_cupy(x) for x in (q3, k3, v3, o))
        cl = cp.empty(q3.shape[:2], cp.float32)
        return (lambda: cupy_flash.launch(cq, ck_, cv, co, kind, cl, is_causal=causal, variant=variant)), o
    if impl.startswith("naive_gpu"):
        cq, ck_, cv = (as_cupy(x) for x in (q, k, v))
        box = {}

        def run():
            box["o"] = naive_attention_gpu(cq, ck_, cv, is_causal=causal)
        return run, box
    if impl in SDPA:
        backend = SDPA[impl]
        box = {}

        def run():
            with sdpa_kernel(backend):
                box["o"] = TF.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return run, box
    raise ValueError(impl)


def output_of(out, like: torch.Tensor) -> torch.Tensor:
    if isinstance(out, dict):
        o = out["o"]
        o = torch.from_dlpack(o) if not isinstance(o, torch.Tensor) else o
        return o.reshape(like.shape)
    return out.reshape(like.shape)


IMPLS = [  # (impl, dtype)
    ("numba_fp32", "float32"), ("cupy_fp32", "float32"), ("cupy_fp16_mma", "float16"),
    ("cupy_bf16_mma", "bfloat16"), ("naive_gpu_fp16", "float16"), ("naive_gpu_fp32", "float32"),
    ("torch_sdpa_flash", "float16"), ("torch_sdpa_cudnn", "float16"), ("torch_sdpa_efficient", "float16"),
    ("torch_sdpa_math", "float16"), ("torch_sdpa_efficient", "float32"), ("torch_sdpa_math", "float32"),
]
TOL = {"float32": 1e-4, "float16": 5e-3, "bfloat16": 3e-2}


# ----------------------------------------------------------------------------- checks
def reference(q, k, v, causal: bool) -> torch.Tensor:
    """Dense float64 attention, causal bottom-right aligned, rows with no key -> 0."""
    q, k, v = (x.double() for x in (q, k, v))
    s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    nq, nk = s.shape[-2:]
    if causal:
        allowed = torch.arange(nk, device=s.device)[None, :] <= torch.arange(nq, device=s.device)[:, None] + (nk - nq)
        s = s.masked_fill(~allowed, float("-inf"))
    m = s.amax(-1, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    p = torch.exp(s - m)
    l_ = p.sum(-1, keepdim=True)
    return torch.where(l_ > 0, (p @ v) / torch.where(l_ > 0, l_, torch.ones_like(l_)), torch.zeros_like(l_))


def run_checks(impls, gen, dims=(64, 128), variant=None, quiet=False) -> list[dict]:
    # (B, H, Nq, Nk): ragged, Nq != Nk, and the timed length N = 8192 (review: checks stopped at 1000)
    cases = [(2, 3, 1000, 1000), (1, 2, 257, 257), (1, 2, 300, 1000), (1, 4, 8192, 8192)]
    rows = []
    for impl, dtype in impls:
        for d in dims:
            for causal in (False, True):
                for (B, H, nq, nk) in cases:
                    if nq != nk and impl.startswith("torch_sdpa"):
                        continue            # torch's causal is top-left aligned when Nq != Nk
                    rec = {"impl": impl, "dtype": dtype, "B": B, "H": H, "Nq": nq, "Nk": nk, "d": d, "causal": causal}
                    try:
                        q = torch.randn(B, H, nq, d, device=DEV, generator=gen).to(TORCH_DT[dtype])
                        k = torch.randn(B, H, nk, d, device=DEV, generator=gen).to(TORCH_DT[dtype])
                        v = torch.randn(B, H, nk, d, device=DEV, generator=gen).to(TORCH_DT[dtype])
                        run, out = make_fn(impl, dtype, q, k, v, causal, variant)
                        if isinstance(out, torch.Tensor):
                            out.fill_(float("nan"))          # poison: an unwritten element fails
                        run()
                        torch.cuda.synchronize()
                        o = output_of(out, q).double()
                        ref = reference(q, k, v, causal)
                        err = (torch.linalg.norm(o - ref) / torch.linalg.norm(ref)).item()
                        max_abs = (o - ref).abs().max().item()
                        rec.update(rel_err=err, max_abs=max_abs, ok=bool(err < TOL[dtype]) and not math.isnan(err))
                    except Exception as e:  # noqa: BLE001 - record and go on
                        rec.update(rel_err=None, ok=False, error=f"{type(e).__name__}: {e}"[:300])
                    if variant:
                        rec["variant"] = variant
                    rows.append(rec)
        if quiet:
            continue
        bad = [r for r in rows if r["impl"] == impl and r["dtype"] == dtype and not r["ok"]]
        worst = max((r["rel_err"] or 0) for r in rows if r["impl"] == impl and r["dtype"] == dtype)
        log(f"check {impl:22s} {dtype:9s} worst rel err {worst:.2e}  {'OK' if not bad else 'FAIL ' + str(bad[0])}")
    return rows


# ----------------------------------------------------------------------------- timing
def event_ms(run, n: int = 1) -> float:
    """Milliseconds between two CUDA events around n back-to-back calls of run (after the last one lands)."""
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(n):
        run()
    b.record()
    b.synchronize()
    return a.elapsed_time(b)


def time_ms(run, target_s: float = 0.25, max_reps: int = 50) -> tuple[float, list[float]]:
    run()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    run()
    torch.cuda.synchronize()
    once = time.perf_counter() - t0
    reps = int(min(max_reps, max(3, target_s / max(once, 1e-6))))
    times = []
    for _ in range(reps):
        times.append(event_ms(run))
    return statistics.median(times), times


def ceilings() -> dict:
    out = {}
    n = 8192
    for name, dt, tf32 in (("gemm_fp16", torch.float16, False), ("gemm_bf16", torch.bfloat16, False),
                           ("gemm_tf32", torch.float32, True), ("gemm_fp32", torch.float32, False)):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        a = torch.randn(n, n, device=DEV, dtype=dt)
        b = torch.randn(n, n, device=DEV, dtype=dt)
        ms, _ = time_ms(lambda: a @ b, target_s=0.3)
        out[name + "_tflops"] = 2 * n ** 3 / ms / 1e9
    torch.backends.cuda.matmul.allow_tf32 = False
    x = torch.randn(1 << 30, device=DEV, dtype=torch.float32)   # 4 GiB
    y = torch.empty_like(x)
    ms, _ = time_ms(lambda: y.copy_(x), target_s=0.3)
    out["copy_TBps"] = 2 * x.numel() * 4 / ms / 1e9
    del x, y
    return out


def kernel_resources() -> dict:
    res = {}
    for kind in ("f32", "f16", "bf16"):
        for d in (64, 128):
            kern, _, _, smem = cupy_flash.get_kernel(kind, d)
            a = kern.attributes
            res[f"cupy_{kind}_d{d}"] = {"regs": a.get("num_regs"), "local_bytes": a.get("local_size_bytes"),
                                       "dyn_smem": smem}
    for d in (64, 128):
        try:
            kern = numba_flash.make_kernel(d, numba_flash.default_config(d))
            res[f"numba_d{d}"] = {"regs": {str(k): v for k, v in kern.get_regs_per_thread().items()}
                                  if hasattr(kern, "get_regs_per_thread") else None}
        except Exception as e:  # noqa: BLE001
            res[f"numba_d{d}"] = {"error": str(e)[:200]}
    return res


def time_impls(impls, d: int, Ns, gen, failed) -> list[dict]:
    """Time every (impl, dtype) at head dim d and each N (B = 16384 // N, H = 2048 // d), causal and not,
    each checked at its timed size against float64."""
    results = []
    H = 2048 // d
    for N in Ns:
        B = max(1, 16384 // N)
        for causal in (False, True):
            q, k, v = (torch.randn(B, H, N, d, device=DEV, generator=gen) for _ in range(3))
            for impl, dtype in impls:
                rec = {"impl": impl, "dtype": dtype, "B": B, "H": H, "N": N, "d": d, "causal": causal}
                try:
                    qq, kk, vv = (x.to(TORCH_DT[dtype]) for x in (q, k, v))
                    run, out = make_fn(impl, dtype, qq, kk, vv, causal)
                    ms, times = time_ms(run, target_s=float(os.environ.get("TA_TARGET_S", "0.25")))
                    flops = 4 * B * H * N * N * d / (2 if causal else 1)
                    rec.update(ms=ms, tflops=flops / ms / 1e9, reps=len(times))
                    rec.update(timed_check(out, qq, kk, vv, causal, run))     # the timed size itself
                    rec["check_ok"] = ((impl, dtype) not in failed and rec["check_rel_err"] < TOL[dtype]
                                       and not rec["check_nan"])
                    del run, out, qq, kk, vv
                except Exception as e:  # noqa: BLE001
                    rec.update(ms=None, tflops=None, error=f"{type(e).__name__}: {e}"[:300])
                    torch.cuda.empty_cache()
                results.append(rec)
                log(f"{impl:22s} {dtype:9s} N={N:6d} d={d:3d} causal={int(causal)} "
                    + (f"{rec['ms']:9.3f} ms {rec['tflops']:7.1f} TFLOP/s err {rec['check_rel_err']:.1e}"
                       if rec.get("ms") else rec.get("error", "")))
            del q, k, v
            torch.cuda.empty_cache()
    return results


def update_run(args, impls, gen, meta) -> None:
    """Re-time ``impls`` (checks, then N = 1k-16k at d = 64 / 128) and splice them into ``args.update``."""
    old = json.loads(Path(args.update).read_text())
    checks = run_checks(impls, gen)
    failed = {(c["impl"], c["dtype"]) for c in checks if not c["ok"]}
    Ns = [4096, 8192] if args.quick else [1024, 2048, 4096, 8192, 16384]
    results = [r for d in (64, 128) for r in time_impls(impls, d, Ns, gen, failed)]
    keys = set(impls)
    mine = lambda r: (r["impl"], r["dtype"]) in keys    # noqa: E731
    upd = {**{k: meta[k] for k in ("seed", "date", "versions")}, "impls": [list(x) for x in impls],
           "replaced_results": [r for r in old["results"] if mine(r)],
           "replaced_checks": [c for c in old["checks"] if mine(c)]}
    out = {**old, "results": [r for r in old["results"] if not mine(r)] + results,
           "checks": [c for c in old["checks"] if not mine(c)] + checks,
           "updates": old.get("updates", []) + [upd]}
    out["kernel_resources"] = {**old.get("kernel_resources", {}), **{k: v for k, v in kernel_resources().items()
                                                                     if k.startswith("numba")}}
    path = Path(args.out) / args.name
    Path(args.out).mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    log(f"wrote {path}: {len(results)} timed records of {sorted(keys)} replaced; checks failed: {sorted(failed) or 'none'}")
    for r in results:
        if r["N"] == 8192:
            log(f"  {r['impl']:22s} {r['dtype']:9s} d={r['d']:3d} causal={int(r['causal'])} "
                f"{r.get('tflops') or 0:7.2f} TFLOP/s check_ok {r.get('check_ok')}")


def variant_sweep(gen) -> list[dict]:
    """Every tensor-core variant of flash_mma.cu: checked (fp16 and bf16), then timed at N = 8192."""
    rows = []
    for d, table in cupy_flash.VARIANTS.items():
        H, N, B = 2048 // d, 8192, 2
        q, k, v = (torch.randn(B, H, N, d, device=DEV, generator=gen, dtype=torch.float16) for _ in range(3))
        for variant in list(table) + [cupy_flash.DEFAULT_VARIANT[d]]:       # default twice: run-to-run spread
            checks = run_checks([("cupy_fp16_mma", "float16"), ("cupy_bf16_mma", "bfloat16")], gen, dims=(d,),
                                variant=variant, quiet=True)
            worst = {dt: max((c["rel_err"] if c["rel_err"] is not None else float("inf")) for c in checks if c["dtype"] == dt)
                     for dt in ("float16", "bfloat16")}
            ok = all(c["ok"] for c in checks)
            for causal in (False, True):
                rec = {"impl": "cupy_fp16_mma", "variant": variant, "dtype": "float16", "B": B, "H": H, "N": N,
                       "d": d, "causal": causal, "check_ok": ok, "worst_rel_err": worst}
                try:
                    run, _ = make_fn("cupy_fp16_mma", "float16", q, k, v, causal, variant)
                    rec["regs"] = cupy_flash.get_kernel("f16", d, variant)[0].attributes.get("num_regs")
                    ms, _t = time_ms(run)
                    rec.update(ms=ms, tflops=4 * B * H * N * N * d / (2 if causal else 1) / ms / 1e9)
                except Exception as e:  # noqa: BLE001
                    rec.update(ms=None, tflops=None, error=f"{type(e).__name__}: {e}"[:300])
                rows.append(rec)
                log(f"variant d={d} {variant:14s} causal={int(causal)} ok={ok} err16={worst['float16']:.1e} "
                    f"err_bf16={worst['bfloat16']:.1e} " + (f"{rec['tflops']:6.1f} TFLOP/s" if rec.get("tflops") else rec.get("error", "")))
        for causal in (False, True):
            run, _ = make_fn("torch_sdpa_flash", "float16", q, k, v, causal)
            ms, _t = time_ms(run)
            log(f"variant d={d} torch_sdpa_flash causal={int(causal)} {4 * B * H * N * N * d / (2 if causal else 1) / ms / 1e9:6.1f} TFLOP/s")
        del q, k, v
    return rows


# ----------------------------------------------------------------------------- timed-size checks, naive split, roofline
def timed_check(out, q, k, v, causal: bool, run) -> dict:
    """Re-run the timed launch into a NaN-poisoned output and compare heads 0-1 of batch 0 with float64.

    The reference at N = 16384 would need B H N^2 doubles for all heads; two heads (4 GB) suffice to
    catch a wrong tile, a missed row or an unwritten element (NaN), at the exact timed size and dtype.
    """
    if isinstance(out, torch.Tensor):
        out.fill_(float("nan"))
    run()
    torch.cuda.synchronize()
    o = output_of(out, q)[:1, :2].double()
    ref = reference(q[:1, :2], k[:1, :2], v[:1, :2], causal)
    rel = (torch.linalg.norm(o - ref) / torch.linalg.norm(ref)).item()
    return {"check_rel_err": rel, "check_max_abs": (o - ref).abs().max().item(), "check_nan": bool(torch.isnan(o).any())}


def naive_split(gen) -> list[dict]:
    """The honest three-kernel baseline at N = 8192: each kernel timed alone, and the whole pipeline.

    Kernel 1 S = Q K^T and kernel 3 O = P V are cuBLAS tensor-core GEMMs (fp16 in, fp32 accumulate),
    kernel 2 the row softmax; cupy_fp16_mma timed in the same loop gives the flash speed-up.
    """
    rows = []
    for d in (64, 128):
        B, H, N = 2, 2048 // d, 8192
        q, k, v = (torch.randn(B, H, N, d, device=DEV, generator=gen, dtype=torch.float16) for _ in range(3))
        cq, ck_, cv = (as_cupy(x) for x in (q, k, v))
        for causal in (False, True):
            parts: dict = {}
            o = naive_attention_gpu(cq, ck_, cv, is_causal=causal, parts=parts)
            torch.cuda.synchronize()
            chk = timed_check({"o": o}, q, k, v, causal, lambda: None)
            flash, _ = make_fn("cupy_fp16_mma", "float16", q, k, v, causal)
            rec = {"impl": "naive_gpu_fp16", "dtype": "float16", "B": B, "H": H, "N": N, "d": d, "causal": causal, **chk}
            for name, fn in (("qk", parts["qk"]), ("softmax", parts["softmax"]), ("pv", parts["pv"]),
                             ("total", lambda: naive_attention_gpu(cq, ck_, cv, is_causal=causal)),
                             ("flash", flash)):
                rec[f"ms_{name}"], _t = time_ms(fn, target_s=0.2, max_reps=20)
            gemm_flops = 2 * B * H * N * N * d                       # one GEMM (the mask does not skip work)
            rec["tflops_qk"] = gemm_flops / rec["ms_qk"] / 1e9
            rec["tflops_pv"] = gemm_flops / rec["ms_pv"] / 1e9
            rec["softmax_gbps"] = 2 * B * H * N * N * 2 / rec["ms_softmax"] / 1e6    # read S, write P (fp16)
            rec["flash_speedup"] = rec["ms_total"] / rec["ms_flash"]
            rows.append(rec)
            log(f"naive split d={d} causal={int(causal)}: QK^T {rec['ms_qk']:.2f} ms ({rec['tflops_qk']:.0f} TFLOP/s), "
                f"softmax {rec['ms_softmax']:.2f} ms ({rec['softmax_gbps']:.0f} GB/s), PV {rec['ms_pv']:.2f} ms, total "
                f"{rec['ms_total']:.2f} ms; flash {rec['ms_flash']:.2f} ms = {rec['flash_speedup']:.2f}x faster; "
                f"check rel {chk['check_rel_err']:.1e}")
            del o, parts
        del q, k, v, cq, ck_, cv
        torch.cuda.empty_cache()
    return rows


def numba_sweep(gen, configs=((64, (8, 16, 4, 4)), (128, (8, 16, 4, 4)), (128, (8, 16, 4, 2)),
                                (128, (8, 16, 2, 2)), (64, (8, 16, 4, 4))), causals=(False, True)) -> list[dict]:
    """The Numba fp32 kernel at N = 8192 for several tile shapes (tx, ty, rq, ck): checked on heads
    0-1 against float64 (NaN-poisoned), then timed; B*N = 16k tokens, H = 2048 / d."""
    from numba import cuda
    rows = []
    for d, shape in configs:
        cfg = numba_flash.NumbaConfig(*shape)
        B, H, N = 2, 2048 // d, 8192
        q, k, v = (torch.randn(B, H, N, d, device=DEV, generator=gen) for _ in range(3))
        q3, k3, v3 = (x.reshape(B * H, N, d) for x in (q, k, v))
        o = torch.empty_like(q3)
        lse = torch.empty(B * H, N, device=DEV)
        args = [cuda.as_cuda_array(x) for x in (q3, k3, v3, o, lse)]
        for causal in causals:
            rec = {"impl": "numba_fp32", "dtype": "float32", "B": B, "H": H, "N": N, "d": d, "causal": causal,
                   "config": list(shape), "shared_bytes": numba_flash.shared_bytes(d, cfg)}
            try:
                run = lambda: numba_flash.launch(*args, is_causal=causal, config=cfg)   # noqa: E731
                rec.update(timed_check(o.view(B, H, N, d), q, k, v, causal, run))
                ms, t = time_ms(run, target_s=0.3, max_reps=10)
                rec.update(ms=ms, tflops=4 * B * H * N * N * d / (2 if causal else 1) / ms / 1e9, reps=len(t))
                kern = numba_flash.make_kernel(d, cfg)
                rec["regs"] = {str(kk): vv for kk, vv in kern.get_regs_per_thread().items()}
            except Exception as e:  # noqa: BLE001
                rec.update(ms=None, error=f"{type(e).__name__}: {e}"[:300])
            rows.append(rec)
            log(f"numba d={d} cfg={shape} smem={rec['shared_bytes']} causal={int(causal)} "
                + (f"{rec['tflops']:.2f} TFLOP/s err {rec['check_rel_err']:.1e} regs {rec.get('regs')}" if rec.get("ms") else rec.get("error", "")))
        del q, k, v, o, lse
    return rows


def numba_pick(gen) -> dict:
    """Time candidate tile shapes of the Numba kernel (non-causal and causal, N = 8192), keep the
    fastest non-causal one per head dim as the default for the rest of this run (the library's
    default_config is then set to match the JSON). Candidates: (tx, ty, rq, ck, max_regs)."""
    cands = ((64, (8, 16, 4, 4)), (64, (8, 16, 4, 8)), (128, (8, 16, 4, 4)), (128, (8, 32, 2, 4)))
    rows = numba_sweep(gen, cands, causals=(False,))
    best = {}
    for r in rows:
        if r.get("tflops") and not r["causal"] and r["check_rel_err"] < TOL["float32"]:
            if r["d"] not in best or r["tflops"] > best[r["d"]]["tflops"]:
                best[r["d"]] = r
    picked = {d: numba_flash.NumbaConfig(*r["config"]) for d, r in best.items()}
    orig = numba_flash.default_config
    numba_flash.default_config = lambda d, _orig=orig: picked.get(d) or _orig(d)     # launch() looks it up
    log(f"numba default for this run: {picked}")
    return {"sweep": rows, "picked": {str(d): list(r["config"]) for d, r in best.items()},
            "library_default": {str(d): list(dataclasses.astuple(orig(d))) for d in (64, 128)}}


def roofline(ceil: dict) -> list[dict]:
    """Work and traffic of the flash forward at N = 8192 (B = 2, H = 2048 / d, fp16), three byte counts:
    the minimum (Q, K, V read once, O written once), FlashAttention-2's actual L2 traffic (every query
    block of BQ rows re-reads all of K and V: N / BQ times), and what the naive pipeline moves
    (S written, read, P written, read). Time floors use the measured ceilings of the same run."""
    rows = []
    ncu = {64: {"dram_read_bytes": 201.5e6, "l2_bytes": 8.50e9, "l2_hit_rate": 0.957,
                "source": "benchmarks/NOTES.md run 5 (Nsight Compute), results/gpu_ncu_probe_h200.txt"}}
    for d in (64, 128):
        B, H, N = 2, 2048 // d, 8192
        nw, mt = cupy_flash.VARIANTS[d][cupy_flash.DEFAULT_VARIANT[d]][:2]
        bq = 16 * nw * mt                                         # query rows per thread block
        flops = 4 * B * H * N * N * d
        min_bytes = 4 * B * H * N * d * 2
        fa2_bytes = 2 * B * H * N * d * 2 + (N // bq) * 2 * B * H * N * d * 2
        naive_bytes = min_bytes + 4 * B * H * N * N * 2
        r = {"N": N, "d": d, "B": B, "H": H, "block_q": bq, "flops": flops, "bytes_min": min_bytes,
             "bytes_fa2_kv_rereads": fa2_bytes, "bytes_naive": naive_bytes,
             "intensity_min": flops / min_bytes, "intensity_fa2_l2": flops / fa2_bytes,
             "intensity_naive": flops / naive_bytes,
             "ridge_flop_per_byte": ceil["gemm_fp16_tflops"] * 1e12 / (ceil["copy_TBps"] * 1e12),
             "floor_ms_compute": flops / ceil["gemm_fp16_tflops"] / 1e9,
             "floor_ms_dram_min": min_bytes / ceil["copy_TBps"] / 1e9,
             "floor_ms_fa2_rereads_at_copy_bw": fa2_bytes / ceil["copy_TBps"] / 1e9,
             "floor_ms_naive_traffic": naive_bytes / ceil["copy_TBps"] / 1e9}
        if d in ncu:
            r["ncu_measured"] = ncu[d]
        rows.append(r)
    return rows


def versions() -> dict:
    import numba
    v = {"python": platform.python_version(), "torch": torch.__version__, "cuda_torch": torch.version.cuda,
         "cupy": cp.__version__, "numba": numba.__version__, "numpy": np.__version__,
         "cudnn": torch.backends.cudnn.version()}
    try:
        import importlib.metadata as md
        v["numba_cuda"] = md.version("numba-cuda")
    except Exception:  # noqa: BLE001
        pass
    v["driver"] = cp.cuda.runtime.driverGetVersion()
    return v


def main() -> None:
    if "--hopper" in sys.argv:       # issue 14's Hopper sweep: benchmarks/gpu_hopper.py (its own options and JSON)
        import gpu_hopper
        sys.argv.remove("--hopper")
        return gpu_hopper.main()
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="N = 4k, 8k only")
    ap.add_argument("--impls", default="", help="comma-separated subset of impl names")
    ap.add_argument("--out", default=os.environ.get("OUT", str(ROOT / "benchmarks" / "results")))
    ap.add_argument("--name", default="gpu_flash_h200.json")
    ap.add_argument("--sweep-only", action="store_true", help="only the tensor-core variant sweep")
    ap.add_argument("--seed", type=int, default=int(time.time()), help="seed of the input generator (recorded)")
    ap.add_argument("--update", default="", help="earlier full JSON: re-time only --impls (no sweep, ceilings, "
                    "roofline or naive split) and write that file with those impls' records replaced; the replaced "
                    "ones are kept under 'updates'")
    args = ap.parse_args()
    impls = [(i, dt) for i, dt in IMPLS if not args.impls or i in args.impls.split(",")]
    gen = torch.Generator(device=DEV)
    gen.manual_seed(args.seed)                            # fresh inputs every run, seed recorded
    props = torch.cuda.get_device_properties(0)
    meta = {"seed": args.seed, "gpu": props.name, "sm_count": props.multi_processor_count, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "versions": versions(), "flops_formula": "4*B*H*N^2*d, halved when causal", "timing": "CUDA events, median after warm-up"}
    log(json.dumps(meta))
    t_start = time.time()
    reuse = os.environ.get("TA_REUSE_SWEEP")     # path of an earlier JSON: copy its sweep (device time)
    if args.update:                               # re-time some impls only (e.g. after a kernel change)
        return update_run(args, impls, gen, meta)
    if reuse and not args.sweep_only:
        old = json.loads(Path(reuse).read_text())
        meta["variant_sweep"] = old["variant_sweep"]
        meta["variant_sweep_torch_flash"] = old.get("variant_sweep_torch_flash") or [
            r for r in old["results"] if r["impl"] == "torch_sdpa_flash" and r["N"] == 8192]   # same run as the sweep
        meta["variant_sweep_from"] = f"copied from the run of {old.get('date')} (not re-run), with that run's torch flash"
    else:
        meta["variant_sweep"] = variant_sweep(gen)
    meta["default_variant"] = cupy_flash.DEFAULT_VARIANT
    if args.sweep_only:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "gpu_flash_variants.json").write_text(json.dumps(meta, indent=1))
        return
    if os.environ.get("TA_NUMBA_PICK"):           # tile shape of the Numba kernel by measurement, first
        meta["numba_pick"] = numba_pick(gen)
    checks = run_checks(impls, gen)
    meta["kernel_resources"] = kernel_resources()
    log("resources", json.dumps(meta["kernel_resources"]))
    meta["ceilings"] = ceilings()
    log("ceilings", json.dumps(meta["ceilings"]))
    meta["roofline"] = roofline(meta["ceilings"])
    meta["naive_split"] = naive_split(gen)
    Ns = [4096, 8192] if args.quick else [1024, 2048, 4096, 8192, 16384]
    results = []
    failed = {(c["impl"], c["dtype"]) for c in checks if not c["ok"]}
    for d in (64, 128):
        results += time_impls(impls, d, Ns, gen, failed)
        meta["wall_s"] = time.time() - t_start                # partial file after each head dim
        Path(args.out).mkdir(parents=True, exist_ok=True)
        path = Path(args.out) / args.name
        path.write_text(json.dumps({**meta, "results": results, "checks": checks}, indent=1))
    # summary table: N = 8192 (or the largest), d = 64, non-causal
    log(f"\nwrote {path}  ({meta['wall_s']:.0f} s)")
    log(f"checks failed: {sorted(failed) or 'none'}")
    bad_timed = [(r["impl"], r["dtype"], r["N"], r["d"], r["causal"]) for r in results if r.get("ms") and not r["check_ok"]]
    log(f"timed-size checks failed: {bad_timed or 'none'}")
    for d in (64, 128):
        for causal in (False, True):
            log(f"--- N=8192 d={d} causal={int(causal)}: TFLOP/s")
            for r in results:
                if r["N"] == 8192 and r["d"] == d and r["causal"] == causal:
                    log(f"  {r['impl']:22s} {r['dtype']:9s} {r['tflops'] if r.get('tflops') is None else round(r['tflops'], 1)}")
    get = {(r["impl"], r["dtype"]): r.get("tflops") for r in results if r["N"] == 8192 and r["d"] == 64 and not r["causal"]}
    def ratio(a, b):
        x, y = get.get(a), get.get(b)
        return None if not x or not y else round(x / y, 3)
    log("acceptance: fp16_mma/flash", ratio(("cupy_fp16_mma", "float16"), ("torch_sdpa_flash", "float16")), "(>=0.5)",
        " numba/efficient32", ratio(("numba_fp32", "float32"), ("torch_sdpa_efficient", "float32")), "(>=0.3)",
        " fp16_mma/naive16", ratio(("cupy_fp16_mma", "float16"), ("naive_gpu_fp16", "float16")),
        "(>=3: set against the old cupy.matmul baseline; the cuBLAS tensor-core one is ~7x faster)")


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        sys.exit(1)
