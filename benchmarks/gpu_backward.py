"""Issue 13: check, then time, the tensor-core FlashAttention-2 backward (flash_mma_bwd.cu) on one GPU.

    python benchmarks/gpu_backward.py [--seed S] [--out DIR] [--sweep [--skip V1,...]] [--only V1,V2,...]

1. Checks against float64 torch autograd (dense attention, causal bottom-right aligned, GQA by
   repeating K/V in the reference only): dQ, dK, dV max-abs and relative (||x - ref|| / ||ref||)
   errors, outputs NaN-poisoned before the launch, both dQ modes, fp16 and bf16, d = 32..128, ragged
   N, Nq != Nk, GQA / MQA; torch's own fp16/bf16 flash backward error on the same inputs beside ours.
   At every timed size one head pair is checked the same way (the float64 reference of one head).
2. Times backward ("bwd") and forward + backward ("fwd_bwd") with CUDA events, interleaved across
   implementations, median: N = 8192, B = 2, H = 2048 / d (B*H*d = 4096), causal and not.
   Backward FLOPs = 2.5 * 4 B H N^2 d (halved when causal).
Writes OUT/gpu_backward_h200.json ({"results": [...], "checks": [...], metadata}); table last. The checks
live in gpu_backward_check.py. --only V1,V2: the default tiles and the dK/dV variants V1, V2 (those that
exist at d = 64 / 128) only: checked at the small sizes (d = 64, 128) and at N = 8192, timed with atomic dQ
beside torch flash; no GQA, no separate dQ, no cuDNN (a short run).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _gpu_path import ROOT  # noqa: E402  (repo root on sys.path, tinyattn.gpu importable)

import cupy as cp  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as TF  # noqa: E402
from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402

from tinyattn.gpu import cupy_backward as cb  # noqa: E402
from tinyattn.gpu import cupy_flash  # noqa: E402

from gpu_backward_check import (  # noqa: E402  (benchmarks/ is sys.path[0] when run as a script)
    ALT_MODULES, DEV, IMPL, KIND, TDT, as_cupy, check_case, eff_split, fmt_check, log, run_ours)

SWZ_AB = {64: "w4m2q32@swzB2"}   # shipped d = 64 tiles with B1/B2's 64-byte-row swizzle, timed beside the new one
# dK/dV tiles also timed on GQA 8:1 at d = 128: B1's (the notebook's MHA-vs-GQA comparison) and the candidates
GQA_TILES = ("w4m1q32", "w8m1q64", "w8q64p+s1", "w8q64p+s2", "w8q64p+s4",    # +s<S>: group split over S blocks
             "w8m1q64xf", "w8m1q64xfg")     # Session 21: the MHA default on GQA, and it with the split (auto S)
# (no +s: cupy_backward.auto_gqa_split; the records' gqa_split field says which split ran)


def bench_interleaved(fns: dict, rounds: int = 9, warm: int = 2) -> dict:
    """fns name -> callable; each round times every callable once (CUDA events); median ms per name."""
    for f in fns.values():
        for _ in range(warm):
            f()
    torch.cuda.synchronize()
    times = {n: [] for n in fns}
    for _ in range(rounds):
        for n, f in fns.items():
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            f()
            b.record()
            b.synchronize()
            times[n].append(a.elapsed_time(b))
    return {n: statistics.median(t) for n, t in times.items()}


def timed_config(gen, B, H, Hkv, N, d, causal, variants, torch_impls, rounds):
    """Records {impl, pass, ...} for one size: our variants, torch backends, bwd and fwd_bwd."""
    fns, meta = {}, {}
    for dtype in ("float16", "bfloat16"):
        t = TDT[dtype]
        q = torch.randn(B, H, N, d, device=DEV, generator=gen).to(t)
        k, v = (torch.randn(B, Hkv, N, d, device=DEV, generator=gen).to(t) for _ in range(2))
        do = torch.randn(B, H, N, d, device=DEV, generator=gen).to(t)
        o = torch.empty_like(q)
        cq, ck, cv, co = (as_cupy(x.reshape(-1, N, d)) for x in (q, k, v, o))
        grp = H // Hkv
        lse_c = cupy_flash.launch(cq, ck, cv, co, KIND[dtype], is_causal=causal, group=grp)
        lse_t = torch.from_dlpack(lse_c).reshape(B, H, N)
        fns[f"{IMPL[dtype]}|fwd"] = lambda cq=cq, ck=ck, cv=cv, co=co, lse_c=lse_c, dtype=dtype, grp=grp: \
            cupy_flash.launch(cq, ck, cv, co, KIND[dtype], lse_c, is_causal=causal, group=grp)
        meta[f"{IMPL[dtype]}|fwd"] = (IMPL[dtype], dtype, None, None, None, "fwd")
        for (var, dqv, mode) in variants:
            name = f"{IMPL[dtype]}|{mode}|{var or 'default'}|{dqv or ''}"
            _, launch = run_ours(q, k, v, o, do, lse_t, causal, dtype, mode, var, dqv, poison=False)
            fns[name + "|bwd"] = launch
            var_n = var or cb.default_variant(d, H // Hkv, causal)   # recorded by name: defaults may change later
            dqv_n = (dqv or cb.DEFAULT_DQ[d]) if mode == "separate" else None
            meta[name + "|bwd"] = (IMPL[dtype], dtype, mode, var_n, dqv_n, "bwd")
            if True:
                def fb(launch=launch, cq=cq, ck=ck, cv=cv, co=co, lse_c=lse_c, dtype=dtype, grp=grp):
                    cupy_flash.launch(cq, ck, cv, co, KIND[dtype], lse_c, is_causal=causal, group=grp)
                    launch()
                fns[name + "|fwd_bwd"] = fb
                meta[name + "|fwd_bwd"] = (IMPL[dtype], dtype, mode, var_n, dqv_n, "fwd_bwd")
        for impl, backend in torch_impls:
            if Hkv != H:      # torch's flash/cuDNN take GQA only by repeated K/V (what we avoid): timed that way
                kr, vr = k.repeat_interleave(grp, 1), v.repeat_interleave(grp, 1)
            else:
                kr, vr = k, v
            qq, kk, vv = (x.detach().clone().requires_grad_(True) for x in (q, kr, vr))
            try:
                with sdpa_kernel(backend):
                    out = TF.scaled_dot_product_attention(qq, kk, vv, is_causal=causal)
                    torch.autograd.grad(out, (qq, kk, vv), do, retain_graph=True)
            except Exception as e:  # noqa: BLE001
                log(f"  {impl} {dtype}: unavailable ({type(e).__name__})")
                continue

            def tb(out=out, qq=qq, kk=kk, vv=vv, do=do):
                torch.autograd.grad(out, (qq, kk, vv), do, retain_graph=True)

            def tfb(qq=qq, kk=kk, vv=vv, do=do, backend=backend):
                with sdpa_kernel(backend):
                    o2 = TF.scaled_dot_product_attention(qq, kk, vv, is_causal=causal)
                torch.autograd.grad(o2, (qq, kk, vv), do)
            def tf(qq=qq, kk=kk, vv=vv, backend=backend):
                with sdpa_kernel(backend):
                    TF.scaled_dot_product_attention(qq, kk, vv, is_causal=causal)
            fns[f"{impl}|{dtype}|fwd"], meta[f"{impl}|{dtype}|fwd"] = tf, (impl, dtype, None, None, None, "fwd")
            fns[f"{impl}|{dtype}|bwd"], meta[f"{impl}|{dtype}|bwd"] = tb, (impl, dtype, None, None, None, "bwd")
            fns[f"{impl}|{dtype}|fwd_bwd"], meta[f"{impl}|{dtype}|fwd_bwd"] = tfb, (impl, dtype, None, None, None, "fwd_bwd")
    ms = bench_interleaved(fns, rounds=rounds)
    fwd_flops = 4 * B * H * N * N * d / (2 if causal else 1)
    recs = []
    for n, t_ms in ms.items():
        impl, dtype, mode, var, dqv, pas = meta[n]
        fl = fwd_flops * {"fwd": 1.0, "bwd": 2.5, "fwd_bwd": 3.5}[pas]
        recs.append({"impl": impl, "dtype": dtype, "B": B, "H": H, "Hkv": Hkv, "N": N, "d": d, "causal": causal,
                     "pass": pas, "dq_mode": mode, "variant": var, "dq_variant": dqv, "ms": t_ms,
                     "tflops": fl / t_ms / 1e9, "gqa_split": eff_split(var, d, H // Hkv, causal) if mode else None})
    return recs


def versions() -> dict:
    import platform
    return {"python": platform.python_version(), "torch": torch.__version__, "cuda_torch": torch.version.cuda,
            "cupy": cp.__version__, "numpy": np.__version__, "cudnn": torch.backends.cudnn.version(),
            "driver": cp.cuda.runtime.driverGetVersion()}


def start_run(seed: int, flops_formula: str):
    """(generator seeded with ``seed``, run metadata: GPU, date, load, versions, formulas), metadata logged."""
    gen = torch.Generator(device=DEV)
    gen.manual_seed(seed)
    props = torch.cuda.get_device_properties(0)
    meta = {"seed": seed, "gpu": props.name, "sm_count": props.multi_processor_count,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "loadavg": os.getloadavg(), "versions": versions(), "flops_formula": flops_formula,
            "timing": "CUDA events, interleaved rounds, median after 2 warm-ups"}
    log(json.dumps(meta))
    return gen, meta


def use_all_variants_module() -> None:
    """One NVRTC compile holds the defaults and the sweep variants; every later lookup gets that module."""
    all_mod = cb._module(True)
    cb._module = lambda all_variants=False: all_mod


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--out", default=os.environ.get("OUT", str(ROOT / "benchmarks" / "results")))
    ap.add_argument("--name", default="gpu_backward_h200.json")
    ap.add_argument("--sweep", action="store_true", help="also time the non-default tile variants")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--only", default="", help="comma-separated dK/dV variants: time only the defaults and these")
    ap.add_argument("--skip", default="", help="comma-separated dK/dV variants left out of --sweep")
    args = ap.parse_args()
    only = [v for v in args.only.split(",") if v]
    skip = {v for v in args.skip.split(",") if v}
    gen, meta = start_run(args.seed, "bwd 2.5 * 4*B*H*N^2*d, fwd_bwd 3.5 * 4*B*H*N^2*d, halved when causal")
    t0 = time.time()
    use_all_variants_module()
    if args.sweep and not only:
        ALT_MODULES["swzB2"] = cp.RawModule(code=cupy_flash.cuda_source("flash_mma_bwd.cu"),
                                            options=("-std=c++17", "-DTA_BWD_SWZ_HALF=0"))
        ALT_MODULES["swzB2"].compile()
    log(f"compiled in {time.time() - t0:.1f} s")
    checks = []
    meta["only"], meta["skip"] = only, sorted(skip)
    small = [(2, 3, 3, 200, 200), (1, 2, 2, 200, 333), (1, 2, 2, 333, 200), (1, 4, 2, 190, 190), (1, 4, 1, 130, 257)]
    for d in (64, 128) if only else ():       # --only: the defaults and the chosen variants, every small size
        for dtype in ("float16", "bfloat16"):
            for B, H, Hkv, nq, nk in small:
                for causal in (False, True):
                    checks += check_case(gen, B, H, Hkv, nq, nk, d, causal, dtype)
                    for var in (v for v in only if v in cb.DKDV_VARIANTS[d]):
                        checks += check_case(gen, B, H, Hkv, nq, nk, d, causal, dtype, with_torch=False, variant=var)
    for d in () if only else cb.HEAD_DIMS:
        for dtype in ("float16", "bfloat16"):
            for i, (B, H, Hkv, nq, nk) in enumerate(small):
                if d in (32, 96) and i in (0, 2):        # fewer sizes for the head dims we do not time
                    continue
                for causal in (False, True):
                    checks += check_case(gen, B, H, Hkv, nq, nk, d, causal, dtype)
    for d in () if only else (64, 128):     # every tile variant on a ragged GQA input, fp16 and bf16
        extra = [(v, None) for v in cb.DKDV_VARIANTS[d] if v != cb.DEFAULT_DKDV[d] and v not in skip] + \
                [(None, v) for v in cb.DQ_VARIANTS[d] if v != cb.DEFAULT_DQ[d]] + \
                ([(SWZ_AB[d], None)] if args.sweep and d in SWZ_AB else [])
        for var, dqv in extra:
            for dtype in ("float16", "bfloat16"):
                checks += check_case(gen, 1, 4, 2, 333, 333, d, True, dtype, variant=var, dq_variant=dqv)
        for var in (v for v in GQA_TILES if "+s" in v and d == 128 and args.sweep):   # split groups: GQA 4:1
            for dtype in ("float16", "bfloat16"):
                for causal in (False, True):
                    checks += check_case(gen, 1, 8, 2, 333, 300, d, causal, dtype, variant=var)
    bad = [c for c in checks if not c.get("ok", True)]
    log(f"small checks: {len(checks)} records, {len(bad)} failing ({time.time() - t0:.1f} s)")
    for c in bad[:20]:
        log(fmt_check(c))
    results = []
    variants = [(None, None, "atomic"), (None, None, "separate")]
    torch_impls = [("torch_sdpa_flash", SDPBackend.FLASH_ATTENTION), ("torch_sdpa_cudnn", SDPBackend.CUDNN_ATTENTION)]
    if only:
        variants, torch_impls = variants[:1], torch_impls[:1]
    for d in (64, 128):
        H = 2048 // d
        for causal in (False, True):
            extra = [(v, None) for v in cb.DKDV_VARIANTS[d] if v != cb.DEFAULT_DKDV[d] and v not in skip] + \
                [(None, v) for v in cb.DQ_VARIANTS[d] if v != cb.DEFAULT_DQ[d]] + \
                ([(SWZ_AB[d], None)] if d in SWZ_AB else [])
            if only:
                extra = [(v, None) for v in only if v in cb.DKDV_VARIANTS[d]]
            for dtype in ("float16", "bfloat16"):
                checks += check_case(gen, 2, H, H, 8192, 8192, d, causal, dtype, heads=1, timed=True)
                for var, dqv in (extra if args.sweep or only else []):     # every timed variant checked at this size
                    checks += check_case(gen, 2, H, H, 8192, 8192, d, causal, dtype, heads=1, timed=True,
                                         with_torch=False, variant=var, dq_variant=dqv)
            vs = variants
            if only:
                vs = variants + [(v, None, "atomic") for v, _ in extra]
            elif args.sweep:
                vs = variants + [(v, None, "atomic") for v in cb.DKDV_VARIANTS[d] if v != cb.DEFAULT_DKDV[d] and v not in skip] \
                    + [(None, v, "separate") for v in cb.DQ_VARIANTS[d] if v != cb.DEFAULT_DQ[d]] \
                    + ([(SWZ_AB[d], None, "atomic")] if d in SWZ_AB else [])
            results += timed_config(gen, 2, H, H, 8192, d, causal, vs, torch_impls, args.rounds)
            if d == 128 and not only:       # GQA 8:1 (H = 16 query heads, 2 kv heads), checked then timed
                gv = [cb.default_variant(d, 8, causal)] + [v for v in GQA_TILES if v != cb.default_variant(d, 8, causal)]
                for dtype in ("float16", "bfloat16"):
                    for v in gv:
                        checks += check_case(gen, 2, 16, 2, 8192, 8192, d, causal, dtype, heads=1, timed=True,
                                             with_torch=v == gv[0], variant=v)
                results += timed_config(gen, 2, 16, 2, 8192, d, causal,
                                        [(v, None, "atomic") for v in gv] + [(None, None, "separate")],
                                        torch_impls, args.rounds)
            log(f"timed d={d} causal={int(causal)} ({time.time() - t0:.1f} s)")
            for r in results:
                if r["d"] == d and r["causal"] == causal and r["pass"] == "bwd" and r["dtype"] == "float16":
                    log(f"   {r['impl']:16s} {r['dtype']:8s} {str(r['dq_mode']):8s} {str(r['variant'])}/{str(r['dq_variant'])} {r['tflops']:6.1f}")
            Path(args.out).mkdir(parents=True, exist_ok=True)     # partial results survive a timeout
            Path(args.out, args.name).write_text(json.dumps({"results": results, "checks": checks, **meta}))
    for c in checks:
        if c.get("timed_size"):
            log(fmt_check(c))
    out = {"results": results, "checks": checks, **meta, "wall_s": time.time() - t0}
    Path(args.out).mkdir(parents=True, exist_ok=True)
    Path(args.out, args.name).write_text(json.dumps(out, indent=1))
    bad = [c for c in checks if not c.get("ok", True)]
    log(f"checks: {len(checks)} records, {len(bad)} failing; worst fp16 rel "
        f"{max(max(c[n]['rel'] or 1.0 for n in ('dq', 'dk', 'dv')) for c in checks if 'dq' in c and c['dtype'] == 'float16'):.1e}")
    log("fp16 (bf16 in the JSON), TFLOP/s and ratio to torch_sdpa_flash of the same pass; * = shipped default")
    log(f"{'impl':16s} {'pass':7s} {'dq':8s} {'variant':16s}   d Hkv c      ms TFLOP/s  ratio")
    for r in sorted(results, key=lambda r: (r["d"], r["Hkv"], r["causal"], r["pass"], -r["tflops"])):
        if r["dtype"] != "float16" or r["pass"] == "fwd":
            continue
        ref = next((x["tflops"] for x in results if x["impl"] == "torch_sdpa_flash" and x["dtype"] == "float16"
                    and (x["d"], x["Hkv"], x["causal"], x["pass"]) == (r["d"], r["Hkv"], r["causal"], r["pass"])), None)
        star = "*" if r["variant"] == cb.default_variant(r["d"], r["H"] // r["Hkv"], r["causal"]) \
            and r["dq_mode"] == "atomic" else " "
        log(f"{r['impl']:16s} {r['pass']:7s} {str(r['dq_mode']):8s} {str(r['variant'])+'/'+str(r['dq_variant']):16s}{star} "
            f"{r['d']:3d} {r['Hkv']:2d} {int(r['causal'])} {r['ms']:7.3f} {r['tflops']:6.1f} {r['tflops'] / ref if ref else 0:6.3f}")


if __name__ == "__main__":
    main()
