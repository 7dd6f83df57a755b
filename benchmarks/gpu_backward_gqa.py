"""Session 21 (gqa): check, then time, the sweep-only GQA-split fast dK/dV kernel w8m1q64xfg on one GPU.

    python benchmarks/gpu_backward_gqa.py [--seed S] [--out DIR] [--rounds R]

w8m1q64xfg = the shipped MHA kernel w8m1q64xf (precomputed 32-bit shared addresses, fragment-order dQ with
red.v4) whose GQA group is split over S blocks like the shipped causal-GQA kernel w8q64p (which has neither).
1. Checks (gpu_backward_check.check_case: float64 torch autograd reference, NaN-poisoned outputs, both dQ
   modes, our own forward's o / lse checked and fed in): w8m1q64xfg with S = 1, 2, the group size and the
   auto split on small ragged GQA / MQA / MHA inputs, fp16 and bf16, causal and not; then every timed
   variant at the timed size (the float64 reference of one kv group).
2. Times the backward (CUDA events, interleaved rounds, median after 2 warm-ups) at N = 8192, B = 2, d = 128,
   fp16 and bf16, causal and not, GQA 8:1 (H = 16, Hkv = 2): the shipped choice (default_variant: w8q64p
   with the auto split S = 4 when causal, w8m1q64xf otherwise), the other of the two, w8m1q64xfg with the
   auto split and two other S; in the same rounds the MHA kernel w8m1q64xf on an MHA input of the same FLOPs
   (H = Hkv = 16) and torch flash on GQA with repeated K/V. Backward FLOPs = 2.5 * 4 B H N^2 d (/2 causal).
Writes OUT/gpu_backward_gqa_h200.json ({"results", "checks", metadata}); table last.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _gpu_path import ROOT  # noqa: E402  (repo root on sys.path, tinyattn.gpu importable)

import torch  # noqa: E402
import torch.nn.functional as TF  # noqa: E402
from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402

from tinyattn.gpu import cupy_backward as cb  # noqa: E402
from tinyattn.gpu import cupy_flash  # noqa: E402

from gpu_backward import bench_interleaved, start_run, use_all_variants_module  # noqa: E402
from gpu_backward_check import (  # noqa: E402
    DEV, IMPL, KIND, TDT, as_cupy, check_case, eff_split, fmt_check, log, run_ours)

D, N, B, H, HKV = 128, 8192, 2, 16, 2
NEW, MHA = "w8m1q64xfg", "w8m1q64xf"
SMALL = [(1, 8, 2, 333, 300), (1, 4, 1, 130, 257), (2, 4, 2, 200, 200), (1, 2, 2, 190, 190)]   # B, H, Hkv, Nq, Nk


def gqa_variants(causal: bool) -> list[str]:
    """Timed on GQA 8:1: the shipped choice first, the other shipped tiles, then the new kernel (auto S, 2 more S)."""
    shipped = cb.default_variant(D, H // HKV, causal)
    other = MHA if shipped != MHA else "w8q64p"
    return [shipped, other, NEW, NEW + "+s2", NEW + ("+s8" if causal else "+s4")]


def small_variants(group: int) -> list[str]:
    return [NEW + f"+s{s}" for s in sorted({1, 2, group}) if group % s == 0] + [NEW]


def make_input(gen, hkv, causal, dtype):
    """q, k, v, o, do (B, H|hkv, N, D) and our forward's lse (B, H, N) for one timed input."""
    t = TDT[dtype]
    q = torch.randn(B, H, N, D, device=DEV, generator=gen).to(t)
    k, v = (torch.randn(B, hkv, N, D, device=DEV, generator=gen).to(t) for _ in range(2))
    do = torch.randn(B, H, N, D, device=DEV, generator=gen).to(t)
    o = torch.empty_like(q)
    lse_c = cupy_flash.launch(*(as_cupy(x.reshape(-1, N, D)) for x in (q, k, v, o)), KIND[dtype], is_causal=causal,
                              group=H // hkv)
    return q, k, v, o, do, torch.from_dlpack(lse_c).reshape(B, H, N)


def timed(gen, causal: bool, rounds: int) -> list[dict]:
    """One interleaved set: GQA variants, the MHA kernel on MHA, torch flash on repeated K/V; fp16 and bf16."""
    fns, meta = {}, {}
    for dtype in ("float16", "bfloat16"):
        gq = make_input(gen, HKV, causal, dtype)
        for var in gqa_variants(causal):
            fns[(dtype, HKV, var)] = run_ours(*gq, causal, dtype, "atomic", var, None, poison=False)[1]
            meta[(dtype, HKV, var)] = (IMPL[dtype], eff_split(var, D, H // HKV, causal))
        mh = make_input(gen, H, causal, dtype)
        fns[(dtype, H, MHA)] = run_ours(*mh, causal, dtype, "atomic", MHA, None, poison=False)[1]
        meta[(dtype, H, MHA)] = (IMPL[dtype], 1)
        q, k, v, _, do, _ = gq
        qq, kk, vv = (x.detach().clone().requires_grad_(True) for x in
                      (q, k.repeat_interleave(H // HKV, 1), v.repeat_interleave(H // HKV, 1)))
        try:
            with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                out = TF.scaled_dot_product_attention(qq, kk, vv, is_causal=causal)
            torch.autograd.grad(out, (qq, kk, vv), do, retain_graph=True)
        except Exception as e:  # noqa: BLE001
            log(f"  torch flash {dtype}: unavailable ({type(e).__name__})")
            continue
        fns[(dtype, HKV, "torch")] = lambda out=out, qq=qq, kk=kk, vv=vv, do=do: \
            torch.autograd.grad(out, (qq, kk, vv), do, retain_graph=True)
        meta[(dtype, HKV, "torch")] = ("torch_sdpa_flash_repeated_kv", None)
    ms = bench_interleaved(fns, rounds=rounds)
    recs = []
    for (dtype, hkv, var), t_ms in ms.items():
        impl, split = meta[(dtype, hkv, var)]
        fl = 2.5 * 4 * B * H * N * N * D / (2 if causal else 1)
        recs.append({"impl": impl, "dtype": dtype, "B": B, "H": H, "Hkv": hkv, "N": N, "d": D, "causal": causal,
                     "pass": "bwd", "dq_mode": "atomic" if var != "torch" else None,
                     "variant": var if var != "torch" else None, "gqa_split": split, "ms": t_ms,
                     "tflops": fl / t_ms / 1e9})
    return recs


def table(results: list[dict]) -> None:
    log("backward TFLOP/s, N = 8192, d = 128, GQA 8:1 unless Hkv = 16; ratios to the shipped GQA choice (* ) "
        "and to the MHA kernel on MHA, same dtype and causality, same rounds")
    log(f"{'dtype':9s} c {'variant':18s} Hkv  S      ms TFLOP/s  /ship  /MHA")
    for r in sorted(results, key=lambda r: (r["dtype"], r["causal"], -r["tflops"])):
        same = [x for x in results if (x["dtype"], x["causal"]) == (r["dtype"], r["causal"])]
        ship = next(x for x in same if x["Hkv"] == HKV and x["variant"] == cb.default_variant(D, H // HKV, r["causal"]))
        mha = next(x for x in same if x["Hkv"] == H)
        star = "*" if r is ship else " "
        log(f"{r['dtype']:9s} {int(r['causal'])} {str(r['variant'] or r['impl'])[:17]:17s}{star} {r['Hkv']:3d} "
            f"{str(r['gqa_split']):>2s} {r['ms']:7.3f} {r['tflops']:7.1f} {r['tflops'] / ship['tflops']:6.3f} "
            f"{r['tflops'] / mha['tflops']:5.3f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--out", default=os.environ.get("OUT", str(ROOT / "benchmarks" / "results")))
    ap.add_argument("--name", default="gpu_backward_gqa_h200.json")
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args()
    gen, meta = start_run(args.seed, "bwd 2.5 * 4*B*H*N^2*d, halved when causal")
    t0 = time.time()
    use_all_variants_module()
    log(f"compiled in {time.time() - t0:.1f} s")
    checks, results = [], []
    for dtype in ("float16", "bfloat16"):
        for Bs, Hs, Hk, nq, nk in SMALL:
            for causal in (False, True):
                for var in small_variants(Hs // Hk):
                    checks += check_case(gen, Bs, Hs, Hk, nq, nk, D, causal, dtype, with_torch=False, variant=var)
    log(f"small checks: {len(checks)} records, {sum(not c.get('ok', True) for c in checks)} failing "
        f"({time.time() - t0:.1f} s)")
    for causal in (False, True):
        for dtype in ("float16", "bfloat16"):          # every timed variant at the timed size, one kv group
            for var in gqa_variants(causal):
                checks += check_case(gen, B, H, HKV, N, N, D, causal, dtype, heads=1, timed=True, with_torch=False,
                                     variant=var)
            checks += check_case(gen, B, H, H, N, N, D, causal, dtype, heads=1, timed=True, with_torch=False,
                                 variant=MHA)
        results += timed(gen, causal, args.rounds)
        log(f"timed causal={int(causal)} ({time.time() - t0:.1f} s)")
        Path(args.out).mkdir(parents=True, exist_ok=True)     # partial results survive a timeout
        Path(args.out, args.name).write_text(json.dumps({"results": results, "checks": checks, **meta}))
    for c in checks:
        if c.get("timed_size") or not c.get("ok", True):
            log(fmt_check(c))
    bad = [c for c in checks if not c.get("ok", True)]
    out = {"results": results, "checks": checks, **meta, "wall_s": time.time() - t0}
    Path(args.out, args.name).write_text(json.dumps(out, indent=1))
    log(f"checks: {len(checks)} records, {len(bad)} failing")
    table(results)


if __name__ == "__main__":
    main()
