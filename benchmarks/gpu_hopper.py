"""Issue 14 benchmark: the Hopper (wgmma/TMA) forward kernels of tinyattn/gpu/hopper.py on an H200.

    python benchmarks/gpu_hopper.py [--variants a_w2k128,...] [--layout-test] [--out DIR]

Reuses benchmarks/gpu_flash.py's helpers (float64 reference, CUDA-event timer, torch SDPA runners).
1. (--layout-test) one warpgroup multiplies known matrices through the shared-memory descriptors
   (K-major Q K^T case and the MN-major P V case with both LBO/SBO assignments) vs a CuPy matmul.
2. Checks every variant, fp16 and bf16, d = 64, 128, causal and not, on ragged N, Nq != Nk (both
   ways) and N = 8192, 16384: outputs poisoned with NaN first; relative error vs float64, next to torch
   SDPA's own error on the same inputs (acceptance: within 2x of it; None where torch has no such mask).
3. Times each variant (fp16; bf16 for the default), the FP8 kernel (d = 128, with and without its
   quantisation pass) and torch SDPA flash and cuDNN, in ROUNDS interleaved passes per cell, N = 8192,
   16384, d = 64, 128, causal and not, B*N = 16k tokens, H = 2048 / d. The output of every timed
   launch is checked too (NaN-poisoned, heads 0-1 of batch 0 vs float64, next to torch flash's error).
4. FP8 with and without FlashAttention-3's incoherent processing on inputs with outliers (gpu_hopper_fp8).
Writes OUT/gpu_flash_hopper_h200.json (records: DESIGN.md schema, pass "fwd"; "acceptance" summary),
OUT/gpu_flash_hopper_fp8_h200.json (the FP8 records) and prints a table last.
``python benchmarks/gpu_flash.py --hopper [options]`` runs this script.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gpu_flash as gf  # noqa: E402  (sets up sys.path, numpy shim, torch, cupy)
from gpu_flash import DEV, TORCH_DT, as_cupy, log, reference, time_ms  # noqa: E402

import cupy as cp  # noqa: E402
import torch  # noqa: E402

from tinyattn.gpu import hopper  # noqa: E402
from gpu_hopper_fp8 import FP8_TOL, QUANT_OF, incoherent, make_run_fp8  # noqa: E402
from gpu_hopper_checks import IMPL, acceptance, layout_test, resources, timed_err, torch_error  # noqa: E402

FP8 = True           # main() switches it off with --no-fp8


def make_run(dtype, q, k, v, causal, variant):
    """(run, out) for our kernel on torch tensors q (B, H, Nq, d), k, v (B, H, Nk, d)."""
    B, H, nq, d = q.shape
    q3, k3, v3 = (x.reshape(B * H, x.shape[2], d) for x in (q, k, v))
    o = torch.empty_like(q3)
    cq, ck, cv, co = (as_cupy(x) for x in (q3, k3, v3, o))
    cl = cp.empty(q3.shape[:2], cp.float32)
    kind = "f16" if dtype == "float16" else "bf16"
    return (lambda: hopper.launch(cq, ck, cv, co, kind, cl, is_causal=causal, variant=variant)), o


def run_checks(variants, gen) -> list[dict]:
    # ragged, Nq < Nk, Nq > Nk (causal rows that see no key), both timed lengths
    cases = [(2, 3, 1000, 1000), (1, 2, 257, 257), (1, 2, 300, 1000), (1, 2, 64, 200), (1, 2, 400, 150),
             (1, 4, 8192, 8192), (1, 2, 16384, 16384)]
    rows = []
    for d in (64, 128):
        for (B, H, nq, nk) in cases:
            base = [torch.randn(B, H, n, d, device=DEV, generator=gen) for n in (nq, nk, nk)]
            for causal in (False, True):
                for dtype in ("float16", "bfloat16"):
                    q, k, v = (x.to(TORCH_DT[dtype]) for x in base)
                    ref = reference(q, k, v, causal)
                    torch_err = torch_error(q, k, v, causal, ref)
                    if FP8 and dtype == "float16" and d == 128:
                        rec = {"impl": "cupy_fp8_wgmma", "variant": "fp8", "dtype": "float8_e4m3", "B": B, "H": H,
                               "Nq": nq, "Nk": nk, "d": d, "causal": causal, "pass": "fwd", "torch_rel_err": torch_err}
                        try:
                            run, out = make_run_fp8(q, k, v, causal)
                            out.fill_(float("nan"))
                            run()
                            torch.cuda.synchronize()
                            o = out.reshape(q.shape).double()
                            err = (torch.linalg.norm(o - ref) / torch.linalg.norm(ref)).item()
                            rec.update(rel_err=err, max_abs=(o - ref).abs().max().item(),
                                       ok=bool(not math.isnan(err) and err < FP8_TOL))
                        except Exception as e:  # noqa: BLE001
                            rec.update(rel_err=None, ok=False, error=f"{type(e).__name__}: {e}"[:300])
                        rows.append(rec)
                    for var in [x for x in variants if d in hopper.VARIANTS[x][4]]:
                        rec = {"impl": IMPL[dtype], "variant": var, "dtype": dtype, "B": B, "H": H, "Nq": nq,
                               "Nk": nk, "d": d, "causal": causal, "pass": "fwd", "torch_rel_err": torch_err}
                        try:
                            run, out = make_run(dtype, q, k, v, causal, var)
                            out.fill_(float("nan"))
                            run()
                            torch.cuda.synchronize()
                            o = out.reshape(q.shape).double()
                            err = (torch.linalg.norm(o - ref) / torch.linalg.norm(ref)).item()
                            ok = not math.isnan(err) and err < gf.TOL[dtype] and (torch_err is None or err <= 2 * torch_err)
                            rec.update(rel_err=err, max_abs=(o - ref).abs().max().item(), ok=bool(ok))
                        except Exception as e:  # noqa: BLE001
                            rec.update(rel_err=None, ok=False, error=f"{type(e).__name__}: {e}"[:300])
                        rows.append(rec)
            del base
    for var, dtype in [(v_, dt) for v_ in variants for dt in ("float16", "bfloat16")] + [("fp8", "float8_e4m3")]:
        rs = [r for r in rows if r["variant"] == var and r["dtype"] == dtype]
        if not rs:
            continue
        bad = [r for r in rs if not r["ok"]]
        worst = max((r["rel_err"] if r["rel_err"] is not None else float("inf")) for r in rs)
        ratio = max(((r["rel_err"] or float("inf")) / r["torch_rel_err"]) for r in rs if r["torch_rel_err"])
        log(f"check {var:12s} {dtype:9s} worst rel err {worst:.2e}, worst / torch {ratio:.2f}  "
            + ("OK" if not bad else f"FAIL {len(bad)}: " + json.dumps({k: bad[0].get(k) for k in ('d', 'Nq', 'Nk', 'causal', 'rel_err', 'error')})))
    return rows


ROUNDS = 2           # every cell's implementations timed in ROUNDS interleaved passes (forward, then reversed)


def timing(variants, gen, Ns) -> list[dict]:
    """Time each implementation per cell (interleaved rounds) and check the timed output vs float64."""
    results = []
    for d in (64, 128):
        H = 2048 // d
        for N in Ns:
            B = max(1, 16384 // N)
            for causal in (False, True):
                base = [torch.randn(B, H, N, d, device=DEV, generator=gen, dtype=torch.float16) for _ in range(3)]
                ins = {"float16": base, "bfloat16": [x.to(torch.bfloat16) for x in base]}
                flops = 4 * B * H * N * N * d / (2 if causal else 1)
                refs, torch_err = {}, {}
                for dt, (q, k, v) in ins.items():      # float64 reference and torch flash's own error, heads 0-1
                    refs[dt] = reference(q[:1, :2], k[:1, :2], v[:1, :2], causal)
                    with gf.sdpa_kernel(gf.SDPBackend.FLASH_ATTENTION):
                        o = torch.nn.functional.scaled_dot_product_attention(q[:1, :2], k[:1, :2], v[:1, :2], is_causal=causal)
                    torch_err[dt] = (torch.linalg.norm(o.double() - refs[dt]) / torch.linalg.norm(refs[dt])).item()
                mine = [x for x in variants if d in hopper.VARIANTS[x][4]]
                todo = [(IMPL["float16"], "float16", var) for var in mine]
                todo += [(IMPL["bfloat16"], "bfloat16", hopper.DEFAULT_VARIANT[d] if hopper.DEFAULT_VARIANT[d] in mine else mine[-1])]
                todo += [("torch_sdpa_flash", "float16", None), ("torch_sdpa_cudnn", "float16", None)]
                if FP8 and d == 128:
                    todo += [("cupy_fp8_wgmma", "float16", v8) for v8 in QUANT_OF]
                cell = []
                for impl, dtype, var in todo:
                    rec = {"impl": impl, "variant": var, "dtype": dtype, "B": B, "H": H, "N": N, "d": d,
                           "causal": causal, "pass": "fwd", "default": var == hopper.DEFAULT_VARIANT[d]}
                    qq, kk, vv = ins[dtype]
                    try:
                        if impl.startswith("torch"):
                            run, out = gf.make_fn(impl, dtype, qq, kk, vv, causal)
                        elif impl == "cupy_fp8_wgmma":
                            rec["dtype"] = "float8_e4m3"
                            run, out = make_run_fp8(qq, kk, vv, causal, QUANT_OF[var])
                        else:
                            run, out = make_run(dtype, qq, kk, vv, causal, var)
                        rec.update(timed_err(run, out, qq, refs[dtype]), torch_rel_err=torch_err[dtype])
                        rec["err_ratio_vs_torch"] = e = rec["check_rel_err"] / torch_err[dtype]
                        rec["check_ok"] = bool(rec["check_rel_err"] < FP8_TOL if impl == "cupy_fp8_wgmma" else
                                               rec["check_rel_err"] < gf.TOL[dtype] and e <= 2)   # NaN fails both
                        cell.append((rec, run, []))
                    except Exception as e:  # noqa: BLE001
                        rec.update(ms=None, tflops=None, error=f"{type(e).__name__}: {e}"[:300])
                    results.append(rec)
                for rnd in range(ROUNDS):
                    for rec, run, times in (cell if rnd % 2 == 0 else cell[::-1]):
                        try:
                            ms, t = time_ms(run)
                            times.extend(t)
                            rec.setdefault("ms_rounds", []).append(ms)
                        except Exception as e:  # noqa: BLE001
                            rec["error"] = f"{type(e).__name__}: {e}"[:300]
                for rec, run, times in cell:
                    if times:
                        rec.update(ms=statistics.median(times), reps=len(times))
                        rec["tflops"] = flops / rec["ms"] / 1e9
                    else:
                        rec.update(ms=None, tflops=None)
                del base, ins, cell
    return results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variants", default=",".join(hopper.VARIANTS))
    ap.add_argument("--layout-test", action="store_true")
    ap.add_argument("--nvrtc-probe", action="store_true", help="also try CuPy's NVRTC for sm_90a (slow)")
    ap.add_argument("--Ns", default="8192,16384")
    ap.add_argument("--out", default=os.environ.get("OUT", str(Path(__file__).resolve().parent / "results")))
    ap.add_argument("--no-fp8", action="store_true")
    ap.add_argument("--name", default="gpu_flash_hopper_h200.json")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    args = ap.parse_args()
    variants = args.variants.split(",")
    global FP8
    FP8 = not args.no_fp8
    gen = torch.Generator(device=DEV)
    gen.manual_seed(args.seed)
    t0 = time.time()
    meta = {"seed": args.seed, "gpu": torch.cuda.get_device_properties(0).name,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "versions": gf.versions(), "flops_formula": "4*B*H*N^2*d, halved when causal",
            "timing": "CUDA events, median after warm-up", "load_average": os.getloadavg(),
            "nvcc_flags": list(hopper.NVCC_FLAGS)}
    t = time.time()
    hopper.build_cubin()
    meta["build_s"] = time.time() - t
    log(f"built in {meta['build_s']:.1f} s")
    try:
        if not args.nvrtc_probe:
            raise RuntimeError("probed only with --nvrtc-probe (call 1 of 09:24 UTC: ok)")
        # can CuPy's default compiler (NVRTC) build sm_90a too? (recorded, not used)
        cp.RawModule(code=hopper.cuda_source(), options=("-std=c++17", "-arch=sm_90a")).get_function(
            "wg_layout_test_f16")
        meta["nvrtc_sm90a"] = "ok"
    except Exception as e:  # noqa: BLE001
        meta["nvrtc_sm90a"] = f"{type(e).__name__}: {e}"[:300]
    log("nvrtc -arch=sm_90a:", meta["nvrtc_sm90a"])
    if args.layout_test:
        meta["layout_test"] = layout_test()
    if FP8:     # the fused quantiser is checked byte for byte in a child process before the run may use it
        try:
            p = subprocess.run([sys.executable, str(Path(__file__).with_name("gpu_hopper_fp8.py")), str(args.seed + 1)],
                               capture_output=True, text=True, timeout=180)
            meta["fp8_fused_quantiser_vs_first"] = json.loads(p.stdout.strip().splitlines()[-1])
        except Exception as e:  # noqa: BLE001
            meta["fp8_fused_quantiser_vs_first"] = [{"error": f"{type(e).__name__}: {e}"[:300]}]
        log("fused quantiser vs first:", json.dumps(meta["fp8_fused_quantiser_vs_first"]))
        if not all(r.get("equal") for r in meta["fp8_fused_quantiser_vs_first"]):
            QUANT_OF.pop("fp8+fusedquant")
    meta["resources"] = resources(variants)
    log("resources", json.dumps(meta["resources"]))
    checks = run_checks(variants, gen)
    results = timing(variants, gen, [int(n) for n in args.Ns.split(",")])
    try:
        fp8_rot = incoherent(gen, args.seed) if FP8 else []
    except Exception as e:  # noqa: BLE001
        fp8_rot = [{"error": f"{type(e).__name__}: {e}"[:300]}]
        log("incoherent:", fp8_rot)
    try:
        meta["acceptance"] = acceptance(results, checks)
    except Exception as e:  # noqa: BLE001  (never lose the run's JSON to the summary)
        meta["acceptance"] = {"error": f"{type(e).__name__}: {e}"[:300]}
    meta["wall_s"] = time.time() - t0
    Path(args.out).mkdir(parents=True, exist_ok=True)
    path = Path(args.out) / args.name
    path.write_text(json.dumps({**meta, "results": results, "checks": checks}, indent=1))
    if FP8:     # the FP8 records alone, with the incoherent-processing table (same run, same meta)
        def is8(r):     # fp8, plus at d = 128 the shipped fp16 kernel and torch's baselines to compare with
            return r["impl"] == "cupy_fp8_wgmma" or r["d"] == 128 and (
                r["impl"].startswith("torch") or r["impl"] == IMPL["float16"] and r["variant"] == hopper.DEFAULT_VARIANT[128])
        (Path(args.out) / args.name.replace("hopper_", "hopper_fp8_")).write_text(json.dumps(
            {**meta, "results": [r for r in results if is8(r)], "checks": [c for c in checks if is8(c)],
             "incoherent": fp8_rot}, indent=1))
    log(f"wrote {path} ({meta['wall_s']:.0f} s); checks failed: {sum(not c['ok'] for c in checks)} of {len(checks)}")
    log("acceptance", json.dumps({k: v for k, v in meta["acceptance"].items() if k != "cells"}))
    for d in (64, 128):
        for N in sorted({r["N"] for r in results}):
            for causal in (False, True):
                cell = [r for r in results if r["d"] == d and r["N"] == N and r["causal"] == causal]
                fl = next((r["tflops"] for r in cell if r["impl"] == "torch_sdpa_flash"), None)
                log(f"d={d} N={N} causal={int(causal)}: " + "  ".join(
                    f"{(r['variant'] or r['impl'].replace('torch_sdpa_', ''))}{'/bf16' if r['dtype'] == 'bfloat16' else ''}="
                    + (f"{r['tflops']:.0f}" + (f"({r['tflops'] / fl:.2f}x)" if fl and r['impl'].startswith('cupy') else "")
                       + f"[{r['check_rel_err']:.0e}]" if r.get("tflops") else "ERR") for r in cell))


if __name__ == "__main__":
    main()
